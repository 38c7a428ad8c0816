"""Fairlearn in the loop: the audit's point estimates recomputed with ``MetricFrame``.

Every release (and every external audit) computes each gated metric per group with Fairlearn's
``MetricFrame`` on the audit data. If any value differs from the audit's own beyond 1e-9, the
audit refuses to decide. The report states the match and shows Fairlearn's own summaries
(``ratio(method="between_groups")`` and ``difference``) so a reader can check the numbers.

Fairlearn is given the audit data summarised per grouping: one row per group and (label,
selection) pair that occurs, weighted by how many rows it stands for (``sample_weight``). Every
gated rate is a ratio of counts of those pairs within a group, so Fairlearn's own functions
return the same values as on the rows themselves (integer weights sum exactly), in a fraction of
the time: MetricFrame calls each metric once per group and copies every row it is given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score

from audits.group_metrics import GroupAudit
from audits.groups import JOIN
from kernel.errors import GateError

TOLERANCE = 1e-9


def _precision(y_true: Any, y_pred: Any, sample_weight: Any = None) -> float:
    return float(precision_score(y_true, y_pred, sample_weight=sample_weight, zero_division=np.nan))


#: The audit's metrics as Fairlearn computes them (flagged_to_need has no Fairlearn twin).
FAIRLEARN_METRICS = {
    "selection_rate": selection_rate,
    "recall": true_positive_rate,
    "precision": _precision,
    "false_positive_rate": false_positive_rate,
    "false_negative_rate": false_negative_rate,
}


def _same(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.isfinite(a) == math.isfinite(b)
    return abs(a - b) <= TOLERANCE


def crosscheck(
    audit: GroupAudit,
    *,
    labels: np.ndarray,
    selected: np.ndarray,
    sensitive: Mapping[str, np.ndarray],
    metrics: Sequence[str],
) -> dict[str, Any]:
    """Compare the audit's group estimates of ``metrics`` with ``MetricFrame``'s.

    Returns
    -------
    dict
        ``matched``, ``compared`` (values compared), ``max_difference``, and per grouping and
        metric Fairlearn's between-groups ratio and difference.

    Raises
    ------
    GateError
        If any value differs beyond 1e-9: the audit cannot be trusted to decide.
    """
    wanted = {m: FAIRLEARN_METRICS[m] for m in metrics if m in FAIRLEARN_METRICS}
    if not wanted:
        return {"matched": True, "compared": 0, "max_difference": 0.0, "between_groups": {}}
    y_true, y_pred = np.asarray(labels, dtype=int), np.asarray(selected, dtype=int)
    largest, compared, undefined = 0.0, 0, 0
    mismatches: list[str] = []
    summaries: dict[str, dict[str, dict[str, float | None]]] = {}
    for attribute in dict.fromkeys(g.attribute for g in audit.groups):
        ours_by_name = {g.group: g for g in audit.groups if g.attribute == attribute}
        columns = attribute.split(JOIN)
        features, truth, chosen, weights = _weighted_rows(columns, sensitive, y_true, y_pred)
        frame = MetricFrame(
            metrics=wanted,
            y_true=truth,
            y_pred=chosen,
            sensitive_features=features if len(columns) > 1 else features[columns[0]],
            sample_params={metric: {"sample_weight": weights} for metric in wanted},
        )
        for key, row in frame.by_group.iterrows():
            name = JOIN.join(map(str, key)) if isinstance(key, tuple) else str(key)
            ours = ours_by_name.get(name)
            if ours is None:
                mismatches.append(
                    f"{attribute} = {name}: a group Fairlearn found and the audit did not"
                )
                continue
            for metric in wanted:
                theirs, mine = float(row[metric]), float(ours.metrics[metric])
                if not math.isfinite(mine) and _denominator(ours, metric) == 0:
                    # Undefined here (no one to divide by); Fairlearn reports its fallback 0.
                    undefined += 1
                    continue
                compared += 1
                if math.isfinite(theirs) and math.isfinite(mine):
                    largest = max(largest, abs(theirs - mine))
                if not _same(mine, theirs):
                    mismatches.append(f"{attribute} = {name}, {metric}: {mine!r} vs {theirs!r}")
        ratios, differences = frame.ratio(method="between_groups"), frame.difference()
        summaries[attribute] = {
            metric: {
                "ratio_between_groups": _finite(ratios[metric]),
                "difference_between_groups": _finite(differences[metric]),
            }
            for metric in wanted
        }
    if mismatches:
        raise GateError(
            "refusing to decide: the audit's group estimates differ from Fairlearn's MetricFrame "
            f"beyond {TOLERANCE:g} ({len(mismatches)} value(s), first: {mismatches[0]})"
        )
    return {
        "matched": True,
        "compared": compared,
        "undefined": undefined,
        "max_difference": largest,
        "tolerance": f"{TOLERANCE:g}",
        "between_groups": summaries,
    }


def _weighted_rows(
    columns: Sequence[str],
    sensitive: Mapping[str, np.ndarray],
    y_true: np.ndarray,
    y_pred: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The rows summarised: each combination of the ``columns``' values (as text), label and
    selection that occurs, once, with the number of rows it stands for as its weight."""
    keys = [np.asarray(sensitive[c]).astype(str) for c in columns] + [y_true, y_pred]
    counts = pd.DataFrame(dict(enumerate(keys))).value_counts(sort=False)
    index = counts.index
    features = pd.DataFrame(
        {c: index.get_level_values(i).to_numpy(dtype=str) for i, c in enumerate(columns)}
    )
    truth = index.get_level_values(len(columns)).to_numpy(dtype=int)
    chosen = index.get_level_values(len(columns) + 1).to_numpy(dtype=int)
    return features, truth, chosen, counts.to_numpy(dtype=float)


def _denominator(group: Any, metric: str) -> int:
    """How many people a group's metric divides by."""
    negatives = group.n - group.positives
    return {
        "selection_rate": group.n,
        "recall": group.positives,
        "false_negative_rate": group.positives,
        "false_positive_rate": negatives,
        "precision": group.flagged,
    }[metric]


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
