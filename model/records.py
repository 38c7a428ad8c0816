"""Positive validation of records given one at a time (JSON payloads, single-record scoring).

Columnar data goes through :func:`model.data.validate_features`; records arriving as mappings are
checked here without pandas, so one record costs microseconds. Every problem names the record's
index and the field.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from model.spec import ALLOW_MISSING_HINT, Feature

_MISSING = object()


def check_value(feature: Feature, value: Any) -> tuple[Any, str | None]:
    """The clean value, or ``None`` and what is wrong with it.

    ``null`` is a gap: NaN for a feature with ``missing = "allowed"``, a problem for any other.
    """
    if value is _MISSING:
        return None, "is required"
    if value is None:
        if feature.allows_missing:
            return math.nan, None
        return None, f"is missing (null); {ALLOW_MISSING_HINT}"
    if feature.kind == "category":
        if not isinstance(value, str):
            return None, f"must be one of {', '.join(feature.categories)} (got {value!r})"
        if value not in feature.categories:
            return None, f"unknown category {value!r}; allowed: {', '.join(feature.categories)}"
        return value, None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"must be a number (got {type(value).__name__})"
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None, "must be a finite number"
    if not math.isfinite(number):
        return None, "must be a finite number"
    if feature.kind in ("count", "binary") and not number.is_integer():
        return None, f"must be a whole number (got {value!r})"
    lower, upper = feature.lower, feature.upper
    if lower is not None and number < lower:
        return None, f"must be at least {lower:g} (got {value!r})"
    if upper is not None and number > upper:
        return None, f"must be at most {upper:g} (got {value!r})"
    return number, None


def check_records(
    records: Sequence[Any],
    features: Sequence[Feature],
    *,
    allowed_extra: Collection[str] = (),
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Validate records (mappings of feature name to value).

    Parameters
    ----------
    records : sequence of mapping
    features : sequence of Feature
        The model's input schema.
    allowed_extra : collection of str
        Keys allowed beside the features (an id, for example); any other key is a problem.

    Returns
    -------
    problems : list of str
        ``records[i].field: what is wrong``, for every problem found.
    columns : dict
        One array per feature (floats, or strings for categories; a gap is NaN), if there were
        no problems.
    """
    problems: list[str] = []
    names = [f.name for f in features]
    known = set(names) | set(allowed_extra)
    values: list[list[Any]] = [[] for _ in features]
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(f"records[{i}]: must be an object of feature values")
            continue
        for key in record:
            if key not in known:
                problems.append(f"records[{i}].{key}: unknown field")
        for j, feature in enumerate(features):
            clean, problem = check_value(feature, record.get(feature.name, _MISSING))
            if problem is not None:
                problems.append(f"records[{i}].{feature.name}: {problem}")
            values[j].append(clean)
    if problems:
        return problems, {}
    columns = {}
    for feature, column in zip(features, values, strict=True):
        dtype = object if feature.kind == "category" else float
        columns[feature.name] = np.array(column, dtype=dtype)
    return [], columns
