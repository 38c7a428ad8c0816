"""Positive validation of records given one at a time (JSON payloads, single-record scoring).

Columnar data goes through :func:`model.data.validate_features`; records arriving as mappings are
checked here without pandas, by the rules of :mod:`model.rules`, so one record costs
microseconds. Every problem names the record's index and the field.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from model.rules import MISSING, value_problem
from model.spec import Feature


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
            clean, problem = value_problem(feature, record.get(feature.name, MISSING))
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
