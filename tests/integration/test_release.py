"""Releases in a real MLflow SQLite store: the gate cannot be bypassed."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from audits.policy import load_policy
from kernel.errors import GateError, NotFoundError
from kernel.home import Home
from lifecycle.release import (
    ReleaseResult,
    approve,
    list_versions,
    load_production,
    reject,
    release,
    rollback,
)
from lifecycle.verified_loading import trust_for
from model.data import Dataset, validate
from model.registry import Registry, connect, fluent
from model.spec import ExperimentSpec, parse_spec
from model.synthetic import generate_preset
from tests.support.homes import Site, TwoReleases, copy_home, copy_site
from tests.support.specs import DEFAULT_POLICY, LENIENT, policy_text, spec_mapping


@pytest.fixture
def registry(home: Home) -> Registry:
    return connect(home)


def _release(registry: Registry, spec: ExperimentSpec, dataset: Dataset, **policy) -> ReleaseResult:
    return release(
        spec, dataset, registry, policy=policy_text(**policy), trust=trust_for(registry.home)
    )


@pytest.fixture
def released(two_releases: TwoReleases) -> ReleaseResult:
    """The promoted release of the shared two (a failed one follows it in the same store)."""
    return two_releases.good


@pytest.fixture
def own(two_releases: TwoReleases, tmp_path: Path) -> Registry:
    """A private copy of the two releases' store, artifacts included, for tests that change it."""
    return connect(copy_home(two_releases.home.root, tmp_path / "home"))


def test_a_passing_release_is_promoted_with_its_audit_bound(
    own: Registry, released: ReleaseResult
) -> None:
    assert released.decision == "PASS" and released.promoted
    name = released.spec.name
    loaded = load_production(own, name, trust=trust_for(own.home, signing=False))
    assert loaded.version == str(released.chosen.candidate.version)
    tags = loaded.tags
    for key in ("audit_id", "report_sha256", "policy_sha256", "artifact_sha256"):
        assert tags[key]
    assert tags["audit_decision"] == "PASS"
    report = json.loads(released.chosen.written.json_path.read_text())
    assert report["subject"]["artifact_sha256"] == tags["artifact_sha256"]
    assert report["audit_id"] == tags["audit_id"]
    aliases = own.client.get_registered_model(name).aliases
    assert str(aliases["production"]) == loaded.version
    run_files = {a.path for a in own.client.list_artifacts(tags["run_id"], "audit")}
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


def test_a_failed_release_moves_no_alias_but_candidate(two_releases: TwoReleases) -> None:
    failed = two_releases.failed
    assert failed.decision == "FAIL" and not failed.promoted and not failed.awaiting_approval
    aliases = connect(two_releases.home).client.get_registered_model(two_releases.name).aliases
    assert str(aliases["production"]) == str(two_releases.good.chosen.candidate.version)
    assert str(aliases["candidate"]) == str(failed.chosen.candidate.version)


def test_hand_moved_alias_to_a_failed_version_is_refused(
    own: Registry, two_releases: TwoReleases
) -> None:
    name = two_releases.name
    good = str(two_releases.good.chosen.candidate.version)
    assert load_production(own, name, trust=trust_for(own.home, signing=False)).version == good
    bad = str(two_releases.failed.chosen.candidate.version)
    own.client.set_registered_model_alias(name, "production", bad)  # by hand, in MLflow
    with pytest.raises(GateError, match=f"version {bad}: its fairness audit .* decided FAIL"):
        load_production(own, name, trust=trust_for(own.home, signing=False))


def test_tampered_artifact_bytes_are_refused(own: Registry, released: ReleaseResult) -> None:
    name, version = released.spec.name, str(released.chosen.candidate.version)
    # An analyst loads the served version as MLflow users do; on a local store MLflow writes its
    # registered_model_meta note into the version's folder itself: still served.
    with fluent(own):
        mlflow.artifacts.download_artifacts(f"models:/{name}@production")
    assert load_production(own, name, trust=trust_for(own.home, signing=False)).version == version
    folder = Path(own.client.get_model_version_download_uri(name, version).removeprefix("file://"))
    assert (folder / "registered_model_meta").is_file()
    stored = folder / "artifacts" / "scoring_model.json"
    stored.write_text(stored.read_text().replace('"intercept"', '"intercept" ', 1))
    with pytest.raises(GateError, match="differs from the audited"):
        load_production(own, name, trust=trust_for(own.home, signing=False))


def test_approval_flow(site: Site, tmp_path: Path) -> None:
    """A PASS under a policy that requires approval waits; production moves only on approval."""
    own = copy_site(site, tmp_path)
    registry = connect(own.home)
    name, version = own.awaiting
    before = load_production(registry, name, trust=trust_for(registry.home, signing=False)).version
    assert before != version
    rows = {r["version"]: r for r in list_versions(registry, name)}
    assert rows[version]["decision"] == "PASS" and "production" not in rows[version]["aliases"]
    assert approve(
        registry,
        name,
        version,
        by="oversight",
        note="reviewed the audit",
        trust=trust_for(registry.home),
    )
    loaded = load_production(registry, name, trust=trust_for(registry.home, signing=False))
    assert loaded.version == version and loaded.tags["approved_by"] == "oversight"


def test_failed_versions_cannot_be_approved(own: Registry, two_releases: TwoReleases) -> None:
    failed = str(two_releases.failed.chosen.candidate.version)
    with pytest.raises(GateError, match="refusing to approve"):
        approve(own, two_releases.name, failed, by="o", note="n", trust=trust_for(own.home))


def test_rollback_and_reject(
    own: Registry, small_spec: ExperimentSpec, dataset: Dataset, released: ReleaseResult
) -> None:
    registry = own
    first = str(released.chosen.candidate.version)
    second = _release(registry, small_spec, dataset, **LENIENT)
    newer = str(second.chosen.candidate.version)
    name = small_spec.name
    assert (
        load_production(registry, name, trust=trust_for(registry.home, signing=False)).version
        == newer
    )
    with pytest.raises(GateError, match="roll back first"):
        reject(registry, name, newer, by="oversight", note="no", trust=trust_for(registry.home))
    before = {r["version"]: r for r in list_versions(registry, name)}
    previous = max(
        (v for v, r in before.items() if r["decision"] == "PASS" and int(v) < int(newer)), key=int
    )
    assert int(previous) >= int(first)
    assert rollback(registry, name, trust=trust_for(registry.home)) == previous
    assert (
        load_production(registry, name, trust=trust_for(registry.home, signing=False)).version
        == previous
    )
    reject(
        registry,
        name,
        newer,
        by="oversight",
        note="worse list overlap",
        trust=trust_for(registry.home),
    )
    rows = {r["version"]: r for r in list_versions(registry, name)}
    assert rows[newer]["rejected_by"] == "oversight"
    assert rows[previous]["aliases"] == ["production"]
    with pytest.raises(GateError, match="no earlier version"):
        for _ in range(10):
            rollback(registry, name, trust=trust_for(registry.home))
    assert load_production(
        registry, name, trust=trust_for(registry.home, signing=False)
    ).version == min((r["version"] for r in rows.values() if r["decision"] == "PASS"), key=int)


def _truth_recall_ratios(result: ReleaseResult, item) -> dict[tuple[str, str], tuple[float, int]]:
    """Each group's recall against everyone else's on the ground truth, over the audit window."""
    data = result.training.validation
    truth = data.truth
    assert truth is not None
    selected = item.selected
    out = {}
    for attribute in result.policy.sensitive_attributes:
        values = np.asarray(data.sensitive(attribute), dtype=str)
        for group in np.unique(values):
            mine, rest = values == group, values != group
            need, other_need = (truth == 1) & mine, (truth == 1) & rest
            ratio = (selected[need].mean()) / (selected[other_need].mean())
            out[(attribute, group)] = (float(ratio), int(need.sum()))
    return out


@pytest.mark.slow
def test_biased_population_at_the_default_size_promotes_nothing_unfair(
    registry: Registry,
) -> None:
    """The shipped spec on the biased preset, at the default size (200,000 person-months).

    Crises of one group are under-recorded: the plain model reaches that group's people in crisis
    at well under 0.8 of everyone else's rate (on the ground truth). It must not be promoted
    automatically, and whatever is promoted must reach every sizeable group's people in need at
    0.8 of the rest or better on the ground truth over the audit's six labelled months; when no
    candidate can show that, nothing is promoted and the report says why.
    """
    raw = spec_mapping()
    raw["data"] = {**raw["data"], "synthetic_preset": "biased"}
    raw["validation"] = {**raw["validation"], "splits": 1}
    raw["candidates"] = [{"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}}]
    spec = parse_spec(raw)
    assert spec.data.synthetic_rows == 200_000 and spec.validation.audit_months == 6
    frame = generate_preset(
        unit="individual",
        rows=spec.data.synthetic_rows,
        seed=spec.data.synthetic_seed,
        preset="biased",
        periods=spec.data.synthetic_periods,
    )
    result = release(
        spec,
        validate(frame, spec),
        registry,
        policy=load_policy(DEFAULT_POLICY),
        trust=trust_for(registry.home),
    )
    by_name = {c.candidate.config.name: c for c in result.candidates}
    plain = by_name["logistic"]
    ratios = _truth_recall_ratios(result, plain)
    assert ratios[("race_ethnicity", "Hispanic or Latino")][0] < 0.6  # the harm is real
    # About 150 people in need: below what six months of this population can judge on its own
    # (the shipped policy judges from 200), so the gate names it with its own estimate beyond the
    # limit, and never passes it unnamed; whatever is promoted is not the plain model.
    decision = plain.outcome.decision
    flagged = {(b.group, b.kind) for b in decision.breaches + decision.review}
    named = {n.group for n in decision.not_assessable if n.beyond}
    assert "Hispanic or Latino" in named or any(g == "Hispanic or Latino" for g, _ in flagged)
    assert not (result.promoted and result.chosen is plain)
    if result.promoted:
        promoted = _truth_recall_ratios(result, result.chosen)
        for (attribute, group), (ratio, in_need) in promoted.items():
            if in_need >= 200:
                assert ratio >= 0.8, (attribute, group, ratio)
    else:
        decision = result.chosen.outcome.decision
        report = json.loads(result.chosen.written.json_path.read_text())
        if decision.verdict == "PASS":
            # A pass that discloses a sizeable group too small to judge whose own estimate is
            # beyond the limit waits for the board, which is shown the group.
            assert result.awaiting_approval
            beyond = [n for n in report["not_assessable"] if n["beyond_limit"]]
            assert beyond and result.summary()["disclosed_beyond"]
        else:
            assert decision.verdict in ("REVIEW", "FAIL")
            assert decision.breaches or decision.review
            assert report["breaches"] or report["review"]
        assert report["decision"] == decision.verdict
        assert report["truth"]["headlines"] and report["fairlearn"]["matched"]
        with pytest.raises(NotFoundError):
            load_production(registry, spec.name, trust=trust_for(registry.home, signing=False))
