"""Releases in a real MLflow SQLite store: the gate cannot be bypassed."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from audits.policy import Policy, parse_policy
from audits.release import (
    ReleaseResult,
    approve,
    list_versions,
    load_production,
    reject,
    release,
    rollback,
)
from model.data import Dataset, validate
from model.errors import GateError, NotFoundError
from model.home import Home
from model.registry import Registry, connect
from model.spec import ExperimentSpec, parse_spec
from model.synthetic import generate_preset
from tests.conftest import spec_mapping
from tests.test_gate import DEFAULT_POLICY


def policy_text(**replacements: str) -> Policy:
    text = DEFAULT_POLICY.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    import tomllib

    return parse_policy(tomllib.loads(text), sha256="test-policy")


LENIENT = {"bootstrap_resamples = 1000": "bootstrap_resamples = 200"}
STRICT = {
    **LENIENT,
    'decision_rule = "significant_breach"': 'decision_rule = "confident_pass"',
    "min = 0.8": "min = 0.999",
}


@pytest.fixture
def registry(home: Home) -> Registry:
    return connect(home)


def _release(registry: Registry, spec: ExperimentSpec, dataset: Dataset, **policy) -> ReleaseResult:
    return release(spec, dataset, registry, policy=policy_text(**policy))


@pytest.fixture
def released(registry: Registry, small_spec: ExperimentSpec, dataset: Dataset) -> ReleaseResult:
    return _release(registry, small_spec, dataset, **LENIENT)


def test_a_passing_release_is_promoted_with_its_audit_bound(
    registry: Registry, released: ReleaseResult
) -> None:
    assert released.decision == "PASS" and released.promoted
    name = released.spec.name
    loaded = load_production(registry, name)
    assert loaded.version == str(released.chosen.candidate.version)
    tags = loaded.tags
    for key in ("audit_id", "report_sha256", "policy_sha256", "artifact_sha256"):
        assert tags[key]
    assert tags["audit_decision"] == "PASS"
    report = json.loads(released.chosen.written.json_path.read_text())
    assert report["subject"]["artifact_sha256"] == tags["artifact_sha256"]
    assert report["audit_id"] == tags["audit_id"]
    aliases = registry.client.get_registered_model(name).aliases
    assert str(aliases["candidate"]) == str(aliases["production"]) == loaded.version
    run_files = {a.path for a in registry.client.list_artifacts(tags["run_id"], "audit")}
    assert run_files == {"audit/audit.json", "audit/audit.html"}


def test_summary_document_has_the_contract_keys(released: ReleaseResult) -> None:
    summary = released.summary()
    assert {
        "decision",
        "registered_model",
        "version",
        "promoted",
        "awaiting_approval",
        "audit_id",
        "report",
        "breaches",
    } <= set(summary)
    assert Path(summary["report"]).is_file()


def test_hand_moved_alias_to_a_failed_version_is_refused(
    registry: Registry, small_spec: ExperimentSpec, dataset: Dataset, released: ReleaseResult
) -> None:
    failed = _release(registry, small_spec, dataset, **STRICT)
    assert failed.decision == "FAIL" and not failed.promoted
    name = small_spec.name
    assert load_production(registry, name).version == str(released.chosen.candidate.version)
    bad = str(failed.chosen.candidate.version)
    registry.client.set_registered_model_alias(name, "production", bad)  # by hand, in MLflow
    with pytest.raises(GateError, match=f"version {bad}: its fairness audit .* decided FAIL"):
        load_production(registry, name)


def test_tampered_artifact_bytes_are_refused(registry: Registry, released: ReleaseResult) -> None:
    name = released.spec.name
    version = registry.client.get_model_version(name, str(released.chosen.candidate.version))
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}"))
    stored = next(
        p
        for p in registry.home.artifacts.rglob("scoring_model.json")
        if p.read_bytes() == next(local.rglob("scoring_model.json")).read_bytes()
    )
    stored.write_text(stored.read_text().replace('"intercept"', '"intercept" ', 1))
    with pytest.raises(GateError, match="differs from the audited"):
        load_production(registry, name)


def test_approval_flow(registry: Registry, small_spec: ExperimentSpec, dataset: Dataset) -> None:
    result = _release(
        registry, small_spec, dataset, **LENIENT, **{"required = false": "required = true"}
    )
    assert result.decision == "PASS" and result.awaiting_approval and not result.promoted
    name, version = small_spec.name, str(result.chosen.candidate.version)
    with pytest.raises(NotFoundError):
        load_production(registry, name)
    assert approve(registry, name, version, by="oversight", note="reviewed the audit")
    loaded = load_production(registry, name)
    assert loaded.version == version and loaded.tags["approved_by"] == "oversight"


def test_failed_versions_cannot_be_approved(
    registry: Registry, small_spec: ExperimentSpec, dataset: Dataset
) -> None:
    failed = _release(registry, small_spec, dataset, **STRICT)
    with pytest.raises(GateError, match="refusing to approve"):
        approve(registry, small_spec.name, str(failed.chosen.candidate.version), by="o", note="n")


def test_rollback_and_reject(
    registry: Registry, small_spec: ExperimentSpec, dataset: Dataset, released: ReleaseResult
) -> None:
    first = str(released.chosen.candidate.version)
    second = _release(registry, small_spec, dataset, **LENIENT)
    newer = str(second.chosen.candidate.version)
    name = small_spec.name
    assert load_production(registry, name).version == newer
    with pytest.raises(GateError, match="roll back first"):
        reject(registry, name, newer, by="oversight", note="no")
    assert rollback(registry, name) == first
    assert load_production(registry, name).version == first
    reject(registry, name, newer, by="oversight", note="worse list overlap")
    rows = {r["version"]: r for r in list_versions(registry, name)}
    assert rows[newer]["rejected_by"] == "oversight"
    assert rows[first]["aliases"] == ["production"]
    with pytest.raises(GateError, match="no earlier version"):
        for _ in range(10):
            rollback(registry, name)
    assert load_production(registry, name).version == min(
        (r["version"] for r in rows.values() if r["decision"] == "PASS"), key=int
    )


@pytest.mark.slow
def test_biased_population_plain_model_fails_and_mitigated_candidate_is_promoted(
    registry: Registry,
) -> None:
    """Under-recorded crises for one group: the plain model under-serves it; mitigation fixes it.

    A large population (100,000 people over 12 months) so that the gap is beyond noise.
    """
    raw = spec_mapping()
    raw["validation"] = {"splits": 1, "step_months": 1, "window_months": 1, "min_train_periods": 3}
    raw["candidates"] = [{"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}}]
    raw["mitigation"] = {"attribute": "race_ethnicity", "methods": ["equal_opportunity"]}
    spec = parse_spec(raw)
    frame = generate_preset(unit="individual", rows=1_200_000, seed=5, preset="biased", periods=12)
    result = release(spec, validate(frame, spec), registry, policy=policy_text(**LENIENT))
    by_name = {c.candidate.config.name: c for c in result.candidates}
    plain = by_name["logistic"].outcome.decision
    assert plain.verdict == "FAIL"
    assert "Hispanic or Latino" in {b.group for b in plain.breaches}
    mitigated = by_name["logistic_equal_opportunity"]
    assert mitigated.outcome.decision.verdict == "PASS"
    assert result.chosen is mitigated and result.promoted
    assert load_production(registry, spec.name).version == str(mitigated.candidate.version)
