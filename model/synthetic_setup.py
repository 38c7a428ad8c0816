"""The synthetic populations' shape: units, bias knobs and their presets, columns, group shares and
rates."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, get_args

Unit = Literal["individual", "neighbourhood"]


UNITS: tuple[Unit, ...] = get_args(Unit)


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


#: The individual population's group shares of each sensitive attribute, in the order their
#: codes are drawn (the gate scenarios start from them, :mod:`bench.gate_scenarios`).
INDIVIDUAL_SHARES: dict[str, dict[str, float]] = {
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


SHARES_BY_UNIT: dict[Unit, dict[str, dict[str, float]]] = {
    "individual": INDIVIDUAL_SHARES,
    "neighbourhood": _NEIGHBOURHOOD_SHARES,
}


SENSITIVE_ATTRIBUTES: dict[Unit, dict[str, tuple[str, ...]]] = {
    unit: {attribute: tuple(shares) for attribute, shares in table.items()}
    for unit, table in SHARES_BY_UNIT.items()
}


"""Sensitive attributes of each unit and their groups; for audits only, never features."""


INCOME_BANDS = ("none", "very_low", "low", "moderate")


EMPLOYMENT_STATUSES = ("employed", "unemployed", "not_in_labour_force")


# Individual event counts: (window in months, log monthly rate at need 0, slope on need,
# highest monthly rate; the cap keeps the tails plausible, e.g. at most ~0.3 shelter stays a month).
INDIVIDUAL_EVENT_COUNTS: dict[str, tuple[int, float, float, float]] = {
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
SERVICE_CONTACTS = (
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
NEIGHBOURHOOD_EVENT_RATES: dict[str, tuple[float, float]] = {
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
        *NEIGHBOURHOOD_EVENT_RATES,
        "population",
        "unemployment_rate",
        "rent_burden_share",
        "prior_crisis_rate",
    ),
}


"""Model features of each unit, in column order."""


OVER_MEASURABLE_FEATURES: dict[Unit, tuple[str, ...]] = {
    "individual": tuple(INDIVIDUAL_EVENT_COUNTS),
    "neighbourhood": tuple(NEIGHBOURHOOD_EVENT_RATES),
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


HORIZON_MONTHS: dict[Unit, int] = {"individual": 6, "neighbourhood": 3}


LOOKBACK_MONTHS: dict[Unit, int] = {"individual": 59, "neighbourhood": 11}


UNIT_CODE: dict[Unit, int] = {"individual": 1, "neighbourhood": 2}


MIN_PERIODS = 8


# Neighbourhood crises: reference rate per 1,000 residents per month, and the multiple of the
# expected (reference-rate) quarterly count above which a quarter is "above expected".
REFERENCE_CRISIS_RATE = 1.0


CRISIS_EXCESS = 1.5


START_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


POPULATION_SUFFIXES = (".parquet", ".csv")
