"""What the oversight board reads and may do beside each registered version on the releases page:
the version's monitoring status after release, and which of the board's options (approve,
reject, withdraw, ask for a re-audit) apply to it, for the member reading the page.

The options follow the rules the release lifecycle enforces (:mod:`lifecycle.release`): only a
version awaiting the board's decision is approved or rejected, the person who released a version
cannot approve it, only the version in production is withdrawn, and approving a withdrawn
production version serves it again. The page offers what those rules allow; the lifecycle's own
checks still run on every decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitoring.period_report import period_document, periods_index
from store.db import QueueEntry

#: Months of a version read for its monitoring status (newest first).
STATUS_MONTHS = 6


@dataclass(frozen=True)
class MonitoringStatus:
    """A version's months after release, as the monitoring documents judge them."""

    #: Months scored by this version, newest first (at most ``STATUS_MONTHS``).
    months: tuple[str, ...]
    #: Those of them whose outcomes came back (labelled).
    labelled: tuple[str, ...]
    #: Those of them whose monitoring recommends a re-audit.
    reaudit_months: tuple[str, ...]
    #: Months this version listed people for without a monitoring document (scored before
    #: monitoring was kept, or without it), newest first.
    unmonitored: tuple[str, ...] = ()

    @property
    def recommended(self) -> bool:
        return bool(self.reaudit_months)

    @property
    def sentence(self) -> str:
        """The status in one plain sentence."""
        if not self.months and self.unmonitored:
            count = len(self.unmonitored)
            return (
                f"Not monitored: {count} month{'s' if count != 1 else ''} listed "
                f"({self.unmonitored[0]} the latest) without monitoring, so nothing has been "
                "judged against the policy's limits since release."
            )
        if not self.months:
            return "Not monitored yet: no month has been scored with this version."
        if self.reaudit_months:
            listed = ", ".join(self.reaudit_months)
            return (
                f"Re-audit recommended: monitoring of {listed} shows a measure the policy limits "
                "beyond its limit."
            )
        back = f", {len(self.labelled)} with outcomes back" if self.labelled else ""
        count = len(self.months)
        return (
            f"No re-audit recommended: {count} month{'s' if count != 1 else ''} scored "
            f"({self.months[0]} the latest{back}), nothing beyond the policy's limits."
        )


def monitoring_status(
    session: Session,
    name: str,
    version: str,
    report_for: Callable[[str], Mapping[str, Any] | None],
    *,
    index: list[dict[str, Any]] | None = None,
) -> MonitoringStatus:
    """The monitoring status of ``name`` version ``version`` from its latest scored months'
    documents (:func:`monitoring.period_report.period_document`); ``index`` is
    :func:`~monitoring.period_report.periods_index` of ``name`` when the caller has it."""
    rows = [
        r
        for r in (index if index is not None else periods_index(session, name))
        if str(r["model_version"]) == str(version)
    ][:STATUS_MONTHS]
    months = tuple(str(r["period"]) for r in rows)
    labelled = tuple(str(r["period"]) for r in rows if r["labels"])
    flagged = tuple(
        month
        for month in months
        if period_document(session, name, month, report_for)["reaudit_recommended"]
    )
    listed = session.scalars(
        select(QueueEntry.period)
        .where(QueueEntry.model_name == name, QueueEntry.model_version == str(version))
        .group_by(QueueEntry.period)
        .order_by(QueueEntry.period.desc())
    )
    unmonitored = tuple(str(p) for p in listed if str(p) not in months)
    return MonitoringStatus(months, labelled, flagged, unmonitored)


@dataclass(frozen=True)
class Options:
    """The board's options on one version for the member reading the page."""

    approve: bool = False
    reject: bool = False
    #: Approving again serves a withdrawn production version once more.
    approve_again: bool = False
    withdraw: bool = False
    reaudit: bool = False
    #: Why an option the version would otherwise have is not this member's to take.
    not_yours: str = ""


def options(row: Mapping[str, Any], *, user: str) -> Options:
    """Which options apply to a version (a row of
    :func:`lifecycle.verified_loading.version_states`)."""
    in_production = "production" in (row.get("aliases") or ())
    withdrawn = bool(row.get("withdrawn_by")) and in_production
    rejected = bool(row.get("rejected_by"))
    decidable = (
        bool(row.get("awaiting_approval"))
        and row.get("decision") in ("PASS", "REVIEW")
        and not rejected
    )
    released_by = str(row.get("released_by") or "").strip().lower()
    own = bool(released_by) and released_by == user.strip().lower()
    not_yours = ""
    if own and (decidable or withdrawn):
        not_yours = (
            "You released this version, so another member of the board approves it "
            "(a release needs a second person's approval)."
        )
    return Options(
        approve=decidable and not own,
        reject=decidable,
        approve_again=withdrawn and not own,
        withdraw=in_production and not withdrawn,
        reaudit=bool(row.get("audit_id")) and not rejected and in_production,
        not_yours=not_yours,
    )
