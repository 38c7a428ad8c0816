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
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa

from kernel.errors import BadInputError

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

Unit = Literal["individual", "neighbourhood"]
UNITS: tuple[Unit, ...] = get_args(Unit)


# --------------------------------------------------------------------------------------------
# Bias knobs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelUnderRecording:
    """A group whose crises (and service contacts) go partly unrecorded.

    Parameters
    ----------
    attribute : str
        Sensitive attribute that defines the group, e.g. ``"race_ethnicity"``.
    group : str
        The group's value of that attribute, e.g. ``"Hispanic or Latino"``.
    rate : float
        Share of the group's true crises NOT recorded in the label, in ``[0, 1]``. The same rate
        thins the group's recorded service-contact features (``UNDER_RECORDED_FEATURES``).
    """

    attribute: str
    group: str
    rate: float


@dataclass(frozen=True)
class ProxyOverMeasurement:
    """A feature recorded ``factor`` times more for one group, regardless of need.

    Parameters
    ----------
    feature : str
        An event-count (individual) or rate (neighbourhood) feature; see
        ``OVER_MEASURABLE_FEATURES``.
    attribute : str
        Sensitive attribute that defines the group.
    group : str
        The group's value of that attribute.
    factor : float
        Multiplier (> 0) on the expected recorded value for the group; below 1 under-measures.
    """

    feature: str
    attribute: str
    group: str
    factor: float


@dataclass(frozen=True)
class SmallGroup:
    """A group whose population share is reduced to ``share`` (the others are rescaled).

    Parameters
    ----------
    attribute : str
        Sensitive attribute that defines the group.
    group : str
        The group's value of that attribute.
    share : float
        The group's expected share of the population, strictly between 0 and 1.
    """

    attribute: str
    group: str
    share: float


@dataclass(frozen=True)
class PastOutreach:
    """A past outreach programme that worked: the feedback loop a retrained model must not learn.

    Individuals only. In every period the programme offered help to the top ``share`` of
    families with children (``children_in_household >= 1``) by an earlier list's score (the sum
    of ``shelter_contacts_12m``, ``eviction_filings_12m`` and ``er_visits_90d``, ties at random),
    among those never offered before; each offer is accepted with probability ``acceptance``
    (once declined, an offer is not repeated, so the people who declined stay untreated). From the
    month after a person's first acceptance on, their monthly crisis hazard is cut by ``effect``.
    The population gains the column ``ACCEPTED_COLUMN`` (1 in the period an offer was accepted).

    Parameters
    ----------
    share : float
        Share of the families offered help each period, in ``(0, 1]``.
    acceptance : float
        Probability that an offer is accepted, in ``[0, 1]``.
    effect : float
        Share of the crisis hazard that accepted help prevents, in ``[0, 1]``.
    """

    share: float = 0.04
    acceptance: float = 0.6
    effect: float = 0.85


@dataclass(frozen=True)
class Gaps:
    """Missing values, more of them in one group: records an agency does not have for everyone.

    Individuals only. A person's ``GAP_COLUMNS`` (two categories and one number) are each blank,
    independently, with a person-level probability (a record missing from the file is missing in
    every month): ``factor`` times as likely for members of ``group`` as for everyone else,
    scaled so that about ``share`` of all people have each gap. Differing missingness by group
    is a classic proxy; the release audit reports it (``missingness`` in the report).

    Parameters
    ----------
    attribute : str
        Sensitive attribute that defines the group.
    group : str
        The group's value of that attribute.
    share : float
        Expected share of people with each gap, in ``(0, 1)``.
    factor : float
        How many times as likely a gap is in the group (>= 1); the group's probability is capped
        at 1.
    """

    attribute: str = "race_ethnicity"
    group: str = "Hispanic or Latino"
    share: float = 0.06
    factor: float = 2.5


#: The columns a :class:`Gaps` knob blanks (income and employment records, and the months
#: since the last service contact).
GAP_COLUMNS: tuple[str, ...] = ("income_band", "employment_status", "months_since_last_service")


@dataclass(frozen=True)
class BiasKnobs:
    """The bias knobs of one population; ``None`` switches a knob off (the default)."""

    label_under_recording: LabelUnderRecording | None = None
    proxy_over_measurement: ProxyOverMeasurement | None = None
    small_group: SmallGroup | None = None
    past_outreach: PastOutreach | None = None
    gaps: Gaps | None = None


NO_KNOBS = BiasKnobs()

PRESETS: dict[str, dict[Unit, BiasKnobs]] = {
    "default": {"individual": NO_KNOBS, "neighbourhood": NO_KNOBS},
    "biased": {
        "individual": BiasKnobs(
            label_under_recording=LabelUnderRecording(
                attribute="race_ethnicity", group="Hispanic or Latino", rate=0.7
            ),
            proxy_over_measurement=ProxyOverMeasurement(
                feature="jail_bookings_12m", attribute="race_ethnicity", group="Black", factor=2.5
            ),
            small_group=SmallGroup(
                attribute="race_ethnicity", group="American Indian or Alaska Native", share=0.005
            ),
        ),
        "neighbourhood": BiasKnobs(
            label_under_recording=LabelUnderRecording(
                attribute="majority_group", group="Hispanic or Latino", rate=0.5
            ),
            proxy_over_measurement=ProxyOverMeasurement(
                feature="service_call_rate", attribute="majority_group", group="Black", factor=2.0
            ),
            small_group=SmallGroup(attribute="majority_group", group="Asian", share=0.02),
        ),
    },
    # A past programme helped families with children and prevented most of their crises; the
    # data carries who accepted (``ACCEPTED_COLUMN``). Individuals only.
    "feedback": {"individual": BiasKnobs(past_outreach=PastOutreach())},
    # About 6% of people have no income record, no employment record and no months since their
    # last service on file, 2.5 times as often among Hispanic or Latino people. Individuals only.
    "gaps": {"individual": BiasKnobs(gaps=Gaps())},
}

#: The column a :class:`PastOutreach` population gains: 1 in a period an offer was accepted.
ACCEPTED_COLUMN = "outreach_accepted"


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

# Group shares of each sensitive attribute, in the order their codes are drawn.
_INDIVIDUAL_SHARES: dict[str, dict[str, float]] = {
    "race_ethnicity": {
        "White": 0.40,
        "Black": 0.25,
        "Hispanic or Latino": 0.22,
        "Asian": 0.07,
        "American Indian or Alaska Native": 0.02,
        "Multiracial or other": 0.04,
    },
    "sex": {"female": 0.52, "male": 0.48},
    "age_band": {
        "18-24": 0.14,
        "25-34": 0.22,
        "35-44": 0.20,
        "45-54": 0.17,
        "55-64": 0.15,
        "65+": 0.12,
    },
    "disability": {"yes": 0.22, "no": 0.78},
}
_NEIGHBOURHOOD_SHARES: dict[str, dict[str, float]] = {
    "majority_group": {
        "White": 0.45,
        "Black": 0.18,
        "Hispanic or Latino": 0.17,
        "Asian": 0.05,
        "No majority": 0.15,
    },
    "income_quintile": {"Q1": 0.2, "Q2": 0.2, "Q3": 0.2, "Q4": 0.2, "Q5": 0.2},
}
_SHARES: dict[Unit, dict[str, dict[str, float]]] = {
    "individual": _INDIVIDUAL_SHARES,
    "neighbourhood": _NEIGHBOURHOOD_SHARES,
}

SENSITIVE_ATTRIBUTES: dict[Unit, dict[str, tuple[str, ...]]] = {
    unit: {attribute: tuple(shares) for attribute, shares in table.items()}
    for unit, table in _SHARES.items()
}
"""Sensitive attributes of each unit and their groups; for audits only, never features."""

_INCOME_BANDS = ("none", "very_low", "low", "moderate")
_EMPLOYMENT = ("employed", "unemployed", "not_in_labour_force")

# Individual event counts: (window in months, log monthly rate at need 0, slope on need,
# highest monthly rate; the cap keeps the tails plausible, e.g. at most ~0.3 shelter stays a month).
_COUNTS: dict[str, tuple[int, float, float, float]] = {
    "er_visits_90d": (3, -2.6, 0.72, 2.0),
    "psych_holds_12m": (12, -5.9, 1.25, 0.5),
    "shelter_contacts_12m": (12, -4.7, 1.35, 4.0),
    "eviction_filings_12m": (12, -5.3, 1.05, 0.3),
    "jail_bookings_12m": (12, -5.3, 0.80, 0.5),
    "address_changes_12m": (12, -3.8, 0.90, 0.5),
    "benefit_lapses_12m": (12, -4.3, 0.85, 0.3),
    "outpatient_mh_visits_12m": (12, -2.5, 0.72, 4.0),
    "substance_use_tx_12m": (12, -4.4, 0.98, 2.0),
    "ems_calls_12m": (12, -4.3, 0.98, 1.0),
    "utility_shutoff_notices_12m": (12, -4.2, 0.85, 0.5),
    "child_welfare_contacts_12m": (12, -4.3, 0.85, 0.5),
    "prior_shelter_stays_5y": (60, -5.7, 1.35, 0.3),
}
# Contacts with services that reset ``months_since_last_service``.
_SERVICE_CONTACTS = (
    "er_visits_90d",
    "psych_holds_12m",
    "shelter_contacts_12m",
    "outpatient_mh_visits_12m",
    "substance_use_tx_12m",
    "ems_calls_12m",
)
UNDER_RECORDED_FEATURES: dict[Unit, tuple[str, ...]] = {
    "individual": (
        "shelter_contacts_12m",
        "er_visits_90d",
        "outpatient_mh_visits_12m",
        "substance_use_tx_12m",
        "prior_shelter_stays_5y",
    ),
    "neighbourhood": ("er_visit_rate", "service_call_rate", "prior_crisis_rate"),
}
"""Service-contact features a :class:`LabelUnderRecording` thins at the same rate as the label."""

# Neighbourhood event rates: (log monthly events per 1,000 residents at need 0, slope on need).
_RATES: dict[str, tuple[float, float]] = {
    "eviction_rate": (math.log(0.8), 0.9),
    "overdose_rate": (math.log(0.15), 1.0),
    "er_visit_rate": (math.log(25.0), 0.5),
    "utility_shutoff_rate": (math.log(3.0), 0.7),
    "service_call_rate": (math.log(30.0), 0.5),
}

FEATURES: dict[Unit, tuple[str, ...]] = {
    "individual": (
        "er_visits_90d",
        "psych_holds_12m",
        "shelter_contacts_12m",
        "eviction_filings_12m",
        "jail_bookings_12m",
        "address_changes_12m",
        "benefit_lapses_12m",
        "snap_enrolled",
        "medicaid_enrolled",
        "income_band",
        "household_size",
        "children_in_household",
        "outpatient_mh_visits_12m",
        "substance_use_tx_12m",
        "ems_calls_12m",
        "utility_shutoff_notices_12m",
        "child_welfare_contacts_12m",
        "prior_shelter_stays_5y",
        "months_since_last_service",
        "housing_waitlist",
        "employment_status",
    ),
    "neighbourhood": (
        *_RATES,
        "population",
        "unemployment_rate",
        "rent_burden_share",
        "prior_crisis_rate",
    ),
}
"""Model features of each unit, in column order."""

OVER_MEASURABLE_FEATURES: dict[Unit, tuple[str, ...]] = {
    "individual": tuple(_COUNTS),
    "neighbourhood": tuple(_RATES),
}
"""Features a :class:`ProxyOverMeasurement` may name: recorded event counts and event rates."""

SERVICE_AREAS = ("Central", "East", "Harbour", "Hillside", "North", "Riverside", "South", "West")
"""The outreach teams' areas an individual lives in (for coordinators' list filters only)."""
ID_COLUMN: dict[Unit, str] = {"individual": "person_id", "neighbourhood": "area_id"}
LABEL: dict[Unit, str] = {"individual": "crisis_6m", "neighbourhood": "crisis_above_expected"}
TRUE_LABEL: dict[Unit, str] = {unit: f"{label}_true" for unit, label in LABEL.items()}

COLUMNS: dict[Unit, tuple[str, ...]] = {
    unit: (
        ID_COLUMN[unit],
        "period",
        *(("service_area",) if unit == "individual" else ()),
        *FEATURES[unit],
        *SENSITIVE_ATTRIBUTES[unit],
        LABEL[unit],
        TRUE_LABEL[unit],
        "need_probability",
    )
    for unit in UNITS
}
"""Every column of each unit, in order."""

_HORIZON: dict[Unit, int] = {"individual": 6, "neighbourhood": 3}
_LOOKBACK: dict[Unit, int] = {"individual": 59, "neighbourhood": 11}
_UNIT_CODE: dict[Unit, int] = {"individual": 1, "neighbourhood": 2}
_MIN_PERIODS = 8
# Neighbourhood crises: reference rate per 1,000 residents per month, and the multiple of the
# expected (reference-rate) quarterly count above which a quarter is "above expected".
_REFERENCE_CRISIS_RATE = 1.0
_EXCESS = 1.5
_START = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_SUFFIXES = (".parquet", ".csv")


# --------------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------------


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
    labels = _period_labels(start, int(periods))
    if unit == "individual":
        return _individual(count, labels, int(seed), knobs)
    return _neighbourhood(count, labels, int(seed), knobs)


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
    if suffix not in _SUFFIXES:
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


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


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
    if n_periods is None or n_periods < _MIN_PERIODS:
        problems.append(f"periods: must be an integer >= {_MIN_PERIODS} (got {periods!r})")
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
    if not isinstance(start, str) or not _START.match(start):
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


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _streams(seed: int, unit: Unit) -> dict[str, np.random.Generator]:
    """Independent random streams, one per component.

    Knobs draw only from their own streams, so a population with a knob on shares every other
    draw with the same seed's population with the knob off (paired comparisons are exact).
    """
    names = (
        "attributes",
        "structure",
        "need",
        "effects",
        "counts",
        "timing",
        "crises",
        "under_labels",
        "under_features",
        "proxy",
        "area",
        "outreach",  # after the others, so that adding it changed no other stream's seed
        "gaps",  # likewise
    )
    code = _UNIT_CODE[unit]
    return {name: np.random.default_rng([seed, code, i]) for i, name in enumerate(names)}


def _period_labels(start: str, periods: int) -> list[str]:
    year, month = (int(part) for part in start.split("-"))
    months = year * 12 + (month - 1) + np.arange(periods)
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in months]


def _shares(unit: Unit, attribute: str, small: SmallGroup | None) -> np.ndarray:
    table = _SHARES[unit][attribute]
    shares = np.array(list(table.values()), dtype=np.float64)
    if small is not None and small.attribute == attribute:
        index = list(table).index(small.group)
        others = np.arange(len(shares)) != index
        shares[others] *= (1.0 - float(small.share)) / shares[others].sum()
        shares[index] = float(small.share)
    return shares


def _draw_codes(uniform: np.ndarray, shares: np.ndarray) -> np.ndarray:
    edges = np.cumsum(shares)
    edges[-1] = np.inf
    return np.searchsorted(edges, uniform, side="right").astype(np.int8)


def _draw_codes_rowwise(uniform: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Categorical draw with one probability vector per row (``probabilities`` is n x k)."""
    edges = np.cumsum(probabilities, axis=1)
    return (uniform[:, None] >= edges[:, :-1]).sum(axis=1).astype(np.int8)


def _strings(
    codes: np.ndarray, categories: tuple[str, ...] | list[str]
) -> pd.api.extensions.ExtensionArray:
    # Arrow's take is ~10x faster than building Python strings for million-row columns.
    taken = pa.array(list(categories), type=pa.large_string()).take(pa.array(codes.ravel()))
    return pd.array(taken, dtype="str")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _ar1(rng: np.random.Generator, n: int, months: int, rho: float, sd: float) -> np.ndarray:
    """Stationary AR(1) paths, ``n`` x ``months``, with marginal standard deviation ``sd``."""
    shocks = rng.standard_normal((n, months))
    paths = np.empty((n, months))
    paths[:, 0] = sd * shocks[:, 0]
    innovation = sd * math.sqrt(1.0 - rho * rho)
    for m in range(1, months):
        paths[:, m] = rho * paths[:, m - 1] + innovation * shocks[:, m]
    return paths


def _window_sums(values: np.ndarray, first: int, ends: np.ndarray, window: int) -> np.ndarray:
    """Sums over the ``window`` months ending at each month in ``ends``.

    ``values`` is n x L and covers internal months ``first .. first + L - 1``.
    """
    cumulative = np.zeros((values.shape[0], values.shape[1] + 1), dtype=values.dtype)
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    return cumulative[:, ends - first + 1] - cumulative[:, ends - first + 1 - window]


def _members(
    attributes: Mapping[str, np.ndarray],
    unit: Unit,
    knob: LabelUnderRecording | ProxyOverMeasurement | None,
) -> np.ndarray:
    """Boolean mask of the ids in the knob's group (all false when the knob is off)."""
    if knob is None:
        return np.zeros(next(iter(attributes.values())).shape, dtype=bool)
    code = SENSITIVE_ATTRIBUTES[unit][knob.attribute].index(knob.group)
    return attributes[knob.attribute] == code


def _thin(rng: np.random.Generator, counts: np.ndarray, members: np.ndarray, keep: float) -> None:
    """Keep each recorded event of a member with probability ``keep`` (in place)."""
    if keep >= 1.0 or not members.any():
        return
    counts[members] = rng.binomial(counts[members], keep)


def _scale(
    rng: np.random.Generator,
    counts: np.ndarray,
    expected: np.ndarray,
    members: np.ndarray,
    factor: float,
) -> None:
    """Scale members' expected recorded counts by ``factor`` and keep them integers (in place).

    Above 1, extra events are Poisson with mean ``(factor - 1) * expected``; below 1, events are
    binomially thinned. Either way the expected count is multiplied by exactly ``factor``.
    """
    if factor == 1.0 or not members.any():
        return
    if factor > 1.0:
        counts[members] += rng.poisson((factor - 1.0) * expected[members]).astype(counts.dtype)
    else:
        counts[members] = rng.binomial(counts[members], factor)


def _flip_positives(
    rng: np.random.Generator, truth: np.ndarray, members: np.ndarray, rate: float
) -> np.ndarray:
    """Record each true positive of a member as 0 with probability ``rate``."""
    recorded = truth.copy()
    lost = members & (truth == 1) & (rng.random(truth.shape) < rate)
    recorded[lost] = 0
    return recorded


def _frame(columns: dict[str, object], unit: Unit) -> pd.DataFrame:
    return pd.DataFrame({name: columns[name] for name in COLUMNS[unit]}, copy=False)


# --------------------------------------------------------------------------------------------
# Individuals
# --------------------------------------------------------------------------------------------


def _individual(n: int, labels: list[str], seed: int, knobs: BiasKnobs) -> pd.DataFrame:
    unit: Unit = "individual"
    rng = _streams(seed, unit)
    periods = len(labels)
    lookback, horizon = _LOOKBACK[unit], _HORIZON[unit]
    months = lookback + periods + horizon
    ends = lookback + np.arange(periods)  # internal month of each output period

    # Sensitive attributes: independent draws with realistic shares.
    attributes = {
        name: _draw_codes(rng["attributes"].random(n), _shares(unit, name, knobs.small_group))
        for name in SENSITIVE_ATTRIBUTES[unit]
    }
    race, sex = attributes["race_ethnicity"], attributes["sex"]
    age, disabled = attributes["age_band"], attributes["disability"] == 0

    # Structure: employment from age and disability; income from employment and, mildly, from
    # group membership (structural disparity); household composition from age.
    structure = rng["structure"]
    employment_p = np.tile([0.46, 0.24, 0.30], (n, 1))
    employment_p[age == 0] = [0.44, 0.30, 0.26]
    employment_p[age == 5] = [0.12, 0.04, 0.84]
    employment_p[disabled] = employment_p[disabled] * [0.45, 0.8, 1.0]
    employment_p /= employment_p.sum(axis=1, keepdims=True)
    employment = _draw_codes_rowwise(structure.random(n), employment_p)
    race_income = np.array([0.15, -0.20, -0.15, 0.10, -0.25, 0.0])
    income_latent = (
        structure.standard_normal(n) + race_income[race] + np.array([0.9, -0.6, -0.2])[employment]
    )
    income = np.searchsorted([-1.15, -0.1, 0.75], income_latent).astype(np.int8)
    household = np.minimum(1 + structure.poisson(1.0, n), 8)
    child_p = np.array([0.45, 0.65, 0.65, 0.40, 0.15, 0.05])[age]
    children = np.minimum(structure.binomial(household - 1, child_p), 6)

    # Latent need: a person-level baseline from structural factors (not from group membership
    # directly) plus a monthly AR(1) deviation.
    need_rng = rng["need"]
    baseline = (
        np.array([0.55, 0.30, 0.0, -0.45])[income]
        + np.array([-0.15, 0.25, 0.10])[employment]
        + 0.75 * need_rng.standard_normal(n)
    )
    need = baseline[:, None] + _ar1(need_rng, n, months, rho=0.93, sd=0.65)
    hazard = _sigmoid(-5.8 + 1.35 * need)

    # Feature propensities independent of need (people differ in how they use services).
    effects = rng["effects"]
    person_effect = {name: 0.35 * effects.standard_normal(n) for name in _COUNTS}
    # Kept small and free of age effects: with knobs off, a model's recall at capacity should not
    # differ by group beyond noise (stronger need-independent differences are a bias of their own).
    modifiers: dict[str, np.ndarray] = {
        "jail_bookings_12m": 0.3 * (sex == 1),
        "outpatient_mh_visits_12m": 0.3 * disabled + 0.1 * (sex == 0),
        "substance_use_tx_12m": 0.3 * (sex == 1),
        "utility_shutoff_notices_12m": 0.3 * (income <= 1),
        "child_welfare_contacts_12m": np.where(children > 0, 0.0, -np.inf),
    }

    under = knobs.label_under_recording
    proxy = knobs.proxy_over_measurement
    under_members = _members(attributes, unit, under)
    proxy_members = _members(attributes, unit, proxy)
    counts_rng = rng["counts"]
    features: dict[str, np.ndarray] = {}
    any_service = np.zeros((n, lookback + periods), dtype=bool)  # internal months 0..end
    for name, (window, intercept, slope, cap) in _COUNTS.items():
        # Service contacts are drawn over the whole look-back so months_since_last_service
        # can see 60 months back; other counts only over their window.
        first = 0 if name in _SERVICE_CONTACTS or window == 60 else lookback - window + 1
        log_rate = intercept + slope * need[:, first : lookback + periods]
        log_rate += (person_effect[name] + modifiers.get(name, 0.0))[:, None]
        expected = np.minimum(np.exp(log_rate), cap)
        monthly = counts_rng.poisson(expected).astype(np.int32)
        keep = 1.0
        if under is not None and name in UNDER_RECORDED_FEATURES[unit]:
            keep = 1.0 - float(under.rate)
            _thin(rng["under_features"], monthly, under_members, keep)
        if proxy is not None and proxy.feature == name:
            _scale(rng["proxy"], monthly, keep * expected, proxy_members, float(proxy.factor))
        if name in _SERVICE_CONTACTS:
            any_service |= monthly > 0
        features[name] = _window_sums(monthly, first, ends, window).astype(np.int64)

    # Months since the last recorded service contact, at the end of each month, capped at 60.
    timing = rng["timing"]
    position = timing.random((n, lookback + periods))  # when in its month a contact happened
    month_index = np.arange(lookback + periods)
    last = np.maximum.accumulate(np.where(any_service, month_index, -1), axis=1)[:, ends]
    person_index = np.arange(n)[:, None]
    since = (ends - last) + 1.0 - position[person_index, np.maximum(last, 0)]
    since = np.where((last < 0) | (since > 60.0), 60.0, since)

    # Enrolment and waitlist status: persistent propensities plus current or recent need.
    recent_need = _window_sums(need[:, : lookback + periods], 0, ends, 12) / 12.0
    snap_p = np.array([1.1, 0.8, 0.1, -0.9])[income] + structure.standard_normal(n)
    medicaid_p = (
        np.array([1.0, 0.8, 0.2, -0.7])[income] + 0.8 * disabled + structure.standard_normal(n)
    )
    waitlist_p = -0.3 * income + structure.standard_normal(n)
    current_need = need[:, ends]
    snap = (snap_p[:, None] + 0.35 * current_need > 0.3).astype(np.int64)
    medicaid = (medicaid_p[:, None] + 0.35 * current_need > 0.2).astype(np.int64)
    waitlist = (waitlist_p[:, None] + 0.7 * recent_need > 1.4).astype(np.int64)

    accepted = np.zeros((n, periods), dtype=np.int64)
    if knobs.past_outreach is not None:
        hazard, accepted = _past_outreach(
            rng["outreach"], knobs.past_outreach, hazard, features, children, ends
        )

    # Crises: monthly events from the hazard; the label looks six months ahead.
    crisis_window = slice(lookback + 1, lookback + periods + horizon)
    events = rng["crises"].random((n, periods + horizon - 1)) < hazard[:, crisis_window]
    first_crisis_month = lookback + 1
    truth = (
        _window_sums(events.astype(np.int32), first_crisis_month, ends + horizon, horizon) > 0
    ).astype(np.int64)
    log_survival = np.log1p(-hazard[:, crisis_window])
    need_probability = -np.expm1(
        _window_sums(log_survival, first_crisis_month, ends + horizon, horizon)
    )
    recorded = truth
    if under is not None:
        recorded = _flip_positives(
            rng["under_labels"], truth, under_members[:, None], float(under.rate)
        )

    def person_level(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, periods)

    columns: dict[str, object] = {
        "person_id": person_level(np.arange(1, n + 1, dtype=np.int64)),
        "period": _strings(np.tile(np.arange(periods), n), labels),
        "service_area": _strings(
            person_level(rng["area"].integers(0, len(SERVICE_AREAS), n)), SERVICE_AREAS
        ),
        **{name: values.ravel() for name, values in features.items()},
        "snap_enrolled": snap.ravel(),
        "medicaid_enrolled": medicaid.ravel(),
        "income_band": _strings(person_level(income), _INCOME_BANDS),
        "household_size": person_level(household.astype(np.int64)),
        "children_in_household": person_level(children.astype(np.int64)),
        "months_since_last_service": since.ravel(),
        "housing_waitlist": waitlist.ravel(),
        "employment_status": _strings(person_level(employment), _EMPLOYMENT),
        **{
            name: _strings(person_level(codes), SENSITIVE_ATTRIBUTES[unit][name])
            for name, codes in attributes.items()
        },
        "crisis_6m": recorded.ravel(),
        "crisis_6m_true": truth.ravel(),
        "need_probability": need_probability.ravel(),
    }
    frame = _frame(columns, unit)
    if knobs.past_outreach is not None:
        frame[ACCEPTED_COLUMN] = accepted.ravel()
    if knobs.gaps is not None:
        _blank(frame, rng["gaps"], knobs.gaps, attributes, periods)
    return frame


def _blank(
    frame: pd.DataFrame,
    rng: np.random.Generator,
    gaps: Gaps,
    attributes: Mapping[str, np.ndarray],
    periods: int,
) -> None:
    """Blank each of ``GAP_COLUMNS`` for a random set of people (in every period), in place."""
    members = attributes[gaps.attribute] == SENSITIVE_ATTRIBUTES["individual"][
        gaps.attribute
    ].index(gaps.group)
    # share = p * (1 + in_group * (factor - 1)) on average: solve for everyone else's p.
    base = float(gaps.share) / (1.0 + members.mean() * (float(gaps.factor) - 1.0))
    probability = np.where(members, min(1.0, base * float(gaps.factor)), base)
    for column in GAP_COLUMNS:
        blank = np.repeat(rng.random(len(members)) < probability, periods)
        if frame[column].dtype.kind == "f":
            frame.loc[blank, column] = np.nan
        else:
            frame[column] = frame[column].astype(object).where(~blank, None)


def _past_outreach(
    rng: np.random.Generator,
    past: PastOutreach,
    hazard: np.ndarray,
    features: Mapping[str, np.ndarray],
    children: np.ndarray,
    ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run a :class:`PastOutreach` programme: the cut hazard and who accepted in which period."""
    n, periods = children.shape[0], ends.shape[0]
    score = (
        features["shelter_contacts_12m"]
        + features["eviction_filings_12m"]
        + features["er_visits_90d"]
    )
    families = np.flatnonzero(children > 0)
    offers = math.ceil(float(past.share) * families.size)
    accepts = rng.random((n, periods)) < float(past.acceptance)
    ties = rng.random((n, periods))
    offered_before = np.zeros(n, dtype=bool)
    accepted = np.zeros((n, periods), dtype=np.int64)
    cut = hazard.copy()
    for t in range(periods):
        waiting = families[~offered_before[families]]
        order = np.lexsort((ties[waiting, t], -score[waiting, t]))
        offered = waiting[order[:offers]]
        offered_before[offered] = True
        took = offered[accepts[offered, t]]
        accepted[took, t] = 1
        cut[took, ends[t] + 1 :] *= 1.0 - float(past.effect)
    return cut, accepted


# --------------------------------------------------------------------------------------------
# Neighbourhoods
# --------------------------------------------------------------------------------------------


def _poisson_sf(threshold: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``P(X > threshold)`` for ``X ~ Poisson(mean)``, elementwise, for integer thresholds.

    Sums whichever tail is shorter, starting from its largest term (computed in log space with
    an exact log-factorial table), so it neither underflows nor needs many terms; elements leave
    the loop as soon as their terms are negligible.
    """
    shape = np.broadcast_shapes(threshold.shape, mean.shape)
    threshold = np.broadcast_to(threshold, shape).ravel()
    mean = np.broadcast_to(mean, shape).ravel()
    upper = threshold + 1 > mean
    start = np.where(upper, threshold + 1, threshold)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, start.max() + 2)))])
    term = np.exp(-mean + start * np.log(mean) - log_factorial[start])
    total = term.copy()
    active = np.flatnonzero(term > 1e-17)
    k = start[active].astype(np.float64)
    step_term, step_mean, step_upper = term[active], mean[active], upper[active]
    while active.size:
        for _ in range(8):
            step_term = step_term * np.where(
                step_upper, step_mean / np.maximum(k + 1.0, 1.0), np.maximum(k, 0.0) / step_mean
            )
            k = np.where(step_upper, k + 1.0, k - 1.0)
            total[active] += step_term
        keep = step_term > 1e-17
        active, k = active[keep], k[keep]
        step_term, step_mean, step_upper = step_term[keep], step_mean[keep], step_upper[keep]
    return np.clip(np.where(upper, total, 1.0 - total), 0.0, 1.0).reshape(shape)


def _neighbourhood(n: int, labels: list[str], seed: int, knobs: BiasKnobs) -> pd.DataFrame:
    unit: Unit = "neighbourhood"
    rng = _streams(seed, unit)
    periods = len(labels)
    lookback, horizon = _LOOKBACK[unit], _HORIZON[unit]
    months = lookback + periods + horizon
    ends = lookback + np.arange(periods)

    # Composition and structure: income depends mildly on the majority group; unemployment and
    # rent burden are readouts of income; income quintiles are exact ranks.
    structure = rng["structure"]
    group = _draw_codes(
        rng["attributes"].random(n), _shares(unit, "majority_group", knobs.small_group)
    )
    income_latent = structure.standard_normal(n) + np.array([0.35, -0.45, -0.35, 0.25, 0.0])[group]
    quintile = np.empty(n, dtype=np.int8)
    quintile[np.argsort(income_latent, kind="stable")] = (np.arange(n) * 5 // n).astype(np.int8)
    if knobs.small_group is not None and knobs.small_group.attribute == "income_quintile":
        # Re-cut the quintile boundaries so the named quintile holds ``share`` of the areas.
        shares = _shares(unit, "income_quintile", knobs.small_group)
        edges = np.concatenate([[0.0], np.cumsum(shares)])
        rank = np.empty(n)
        rank[np.argsort(income_latent, kind="stable")] = (np.arange(n) + 0.5) / n
        quintile = (np.searchsorted(edges[1:-1], rank, side="right")).astype(np.int8)
    attributes = {"majority_group": group, "income_quintile": quintile}
    population = np.clip(
        np.round(np.exp(math.log(6000.0) + 0.5 * structure.standard_normal(n))), 1000, 40000
    ).astype(np.int64)
    unemployment_logit = -2.75 - 0.45 * income_latent + 0.25 * structure.standard_normal(n)
    rent_logit = -0.35 - 0.35 * income_latent + 0.25 * structure.standard_normal(n)

    # Latent need: structural baseline plus an AR(1) deviation; crises and events follow it.
    need_rng = rng["need"]
    baseline = (
        0.25 * (unemployment_logit + 2.75)
        + 0.18 * (rent_logit + 0.35)
        + 0.10 * need_rng.standard_normal(n)
    )
    deviation = _ar1(need_rng, n, months, rho=0.75, sd=0.3)
    need = baseline[:, None] + deviation
    per_thousand = population[:, None] / 1000.0
    crisis_mean = per_thousand * _REFERENCE_CRISIS_RATE * np.exp(need)  # per area and month

    timing = rng["timing"]
    unemployment = _sigmoid(
        unemployment_logit[:, None]
        + 0.35 * deviation[:, ends]
        + 0.05 * timing.standard_normal((n, periods))
    )
    rent_burden = np.clip(
        _sigmoid(rent_logit)[:, None] + 0.01 * timing.standard_normal((n, periods)), 0.0, 1.0
    )

    under = knobs.label_under_recording
    proxy = knobs.proxy_over_measurement
    under_members = _members(attributes, unit, under)
    proxy_members = _members(attributes, unit, proxy)
    effects, counts_rng = rng["effects"], rng["counts"]
    features: dict[str, np.ndarray] = {}
    window = 3  # rates are events in the last three months per 1,000 residents
    first = lookback - window + 1
    for name, (intercept, slope) in _RATES.items():
        area_effect = 0.2 * effects.standard_normal(n)
        log_rate = intercept + slope * need[:, first : lookback + periods] + area_effect[:, None]
        expected = per_thousand * np.exp(log_rate)
        monthly = counts_rng.poisson(expected).astype(np.int64)
        keep = 1.0
        if under is not None and name in UNDER_RECORDED_FEATURES[unit]:
            keep = 1.0 - float(under.rate)
            _thin(rng["under_features"], monthly, under_members, keep)
        if proxy is not None and proxy.feature == name:
            _scale(rng["proxy"], monthly, keep * expected, proxy_members, float(proxy.factor))
        features[name] = _window_sums(monthly, first, ends, window) / per_thousand

    # Crisis events from the year before the first period to the quarter after the last one.
    crises = rng["crises"].poisson(crisis_mean).astype(np.int64)
    recorded_crises = crises.copy()
    if under is not None and "prior_crisis_rate" in UNDER_RECORDED_FEATURES[unit]:
        _thin(rng["under_features"], recorded_crises, under_members, 1.0 - float(under.rate))
    prior_crisis_rate = _window_sums(recorded_crises, 0, ends, 12) / per_thousand
    next_quarter = _window_sums(crises, 0, ends + horizon, horizon)
    quarter_mean = _window_sums(crisis_mean, 0, ends + horizon, horizon)
    # The area's expected level is indirectly standardised: its population at the reference
    # rate. A quarter is "above expected" when its count exceeds that level by _EXCESS times.
    expected_quarter = horizon * per_thousand[:, 0] * _REFERENCE_CRISIS_RATE
    threshold = np.floor(_EXCESS * expected_quarter).astype(np.int64)[:, None]
    truth = (next_quarter > threshold).astype(np.int64)
    need_probability = _poisson_sf(threshold, quarter_mean)
    recorded = truth
    if under is not None:
        recorded = _flip_positives(
            rng["under_labels"], truth, under_members[:, None], float(under.rate)
        )

    def area_level(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, periods)

    width = max(4, len(str(n)))  # zero-padded so text order is numeric order
    area_ids = np.array([f"A{i:0{width}d}" for i in range(1, n + 1)])
    columns: dict[str, object] = {
        "area_id": pd.array(area_level(area_ids), dtype="str"),
        "period": _strings(np.tile(np.arange(periods), n), labels),
        **{name: values.ravel() for name, values in features.items()},
        "population": area_level(population),
        "unemployment_rate": unemployment.ravel(),
        "rent_burden_share": rent_burden.ravel(),
        "prior_crisis_rate": prior_crisis_rate.ravel(),
        "majority_group": _strings(area_level(group), SENSITIVE_ATTRIBUTES[unit]["majority_group"]),
        "income_quintile": _strings(
            area_level(quintile), SENSITIVE_ATTRIBUTES[unit]["income_quintile"]
        ),
        "crisis_above_expected": recorded.ravel(),
        "crisis_above_expected_true": truth.ravel(),
        "need_probability": need_probability.ravel(),
    }
    return _frame(columns, unit)
