"""Sensitive attributes as audit groupings: single attributes and their intersections.

A grouping is named by its attributes joined with " × " ("race_ethnicity × sex"), and its groups
likewise ("Black × female"). Group codes are dense integers so that metrics can be computed from
counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kernel.errors import DataValidationError

JOIN = " × "


@dataclass(frozen=True)
class Grouping:
    """One attribute (or intersection) split into groups."""

    attribute: str
    levels: tuple[str, ...]
    codes: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self.levels))


def _factorize(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Levels as text, sorted, and each value's level (values equal as text share one)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
    names = [str(u) for u in uniques]
    levels = sorted(set(names))
    position = {name: i for i, name in enumerate(levels)}
    mapping = np.array([position[name] for name in names], dtype=np.intp)
    return tuple(levels), mapping[codes]


def build_groupings(
    columns: Mapping[str, Sequence[object] | np.ndarray],
    *,
    attributes: Sequence[str],
    intersections: Sequence[Sequence[str]] = (),
) -> list[Grouping]:
    """Groupings for each attribute and each intersection (only combinations that occur).

    Raises
    ------
    DataValidationError
        If an attribute is missing or has missing values.
    """
    problems = []
    needed = list(dict.fromkeys([*attributes, *(a for combo in intersections for a in combo)]))
    for attribute in needed:
        if attribute not in columns:
            problems.append(f"missing sensitive attribute column '{attribute}'")
        elif pd.isna(pd.Series(columns[attribute], dtype=object)).any():
            problems.append(f"sensitive attribute '{attribute}' has missing values")
    if problems:
        raise DataValidationError("the audit data lacks what the policy asks for", details=problems)
    single = {a: Grouping(a, *_factorize(np.asarray(columns[a], dtype=object))) for a in needed}
    out = [single[a] for a in attributes]
    for combo in intersections:
        parts = [single[a] for a in combo]
        combined = np.zeros(len(parts[0].codes), dtype=np.int64)
        for part in parts:
            combined = combined * len(part.levels) + part.codes
        present, codes = np.unique(combined, return_inverse=True)
        levels = []
        for packed in present.tolist():
            names = []
            rest = packed
            for part in reversed(parts):
                rest, code = divmod(rest, len(part.levels))
                names.append(part.levels[code])
            levels.append(JOIN.join(reversed(names)))
        out.append(Grouping(JOIN.join(combo), tuple(levels), codes.astype(np.intp)))
    return out
