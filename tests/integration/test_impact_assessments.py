"""Impact-assessment ids in the fairness policy, and the production mode that requires them.

The policy's optional ``[impact_assessments]`` table names the deployment's fundamental-rights
(FRIA) and data-protection (DPIA) impact assessments; the audit report carries them, and with
``OUTREACH_ENV=production`` the service refuses to serve (and to start with) a production version
whose audit's policy lacks either id or holds a placeholder. Real MLflow store, real signed
releases, the real Flask app and the real command line.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from audits.policy import (
    DEMO_PLACEHOLDERS,
    ImpactAssessments,
    assessments_from_report,
    is_placeholder,
    load_policy,
    parse_policy,
    policy_from_report,
)
from kernel.errors import BadInputError, SpecError
from kernel.home import Home
from kernel.signing import load_verifier
from lifecycle.catalogue import read_report
from lifecycle.model_source import ModelSource
from lifecycle.release import ReleaseResult, release
from lifecycle.verified_loading import trust_for
from model.data import Dataset
from model.registry import connect
from model.spec import ExperimentSpec, load_spec
from outreach.cli import main
from outreach.cli.demo import demo_policy
from service import create_app
from service.startup import environment_mode
from tests.support.homes import Site, TwoReleases, copy_home, copy_site
from tests.support.specs import DEFAULT_POLICY, LENIENT, NEIGHBOURHOOD_SPEC, ROOT, policy_text
from tests.support.web import sign_in

NAME = "individual_outreach"
FRIA = "FRIA-2026-004"
DPIA = "DPIA-2026-011"
ASSESSED = (
    "\n[impact_assessments]\n"
    f'fundamental_rights = "{FRIA}"\n'
    f'data_protection = {{ id = "{DPIA}", date = 2026-03-01, owner = "data-protection officer" }}\n'
)


def _raw(**assessments: Any) -> dict[str, Any]:
    raw = tomllib.loads(DEFAULT_POLICY.read_text())
    if assessments:
        raw["impact_assessments"] = assessments
    return raw


# ----------------------------------------------------------------------------- the policy file


@pytest.mark.parametrize("path", ["default.toml", "neighbourhood.toml"])
def test_the_shipped_policies_leave_the_ids_to_the_agency(path: str) -> None:
    policy = load_policy(ROOT / "audits" / "policies" / path)
    assert policy.impact_assessments == ImpactAssessments()
    problems = policy.impact_assessments.problems()
    assert len(problems) == 2
    assert "[impact_assessments] fundamental_rights is missing" in problems[0]
    assert "[impact_assessments] data_protection is missing" in problems[1]
    assert "deploying agency" in (ROOT / "audits" / "policies" / path).read_text()


def test_ids_are_strings_or_tables_with_date_and_owner() -> None:
    text = DEFAULT_POLICY.read_text().replace("\n[impact_assessments]\n", ASSESSED)
    policy = parse_policy(tomllib.loads(text))
    found = policy.impact_assessments
    assert found.fundamental_rights is not None and found.fundamental_rights.id == FRIA
    assert found.data_protection is not None and found.data_protection.id == DPIA
    assert str(found.data_protection.date) == "2026-03-01"
    assert found.data_protection.owner == "data-protection officer"
    assert found.problems() == []


@pytest.mark.parametrize(
    ("assessments", "where"),
    [
        ({"fundamental_rights": ""}, "impact_assessments.fundamental_rights.id"),
        ({"fundamental_rights": "   "}, "impact_assessments.fundamental_rights.id"),
        ({"data_protection": {"id": ""}}, "impact_assessments.data_protection.id"),
        ({"data_protection": {"owner": "x"}}, "impact_assessments.data_protection.id"),
        ({"fundamental_rights": 7}, "give the assessment's id as a string"),
        ({"fria": "FRIA-1"}, "impact_assessments.fria"),
    ],
)
def test_an_empty_or_malformed_id_is_refused_with_its_key(
    assessments: dict[str, Any], where: str
) -> None:
    with pytest.raises(SpecError) as err:
        parse_policy(_raw(**assessments))
    assert where in str(err.value)


@pytest.mark.parametrize(
    "value",
    [
        *DEMO_PLACEHOLDERS.values(),
        "placeholder",
        "TODO",
        "tbd",
        "FRIA TBD",
        "n/a",
        "NA",
        "xxx",
        "-",
        "???",
        "changeme",
    ],
)
def test_placeholders_are_recognised(value: str) -> None:
    assert is_placeholder(value)
    problems = parse_policy(_raw(fundamental_rights=value, data_protection=DPIA))
    said = problems.impact_assessments.problems()
    assert said == [
        "the fundamental-rights impact assessment (FRIA, EU AI Act Art. 27) is a placeholder "
        f"([impact_assessments] fundamental_rights = {value.strip()!r})"
    ]


@pytest.mark.parametrize(
    "value", [FRIA, DPIA, "2026/11", "Assessment 7 of the welfare office", "DSB-2025-0042-A"]
)
def test_real_ids_are_not_placeholders(value: str) -> None:
    assert not is_placeholder(value)


@given(st.text(max_size=20), st.text(max_size=20), st.sampled_from(["placeholder", "PlaceHolder"]))
def test_anything_saying_placeholder_is_one(before: str, after: str, word: str) -> None:
    assert is_placeholder(before + word + after)


@given(st.from_regex(r"(FRIA|DPIA)-20[0-9]{2}-[0-9]{3,5}", fullmatch=True))
def test_numbered_ids_are_never_placeholders(value: str) -> None:
    assert not is_placeholder(value)


def test_the_demo_policy_fills_the_ids_with_marked_placeholders(
    individual_spec: ExperimentSpec, tmp_path: Path
) -> None:
    home = Home(tmp_path / "home")
    policy = demo_policy(home, individual_spec)
    text = (home.root / "demo-policy.toml").read_text()
    assert "DEMO PLACEHOLDERS, not real assessments" in text
    found = policy.impact_assessments
    assert found.fundamental_rights is not None and found.data_protection is not None
    assert found.fundamental_rights.id == DEMO_PLACEHOLDERS["fundamental_rights"]
    assert found.data_protection.id == DEMO_PLACEHOLDERS["data_protection"]
    assert all("is a placeholder" in p for p in found.problems()) and len(found.problems()) == 2
    assert policy.evaluation.share > 0  # the demo's other change is kept


def test_the_demo_policy_of_the_neighbourhood_experiment_fills_them_too(tmp_path: Path) -> None:
    """Every served demo model is released under placeholders, not only the individual one."""
    spec = load_spec(NEIGHBOURHOOD_SPEC)
    home = Home(tmp_path / "home")
    policy = demo_policy(home, spec)
    path = home.root / f"demo-policy-{spec.name}.toml"
    assert policy.source_path is not None and Path(policy.source_path) == path
    assert "DEMO PLACEHOLDERS, not real assessments" in path.read_text()
    found = policy.impact_assessments
    assert found.fundamental_rights is not None and found.data_protection is not None
    assert {found.fundamental_rights.id, found.data_protection.id} == set(
        DEMO_PLACEHOLDERS.values()
    )
    shipped = load_policy(str(ROOT / "audits" / "policies" / "neighbourhood.toml"))
    assert policy.name == f"{shipped.name} (demo)"
    assert policy.evaluation == shipped.evaluation  # nothing else changed


# ----------------------------------------------------------------------------- the audit report


@dataclass(frozen=True)
class Assessed:
    """A home with two promoted releases: ``unnamed`` audited under a policy naming no
    assessment, then ``named`` under one naming both. Read-only: copy it."""

    home: Home
    named: ReleaseResult
    unnamed: ReleaseResult

    def version(self, which: str) -> str:
        return str(getattr(self, which).chosen.candidate.version)


@pytest.fixture(scope="module")
def assessed(
    tmp_path_factory: pytest.TempPathFactory,
    small_spec: ExperimentSpec,
    dataset: Dataset,
    two_releases: TwoReleases,
) -> Assessed:
    """The shared promoted release (its policy names no assessment) is ``unnamed``; ``named`` is
    released after it into a copy of that store."""
    home = copy_home(two_releases.home.root, tmp_path_factory.mktemp("assessed") / "home")
    registry = connect(home)
    policy = policy_text(**LENIENT, **{"\n[impact_assessments]\n": ASSESSED})
    named = release(small_spec, dataset, registry, policy=policy, trust=trust_for(registry.home))
    assert named.promoted and two_releases.good.promoted
    return Assessed(home, named, two_releases.good)


def _copy(assessed: Assessed, folder: Path, *, production: str) -> Home:
    """A private copy whose ``production`` alias names the ``named`` or ``unnamed`` version."""
    own = copy_home(assessed.home.root, folder / "home")
    connect(own).client.set_registered_model_alias(NAME, "production", assessed.version(production))
    return own


def test_the_report_carries_the_ids_and_policy_from_report_rebuilds_them(
    assessed: Assessed,
) -> None:
    result = assessed.named
    report = read_report(connect(assessed.home), result.chosen.audit_id)
    block = report["policy"]["impact_assessments"]
    assert block["fundamental_rights"]["id"] == FRIA
    assert block["data_protection"] == {
        "id": DPIA,
        "date": "2026-03-01",
        "owner": "data-protection officer",
        "url": "",
    }
    rebuilt = policy_from_report(report)
    assert rebuilt is not None
    assert rebuilt.impact_assessments == result.policy.impact_assessments
    assert assessments_from_report(report).problems() == []


def test_a_report_without_ids_rebuilds_an_empty_table(site: Site) -> None:
    registry = connect(site.home)
    source = ModelSource(site.home, NAME)
    source.refresh()
    assert source.current is not None
    report = read_report(registry, source.current.audit_id)
    assert report["policy"]["impact_assessments"] == {
        "fundamental_rights": None,
        "data_protection": None,
    }
    rebuilt = policy_from_report(report)
    assert rebuilt is not None and rebuilt.impact_assessments == ImpactAssessments()
    older = {**report, "policy": dict(report["policy"])}
    del older["policy"]["impact_assessments"]  # a report written before the key existed
    assert policy_from_report(older) is not None
    assert len(assessments_from_report(older).problems()) == 2


# ----------------------------------------------------------------------------- production mode


@pytest.mark.parametrize(
    ("value", "mode"),
    [(None, "development"), ("", "development"), ("development", "development"),
     ("production", "production"), (" Production ", "production")],
)  # fmt: skip
def test_the_mode_is_production_or_development(value: str | None, mode: str) -> None:
    assert environment_mode(value) == mode


@pytest.mark.parametrize("value", ["prod", "staging", "test", "productoin"])
def test_any_other_mode_is_refused(value: str) -> None:
    with pytest.raises(BadInputError, match=f"OUTREACH_ENV='{value}' is not a mode"):
        environment_mode(value)


def _app(home: Home, tmp_path: Path, **config: Any) -> Any:
    return create_app(
        {
            "HOME": home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
            "WATCH_SECONDS": 0,
            **config,
        }
    )


def _adopt(home: Home, tmp_path: Path) -> None:
    """What an operator does for a new service database in production mode: adopt the model's
    attestation log (``outreach models repair``), whose head is anchored nowhere yet (until
    then the log is invalid and nothing is served; tests/integration/test_trust_fail_closed.py)."""
    adopted = CliRunner().invoke(
        main,
        ["--home", str(home.root), "models", "repair", NAME, "--by", "ops", "--note", "new db"],
        env={
            "OUTREACH_ENV": "production",
            "OUTREACH_DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
        },
    )
    assert adopted.exit_code == 0, adopted.output


def test_production_mode_refuses_to_start_without_the_ids(site: Site, tmp_path: Path) -> None:
    own = copy_site(site, tmp_path).home
    _adopt(own, tmp_path)
    with pytest.raises(BadInputError) as err:
        _app(own, tmp_path, ENV_MODE="production")
    message = str(err.value)
    assert message.startswith("refusing to start in production mode (OUTREACH_ENV=production)")
    assert "[impact_assessments] fundamental_rights is missing" in message
    assert "[impact_assessments] data_protection is missing" in message
    assert err.value.exit_code == 2


def test_the_environment_variable_sets_production_mode(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = copy_site(site, tmp_path).home
    _adopt(own, tmp_path)
    monkeypatch.setenv("OUTREACH_ENV", "production")
    with pytest.raises(BadInputError, match="fundamental_rights is missing"):
        _app(own, tmp_path)
    monkeypatch.setenv("OUTREACH_ENV", "prod")
    with pytest.raises(BadInputError, match="OUTREACH_ENV='prod' is not a mode"):
        _app(own, tmp_path)


def test_development_mode_warns_and_serves(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = copy_site(site, tmp_path)
    with caplog.at_level(logging.WARNING, logger="outreach.service"):
        app = _app(own.home, tmp_path, DATABASE_URL=own.database_url, TESTING=True)
    client = app.test_client()
    ready = client.get("/api/v1/readyz").get_json()
    assert ready["status"] == "ready"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "fundamental_rights is missing" in w and "refused in production mode" in w for w in warned
    )
    client = app.test_client()
    sign_in(client, own, "oversight")
    page = client.get("/oversight/policy").get_data(as_text=True)
    assert "in production mode (OUTREACH_ENV=production) this version would not be served" in page
    assert "[impact_assessments] data_protection is missing" in page
    assert "fundamental rights (FRIA) not named" in page


def test_production_mode_serves_a_version_that_names_both(
    assessed: Assessed, tmp_path: Path
) -> None:
    own = _copy(assessed, tmp_path, production="named")
    _adopt(own, tmp_path)
    app = _app(own, tmp_path, ENV_MODE="production")
    ready = app.test_client().get("/api/v1/readyz").get_json()
    assert ready["status"] == "ready"
    assert ready["model"]["version"] == assessed.version("named")
    assert app.extensions["outreach.model"].unassessed == []


def test_production_mode_starts_not_ready_when_nothing_is_released(tmp_path: Path) -> None:
    app = _app(Home(tmp_path / "home"), tmp_path, ENV_MODE="production")
    response = app.test_client().get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "not ready"


def test_a_swap_to_a_version_without_ids_is_refused_in_production(
    assessed: Assessed, tmp_path: Path
) -> None:
    """Production mode serves the assessed version; the alias moves to a version audited under
    a policy naming no assessments: production mode keeps the assessed one (and says why),
    development mode swaps."""
    own = _copy(assessed, tmp_path, production="named")
    strict = ModelSource(own, NAME, production=True)
    lenient = ModelSource(own, NAME)
    for source in (strict, lenient):
        source.refresh()
        assert source.current is not None
        assert source.current.version == assessed.version("named")
    connect(own).client.set_registered_model_alias(NAME, "production", assessed.version("unnamed"))
    assert not strict.refresh()
    assert strict.current is not None and strict.current.version == assessed.version("named")
    refused = f"refusing to serve {NAME} version {assessed.version('unnamed')} in production mode"
    assert refused in strict.problem
    assert "fundamental_rights is missing" in strict.problem
    assert lenient.refresh()
    assert lenient.current is not None and lenient.current.version == assessed.version("unnamed")
    _adopt(own, tmp_path)
    with pytest.raises(BadInputError, match="data_protection is missing"):
        _app(own, tmp_path, ENV_MODE="production")  # a restart in production mode


def test_outreach_serve_exits_2_before_gunicorn(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = copy_site(site, tmp_path).home
    started: list[Any] = []
    monkeypatch.setattr("os.execvpe", lambda *args: started.append(args))
    runner = CliRunner()
    env = {"OUTREACH_ENV": "production", "OUTREACH_TRACKING_URI": ""}
    result = runner.invoke(main, ["--home", str(own.root), "serve"], env=env)
    # The verifying key in the writable home is refused first: pin its id (docs, Keys).
    assert result.exit_code == 2 and "is writable by this user" in result.output, result.output
    key_id = load_verifier(own.signing_keys.release_public).key_id
    env["OUTREACH_RELEASE_PUBLIC_KEY"] = key_id
    result = runner.invoke(main, ["--home", str(own.root), "serve"], env=env)
    assert result.exit_code == 2, result.output
    assert "refusing to start in production mode" in result.output
    assert "fundamental_rights is missing" in result.output
    assert "data_protection is missing" in result.output
    assert started == []
    result = runner.invoke(main, ["--home", str(own.root), "serve"], env={"OUTREACH_ENV": "live"})
    assert result.exit_code == 2 and "OUTREACH_ENV='live' is not a mode" in result.output
    assert started == []
    result = runner.invoke(main, ["--home", str(own.root), "serve"], env={"OUTREACH_ENV": ""})
    assert result.exit_code == 0 and len(started) == 1  # development: gunicorn is started
