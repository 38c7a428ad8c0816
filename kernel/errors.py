"""The project's exception tree: each error knows how it is reported.

Every error the project reports is an :class:`OutreachError` and carries its HTTP status, a
stable machine-readable ``code`` and its CLI exit code. One place in each adapter turns these
into output: the CLI's ``reported`` wrapper (a message and the exit code), the service's error
handler (JSON under ``/api``, an HTML page elsewhere). Exit codes: 2 bad input or a refusal,
3 a gate or check that did not pass, 4 a dependency that is unavailable, 1 anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class OutreachError(Exception):
    """Base class for every error the project reports to a user."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: Sequence[str] = (),
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: tuple[str, ...] = tuple(details)
        if code is not None:
            self.code = code  # a more specific stable code than the class's
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {d}" for d in self.details)


class BadInputError(OutreachError):
    """Input a user supplied (a file, an option, a payload) is wrong; nothing was written."""

    exit_code = 2
    http_status = 400
    code = "bad_input"


class SpecError(BadInputError):
    """An experiment spec or policy file is invalid; every problem is listed in ``details``."""

    code = "invalid_spec"


class DataValidationError(BadInputError):
    """A data set does not match the experiment's schema; ``details`` name rows and columns."""

    code = "invalid_data"


class PayloadTooLargeError(BadInputError):
    """A request body or a list in it is larger than the documented limit."""

    http_status = 413
    code = "too_large"


class UnsupportedMediaError(BadInputError):
    """A request body is not in the format the endpoint takes (JSON)."""

    http_status = 415
    code = "unsupported_media_type"


class UnauthenticatedError(OutreachError):
    """No credentials, or credentials that are not (or no longer) valid."""

    exit_code = 2
    http_status = 401
    code = "unauthenticated"


class ForbiddenError(OutreachError):
    """The caller is known but may not do this (their role, a refused purpose)."""

    exit_code = 2
    http_status = 403
    code = "forbidden"


class NotFoundError(OutreachError):
    """A named thing (model, version, audit, person in one's areas) does not exist."""

    exit_code = 2
    http_status = 404
    code = "not_found"


class ConflictError(OutreachError):
    """The request is well formed but the current state refuses it (someone opted out)."""

    exit_code = 2
    http_status = 409
    code = "conflict"


class RateLimitedError(OutreachError):
    """Too many requests or sign-in attempts; ``headers`` carry ``Retry-After``."""

    exit_code = 2
    http_status = 429
    code = "rate_limited"


class UnavailableError(OutreachError):
    """Something the request needs is not available now (no verified model, the log)."""

    exit_code = 4
    http_status = 503
    code = "unavailable"


class GateError(OutreachError):
    """A release or a model version did not pass its fairness gate."""

    exit_code = 3
    http_status = 409
    code = "gate_failed"


class CheckFailedError(OutreachError):
    """A check ran and found a problem (an audit that did not pass, a broken chain)."""

    exit_code = 3
    http_status = 409
    code = "check_failed"


class JobFailedError(OutreachError):
    """A job failed for a reason outside its input (a Spark job out of memory, a lost
    executor, no Java): nothing of it was kept, and the message says what the engine said."""

    exit_code = 1
    http_status = 500
    code = "job_failed"
