"""The options that describe a file of another tool's predictions (its label, sensitive attributes
and operating point), shared by ``outreach audit`` and ``outreach policy simulate``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kernel.errors import BadInputError

if TYPE_CHECKING:
    from audits.external import OperatingPoint

F = TypeVar("F", bound=Callable[..., Any])

#: (flag, parameter, type, help), in the order ``--help`` lists them.
OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--label", "label", None, "Outcome column (0/1)."),
    ("--sensitive", "sensitive", None, "Sensitive attribute columns, comma-separated."),
    ("--decision", "decision", None, "The tool's 0/1 decision column."),
    ("--score", "score", None, "The tool's score column."),
    ("--threshold", "threshold", float, "Flag records whose score is at least this."),
    ("--top-k", "top_k", int, "Flag the top K records by score."),
    (
        "--period",
        "period",
        None,
        "The month (or period) column: the audit counts its months, and --top-k takes the top "
        "K within each.",
    ),
    (
        "--id",
        "cluster",
        None,
        "The person (or area) column: rows of one person are resampled together.",
    ),
)


@dataclass(frozen=True)
class PredictionColumns:
    """The prediction options as given (each ``None`` when not)."""

    label: str | None = None
    sensitive: str | None = None
    decision: str | None = None
    score: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    period: str | None = None
    cluster: str | None = None

    def required(self, flag: str) -> tuple[str, list[str]]:
        """The label column and the sensitive columns, or exit 2 naming what ``flag`` needs."""
        if not self.label or not self.sensitive:
            raise BadInputError(f"{flag} needs --label COL and --sensitive A,B")
        return self.label, [s.strip() for s in self.sensitive.split(",") if s.strip()]

    def point(self) -> OperatingPoint:
        """How the predictions become a decision (checked by the audit)."""
        from audits.external import OperatingPoint

        return OperatingPoint(
            self.decision, self.score, self.threshold, self.top_k, self.period, self.cluster
        )


def prediction_options(*, needs: str | None = None) -> Callable[[F], F]:
    """Add the prediction options to a command, handed to it as one ``columns`` argument
    (:class:`PredictionColumns`).

    ``needs`` names the option they go with (``"--data"``): each help text then starts with
    "With --data:".
    """

    def decorate(func: F) -> F:
        @wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for _, name, _, _ in OPTIONS}
            return func(*args, columns=PredictionColumns(**given), **kwargs)

        for flag, name, kind, words in reversed(OPTIONS):
            text = f"With {needs}: {words[0].lower()}{words[1:]}" if needs else words
            command = click.option(flag, name, type=kind, help=text)(command)
        return command  # type: ignore[return-value]

    return decorate
