"""What would change a listing: exact single-feature changes, the recourse audit, the person page.

The exactness property: moving one actionable feature to the computed value crosses the cut-off
(judged by the scorer's own arithmetic and band rule), the value just short of it does not, and
no valid value nearer the current one crosses (a brute-force scan over a grid and every whole
number, every threshold's neighbours and every category).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from kernel.errors import BadInputError, SpecError
from lifecycle.verified_loading import trust_for
from model.additive import AdditiveModel, Term, sigmoid
from model.counterfactual import Answer, crossings, from_listing, logit, what_would_change
from model.scorer import ScoringModel
from model.spec import Feature, parse_spec
from model.train import TrainingResult
from service.person_explanation import feature_words
from store.db import AccessLogRow, QueueEntry
from tests.support.homes import Released, Site
from tests.support.specs import NEIGHBOURHOOD_SPEC, fast_mapping, fast_spec

# ----------------------------------------------------------------------------- random models


@dataclass(frozen=True)
class Case:
    additive: AdditiveModel
    features: tuple[Feature, ...]
    record: dict[str, Any]
    cutoff: float


def _columns(record: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        k: np.asarray([v], dtype=object if isinstance(v, str) or v is None else float)
        for k, v in record.items()
    }


def _log_odds(case: Case, record: dict[str, Any]) -> float:
    return float(case.additive.log_odds(_columns(record))[0])


def _within(case: Case, record: dict[str, Any]) -> bool:
    """The scorer's rule: score (base + row sum of contributions) at least the cut-off."""
    return bool(sigmoid(case.additive.log_odds(_columns(record)))[0] >= case.cutoff)


def _crosses(case: Case, name: str, value: Any) -> bool:
    return _within(case, {**case.record, name: value}) != _within(case, case.record)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    count = draw(st.integers(1, 3))
    features: list[Feature] = []
    terms: list[Term] = []
    record: dict[str, Any] = {}
    for i in range(count):
        name = f"f{i}"
        kind = draw(st.sampled_from(["count", "number", "binary", "category"]))
        gaps = draw(st.booleans())
        missing = {"missing": "allowed", "reason_missing": "not recorded"} if gaps else {}
        weight = st.floats(-3, 3, allow_nan=False)
        if kind == "category":
            categories = tuple(f"c{j}" for j in range(draw(st.integers(2, 5))))
            features.append(
                Feature(
                    name=name,
                    kind="category",
                    reason="{value}",
                    categories=categories,
                    actionable=True,
                    **missing,
                )
            )
            values = tuple(
                draw(st.lists(weight, min_size=len(categories), max_size=len(categories)))
            )
            terms.append(
                Term(
                    name,
                    "table",
                    categories=categories,
                    values=values,
                    center=draw(weight),
                    missing=draw(weight) if gaps else None,
                )
            )
            record[name] = draw(st.sampled_from([*categories, *((None,) if gaps else ())]))
            continue
        if kind == "count":
            low, high = 0.0, float(draw(st.integers(1, 40)))
        elif kind == "binary":
            low, high = 0.0, 1.0
        else:
            low = draw(st.floats(-10, 0, allow_nan=False))
            high = low + draw(st.floats(0.5, 20, allow_nan=False))
        bounds = {} if kind == "binary" else {"min": low, "max": high}
        features.append(
            Feature(name=name, kind=kind, reason="{value}", actionable=True, **bounds, **missing)
        )
        gap_value = draw(weight) if gaps else None
        if draw(st.booleans()):
            terms.append(
                Term(
                    name,
                    "linear",
                    slope=draw(weight),
                    offset=draw(weight),
                    center=draw(weight),
                    missing=gap_value,
                )
            )
        else:
            cuts = draw(
                st.lists(
                    st.floats(low - 1, high + 1, allow_nan=False),
                    min_size=1,
                    max_size=6,
                    unique=True,
                )
            )
            if kind != "number" and draw(st.booleans()):
                cuts = sorted({np.floor(c) + 0.5 for c in cuts})  # as trees split whole numbers
            cuts = sorted(cuts)
            values = tuple(draw(st.lists(weight, min_size=len(cuts) + 1, max_size=len(cuts) + 1)))
            terms.append(
                Term(
                    name,
                    "step",
                    thresholds=tuple(cuts),
                    values=values,
                    center=draw(weight),
                    missing=gap_value,
                )
            )
        if kind == "number":
            value = draw(st.floats(low, high, allow_nan=False))
        else:
            value = float(draw(st.integers(int(low), int(high))))
        record[name] = np.nan if gaps and draw(st.integers(0, 5)) == 0 else value
    # One feature that is not actionable: the rest of the score, never moved.
    features.append(Feature(name="rest", kind="number", reason="{value}"))
    terms.append(Term("rest", "linear", slope=1.0))
    record["rest"] = draw(st.floats(-4, 4, allow_nan=False))
    additive = AdditiveModel(
        terms=tuple(terms),
        intercept=draw(st.floats(-2, 2, allow_nan=False)),
        calibration_slope=draw(st.floats(0.3, 2.0, allow_nan=False)),
        calibration_intercept=draw(st.floats(-1, 1, allow_nan=False)),
    )
    # A cut-off near the record's own score, so that most cases have something to cross.
    near = Case(additive, tuple(features), record, 0.5)
    log_odds = _log_odds(near, record) + draw(st.floats(-2.5, 2.5, allow_nan=False))
    cutoff = float(np.clip(sigmoid(np.asarray(log_odds)), 0.001, 0.999))
    return Case(additive, tuple(features), record, cutoff)


def _answer(case: Case) -> Answer:
    return crossings(case.additive, case.features, _columns(case.record), case.cutoff)


def _grid(feature: Feature, term: Term) -> list[float]:
    """Every valid value worth trying: whole numbers, or a fine grid plus each threshold's
    neighbours (for numbers)."""
    low, high = feature.lower, feature.upper
    assert low is not None and high is not None
    if feature.kind in ("count", "binary"):
        return [float(v) for v in range(int(low), int(high) + 1)]
    points = set(np.linspace(low, high, 401).tolist())
    for t in term.thresholds:
        points |= {t, float(np.nextafter(t, np.inf)), float(np.nextafter(t, -np.inf))}
    return sorted(v for v in points if low <= v <= high)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_the_computed_change_crosses_and_nothing_smaller_does(case: Case) -> None:
    answer = _answer(case)
    terms = {t.feature: t for t in case.additive.terms}
    assert [c.feature for c in answer.features] == [f.name for f in case.features[:-1]]
    assert bool(answer.within[0]) == _within(case, case.record)
    for item, feature in zip(answer.features, case.features, strict=False):
        x = case.record[item.feature]
        term = terms[item.feature]
        gap = x is None or (isinstance(x, float) and np.isnan(x))
        assert bool(item.considered[0]) is not gap
        if gap:
            assert not item.crosses[0]
            continue
        required = item.required[0]
        if feature.kind == "category":
            size = {
                c: abs(term.values[term.index[c]] - term.values[term.index[x]])
                for c in feature.categories
            }
            others = [c for c in feature.categories if c != x]
            if item.crosses[0]:
                assert _crosses(case, item.feature, required)
                assert all(
                    not _crosses(case, item.feature, c) for c in others if size[c] < size[required]
                )
            else:
                assert not any(_crosses(case, item.feature, c) for c in others)
            continue
        grid = _grid(feature, term)
        if not item.crosses[0]:
            assert not any(_crosses(case, item.feature, v) for v in grid), "missed a crossing"
            continue
        assert feature.lower <= required <= feature.upper  # type: ignore[operator]
        if feature.kind != "number":
            assert float(required).is_integer()
        assert required != x
        assert _crosses(case, item.feature, required)
        # The value just short of it, towards the current value, does not cross.
        if feature.kind == "number":
            short = float(np.nextafter(required, x))
        else:
            short = required - np.sign(required - x)
        if short != x:
            assert not _crosses(case, item.feature, short)
        distance = abs(required - x)
        nearer = [v for v in grid if abs(v - x) < distance and v != x]
        assert not any(_crosses(case, item.feature, v) for v in nearer), "a smaller change crosses"
        # The resulting log-odds is the scorer's own for the changed record.
        assert item.log_odds[0] == _log_odds(case, {**case.record, item.feature: required})


@settings(max_examples=40, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=1), st.integers(2, 30), st.integers(0, 2**31))
def test_many_records_at_once_equal_one_at_a_time(one: list[Case], n: int, seed: int) -> None:
    """Vectorised over records, each answer is the single record's answer."""
    case = one[0]
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        record = dict(case.record)
        record["rest"] = float(rng.uniform(-4, 4))
        records.append(record)
    columns = {
        k: np.asarray(
            [r[k] for r in records],
            dtype=object if any(isinstance(r[k], str) or r[k] is None for r in records) else float,
        )
        for k in case.record
    }
    together = crossings(case.additive, case.features, columns, case.cutoff)
    for i, record in enumerate(records):
        alone = _answer(Case(case.additive, case.features, record, case.cutoff))
        assert together.within[i] == alone.within[0]
        for a, b in zip(together.features, alone.features, strict=True):
            assert a.crosses[i] == b.crosses[0]
            if b.crosses[0]:
                assert a.required[i] == b.required[0]
                assert a.log_odds[i] == b.log_odds[0]


def test_an_unbounded_number_and_an_exact_boundary() -> None:
    """A linear number without min/max: the answer is the first float past the analytic root,
    in both directions, and an unreachable cut-off (slope 0) has no answer."""
    features = (
        Feature(name="x", kind="number", reason="{value}", actionable=True),
        Feature(name="flat", kind="number", reason="{value}", actionable=True),
    )
    additive = AdditiveModel(
        terms=(Term("x", "linear", slope=0.7), Term("flat", "linear", slope=0.0)), intercept=0.0
    )
    cutoff = float(sigmoid(np.asarray(1.0)))
    for start in (-3.0, 5.0):
        case = Case(additive, features, {"x": start, "flat": 0.0}, cutoff)
        answer = _answer(case)
        x_item, flat = answer.features
        assert not flat.crosses[0]
        required = float(x_item.required[0])
        assert abs(required - 1.0 / 0.7) < 1e-12
        assert _crosses(case, "x", required)
        assert not _crosses(case, "x", float(np.nextafter(required, start)))


def test_a_step_threshold_is_crossed_at_the_next_value() -> None:
    """``x <= t`` goes left: moving up enters the next interval at the next float (numbers) or
    the next whole number (counts); moving down lands on the threshold itself."""
    for kind, above in (("number", float(np.nextafter(2.0, np.inf))), ("count", 3.0)):
        feature = Feature(name="x", kind=kind, reason="{value}", actionable=True, min=0, max=9)
        term = Term("x", "step", thresholds=(2.0,), values=(0.0, 2.0))
        additive = AdditiveModel(terms=(term,), intercept=-1.0)
        up = Case(additive, (feature,), {"x": 1.0}, 0.5)
        assert _answer(up).features[0].required[0] == above
        down = Case(additive, (feature,), {"x": 5.0}, 0.5)
        assert _answer(down).features[0].required[0] == 2.0
        assert not _within(down, {"x": 2.0}) and _within(down, {"x": above})


def test_sensitive_attributes_are_never_levers() -> None:
    features = (Feature(name="sex", kind="binary", reason="{value}", actionable=True),)
    additive = AdditiveModel(terms=(Term("sex", "linear", slope=1.0),), intercept=0.0)
    with pytest.raises(BadInputError, match="sensitive attribute"):
        crossings(additive, features, {"sex": np.asarray([0.0])}, 0.5, sensitive=("sex",))


def test_a_record_without_every_feature_needs_its_log_odds() -> None:
    features = (
        Feature(name="x", kind="count", reason="{value}", actionable=True, max=9),
        Feature(name="y", kind="count", reason="{value}", max=9),
    )
    additive = AdditiveModel(
        terms=(Term("x", "linear", slope=1.0), Term("y", "linear", slope=1.0)), intercept=-4.0
    )
    with pytest.raises(BadInputError, match="log-odds are needed"):
        crossings(additive, features, {"x": np.asarray([1.0])}, 0.5)
    partial = crossings(
        additive, features, {"x": np.asarray([1.0])}, 0.5, log_odds=np.asarray([-1.0])
    )
    # -1 + (2 - 1) = 0: a score of exactly 0.5 is at the cut-off, which is within capacity.
    assert partial.features[0].required[0] == 2.0
    assert logit(0.5) == 0.0


# ----------------------------------------------------------------------------- the spec


def test_a_sensitive_attribute_cannot_be_actionable() -> None:
    raw = fast_mapping()
    raw["features"] = [
        *raw["features"],
        {"name": "sex", "kind": "binary", "reason": "{value}", "actionable": True},
    ]
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    assert any(
        d.startswith(f"features[{len(raw['features']) - 1}].actionable: 'sex' is a sensitive")
        for d in err.value.details
    ), err.value.details


def test_the_shipped_experiments_mark_only_changeable_circumstances() -> None:
    individual = fast_spec()
    neighbourhood = fast_spec(NEIGHBOURHOOD_SPEC)
    assert [f.name for f in individual.features if f.actionable] == [
        "snap_enrolled",
        "medicaid_enrolled",
        "income_band",
        "housing_waitlist",
        "employment_status",
    ]
    assert [f.name for f in neighbourhood.features if f.actionable] == [
        "unemployment_rate",
        "rent_burden_share",
    ]
    for spec in (individual, neighbourhood):
        assert not {f.name for f in spec.features if f.actionable} & set(spec.sensitive_attributes)


# ----------------------------------------------------------------------------- trained models

ACTIONABLE = [
    "snap_enrolled",
    "medicaid_enrolled",
    "income_band",
    "housing_waitlist",
    "employment_status",
]


def test_the_scoring_model_keeps_the_flag(trained: TrainingResult) -> None:
    model = trained.candidates[0].scoring_model
    stored = model.to_dict()["features"]
    assert [f["name"] for f in stored if f.get("actionable")] == ACTIONABLE
    assert all("actionable" not in f for f in stored if f["name"] not in ACTIONABLE)
    again = ScoringModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    assert [f.name for f in again.features if f.actionable] == ACTIONABLE


def _record(frame: pd.DataFrame, i: int) -> dict[str, Any]:
    return {k: (v if isinstance(v, str) else float(v)) for k, v in frame.iloc[i].items()}


@pytest.mark.parametrize("candidate", ["logistic", "boosted"])
def test_exact_on_the_trained_models(trained: TrainingResult, candidate: str) -> None:
    """On the validation population of each trained family: the band flips at the computed
    value, not before, for a sample of people on each side of the cut-off."""
    model = next(c for c in trained.candidates if c.config.name == candidate).scoring_model
    frame = trained.validation.features.reset_index(drop=True)
    columns = model.check(frame)
    answer = crossings(model.additive, model.features, columns, model.cutoffs["priority"])
    assert [f.feature for f in answer.features] == ACTIONABLE
    bands = model.score_columns(columns).bands
    assert (answer.within == (bands == "priority")).all()
    crossing = np.zeros(len(frame), dtype=bool)
    for item in answer.features:
        crossing |= item.crosses
    assert crossing[answer.within].any() and crossing[~answer.within].any()
    rng = np.random.default_rng(5)
    sample = np.concatenate(
        [
            rng.choice(np.flatnonzero(crossing & answer.within), 40),
            rng.choice(np.flatnonzero(crossing & ~answer.within), 40),
        ]
    )

    def band(record: dict[str, Any]) -> str:
        return str(model.score_records([record]).bands[0])

    for i in sample.tolist():
        record = _record(frame, i)
        now = band(record) == "priority"
        assert now == answer.within[i]
        alone = {c.feature: c for c in what_would_change(model, record)}
        for item in answer.features:
            change = alone[item.feature]
            assert change.crosses == bool(item.crosses[i])
            assert change.direction == ("off" if now else "on")
            if not item.crosses[i]:
                assert "No change in" in change.text
                continue
            required = item.required[i]
            assert change.required == (required if isinstance(required, str) else int(required))
            assert (band({**record, item.feature: required}) == "priority") != now
            assert change.score == pytest.approx(float(sigmoid(np.asarray(item.log_odds[i]))))
            feature = model.feature(item.feature)
            if feature.kind == "category":
                term = next(t for t in model.additive.terms if t.feature == item.feature)
                size = {
                    c: abs(
                        term.values[term.index[c]] - term.values[term.index[record[item.feature]]]
                    )
                    for c in feature.categories
                }
                for other in feature.categories:
                    if other != record[item.feature] and size[other] < size[required]:
                        assert (band({**record, item.feature: other}) == "priority") == now
            word = "fall below" if now else "within this period"
            assert word in change.text and "this person" in change.text


def test_a_stored_listing_gives_the_same_answer(trained: TrainingResult) -> None:
    """From the queue's score and reasons alone, an actionable reason's change is the one the
    full record gives (the same value; the score to within rounding)."""
    model = next(c for c in trained.candidates if c.config.name == "logistic").scoring_model
    frame = trained.validation.features.reset_index(drop=True)
    batch = model.score_frame(frame)
    reasons = model.reason_dicts(batch, top=len(model.features))
    checked = 0
    for i in np.flatnonzero(batch.bands == "priority")[:200].tolist():
        stored = [r for r in reasons[i] if r["feature"] in ACTIONABLE]
        if not stored:
            continue
        listed = {
            c.feature: c for c in from_listing(model, score=float(batch.scores[i]), reasons=stored)
        }
        full = {c.feature: c for c in what_would_change(model, _record(frame, i))}
        assert set(listed) == {r["feature"] for r in stored}
        for name, change in listed.items():
            assert change.required == full[name].required
            if change.crosses:
                assert change.score == pytest.approx(full[name].score, abs=1e-9)
        checked += 1
    assert checked > 0


# ----------------------------------------------------------------------------- the audit


def test_the_recourse_audit_matches_a_brute_force_count(trained: TrainingResult) -> None:
    """Every actionable feature of the individual experiment is binary or a category, so each
    single change can be tried outright: the audit's "one change would cross" agrees with trying
    every other value of every actionable feature on everyone just below the cut-off."""
    from audits.recourse import recourse_audit

    model = next(c for c in trained.candidates if c.config.name == "boosted").scoring_model
    data = trained.validation
    frame = data.features.reset_index(drop=True)
    sensitive = {a: data.sensitive(a) for a in ("race_ethnicity", "sex")}
    section = recourse_audit(model, frame, sensitive, min_group_size=100)
    batch = model.score_frame(frame)
    below = np.flatnonzero(batch.bands == "elevated")
    assert section["overall"]["n"] == len(below) > 0
    assert section["overall"]["population"] == len(frame)
    reachable = []
    for i in below.tolist():
        record = _record(frame, i)
        tries = []
        for name in ACTIONABLE:
            feature = model.feature(name)
            options = feature.categories if feature.kind == "category" else (0.0, 1.0)
            tries += [{**record, name: v} for v in options if v != record[name]]
        bands = model.score_records(tries).bands
        reachable.append(bool((bands == "priority").any()))
    assert section["overall"]["share_with_change"] == pytest.approx(np.mean(reachable))
    distance = logit(model.cutoffs["priority"]) - np.log(
        batch.scores[below] / (1 - batch.scores[below])
    )
    assert section["overall"]["median_distance"] == pytest.approx(np.median(distance), abs=1e-9)
    assert section["overall"]["distance_q90"] == pytest.approx(np.quantile(distance, 0.9), abs=1e-9)
    for attribute, values in sensitive.items():
        rows = [g for g in section["groups"] if g["attribute"] == attribute]
        assert [g["group"] for g in rows] == sorted(set(np.asarray(values).astype(str)))
        for g in rows:
            inside = np.asarray(values).astype(str)[below] == g["group"]
            assert g["n"] == int(inside.sum())
            assert g["sufficient"] == (g["n"] >= 100)
            if g["n"]:
                share = float(np.mean(np.asarray(reachable)[inside]))
                assert g["share_with_change"] == pytest.approx(share)
    with pytest.raises(BadInputError, match="sensitive attribute"):
        recourse_audit(
            model, frame, {"income_band": frame["income_band"].to_numpy()}, min_group_size=100
        )


def test_the_release_report_has_the_recourse_section(released: Released) -> None:
    """The served version's signed report carries the section per audited attribute (small
    groups flagged), and its HTML page shows the table."""
    from lifecycle.catalogue import read_report
    from lifecycle.release import load_production
    from model.registry import connect

    registry = connect(released.home)
    serving = load_production(
        registry, released.name, trust=trust_for(registry.home, signing=False)
    )
    report = read_report(registry, serving.audit_id)
    section = report["recourse"]
    assert section["actionable"] == ACTIONABLE
    assert section["cutoff"] == pytest.approx(serving.model.cutoffs["priority"], abs=1e-6)
    assert section["min_group_size"] == report["policy"]["min_group_size"]
    attributes = report["policy"]["sensitive_attributes"]
    assert {g["attribute"] for g in section["groups"]} == set(attributes)
    overall = section["overall"]
    assert overall["n"] > 0 and 0 < overall["share_with_change"] <= 1
    for attribute in attributes:
        rows = [g for g in section["groups"] if g["attribute"] == attribute]
        assert sum(g["n"] for g in rows) == overall["n"]
        assert sum(g["population"] for g in rows) == overall["population"]
        for g in rows:
            assert g["sufficient"] == (g["n"] >= section["min_group_size"])
    html = (released.home.audits / serving.audit_id / "audit.html").read_text()
    assert "How far are people just below the cut-off from it?" in html
    small = [g for g in section["groups"] if not g["sufficient"]]
    for g in small:
        assert f"{g['attribute']}: {g['group']} (too few to judge)" in html


# ----------------------------------------------------------------------------- the person page


@pytest.fixture
def coordinator_app(site: Site, tmp_path: Path) -> Flask:
    from service import create_app
    from tests.support.homes import copy_site

    own = copy_site(site, tmp_path)
    return create_app(
        {"HOME": own.home, "DATABASE_URL": own.database_url, "WATCH_SECONDS": 0, "TESTING": True}
    )


def _listed(app: Flask) -> list[QueueEntry]:
    db = app.extensions["outreach.db"]
    with db.session() as session:
        latest = session.scalar(select(func.max(QueueEntry.period)))
        return list(
            session.scalars(
                select(QueueEntry)
                .where(QueueEntry.period == latest, QueueEntry.rank > 0)
                .order_by(QueueEntry.rank)
            )
        )


def _page(app: Flask, site: Site, person: str) -> str:
    from tests.support.web import sign_in

    client = app.test_client()
    sign_in(client, site, "coordinator")
    response = client.get(f"/outreach/people/{person}")
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def _section(page: str) -> str:
    start = page.index('<h2 id="what-would-change">')
    return page[start : page.index("</section>", start)]


def test_the_person_page_shows_what_would_change_this(coordinator_app: Flask, site: Site) -> None:
    """A listed person whose reasons include a changeable circumstance: the page lists the
    exact changes (the same as the model's), after the access-log row, with the note that it
    is not advice and that sensitive and unchangeable facts are never considered."""
    serving = coordinator_app.extensions["outreach.model"].current
    assert serving is not None
    found = None
    for entry in _listed(coordinator_app):
        changes = [
            c
            for c in from_listing(serving.model, score=entry.score, reasons=entry.reasons)
            if c.crosses
        ]
        if changes:
            found = entry, changes
            break
    assert found is not None, "no listed person has a changeable reason that crosses"
    entry, changes = found
    db = coordinator_app.extensions["outreach.db"]
    with db.session() as session:
        before = session.scalar(select(func.max(AccessLogRow.id))) or 0
    section = _section(_page(coordinator_app, site, entry.person_id))
    with db.session() as session:
        rows = list(session.scalars(select(AccessLogRow).where(AccessLogRow.id > before)))
    assert [(r.action, r.subject_ids) for r in rows] == [("person", [entry.person_id])]
    assert "It is not advice to give the person" in section
    assert "Sensitive facts about who someone is, and facts that cannot change" in section
    assert "would move this listing below the outreach cut-off" in section
    for change in changes[:3]:
        assert change.direction == "off"
        assert change.text in section
        assert "fall below the outreach cut-off" in change.text
    considered = section.split("Considered:")[1]
    listed = {r["feature"] for r in entry.reasons if r["feature"] in ACTIONABLE}
    named = {c: feature_words(serving.model.feature(c)) for c in ACTIONABLE}
    assert {c for c, words in named.items() if words in considered} == listed
    for word in ("race", "ethnicity", "sex", "age band", "disability"):
        assert word not in section.lower()


def test_the_person_page_says_when_nothing_is_considered(
    coordinator_app: Flask, site: Site
) -> None:
    """No changeable reason: the section says none is considered; a listing made by another
    version than the one served shows no changes at all, only why."""
    plain = next(
        e
        for e in _listed(coordinator_app)
        if not any(r["feature"] in ACTIONABLE for r in e.reasons)
    )
    section = _section(_page(coordinator_app, site, plain.person_id))
    assert "none of this listing's reasons is a circumstance that can change" in section
    assert "No single change among the facts considered" in section
    db = coordinator_app.extensions["outreach.db"]
    with db.session() as session:
        session.execute(
            update(QueueEntry)
            .where(QueueEntry.person_id == plain.person_id)
            .values(model_version="0")
        )
    section = _section(_page(coordinator_app, site, plain.person_id))
    assert "made by model version 0, which is no longer the one in use" in section
    assert "Considered:" not in section


def test_a_steep_unbounded_number_does_not_overflow() -> None:
    """The far end of an unbounded number is the largest float; a steep slope takes the term
    to infinity there, which must neither warn nor hide the answer."""
    features = (Feature(name="x", kind="number", reason="{value}", actionable=True),)
    additive = AdditiveModel(terms=(Term("x", "linear", slope=40.0),), intercept=0.0)
    for start, cutoff in ((0.0, 0.9), (0.0, 0.1)):
        case = Case(additive, features, {"x": start}, cutoff)
        required = float(_answer(case).features[0].required[0])
        assert _crosses(case, "x", required)
        assert not _crosses(case, "x", float(np.nextafter(required, start)))
        assert abs(required - logit(cutoff) / 40.0) < 1e-12
