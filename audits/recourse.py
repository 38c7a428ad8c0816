"""The recourse audit: per group, how far the people just below the cut-off are from it.

"What would change this" (:mod:`model.counterfactual`) is only fair if it is not much further for
some groups than for others. For the people **just below the capacity cut-off** this audit
reports, overall and per group of each sensitive attribute: how many there are, the median and
the 90th percentile of their distance to the cut-off in calibrated log-odds, and the share for
whom some single actionable change would cross it.

"Just below" is the model's own ``elevated`` band: a score below the capacity cut-off
(``cutoffs["priority"]``) but at least the score three times capacity reaches
(``cutoffs["elevated"]``), i.e. the next two capacities' worth of people below the list in the
validation population. It is the band coordinators are told to consider "if capacity allows", so
it is the population for whom a small change matters.

Sensitive attributes only group the rows here; they are never features and never moved. Groups
with fewer people just below the cut-off than the policy's minimum group size are flagged as too
few to judge. Intersections are not reported (each attribute on its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from model.counterfactual import CUTOFF_BAND, crossings, logit
from model.scorer import ScoringModel

#: The band holding the people just below the cut-off.
JUST_BELOW_BAND = "elevated"
#: The upper quantile of distance reported beside the median.
QUANTILE = 0.9
DEFINITION = (
    "people just below the capacity cut-off: scored below it but within the model's 'elevated' "
    "band (at least the score that three times capacity reaches), in the audit's validation "
    "months; distance is the gap to the cut-off in calibrated log-odds"
)


@dataclass(frozen=True)
class RecourseRow:
    """One group's people just below the cut-off (``attribute`` ``"overall"`` for everyone)."""

    attribute: str
    group: str
    population: int
    n: int
    median_distance: float | None
    distance_q90: float | None
    share_with_change: float | None
    sufficient: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(
    attribute: str,
    group: str,
    population: int,
    distance: np.ndarray,
    reachable: np.ndarray,
    min_group_size: int,
) -> RecourseRow:
    n = len(distance)
    return RecourseRow(
        attribute=attribute,
        group=group,
        population=population,
        n=n,
        median_distance=float(np.median(distance)) if n else None,
        distance_q90=float(np.quantile(distance, QUANTILE)) if n else None,
        share_with_change=float(reachable.mean()) if n else None,
        sufficient=n >= min_group_size,
    )


def recourse_audit(
    model: ScoringModel,
    features: pd.DataFrame,
    sensitive: Mapping[str, np.ndarray],
    *,
    min_group_size: int,
) -> dict[str, Any]:
    """The report's ``recourse`` section for one scored model on the audit population.

    Parameters
    ----------
    model : ScoringModel
        The candidate as it would be served (its additive model, features and cut-offs).
    features : DataFrame
        The audit population's feature columns (validated data).
    sensitive : mapping of attribute name to array
        Each sensitive attribute's value per row, aligned with ``features``.
    min_group_size : int
        The policy's minimum group size: smaller groups are flagged as too few to judge.

    Returns
    -------
    dict
        ``definition``, ``cutoff``, ``lower``, ``actionable`` (feature names), ``quantile``,
        ``min_group_size``, ``overall`` and ``groups`` (rows of :class:`RecourseRow`), and
        ``features`` (per actionable feature, the share of those just below for whom it alone
        would cross).
    """
    columns = model.check(features)
    scores = model.score_columns(columns).scores
    cutoff = model.cutoffs[CUTOFF_BAND]
    below = (scores < cutoff) & (scores >= model.cutoffs[JUST_BELOW_BAND])
    rows = np.flatnonzero(below)
    answer = crossings(
        model.additive,
        model.features,
        {name: np.asarray(values)[rows] for name, values in columns.items()},
        cutoff,
        sensitive=tuple(sensitive),
    )
    distance = logit(cutoff) - answer.log_odds
    reachable = np.zeros(len(rows), dtype=bool)
    for item in answer.features:
        reachable |= item.crosses
    groups = []
    for attribute, values in sensitive.items():
        labels = np.asarray(values).astype(str)
        for group in np.unique(labels):
            inside = labels[rows] == group
            groups.append(
                _row(
                    attribute,
                    str(group),
                    int((labels == group).sum()),
                    distance[inside],
                    reachable[inside],
                    min_group_size,
                )
            )
    overall = _row("overall", "everyone", len(scores), distance, reachable, min_group_size)
    return {
        "definition": DEFINITION,
        "cutoff": cutoff,
        "lower": model.cutoffs[JUST_BELOW_BAND],
        "actionable": [item.feature for item in answer.features],
        "quantile": QUANTILE,
        "min_group_size": min_group_size,
        "overall": overall.as_dict(),
        "groups": [g.as_dict() for g in groups],
        "features": [
            {
                "feature": item.feature,
                "share": float(item.crosses.mean()) if len(rows) else None,
            }
            for item in answer.features
        ],
    }
