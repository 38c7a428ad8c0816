"""Labels come back: ingest a period's outcomes and judge what the list actually did.

``outreach labels ingest FILE`` reads the id, period and label columns the serving model was
trained with (CSV or Parquet), validates them like training data (every problem named, nothing
written unless the whole file is good) and, for each period in the file:

- stores the labels against the period's scored population (a Parquet file bound by sha256, as
  the snapshot is) and against its queue (``queue_entries.label``);
- computes the **realised** results with the release gate's own code (:func:`audits.audit.
  run_audit`: the same groups and intersections, intervals, comparison and decision rule, under
  the policy the serving model's audit applied): precision and recall at capacity overall and
  per group, the gate's verdict on them, and calibration (observed against expected crises);
- compares them with the **estimates** made when the period was scored (:mod:`audits.
  estimates`), flagging realised values outside the estimate's sampling band;
- when the evaluation lottery ran, the inverse-probability estimates at the margin
  (:mod:`monitoring.evaluation`).

One caution is part of every result: a person on the list who accepted help may have avoided the
crisis the model foresaw, so the list's realised precision and recall count prevented crises as
misses. The evaluation arm's estimates near the cut-off do not have that problem.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from audits import limit_check
from audits.audit import applicable_intersections, run_audit
from audits.policy import Policy, policy_from_report
from audits.report import group_rows, plain_numbers
from kernel.errors import BadInputError, DataValidationError
from model.data import id_problems, ordinal_to_period, parse_periods, row_list
from model.rules import name_problem
from monitoring.estimates import compare_with_realised
from monitoring.evaluation import evaluation_estimates
from monitoring.periods import load_snapshot, period_stem, write_bound
from store.db import Database, PeriodLabels, QueueEntry, ScoredPeriod

CAVEAT = (
    "People on the list who accepted help may have avoided the crisis the model foresaw: the "
    "list's realised precision and recall count a prevented crisis as a miss. The evaluation "
    "arm's estimates at the margin do not have this problem."
)
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class LabelColumns:
    id_column: str
    time_column: str
    label_column: str


@dataclass
class PeriodIngest:
    period: str
    labelled: int
    positives: int
    unlabelled: int
    unknown: int
    verdict: str | None
    warnings: list[str] = field(default_factory=list)


def read_labels(frame: pd.DataFrame, columns: LabelColumns) -> dict[str, pd.DataFrame]:
    """The file's labels per period (``person_id`` as text, ``label`` 0/1), or every problem.

    Raises
    ------
    DataValidationError
        Missing columns, unparseable periods, labels other than 0 or 1 (missing included),
        missing ids, or an id labelled twice in a period.
    """
    needed = (columns.id_column, columns.time_column, columns.label_column)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataValidationError(
            "the labels cannot be ingested",
            details=[
                f"missing columns: {', '.join(missing)} (the model's id, period and label "
                f"columns are {', '.join(needed)})"
            ],
        )
    if frame.empty:
        raise DataValidationError("the labels cannot be ingested", details=["the file has no rows"])
    problems, ordinals = parse_periods(frame[columns.time_column], columns.time_column)
    ids = frame[columns.id_column]
    problems += id_problems(ids, columns.id_column)  # the one id rule
    values = pd.to_numeric(frame[columns.label_column], errors="coerce")
    bad = ~values.isin([0, 1]).to_numpy()
    if bad.any():
        problems.append(f"column '{columns.label_column}': not 0 or 1 in {row_list(bad)}")
    if ordinals is not None and not ids.isna().any():
        # One integer per (id, month): duplicates found without hashing text pairs.
        people, _ = pd.factorize(ids.astype(str))
        months = ordinals - ordinals.min()
        keys = people.astype(np.int64) * (int(months.max()) + 1) + months
        dup = pd.Series(keys).duplicated(keep="first").to_numpy()
        if dup.any():
            problems.append(
                f"duplicate ({columns.id_column}, {columns.time_column}) keys: {row_list(dup)} "
                "repeat an earlier row"
            )
    if problems or ordinals is None:
        raise DataValidationError("the labels cannot be ingested", details=problems)
    table = pd.DataFrame(
        {
            "person_id": ids.astype(str).to_numpy(),
            "label": values.to_numpy(dtype=np.int8),
            "ordinal": ordinals,
        }
    )
    return {
        ordinal_to_period(int(o)): part.drop(columns="ordinal").reset_index(drop=True)
        for o, part in table.groupby("ordinal", sort=True)
    }


def _text(column: pd.Series) -> np.ndarray:
    """A group column as text values (a categorical's labels taken by code, not converted one
    by one)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        names = np.asarray(column.cat.categories.astype(str), dtype=object)
        codes = column.cat.codes.to_numpy()
        return np.where(codes >= 0, names[np.maximum(codes, 0)], "nan").astype(object)
    return column.astype(str).to_numpy(dtype=object)


def _calibration(
    scores: np.ndarray, labels: np.ndarray, groups: Mapping[str, np.ndarray], level: float
) -> dict[str, Any]:
    """Observed against expected crises, overall and per group, and a reliability table.

    The observed count's interval is the exact (Garwood) Poisson interval; the ratio observed /
    expected is outside it exactly when the exact Poisson test rejects calibration.
    """
    from scipy.stats import chi2

    alpha = 1 - level

    def cell(mask: np.ndarray) -> dict[str, Any]:
        expected = float(scores[mask].sum())
        observed = int(labels[mask].sum())
        low = chi2.ppf(alpha / 2, 2 * observed) / 2 if observed else 0.0
        high = chi2.ppf(1 - alpha / 2, 2 * observed + 2) / 2
        ratio = observed / expected if expected > 0 else None
        return {
            "people": int(mask.sum()),
            "expected": expected,
            "observed": observed,
            "ratio": ratio,
            "ci": [low / expected, high / expected] if expected > 0 else [None, None],
            # Calibrated exactly when the ratio's interval includes 1 (one rule for the flag
            # and for how the interval is shown: audits.limit_check.shown_interval).
            "calibrated": (
                limit_check.interval_includes(low / expected, high / expected, 1.0)
                if expected > 0
                else None
            ),
        }

    everyone = np.ones(len(scores), dtype=bool)
    rows = [{"attribute": "overall", "group": "overall", **cell(everyone)}]
    for attribute, values in groups.items():
        codes, names = pd.factorize(values, sort=True)
        for code, group in enumerate(names):
            rows.append({"attribute": attribute, "group": str(group), **cell(codes == code)})
    edges = np.quantile(scores, np.linspace(0, 1, CALIBRATION_BINS + 1)) if len(scores) else []
    bins = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, CALIBRATION_BINS - 1)
    reliability = []
    for b in range(CALIBRATION_BINS):
        inside = bins == b
        if inside.any():
            reliability.append(
                {
                    "people": int(inside.sum()),
                    "mean_score": float(scores[inside].mean()),
                    "observed_rate": float(labels[inside].mean()),
                }
            )
    return {"groups": rows, "reliability": reliability}


def realised_results(
    snapshot: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    policy: Policy,
    estimates: Mapping[str, Any] | None,
    scored: ScoredPeriod,
    seed: int = 0,
) -> dict[str, Any]:
    """The realised results of one period (labels joined to its scored population).

    Ids are unique on both sides (scoring and :func:`read_labels` refuse duplicates), so the join
    is a lookup: each scored person's position in the labels, in the snapshot's order.
    """
    position = pd.Index(labels["person_id"]).get_indexer(snapshot["person_id"])
    inside = position >= 0
    joined = snapshot.loc[inside].reset_index(drop=True)
    y = labels["label"].to_numpy(dtype=np.int8)[position[inside]]
    scores = joined["score"].to_numpy(dtype=float)
    on_list = (joined["source"] == "list").to_numpy()
    attributes = [a for a in policy.sensitive_attributes if a in joined.columns]
    groups = {a: _text(joined[a]) for a in attributes}
    outcome = run_audit(
        policy,
        labels=y,
        selected=on_list,
        scores=scores,
        sensitive=groups,
        periods=1,
        seed=seed,
    )
    audit, decision = outcome.audit, outcome.decision
    gated = {g.metric for g in policy.gates}
    realised_map: dict[tuple[str, str], dict[str, float | None]] = {
        ("overall", "overall"): {
            "precision": audit.overall.get("precision"),
            "recall": audit.overall.get("recall"),
        }
    }
    for g in audit.groups:
        realised_map[(g.attribute, g.group)] = {
            "precision": g.metrics.get("precision"),
            "recall": g.metrics.get("recall"),
        }
    estimated = {(g["attribute"], g["group"]) for g in (estimates or {}).get("groups") or []}
    against = (
        compare_with_realised(
            dict(estimates),
            {k: v for k, v in realised_map_items(realised_map).items() if k in estimated},
        )
        if estimates
        else []
    )
    evaluation = None
    if scored.lottery_places:
        evaluation = evaluation_estimates(
            y,
            joined["rank"].to_numpy(dtype=np.int64),
            joined["offered"].to_numpy(dtype=bool),
            joined["probability"].to_numpy(dtype=float),
            scores,
            scored.capacity,
            scored.band_end,
            level=policy.interval_level,
            seed=seed,
        ).as_dict()
    # A month is thinner evidence than a release audit's months: a group the month could not
    # judge at the limit ("underpowered") is no finding here. A breach beyond noise is the
    # board's warning and recommends a re-audit; a point beyond a limit that could be noise is a
    # warning to watch.
    warnings = [f"realised at capacity, a breach: {b.message}" for b in decision.breaches]
    warnings += [
        f"realised at capacity (a warning gate): {b.message}"
        for b in decision.warnings
        if b.kind != "underpowered"
    ]
    warnings += [
        f"realised at capacity, to watch: {b.message}"
        for b in decision.review
        if b.kind == "apparent_breach"
        or (b.kind == "not_assessable" and "beyond the limit" in b.message)
    ]
    outside = [row for row in against if row.get("outside_band")]
    for row in outside[:10]:
        warnings.append(
            f"{row['attribute']} = {row['group']}: realised {row['metric']} "
            f"{_pct(row.get('realised'))} is {row.get('direction')} the estimate's band "
            f"{_pct(row.get('low'))}–{_pct(row.get('high'))}: the scores may no longer be "
            "calibrated for this group, or help prevented crises the model foresaw"
        )
    reaudit = [b.message for b in decision.breaches]
    return plain_numbers(
        {
            "labelled": len(joined),
            "positives": int(y.sum()),
            "caveat": CAVEAT,
            "overall": audit.overall,
            "groups": group_rows(audit),
            "disparities": [
                {
                    "attribute": d.attribute,
                    "group": d.group,
                    "reference": d.reference,
                    "metric": d.metric,
                    "kind": d.kind,
                    "value": d.value,
                    "ci": list(d.ci),
                    "p_value": d.p_value,
                    "sufficient": d.sufficient,
                    "group_value": d.group_value,
                    "reference_value": d.reference_value,
                }
                for d in audit.disparities
                if d.metric in gated
            ],
            "decision": {
                "verdict": decision.verdict,
                "breaches": [b.as_dict() for b in decision.breaches],
                "review": [b.as_dict() for b in decision.review],
                "warnings": [b.as_dict() for b in decision.warnings],
            },
            "intersections": [" × ".join(c) for c in applicable_intersections(policy, attributes)],
            "calibration": _calibration(scores, y, groups, policy.interval_level),
            "against_estimates": against,
            "evaluation": evaluation,
            "warnings": warnings,
            "reaudit_recommended": bool(reaudit),
            "reaudit_reasons": reaudit,
        }
    )


def realised_map_items(
    values: Mapping[tuple[str, str], Mapping[str, float | None]],
) -> dict[tuple[str, str], dict[str, float | None]]:
    return {
        key: {
            m: (None if v is None or not math.isfinite(float(v)) else float(v))
            for m, v in metrics.items()
        }
        for key, metrics in values.items()
    }


def _chunks(values: list[int], size: int = 5_000) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _pct(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, int | float) else "n/a"


def ingest(
    db: Database,
    *,
    name: str,
    frame: pd.DataFrame,
    columns: LabelColumns,
    report_for: Callable[[str], Mapping[str, Any]],
    folder: Path,
    by: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[PeriodIngest]:
    """Ingest a labels file for model ``name``: all of it, or nothing.

    Every period in the file must have been scored for this model (``outreach score``); a
    period labelled again replaces its earlier labels and results.
    """
    problem = name_problem(by)  # who ingests: the rule of every name (users add's)
    if problem is not None:
        raise BadInputError(f"who ingests (--by) {problem}", details=[f"by: {problem}"])
    by = by.strip()
    per_period = read_labels(frame, columns)
    with db.session() as session:
        scored = {
            row.period: row
            for row in session.scalars(
                select(ScoredPeriod).where(
                    ScoredPeriod.model_name == name, ScoredPeriod.period.in_(list(per_period))
                )
            )
        }
    unscored = [p for p in per_period if p not in scored]
    if unscored:
        raise DataValidationError(
            "the labels cannot be ingested",
            details=[
                f"no scored population for {name} in {', '.join(unscored)}: labels are kept "
                "against a period's scored population, so score it first (outreach score)"
            ],
        )
    results: list[PeriodIngest] = []
    computed: list[tuple[str, pd.DataFrame, dict[str, Any], PeriodIngest, str, str]] = []
    for period, labels in per_period.items():
        row = scored[period]
        progress(f"{period}: joining {len(labels):,} labels to {row.population:,} scored people")
        snapshot = load_snapshot(row, folder)
        known = pd.Index(snapshot["person_id"]).get_indexer(labels["person_id"]) >= 0
        kept = labels.loc[known].reset_index(drop=True)
        if kept.empty:
            raise DataValidationError(
                "the labels cannot be ingested",
                details=[f"{period}: none of the {len(labels):,} ids was scored in that period"],
            )
        report = dict(report_for(row.audit_id))
        policy = policy_from_report(report)
        if policy is None:
            raise DataValidationError(
                f"{period}: the audit {row.audit_id} of the model that scored it carries no "
                "policy to judge the labels by"
            )
        progress(f"{period}: realised results per group (the release gate's audit)")
        realised = realised_results(
            snapshot,
            kept,
            policy=policy,
            estimates=row.estimates,
            scored=row,
            seed=int(row.snapshot_sha256[:8], 16),
        )
        path, digest = write_bound(folder, period_stem(name, period, "labels"), kept)
        outcome = PeriodIngest(
            period=period,
            labelled=len(kept),
            positives=int(kept["label"].sum()),
            unlabelled=int(row.population - len(kept)),
            unknown=int((~known).sum()),
            verdict=str(realised["decision"]["verdict"]),
            warnings=list(realised["warnings"]),
        )
        computed.append((period, kept, realised, outcome, str(path), digest))
        results.append(outcome)
    with db.session() as session:
        for period, kept, realised, outcome, stored, digest in computed:
            _store(session, name, period, kept, realised, outcome, stored, digest, by)
    return results


def _store(
    session: Session,
    name: str,
    period: str,
    labels: pd.DataFrame,
    realised: dict[str, Any],
    outcome: PeriodIngest,
    path: str,
    digest: str,
    by: str,
) -> None:
    row = session.scalars(
        select(PeriodLabels).where(PeriodLabels.model_name == name, PeriodLabels.period == period)
    ).one_or_none()
    if row is None:
        row = PeriodLabels(model_name=name, period=period)
        session.add(row)
    row.labelled = outcome.labelled
    row.positives = outcome.positives
    row.unlabelled = outcome.unlabelled
    row.labels = path
    row.labels_sha256 = digest
    row.realised = realised
    row.ingested_by = by
    connection = session.connection()
    table = QueueEntry.metadata.tables[QueueEntry.__tablename__]
    connection.execute(
        update(table).where(table.c.model_name == name, table.c.period == period).values(label=None)
    )
    entries = dict(
        connection.execute(
            select(QueueEntry.person_id, QueueEntry.id).where(
                QueueEntry.model_name == name, QueueEntry.period == period
            )
        ).all()
    )
    if entries:
        found = labels.loc[pd.Index(list(entries)).get_indexer(labels["person_id"]) >= 0]
        by_label: dict[int, list[int]] = {0: [], 1: []}
        for person, label in zip(found["person_id"], found["label"], strict=True):
            by_label[int(label)].append(entries[person])
        for label, ids in by_label.items():  # two statements per chunk, not one per entry
            for part in _chunks(ids):
                connection.execute(update(table).where(table.c.id.in_(part)).values(label=label))
    session.flush()
