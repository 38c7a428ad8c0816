"""Proxy check: how well can a sensitive attribute be predicted from the model's features?

A model that never sees a sensitive attribute can still act on it through features that carry it.
For each attribute a simple classifier (logistic regression on the model's own features) is
cross-validated; its ROC AUC (one-vs-rest, macro-averaged across groups) says how recoverable the
attribute is, and its largest standardised coefficients say which features carry it.

Missingness is the other classic proxy: a gap the model learns from (a feature with
``missing = "allowed"``) carries a group when records are missing more often for it.
:func:`check_missingness` reports, for each such feature and sensitive attribute, the share
missing overall and per group, and flags a group when its share differs from everyone else's
strongly: by a factor of at least ``MISSINGNESS_RATIO`` either way (the shares' ratio, larger over
smaller) and beyond noise (a chi-square test of the 2x2 table group / everyone else x missing /
present, on distinct people when ids are given, at ``MISSINGNESS_ALPHA``). A flag is a finding
for the board to read beside the proxy check; it is not a gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from model.candidates import FeatureSchema

# scikit-learn, joblib and scipy.stats are imported where the checks run: the gate and the
# reports read this module's results and thresholds in processes (the service's) that never fit.

_MAX_ROWS = 30_000
_TOP_FEATURES = 3

#: A group's share missing this many times everyone else's (or everyone else's this many times
#: the group's) is a strong difference ...
MISSINGNESS_RATIO = 1.5
#: ... when a chi-square test also rules out noise at this level.
MISSINGNESS_ALPHA = 0.01


@dataclass(frozen=True)
class ProxyResult:
    """How recoverable one sensitive attribute is from the features."""

    attribute: str
    roc_auc: float
    carriers: tuple[tuple[str, float], ...]
    rows: int

    def as_dict(self) -> dict[str, object]:
        return {
            "attribute": self.attribute,
            "roc_auc": round(self.roc_auc, 6),
            "carried_by": [{"feature": f, "weight": round(w, 6)} for f, w in self.carriers],
            "rows": self.rows,
        }


def _carriers(pipeline: Pipeline, spec: FeatureSchema) -> tuple[tuple[str, float], ...]:
    preprocess, model = pipeline.named_steps["features"], pipeline.named_steps["model"]
    names = list(preprocess.get_feature_names_out())
    weight = np.abs(model.coef_).max(axis=0)
    per_feature: dict[str, float] = {}
    for output, value in zip(names, weight, strict=True):
        column = output.removeprefix("missingindicator_")  # a gap's indicator is its feature's
        feature = next(
            (f.name for f in spec.features if column == f.name or column.startswith(f.name + "_")),
            column,
        )
        per_feature[feature] = max(per_feature.get(feature, 0.0), float(value))
    ranked = sorted(per_feature.items(), key=lambda item: -item[1])
    return tuple(ranked[:_TOP_FEATURES])


def check_proxies(
    features: pd.DataFrame,
    sensitive: dict[str, np.ndarray],
    spec: FeatureSchema,
    *,
    seed: int = 0,
    workers: int = 1,
) -> list[ProxyResult]:
    """Cross-validated recoverability of each sensitive attribute from ``features``; with
    ``workers`` > 1 the folds are fitted in that many processes (the same fits).

    Attributes whose every group has fewer than three rows in the sample are skipped (they cannot
    be cross-validated); rare groups are folded into one "other" class for the classifier.
    """
    from joblib import Parallel, delayed
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from model.candidates import CandidateConfig, build_pipeline

    rng = np.random.default_rng(seed)
    rows = np.arange(len(features))
    if len(rows) > _MAX_ROWS:
        rows = np.sort(rng.choice(rows, _MAX_ROWS, replace=False))
    sample = features.iloc[rows].reset_index(drop=True)
    targets: dict[str, pd.Series] = {}
    for attribute, values in sensitive.items():
        target = pd.Series(np.asarray(values, dtype=str)[rows])
        counts = target.value_counts()
        target = target.where(target.map(counts) >= 10, "(other)")
        if target.nunique() >= 2:
            targets[attribute] = target
    config = CandidateConfig("proxy", "logistic", {"C": 1.0})
    pipeline = build_pipeline(config, spec, seed=seed)
    pipeline.set_params(model=LogisticRegression(C=1.0, max_iter=1000))
    # Every attribute's three cross-validation fits and its fit on the whole sample (for the
    # carriers) in one pool: the processes stay busy across attributes instead of waiting at
    # each attribute's last fold. The fits are sklearn's cross_val_predict's, fold by fold.
    tasks: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    for attribute, target in targets.items():
        folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
        tasks += [(attribute, train, test) for train, test in folds.split(sample, target)]
        tasks.append((attribute, np.arange(len(sample)), None))
    done = Parallel(n_jobs=workers if workers > 1 else None)(
        delayed(_fit_fold)(pipeline, sample, targets[attribute], train, test)
        for attribute, train, test in tasks
    )
    out = []
    for attribute, target in targets.items():
        mine = [(t, r) for t, r in zip(tasks, done, strict=True) if t[0] == attribute]
        probabilities = np.empty((len(sample), target.nunique()))
        for (_, _, test), predicted in mine:
            if test is not None:
                probabilities[test] = predicted
        fitted = next(r for (_, _, test), r in mine if test is None)
        classes = np.unique(target)
        if len(classes) == 2:
            auc = roc_auc_score(target == classes[1], probabilities[:, 1])
        else:
            auc = roc_auc_score(target, probabilities, multi_class="ovr", average="macro")
        out.append(ProxyResult(attribute, float(auc), _carriers(fitted, spec), len(sample)))
    return out


def _fit_fold(
    pipeline: Pipeline,
    sample: pd.DataFrame,
    target: pd.Series,
    train: np.ndarray,
    test: np.ndarray | None,
) -> Any:
    """A copy of ``pipeline`` fitted on the ``train`` rows: its class probabilities for the
    ``test`` rows (columns in the sorted classes' order), or, without ``test``, the fitted copy.
    Every class has at least ten rows, so each stratified fold's fit sees every class."""
    from sklearn.base import clone

    fitted = clone(pipeline).fit(sample.iloc[train], target.iloc[train])
    if test is None:
        return fitted
    return fitted.predict_proba(sample.iloc[test])


@dataclass(frozen=True)
class GroupMissingness:
    """How often one group's records miss a feature, against everyone else's."""

    group: str
    n: int
    missing: int
    share: float
    rest_share: float
    ratio: float
    p_value: float
    finding: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "n": self.n,
            "missing": self.missing,
            "share": round(self.share, 6),
            "rest_share": round(self.rest_share, 6),
            "ratio": round(self.ratio, 6) if math.isfinite(self.ratio) else None,
            "p_value": round(self.p_value, 6) if math.isfinite(self.p_value) else None,
            "finding": self.finding,
        }


@dataclass(frozen=True)
class MissingnessResult:
    """Missingness of one feature that may be missing, by the groups of one attribute."""

    feature: str
    attribute: str
    reason_missing: str
    n: int
    missing: int
    unit: str
    groups: tuple[GroupMissingness, ...]

    @property
    def share(self) -> float:
        return self.missing / self.n if self.n else 0.0

    @property
    def flagged(self) -> list[tuple[GroupMissingness, str]]:
        """Each group whose missingness differs strongly from everyone else's, with a sentence
        saying so."""
        return [
            (
                g,
                f"'{self.feature}' is missing for {g.share:.1%} of {g.group} ({self.attribute}) "
                f"against {g.rest_share:.1%} of everyone else"
                + (f" ({g.ratio:.1f} times)" if math.isfinite(g.ratio) else "")
                + f", p = {g.p_value:.2g}: the gap may stand in for the group",
            )
            for g in self.groups
            if g.finding
        ]

    @property
    def findings(self) -> list[str]:
        """One sentence per flagged group (:attr:`flagged`)."""
        return [sentence for _, sentence in self.flagged]

    def as_dict(self) -> dict[str, object]:
        return {
            "feature": self.feature,
            "attribute": self.attribute,
            "reason_missing": self.reason_missing,
            "counted": self.unit,
            "n": self.n,
            "missing": self.missing,
            "share": round(self.share, 6),
            "groups": [g.as_dict() for g in self.groups],
            "findings": self.findings,
        }


def _ratio(a: float, b: float) -> float:
    """Larger share over smaller (1 when equal, infinite when only one is zero)."""
    high, low = max(a, b), min(a, b)
    if high == 0:
        return 1.0
    return high / low if low > 0 else math.inf


def _compare(
    group: str, in_group: np.ndarray, gaps: np.ndarray, *, min_missing: int
) -> GroupMissingness:
    n, rest = int(in_group.sum()), int((~in_group).sum())
    missing, rest_missing = int(gaps[in_group].sum()), int(gaps[~in_group].sum())
    share = missing / n if n else 0.0
    rest_share = rest_missing / rest if rest else 0.0
    ratio = _ratio(share, rest_share)
    table = np.array([[missing, n - missing], [rest_missing, rest - rest_missing]])
    p_value = math.nan
    if (table.sum(axis=0) > 0).all() and (table.sum(axis=1) > 0).all():
        from scipy.stats import chi2_contingency

        p_value = float(chi2_contingency(table, correction=True).pvalue)
    finding = (
        ratio >= MISSINGNESS_RATIO
        and max(missing, rest_missing) >= min_missing
        and math.isfinite(p_value)
        and p_value < MISSINGNESS_ALPHA
    )
    return GroupMissingness(group, n, missing, share, rest_share, ratio, p_value, finding)


def check_missingness(
    features: pd.DataFrame,
    sensitive: Mapping[str, np.ndarray],
    spec: FeatureSchema,
    *,
    clusters: np.ndarray | None = None,
    min_missing: int = 5,
) -> list[MissingnessResult]:
    """The share missing per group of each feature that may be missing.

    Parameters
    ----------
    features : DataFrame
        The model's features (a gap is NaN) on the audit rows.
    sensitive : mapping of attribute to values
        The sensitive attributes, row-aligned with ``features``.
    spec : FeatureSchema
        Says which features may be missing (``missing = "allowed"``); the others are skipped.
    clusters : ndarray, optional
        Each row's person or area. Given, shares and tests count people: a person is missing a
        feature when any of their rows is, and belongs to the group of their first row (repeated
        months never make a difference look surer than the people behind it).
    min_missing : int
        A group is flagged only when it or everyone else has at least this many gaps.
    """
    allowed = [f for f in spec.features if f.allows_missing and f.name in features.columns]
    if not allowed:
        return []
    gaps = pd.DataFrame({f.name: features[f.name].isna().to_numpy() for f in allowed})
    groups = {a: np.asarray(v, dtype=str) for a, v in sensitive.items()}
    unit = "rows"
    if clusters is not None:
        keys = pd.Series(np.asarray(clusters))
        first = ~keys.duplicated().to_numpy()
        gaps = gaps.groupby(keys.to_numpy(), sort=False).any().reset_index(drop=True)
        groups = {a: v[first] for a, v in groups.items()}
        unit = "people"
    out = []
    for feature in allowed:
        column = gaps[feature.name].to_numpy()
        for attribute, values in groups.items():
            rows = tuple(
                _compare(str(group), values == group, column, min_missing=min_missing)
                for group in sorted(set(values.tolist()))
            )
            out.append(
                MissingnessResult(
                    feature=feature.name,
                    attribute=attribute,
                    reason_missing=feature.reason_missing or "",
                    n=len(column),
                    missing=int(column.sum()),
                    unit=unit,
                    groups=rows,
                )
            )
    return out
