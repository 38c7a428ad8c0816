"""The queue's groups and areas as texts (:func:`jobs.batch.texts`): each distinct text made
once, the same values as the plain ``astype(str).to_numpy()`` for every column type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.batch import texts

COLUMNS = {
    "text with gaps": pd.Series(["North", None, "South", "North"] * 5, dtype="str"),
    "objects with gaps": pd.Series(["yes", None, "no", np.nan] * 5, dtype=object),
    "integers": pd.Series([3, 1, 2, 3] * 5, dtype="int64"),
    "nullable integers": pd.Series([3, None, 2, 3] * 5, dtype="Int64"),
    "numbers with gaps": pd.Series([0.5, np.nan, 2.0, 0.5] * 5),
    "categories with gaps": pd.Series(pd.Categorical(["a", None, "b", "a"] * 5)),
    "booleans": pd.Series([True, False, True, True] * 5),
    "empty": pd.Series([], dtype="str"),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_texts_are_the_plain_conversion(name: str) -> None:
    column = COLUMNS[name]
    fast, plain = texts(column), column.astype(str).to_numpy()
    assert fast.dtype == object and len(fast) == len(plain)
    assert [("gap" if pd.isna(v) else (type(v), v)) for v in fast] == [
        ("gap" if pd.isna(v) else (type(v), v)) for v in plain
    ]


def test_a_text_is_made_once_for_its_rows() -> None:
    made = texts(pd.Series(["North", "South"] * 1000, dtype="str"))
    assert len({id(v) for v in made}) == 2
