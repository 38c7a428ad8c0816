"""Audits of predictions made elsewhere: an oversight board auditing any tool's scores.

The predictions file holds one row per person: the observed outcome, the sensitive attributes, and
either the tool's decision (0/1) or its score with a threshold (flagged when the score is at least
the threshold) or a capacity (the top k by score, overall or per period).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from audits.audit import AuditOutcome, run_audit
from audits.policy import Policy
from audits.report import Subject, build_report, characteristics, new_audit_id
from kernel.errors import BadInputError, DataValidationError
from model.capacity_metrics import top_k_mask


@dataclass(frozen=True)
class OperatingPoint:
    """How the predictions become a decision."""

    decision: str | None = None
    score: str | None = None
    threshold: float | None = None
    top_k: int | None = None
    period: str | None = None
    #: The column naming each row's person (or area): rows of one are resampled together.
    cluster: str | None = None

    def check(self) -> None:
        modes = [
            self.decision is not None,
            self.score is not None and self.threshold is not None,
            self.score is not None and self.top_k is not None,
        ]
        if sum(modes) != 1 or (self.decision is not None and self.score is not None):
            raise BadInputError(
                "give exactly one operating point: --decision COL, or --score COL with "
                "--threshold T, or --score COL with --top-k K"
            )
        if self.top_k is not None and self.top_k < 1:
            raise BadInputError(f"--top-k must be at least 1 (got {self.top_k})")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise BadInputError(f"--threshold must be a finite number (got {self.threshold})")

    def describe(self) -> str:
        if self.decision is not None:
            return f"the tool's own decision in column '{self.decision}'"
        if self.threshold is not None:
            return f"flagged when '{self.score}' is at least {self.threshold:g}"
        per = f" of each '{self.period}'" if self.period else ""
        return f"the top {self.top_k}{per} by '{self.score}'"


def _rows(mask: np.ndarray) -> str:
    positions = np.flatnonzero(mask)[:5] + 1
    more = int(mask.sum()) - len(positions)
    return ", ".join(map(str, positions)) + (f" and {more} more" if more > 0 else "")


def _binary(frame: pd.DataFrame, column: str, problems: list[str]) -> np.ndarray | None:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = ~values.isin([0, 1]).to_numpy()
    if bad.any():
        problems.append(f"column '{column}': not 0 or 1 in rows {_rows(bad)}")
        return None
    return values.to_numpy(dtype=np.int8)


#: Fewest rows an external audit takes.
MIN_ROWS = 2
#: A sensitive column with more distinct values than this (and than half its rows) is refused as
#: continuous: it must be grouped into bands first.
MAX_GROUPS = 100


@dataclass(frozen=True)
class Prepared:
    """A validated predictions frame, as the audit reads it."""

    labels: np.ndarray
    selected: np.ndarray
    scores: np.ndarray | None
    groups: dict[str, np.ndarray]
    clusters: np.ndarray | None
    periods: int


def prepare(
    frame: pd.DataFrame, *, label: str, sensitive: Sequence[str], point: OperatingPoint
) -> Prepared:
    """Validate a predictions frame and turn it into labels, decisions, scores and groups.

    Raises
    ------
    DataValidationError
        Naming every missing column and bad row at once.
    """
    point.check()
    needed = [label, *sensitive]
    needed += [
        c for c in (point.decision, point.score, point.period, point.cluster) if c is not None
    ]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the predictions file lacks columns",
            details=[f"missing columns: {', '.join(missing)} (found: {', '.join(frame.columns)})"],
        )
    if len(frame) < MIN_ROWS:
        raise DataValidationError(
            f"the predictions file has {len(frame)} row(s): an audit needs at least {MIN_ROWS}"
        )
    problems: list[str] = []
    labels = _binary(frame, label, problems)
    if labels is not None and not labels.any():
        problems.append(
            f"column '{label}': nobody has the outcome (all {len(frame)} rows are 0): no group's "
            "reach can be judged"
        )
    selected: np.ndarray | None = None
    scores: np.ndarray | None = None
    if point.decision is not None:
        decision = _binary(frame, point.decision, problems)
        selected = None if decision is None else decision.astype(bool)
    else:
        assert point.score is not None
        numbers = pd.to_numeric(frame[point.score], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(numbers)
        if bad.any():
            problems.append(f"column '{point.score}': missing or not a number in rows {_rows(bad)}")
        else:
            scores = numbers
            if point.threshold is not None:
                selected = scores >= point.threshold
            else:
                assert point.top_k is not None
                periods = (
                    frame[point.period].astype(str).to_numpy()
                    if point.period
                    else np.zeros(len(frame), dtype=np.int8)
                )
                ids = np.arange(len(frame))
                k = point.top_k
                selected = top_k_mask(scores, periods, ids, lambda n: min(k, n))
    groups: dict[str, np.ndarray] = {}
    for attribute in sensitive:
        column = frame[attribute]
        if column.isna().any():
            problems.append(
                f"column '{attribute}': missing in rows {_rows(column.isna().to_numpy())}"
            )
        distinct = int(column.nunique(dropna=True))
        if distinct > MAX_GROUPS and distinct > len(frame) // 2:
            problems.append(
                f"column '{attribute}': {distinct:,} distinct values; a sensitive attribute needs "
                f"groups (at most {MAX_GROUPS}), so group a continuous column into bands first"
            )
            continue
        groups[attribute] = column.astype(str).to_numpy(dtype=object)
    clusters = None
    if point.cluster is not None:
        ids = frame[point.cluster]
        if ids.isna().any():
            problems.append(
                f"column '{point.cluster}': missing in rows {_rows(ids.isna().to_numpy())}"
            )
        clusters = ids.astype(str).to_numpy(dtype=object)
    periods = int(frame[point.period].nunique()) if point.period is not None else 1
    if problems or labels is None or selected is None:
        raise DataValidationError("the predictions file cannot be audited", details=problems)
    return Prepared(labels, selected, scores, groups, clusters, max(periods, 1))


def audit_frame(
    frame: pd.DataFrame,
    *,
    policy: Policy,
    label: str,
    sensitive: Sequence[str],
    point: OperatingPoint,
) -> tuple[AuditOutcome, Policy]:
    """The audit's outcome on a predictions frame, and the policy as applied to its attributes
    (``sensitive`` replaces the policy's own list; see :func:`audit_predictions`)."""
    if not sensitive:
        raise BadInputError("name at least one sensitive attribute to audit (--sensitive A,B)")
    rows = prepare(frame, label=label, sensitive=sensitive, point=point)
    intersections = [c for c in policy.intersections if all(a in sensitive for a in c)]
    if not intersections and len(sensitive) > 1:
        intersections = [tuple(sensitive)]
    effective = policy.model_copy(
        update={"sensitive_attributes": tuple(sensitive), "intersections": tuple(intersections)}
    )
    outcome = run_audit(
        effective,
        labels=rows.labels,
        selected=rows.selected,
        scores=rows.scores,
        sensitive=rows.groups,
        clusters=rows.clusters,
        periods=rows.periods,
        fairlearn=True,
    )
    return outcome, effective


def audit_predictions(
    frame: pd.DataFrame,
    *,
    policy: Policy,
    label: str,
    sensitive: Sequence[str],
    point: OperatingPoint,
    source: str,
    progress: Callable[[str], None] | None = None,
) -> tuple[AuditOutcome, dict[str, Any]]:
    """Audit a predictions frame against a policy; returns the outcome and its report.

    The policy's gates, intervals and decision rule apply to the attributes named in
    ``sensitive`` (which replace the policy's own list); the policy's intersections apply where
    all their attributes are present, and with two or more attributes and no such intersection,
    all of them are intersected.
    """
    outcome, effective = audit_frame(
        frame, policy=policy, label=label, sensitive=sensitive, point=point
    )
    audit_id = new_audit_id()
    report = build_report(
        audit_id=audit_id,
        subject=Subject(kind="external", name=source),
        policy=effective,
        audit=outcome.audit,
        decision=outcome.decision,
        operating_point={"kind": "external", "description": point.describe()},
        outcome=f"had the outcome recorded in '{label}'",
        outcome_detail=outcome,
        characteristics=characteristics(effective, outcome, progress=progress),
    )
    return outcome, report


def json_document(report: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """The ``audit --json`` document."""
    return {
        "decision": report["decision"],
        "audit_id": report["audit_id"],
        "policy": {"name": report["policy"]["name"], "sha256": report["policy"]["sha256"]},
        "groups": [
            {
                "attribute": g["attribute"],
                "group": g["group"],
                "n": g["n"],
                "positives": g["positives"],
                "sufficient": g["sufficient"],
                "metrics": g["metrics"],
                "ci": g["ci"],
            }
            for g in report["groups"]
        ],
        "disparities": report["disparities"],
        "breaches": report["breaches"],
        "review": report["review"],
        "review_groups": report["review_groups"],
        "headlines": report["headlines"],
        "fairlearn": report["fairlearn"],
        "warnings": report["warnings"],
        "insufficient_groups": report["insufficient_groups"],
        "not_assessable": report["not_assessable"],
        "families": report["families"],
        "evidence": report["evidence"],
        **paths,
    }
