"""The project's exception tree: each error knows how it is reported.

One place in each adapter (the CLI, the web service) turns these into output: an exit code
for the command line, an HTTP status and a JSON body for the API.
"""

from __future__ import annotations

from collections.abc import Sequence


class OutreachError(Exception):
    """Base class for every error the project reports to a user."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details: tuple[str, ...] = tuple(details)

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


class NotFoundError(OutreachError):
    """A named thing (model, version, audit) does not exist."""

    exit_code = 2
    http_status = 404
    code = "not_found"


class GateError(OutreachError):
    """A release or a model version did not pass its fairness gate."""

    exit_code = 3
    http_status = 409
    code = "gate_failed"
