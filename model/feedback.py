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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from model.data import Dataset

Handling = Literal["exclude", "keep", "none"]


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
    frame = pd.DataFrame({"id": ids, "period": periods, "accepted": accepted})
    first = frame.loc[frame["accepted"] == 1].groupby("id", sort=False)["period"].min()
    first_of_row = frame["id"].map(first).to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.asarray(periods >= first_of_row, dtype=bool)


@dataclass(frozen=True)
class TreatmentSummary:
    """What the guard found and did, for the training summary and the MLflow run.

    Attributes
    ----------
    handling : {"exclude", "keep", "none"}
        The spec's ``training.treated``, or ``"none"`` when the spec names no accepted column.
    treated_rows : int
        Treated rows in the whole data set.
    treated_people : int
        Ids with at least one treated row.
    excluded_rows : int
        Rows left out of fitting and calibration of the latest split (0 unless excluded).
    """

    handling: Handling
    treated_rows: int
    treated_people: int
    excluded_rows: int

    def as_dict(self) -> dict[str, int | str]:
        return {
            "handling": self.handling,
            "treated_rows": self.treated_rows,
            "treated_people": self.treated_people,
            "excluded_rows": self.excluded_rows,
        }


def treated_rows(dataset: Dataset) -> np.ndarray:
    """The dataset's treated rows (all false when the spec or the data has no accepted column)."""
    accepted = dataset.accepted
    if accepted is None:
        return np.zeros(len(dataset.frame), dtype=bool)
    return treated_mask(dataset.ids, dataset.periods, accepted)
