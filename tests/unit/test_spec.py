"""Experiment specs: the shipped ones load, and every problem is reported with its key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.errors import SpecError
from model.spec import load_spec, parse_spec
from tests.support.specs import INDIVIDUAL_SPEC, NEIGHBOURHOOD_SPEC, spec_mapping


@pytest.mark.parametrize("path", [INDIVIDUAL_SPEC, NEIGHBOURHOOD_SPEC])
def test_shipped_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert spec.sha256 and len(spec.sha256) == 64
    assert not set(spec.sensitive_attributes) & set(spec.feature_names)
    assert spec.policy and spec.resolve_path(spec.policy).is_file()


def test_version_1_keys_still_work() -> None:
    """Specs written before the audit window, truth column and several attributes existed."""
    raw = spec_mapping()
    raw["mitigation"] = {"attribute": "race_ethnicity", "methods": ["equal_opportunity"]}
    raw["label"].pop("truth_column")
    raw["validation"].pop("audit_months")
    raw["data"]["ignore_columns"] = ["need_probability", "crisis_6m_true"]
    spec = parse_spec(raw)
    assert spec.mitigation is not None
    assert spec.mitigation.all_attributes == ("race_ethnicity",)
    assert spec.validation.audit_months == 6 and spec.label.truth_column is None


def _errors(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return list(caught.value.details)


def test_sensitive_attribute_as_feature_is_refused() -> None:
    raw = spec_mapping()
    raw["features"].append(
        {"name": "race_ethnicity", "kind": "category", "reason": "x", "categories": ["a", "b"]}
    )
    errors = _errors(raw)
    assert any(
        e.startswith("sensitive_attributes[0]") and "can never be model features" in e
        for e in errors
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["features"][3].pop("reason"), "features[3].reason: Field required"),
        (lambda r: r["features"][0].update(kind="text"), "features[0].kind: Input should be"),
        (lambda r: r["capacity"].update(per_period=10), "capacity: give exactly one of"),
        (lambda r: r["candidates"][0].update(family="forest"), "candidates[0].family"),
        (lambda r: r["candidates"][0]["grid"].update(depth=[3]), "grid key 'depth' is not"),
        (lambda r: r["label"].pop("horizon_months"), "label.horizon_months: Field required"),
        (lambda r: r.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda r: r["baselines"].update(heuristic_feature="nope"), "'nope' is not a feature"),
        (lambda r: r["features"].append(dict(r["features"][0])), "is listed twice"),
        (
            lambda r: r["features"][9].update(categories=["x"]),
            "features[9]: a category feature needs",
        ),
        (lambda r: r["features"][0].update(reason="{count} visits"), "template is invalid"),
        (lambda r: r["data"].update(path="x.csv"), "exactly one of 'path' or 'synthetic_preset'"),
        (
            lambda r: r["mitigation"].update(attributes=["race_ethnicity", "income"]),
            "mitigation.attributes[1]: 'income' is not one of the sensitive_attributes",
        ),
        (lambda r: r["mitigation"].pop("attributes"), "mitigation: give 'attributes'"),
        (
            lambda r: r["label"].update(truth_column="er_visits_90d"),
            "'er_visits_90d' is an id, time, label or truth column",
        ),
        (
            lambda r: r.update(training={"treated": "indicator"}),
            "training.treated: needs data.accepted_column",
        ),
        (
            lambda r: (
                r["data"].update(accepted_column="outreach_accepted"),
                r["features"][0].update(name="__treated"),
                r.update(training={"treated": "indicator"}),
            ),
            "training.treated: the spec already uses the column '__treated'",
        ),
    ],
)
def test_each_problem_names_its_key_path(change, expected: str) -> None:
    raw = spec_mapping()
    change(raw)
    errors = _errors(raw)
    assert any(expected in e for e in errors), errors


def test_every_problem_is_reported_at_once() -> None:
    raw = spec_mapping()
    raw["features"][3].pop("reason")
    raw["label"].pop("column")
    raw["capacity"] = {}
    raw["sensitive_attributes"].append("er_visits_90d")
    errors = _errors(raw)
    assert len(errors) >= 4


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(bad)


def test_reason_rendering_uses_value_templates(individual_spec) -> None:
    assert individual_spec.feature("er_visits_90d").render_reason(3.0) == (
        "3 emergency-room visits in the last 90 days"
    )
    assert individual_spec.feature("housing_waitlist").render_reason(1.0) == (
        "on the housing-assistance waitlist"
    )


@pytest.mark.parametrize(
    ("share", "population", "k"), [(0.05, 1000, 50), (0.05, 10, 1), (0.5, 3, 2)]
)
def test_capacity_share(share: float, population: int, k: int) -> None:
    raw = spec_mapping()
    raw["capacity"] = {"share": share}
    assert parse_spec(raw).capacity.k_for(population) == k


def test_capacity_per_period_is_capped_by_population() -> None:
    raw = spec_mapping()
    raw["capacity"] = {"per_period": 100}
    assert parse_spec(raw).capacity.k_for(40) == 40
