"""The feedback-loop guard: rows whose outcome a past accepted outreach offer may have changed.

Outreach changes the outcomes it predicts. Someone who accepted housing help and then did not
become homeless was not "not in need"; a model retrained on such rows as if nothing had happened
learns that people like them are at low risk, and the next list passes them over.

A row is **treated** from the period of the person's first accepted offer on: that row's label
counts crises in the months after the acceptance, which the help may have prevented, and so does
every later row. The ``horizon - 1`` rows before it have label windows that end after the
acceptance and are kept: leaving them out would select rows on the need that later drew the
offer (people about to be helped are at their riskiest), a bias of its own.
The spec's ``training.treated`` decides what training does with them (see :mod:`model.train`).

With ``"indicator"`` every row is fitted with one more input, :data:`TREATMENT_INDICATOR`: the
share of its label window that follows the first acceptance (:func:`treatment_indicator`), so 1 on
treated rows, ``k / horizon`` on the ``horizon - 1`` rows before them whose windows end ``k``
months into the help, and 0 elsewhere. The crises the help prevented are then put down to the help
and not to the features of the people it reached, and no row is left out of fitting, so nothing
there is selected on need (calibration reads the rows at 0 only). The indicator is a training input
only: the served model is compiled with it fixed at 0, so every score is the risk without help; it
is no term of the additive model (so never a reason, never in the input schema) and no request can
set it. Being one more additive term, it learns one shift in log-odds, scaled by the share: an
effect of help that differs between kinds of people is averaged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from model.data import Dataset
from model.spec import TREATMENT_INDICATOR

Handling = Literal["exclude", "indicator", "keep", "none"]


def _first_acceptance(ids: np.ndarray, periods: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Each row's id's first acceptance period (NaN for an id that never accepted)."""
    frame = pd.DataFrame({"id": ids, "period": periods, "accepted": accepted})
    first = frame.loc[frame["accepted"] == 1].groupby("id", sort=False)["period"].min()
    return frame["id"].map(first).to_numpy(dtype=float, na_value=np.nan)


def treated_mask(ids: np.ndarray, periods: np.ndarray, accepted: np.ndarray) -> np.ndarray:
    """Which rows are treated: the id's first accepted offer was in that period or earlier.

    Parameters
    ----------
    ids, periods : array
        Each row's id and month ordinal.
    accepted : array of 0/1
        1 in a row whose period saw an accepted offer.

    Returns
    -------
    ndarray of bool
        True for the rows of each id's first acceptance period and later.
    """
    with np.errstate(invalid="ignore"):
        return np.asarray(periods >= _first_acceptance(ids, periods, accepted), dtype=bool)


def treatment_exposure(
    ids: np.ndarray, periods: np.ndarray, accepted: np.ndarray, *, horizon: int
) -> np.ndarray:
    """Each row's share of its label window that follows the id's first acceptance.

    A row's label counts the ``horizon`` months after its period; help accepted in period ``a``
    acts from the month after ``a``.

    Parameters
    ----------
    ids, periods : array
        Each row's id and month ordinal.
    accepted : array of 0/1
        1 in a row whose period saw an accepted offer.
    horizon : int
        The label's horizon in months.

    Returns
    -------
    ndarray of float
        1 on treated rows (:func:`treated_mask`), ``(horizon - k) / horizon`` on the row ``k``
        periods before the first acceptance (``0 < k < horizon``), 0 elsewhere.
    """
    first = _first_acceptance(ids, periods, accepted)
    share = np.clip((periods - first + horizon) / horizon, 0.0, 1.0)
    return np.nan_to_num(share, nan=0.0)


@dataclass(frozen=True)
class TreatmentSummary:
    """What the guard found and did, for the training summary and the MLflow run.

    Attributes
    ----------
    handling : {"exclude", "indicator", "keep", "none"}
        The spec's ``training.treated``, or ``"none"`` when the spec names no accepted column.
    treated_rows : int
        Treated rows in the whole data set.
    treated_people : int
        Ids with at least one treated row.
    excluded_rows : int
        Rows of the latest split left out of its fitting or calibration: every treated training
        row under ``"exclude"``; under ``"indicator"``, the calibration period's rows whose
        indicator is above 0 (the served scores are calibrated where it is 0, on untreated
        people); 0 otherwise.
    indicator_rows : int
        Rows the latest split fitted with the treatment indicator at 1 (its treated fitting
        rows) under ``"indicator"``, 0 otherwise.
    partial_rows : int
        Rows the latest split fitted with the indicator between 0 and 1 (the rows before a first
        acceptance whose label windows end in the help) under ``"indicator"``, 0 otherwise.
    """

    handling: Handling
    treated_rows: int
    treated_people: int
    excluded_rows: int
    indicator_rows: int = 0
    partial_rows: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return {
            "handling": self.handling,
            "treated_rows": self.treated_rows,
            "treated_people": self.treated_people,
            "excluded_rows": self.excluded_rows,
            "indicator_rows": self.indicator_rows,
            "partial_rows": self.partial_rows,
        }


def treated_rows(dataset: Dataset) -> np.ndarray:
    """The dataset's treated rows (all false when the spec or the data has no accepted column)."""
    accepted = dataset.accepted
    if accepted is None:
        return np.zeros(len(dataset.frame), dtype=bool)
    return treated_mask(dataset.ids, dataset.periods, accepted)


def treatment_indicator(dataset: Dataset) -> np.ndarray:
    """The dataset's treatment indicator (:func:`treatment_exposure` at the spec's horizon).

    All zeros when the spec or the data has no accepted column.
    """
    accepted = dataset.accepted
    if accepted is None:
        return np.zeros(len(dataset.frame))
    horizon = dataset.spec.label.horizon_months
    return treatment_exposure(dataset.ids, dataset.periods, accepted, horizon=horizon)


@dataclass(frozen=True)
class IndicatedDataset(Dataset):
    """A training data set whose :attr:`features` end with the treatment indicator column.

    Made by :func:`with_indicator`; only fitting reads it (custom fitting steps receive it as
    they would a plain :class:`~model.data.Dataset`).
    """

    @property
    def features(self) -> pd.DataFrame:
        return self.frame[[*self.spec.feature_names, TREATMENT_INDICATOR]]


def with_indicator(dataset: Dataset, indicator: np.ndarray) -> IndicatedDataset:
    """``dataset`` with the treatment indicator column.

    Parameters
    ----------
    dataset : Dataset
    indicator : array of float
        One value in ``[0, 1]`` per row of ``dataset`` (see :func:`treatment_indicator`).

    Returns
    -------
    IndicatedDataset
        Same rows, spec and fingerprint; its ``features`` carry the indicator last.
    """
    frame = dataset.frame.assign(**{TREATMENT_INDICATOR: np.asarray(indicator, dtype=float)})
    return IndicatedDataset(frame, dataset.spec, dataset.fingerprint)
