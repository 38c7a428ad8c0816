"""The two synthetic populations, person-months and neighbourhood-months, drawn with their bias
knobs."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from model import synthetic_draws as draws
from model.synthetic_setup import (
    ACCEPTED_COLUMN,
    CRISIS_EXCESS,
    EMPLOYMENT_STATUSES,
    GAP_COLUMNS,
    HORIZON_MONTHS,
    INCOME_BANDS,
    INDIVIDUAL_EVENT_COUNTS,
    LOOKBACK_MONTHS,
    NEIGHBOURHOOD_EVENT_RATES,
    REFERENCE_CRISIS_RATE,
    SENSITIVE_ATTRIBUTES,
    SERVICE_AREAS,
    SERVICE_CONTACTS,
    UNDER_RECORDED_FEATURES,
    BiasKnobs,
    Gaps,
    PastOutreach,
    Unit,
)


def individual_population(n: int, labels: list[str], seed: int, knobs: BiasKnobs) -> pd.DataFrame:
    """Person-months: ``n`` people observed in every period of ``labels``.

    Parameters
    ----------
    n : int
        Number of people.
    labels : list of str
        The periods, as ``"YYYY-MM"`` (from :func:`model.synthetic_draws.period_labels`).
    seed : int
        Non-negative seed.
    knobs : BiasKnobs
        Bias knobs to inject, already checked by :func:`model.synthetic.generate`.

    Returns
    -------
    pandas.DataFrame
        The columns ``COLUMNS["individual"]``, sorted by id then period.
    """
    unit: Unit = "individual"
    rng = draws.streams(seed, unit)
    periods = len(labels)
    lookback, horizon = LOOKBACK_MONTHS[unit], HORIZON_MONTHS[unit]
    months = lookback + periods + horizon
    ends = lookback + np.arange(periods)  # internal month of each output period

    # Sensitive attributes: independent draws with realistic shares.
    attributes = {
        name: draws.draw_codes(
            rng["attributes"].random(n), draws.attribute_shares(unit, name, knobs.small_group)
        )
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
    employment = draws.draw_codes_rowwise(structure.random(n), employment_p)
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
    need = baseline[:, None] + draws.ar1(need_rng, n, months, rho=0.93, sd=0.65)
    hazard = draws.sigmoid(-5.8 + 1.35 * need)

    # Feature propensities independent of need (people differ in how they use services).
    effects = rng["effects"]
    person_effect = {name: 0.35 * effects.standard_normal(n) for name in INDIVIDUAL_EVENT_COUNTS}
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
    under_members = draws.members(attributes, unit, under)
    proxy_members = draws.members(attributes, unit, proxy)
    counts_rng = rng["counts"]
    features: dict[str, np.ndarray] = {}
    any_service = np.zeros((n, lookback + periods), dtype=bool)  # internal months 0..end
    for name, (window, intercept, slope, cap) in INDIVIDUAL_EVENT_COUNTS.items():
        # Service contacts are drawn over the whole look-back so months_since_last_service
        # can see 60 months back; other counts only over their window.
        first = 0 if name in SERVICE_CONTACTS or window == 60 else lookback - window + 1
        log_rate = intercept + slope * need[:, first : lookback + periods]
        log_rate += (person_effect[name] + modifiers.get(name, 0.0))[:, None]
        expected = np.minimum(np.exp(log_rate), cap)
        monthly = counts_rng.poisson(expected).astype(np.int32)
        keep = 1.0
        if under is not None and name in UNDER_RECORDED_FEATURES[unit]:
            keep = 1.0 - float(under.rate)
            draws.thin(rng["under_features"], monthly, under_members, keep)
        if proxy is not None and proxy.feature == name:
            draws.scale(rng["proxy"], monthly, keep * expected, proxy_members, float(proxy.factor))
        if name in SERVICE_CONTACTS:
            any_service |= monthly > 0
        features[name] = draws.window_sums(monthly, first, ends, window).astype(np.int64)

    # Months since the last recorded service contact, at the end of each month, capped at 60.
    timing = rng["timing"]
    position = timing.random((n, lookback + periods))  # when in its month a contact happened
    month_index = np.arange(lookback + periods)
    last = np.maximum.accumulate(np.where(any_service, month_index, -1), axis=1)[:, ends]
    person_index = np.arange(n)[:, None]
    since = (ends - last) + 1.0 - position[person_index, np.maximum(last, 0)]
    since = np.where((last < 0) | (since > 60.0), 60.0, since)

    # Enrolment and waitlist status: persistent propensities plus current or recent need.
    recent_need = draws.window_sums(need[:, : lookback + periods], 0, ends, 12) / 12.0
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
        draws.window_sums(events.astype(np.int32), first_crisis_month, ends + horizon, horizon) > 0
    ).astype(np.int64)
    log_survival = np.log1p(-hazard[:, crisis_window])
    need_probability = -np.expm1(
        draws.window_sums(log_survival, first_crisis_month, ends + horizon, horizon)
    )
    recorded = truth
    if under is not None:
        recorded = draws.flip_positives(
            rng["under_labels"], truth, under_members[:, None], float(under.rate)
        )

    def person_level(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, periods)

    columns: dict[str, object] = {
        "person_id": person_level(np.arange(1, n + 1, dtype=np.int64)),
        "period": draws.as_strings(np.tile(np.arange(periods), n), labels),
        "service_area": draws.as_strings(
            person_level(rng["area"].integers(0, len(SERVICE_AREAS), n)), SERVICE_AREAS
        ),
        **{name: values.ravel() for name, values in features.items()},
        "snap_enrolled": snap.ravel(),
        "medicaid_enrolled": medicaid.ravel(),
        "income_band": draws.as_strings(person_level(income), INCOME_BANDS),
        "household_size": person_level(household.astype(np.int64)),
        "children_in_household": person_level(children.astype(np.int64)),
        "months_since_last_service": since.ravel(),
        "housing_waitlist": waitlist.ravel(),
        "employment_status": draws.as_strings(person_level(employment), EMPLOYMENT_STATUSES),
        **{
            name: draws.as_strings(person_level(codes), SENSITIVE_ATTRIBUTES[unit][name])
            for name, codes in attributes.items()
        },
        "crisis_6m": recorded.ravel(),
        "crisis_6m_true": truth.ravel(),
        "need_probability": need_probability.ravel(),
    }
    frame = draws.frame(columns, unit)
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


def neighbourhood_population(
    n: int, labels: list[str], seed: int, knobs: BiasKnobs
) -> pd.DataFrame:
    """Neighbourhood-months: ``n`` areas observed in every period of ``labels``.

    Parameters
    ----------
    n : int
        Number of areas.
    labels : list of str
        The periods, as ``"YYYY-MM"`` (from :func:`model.synthetic_draws.period_labels`).
    seed : int
        Non-negative seed.
    knobs : BiasKnobs
        Bias knobs to inject, already checked by :func:`model.synthetic.generate`.

    Returns
    -------
    pandas.DataFrame
        The columns ``COLUMNS["neighbourhood"]``, sorted by id then period.
    """
    unit: Unit = "neighbourhood"
    rng = draws.streams(seed, unit)
    periods = len(labels)
    lookback, horizon = LOOKBACK_MONTHS[unit], HORIZON_MONTHS[unit]
    months = lookback + periods + horizon
    ends = lookback + np.arange(periods)

    # Composition and structure: income depends mildly on the majority group; unemployment and
    # rent burden are readouts of income; income quintiles are exact ranks.
    structure = rng["structure"]
    group = draws.draw_codes(
        rng["attributes"].random(n),
        draws.attribute_shares(unit, "majority_group", knobs.small_group),
    )
    income_latent = structure.standard_normal(n) + np.array([0.35, -0.45, -0.35, 0.25, 0.0])[group]
    quintile = np.empty(n, dtype=np.int8)
    quintile[np.argsort(income_latent, kind="stable")] = (np.arange(n) * 5 // n).astype(np.int8)
    if knobs.small_group is not None and knobs.small_group.attribute == "income_quintile":
        # Re-cut the quintile boundaries so the named quintile holds ``share`` of the areas.
        shares = draws.attribute_shares(unit, "income_quintile", knobs.small_group)
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
    deviation = draws.ar1(need_rng, n, months, rho=0.75, sd=0.3)
    need = baseline[:, None] + deviation
    per_thousand = population[:, None] / 1000.0
    crisis_mean = per_thousand * REFERENCE_CRISIS_RATE * np.exp(need)  # per area and month

    timing = rng["timing"]
    unemployment = draws.sigmoid(
        unemployment_logit[:, None]
        + 0.35 * deviation[:, ends]
        + 0.05 * timing.standard_normal((n, periods))
    )
    rent_burden = np.clip(
        draws.sigmoid(rent_logit)[:, None] + 0.01 * timing.standard_normal((n, periods)), 0.0, 1.0
    )

    under = knobs.label_under_recording
    proxy = knobs.proxy_over_measurement
    under_members = draws.members(attributes, unit, under)
    proxy_members = draws.members(attributes, unit, proxy)
    effects, counts_rng = rng["effects"], rng["counts"]
    features: dict[str, np.ndarray] = {}
    window = 3  # rates are events in the last three months per 1,000 residents
    first = lookback - window + 1
    for name, (intercept, slope) in NEIGHBOURHOOD_EVENT_RATES.items():
        area_effect = 0.2 * effects.standard_normal(n)
        log_rate = intercept + slope * need[:, first : lookback + periods] + area_effect[:, None]
        expected = per_thousand * np.exp(log_rate)
        monthly = counts_rng.poisson(expected).astype(np.int64)
        keep = 1.0
        if under is not None and name in UNDER_RECORDED_FEATURES[unit]:
            keep = 1.0 - float(under.rate)
            draws.thin(rng["under_features"], monthly, under_members, keep)
        if proxy is not None and proxy.feature == name:
            draws.scale(rng["proxy"], monthly, keep * expected, proxy_members, float(proxy.factor))
        features[name] = draws.window_sums(monthly, first, ends, window) / per_thousand

    # Crisis events from the year before the first period to the quarter after the last one.
    crises = rng["crises"].poisson(crisis_mean).astype(np.int64)
    recorded_crises = crises.copy()
    if under is not None and "prior_crisis_rate" in UNDER_RECORDED_FEATURES[unit]:
        draws.thin(rng["under_features"], recorded_crises, under_members, 1.0 - float(under.rate))
    prior_crisis_rate = draws.window_sums(recorded_crises, 0, ends, 12) / per_thousand
    next_quarter = draws.window_sums(crises, 0, ends + horizon, horizon)
    quarter_mean = draws.window_sums(crisis_mean, 0, ends + horizon, horizon)
    # The area's expected level is indirectly standardised: its population at the reference
    # rate. A quarter is "above expected" when its count exceeds that level by CRISIS_EXCESS times.
    expected_quarter = horizon * per_thousand[:, 0] * REFERENCE_CRISIS_RATE
    threshold = np.floor(CRISIS_EXCESS * expected_quarter).astype(np.int64)[:, None]
    truth = (next_quarter > threshold).astype(np.int64)
    need_probability = _poisson_sf(threshold, quarter_mean)
    recorded = truth
    if under is not None:
        recorded = draws.flip_positives(
            rng["under_labels"], truth, under_members[:, None], float(under.rate)
        )

    def area_level(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, periods)

    width = max(4, len(str(n)))  # zero-padded so text order is numeric order
    area_ids = np.array([f"A{i:0{width}d}" for i in range(1, n + 1)])
    columns: dict[str, object] = {
        "area_id": pd.array(area_level(area_ids), dtype="str"),
        "period": draws.as_strings(np.tile(np.arange(periods), n), labels),
        **{name: values.ravel() for name, values in features.items()},
        "population": area_level(population),
        "unemployment_rate": unemployment.ravel(),
        "rent_burden_share": rent_burden.ravel(),
        "prior_crisis_rate": prior_crisis_rate.ravel(),
        "majority_group": draws.as_strings(
            area_level(group), SENSITIVE_ATTRIBUTES[unit]["majority_group"]
        ),
        "income_quintile": draws.as_strings(
            area_level(quintile), SENSITIVE_ATTRIBUTES[unit]["income_quintile"]
        ),
        "crisis_above_expected": recorded.ravel(),
        "crisis_above_expected_true": truth.ravel(),
        "need_probability": need_probability.ravel(),
    }
    return draws.frame(columns, unit)
