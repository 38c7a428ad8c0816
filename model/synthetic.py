"""Seeded synthetic populations for building and auditing voluntary-outreach models.

Two units are supported: ``"individual"`` (people known to public services, one row per person
per month) and ``"neighbourhood"`` (areas, one row per area per month). Every population carries
its recorded label, the ground truth behind it (the label before any recording bias and the
probability that produced it) and the sensitive attributes an audit needs. Three bias knobs inject
known, documented distortions so that audits can be shown to catch them; all are off by default.

Everything here is a pure function of its arguments and the seed: the same call returns the same
frame, and :func:`write_population` writes the same bytes. The generative story, every column and
every knob are described in ``docs/synthetic-data.md``.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kernel.errors import BadInputError
from model.synthetic_draws import period_labels
from model.synthetic_populations import individual_population, neighbourhood_population
from model.synthetic_setup import (
    ACCEPTED_COLUMN,
    COLUMNS,
    FEATURES,
    GAP_COLUMNS,
    ID_COLUMN,
    LABEL,
    MIN_PERIODS,
    NO_KNOBS,
    OVER_MEASURABLE_FEATURES,
    POPULATION_SUFFIXES,
    PRESETS,
    SENSITIVE_ATTRIBUTES,
    START_PERIOD,
    TRUE_LABEL,
    UNDER_RECORDED_FEATURES,
    UNITS,
    BiasKnobs,
    Gaps,
    LabelUnderRecording,
    PastOutreach,
    ProxyOverMeasurement,
    SmallGroup,
    Unit,
)

__all__ = [
    "ACCEPTED_COLUMN",
    "COLUMNS",
    "FEATURES",
    "GAP_COLUMNS",
    "ID_COLUMN",
    "LABEL",
    "NO_KNOBS",
    "OVER_MEASURABLE_FEATURES",
    "PRESETS",
    "SENSITIVE_ATTRIBUTES",
    "TRUE_LABEL",
    "UNDER_RECORDED_FEATURES",
    "UNITS",
    "BiasKnobs",
    "Gaps",
    "LabelUnderRecording",
    "PastOutreach",
    "ProxyOverMeasurement",
    "SmallGroup",
    "Unit",
    "generate",
    "generate_preset",
    "write_population",
]


def generate(
    *,
    unit: Unit,
    rows: int,
    seed: int,
    periods: int = 24,
    start: str = "2023-01",
    knobs: BiasKnobs = NO_KNOBS,
) -> pd.DataFrame:
    """Generate a seeded synthetic population.

    Parameters
    ----------
    unit : {"individual", "neighbourhood"}
        One row per person per month, or per area per month.
    rows : int
        Requested number of rows; rounded down to a multiple of ``periods`` (``rows // periods``
        people or areas, each observed in every period). Must be positive and ``>= periods``.
    seed : int
        Non-negative seed; the same arguments always give the same frame.
    periods : int, default 24
        Number of consecutive monthly snapshots, at least 8.
    start : str, default "2023-01"
        First period, as ``"YYYY-MM"``.
    knobs : BiasKnobs, default all off
        Bias knobs to inject; see ``docs/synthetic-data.md``.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS[unit]`` in that order, sorted by id then period, with a fresh
        ``RangeIndex``; no missing values unless ``knobs.gaps`` is on.

    Raises
    ------
    BadInputError
        If any argument is invalid; every problem is listed in ``details``.
    """
    problems = _check_arguments(unit=unit, rows=rows, seed=seed, periods=periods, start=start)
    if unit in UNITS:
        problems += _check_knobs(unit, knobs)
    if problems:
        raise BadInputError(_summary(problems), details=problems)
    count = int(rows) // int(periods)
    labels = period_labels(start, int(periods))
    if unit == "individual":
        return individual_population(count, labels, int(seed), knobs)
    return neighbourhood_population(count, labels, int(seed), knobs)


def generate_preset(
    *, unit: Unit, rows: int, seed: int, preset: str = "default", periods: int = 24
) -> pd.DataFrame:
    """Generate a population with one of the named ``PRESETS`` of bias knobs.

    Parameters
    ----------
    unit : {"individual", "neighbourhood"}
        The unit to generate.
    rows : int
        Requested number of rows, rounded down to a multiple of ``periods``.
    seed : int
        Non-negative seed.
    preset : str, default "default"
        A key of ``PRESETS``: ``"default"`` has every knob off, ``"biased"`` every bias knob on,
        ``"feedback"`` (individuals only) a past outreach programme that prevented crises,
        ``"gaps"`` (individuals only) missing records, more of them in one group.
    periods : int, default 24
        Number of monthly snapshots, at least 8.

    Returns
    -------
    pandas.DataFrame
        As :func:`generate`.

    Raises
    ------
    BadInputError
        For an unknown preset or any invalid argument.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        known = ", ".join(repr(name) for name in PRESETS)
        raise BadInputError(
            f"unknown preset {preset!r}; expected one of {known}",
            details=[f"preset: {preset!r} is not one of {known}"],
        )
    if unit in UNITS and unit not in PRESETS[preset]:
        raise BadInputError(
            f"the preset {preset!r} has no {unit} population",
            details=[f"preset: {preset!r} is for {', '.join(PRESETS[preset])} populations only"],
        )
    knobs = PRESETS[preset].get(unit, NO_KNOBS)  # an unknown unit is reported by generate
    return generate(unit=unit, rows=rows, seed=seed, periods=periods, knobs=knobs)


def write_population(df: pd.DataFrame, path: str | Path) -> None:
    """Write a population to ``.parquet`` or ``.csv`` atomically.

    The frame is written to a temporary file in the destination folder which then replaces
    ``path`` in one step, so a reader never sees a partial file and a failure leaves nothing
    behind. The same frame always gives the same bytes.

    Parameters
    ----------
    df : pandas.DataFrame
        The population, e.g. from :func:`generate`; the index is not written.
    path : str or pathlib.Path
        Destination; its extension (``.parquet`` or ``.csv``) chooses the format.

    Raises
    ------
    BadInputError
        If the extension is not supported or the destination folder does not exist.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in POPULATION_SUFFIXES:
        shown = repr(target.suffix) if target.suffix else "no extension"
        raise BadInputError(
            f"cannot write {str(target)!r}: unsupported extension {shown}; "
            "use '.parquet' or '.csv'",
            details=[f"path: extension {shown} is not one of '.parquet', '.csv'"],
        )
    folder = target.parent
    if not folder.is_dir():
        raise BadInputError(
            f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist",
            details=[f"path: folder {str(folder)!r} does not exist"],
        )
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if suffix == ".parquet":
            df.to_parquet(temporary, index=False, engine="pyarrow")
        else:
            df.to_csv(temporary, index=False, lineterminator="\n")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _summary(problems: list[str]) -> str:
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"cannot generate a synthetic population: {problems[0]}{more}"


def _as_int(value: object) -> int | None:
    """The value as an ``int`` if it is an integer (not a bool), else ``None``."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return int(value)
    return None


def _as_real(value: object) -> float | None:
    """The value as a finite ``float`` if it is a real number (not a bool), else ``None``."""
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _check_arguments(
    *, unit: object, rows: object, seed: object, periods: object, start: object
) -> list[str]:
    problems: list[str] = []
    if unit not in UNITS:
        expected = ", ".join(repr(u) for u in UNITS)
        problems.append(f"unit: must be one of {expected} (got {unit!r})")
    n_periods, n_rows, seed_value = _as_int(periods), _as_int(rows), _as_int(seed)
    if n_periods is None or n_periods < MIN_PERIODS:
        problems.append(f"periods: must be an integer >= {MIN_PERIODS} (got {periods!r})")
        n_periods = None
    if n_rows is None or n_rows <= 0:
        problems.append(f"rows: must be a positive integer (got {rows!r})")
    elif n_periods is not None and n_rows < n_periods:
        problems.append(
            f"rows: must be >= periods so every id has a full history (got rows={n_rows}, "
            f"periods={n_periods})"
        )
    if seed_value is None or seed_value < 0:
        problems.append(f"seed: must be a non-negative integer (got {seed!r})")
    if not isinstance(start, str) or not START_PERIOD.match(start):
        problems.append(f"start: must be a month as 'YYYY-MM' (got {start!r})")
    return problems


def _check_group(unit: Unit, where: str, attribute: object, group: object) -> list[str]:
    attributes = SENSITIVE_ATTRIBUTES[unit]
    if not isinstance(attribute, str) or attribute not in attributes:
        known = ", ".join(repr(a) for a in attributes)
        return [f"{where}.attribute: unknown attribute {attribute!r} for {unit}; expected {known}"]
    groups = attributes[attribute]
    if not isinstance(group, str) or group not in groups:
        known = ", ".join(repr(g) for g in groups)
        return [f"{where}.group: unknown group {group!r} of {attribute!r}; expected {known}"]
    return []


def _check_knobs(unit: Unit, knobs: object) -> list[str]:
    if not isinstance(knobs, BiasKnobs):
        return [f"knobs: must be a BiasKnobs (got {type(knobs).__name__})"]
    problems: list[str] = []
    under = knobs.label_under_recording
    if under is not None:
        where = "knobs.label_under_recording"
        problems += _check_group(unit, where, under.attribute, under.group)
        rate = _as_real(under.rate)
        if rate is None or not 0.0 <= rate <= 1.0:
            problems.append(f"{where}.rate: must be a number in [0, 1] (got {under.rate!r})")
    proxy = knobs.proxy_over_measurement
    if proxy is not None:
        where = "knobs.proxy_over_measurement"
        allowed = OVER_MEASURABLE_FEATURES[unit]
        if not isinstance(proxy.feature, str) or proxy.feature not in allowed:
            known = ", ".join(repr(f) for f in allowed)
            problems.append(
                f"{where}.feature: {proxy.feature!r} is not an over-measurable {unit} feature; "
                f"expected one of {known}"
            )
        problems += _check_group(unit, where, proxy.attribute, proxy.group)
        factor = _as_real(proxy.factor)
        if factor is None or factor <= 0.0:
            problems.append(f"{where}.factor: must be a number > 0 (got {proxy.factor!r})")
    small = knobs.small_group
    if small is not None:
        where = "knobs.small_group"
        problems += _check_group(unit, where, small.attribute, small.group)
        share = _as_real(small.share)
        if share is None or not 0.0 < share < 1.0:
            problems.append(
                f"{where}.share: must be a number strictly between 0 and 1 (got {small.share!r})"
            )
    past = knobs.past_outreach
    if past is not None:
        where = "knobs.past_outreach"
        if unit != "individual":
            problems.append(f"{where}: only the individual unit has a past outreach programme")
        share = _as_real(past.share)
        if share is None or not 0.0 < share <= 1.0:
            problems.append(f"{where}.share: must be a number in (0, 1] (got {past.share!r})")
        for name in ("acceptance", "effect"):
            value = _as_real(getattr(past, name))
            if value is None or not 0.0 <= value <= 1.0:
                problems.append(
                    f"{where}.{name}: must be a number in [0, 1] (got {getattr(past, name)!r})"
                )
    gaps = knobs.gaps
    if gaps is not None:
        where = "knobs.gaps"
        if unit != "individual":
            problems.append(f"{where}: only the individual unit has columns with gaps")
        else:
            problems += _check_group(unit, where, gaps.attribute, gaps.group)
        share = _as_real(gaps.share)
        if share is None or not 0.0 < share < 1.0:
            problems.append(
                f"{where}.share: must be a number strictly between 0 and 1 (got {gaps.share!r})"
            )
        factor = _as_real(gaps.factor)
        if factor is None or factor < 1.0:
            problems.append(f"{where}.factor: must be a number >= 1 (got {gaps.factor!r})")
    return problems
