"""The transparency record of a served release: every field filled from the attested release,
provenance equal to the signed statement, no record for what may not be served, the CLI, the
public summary at /transparency and the board's record pages.

Served versions checked: the site's production individual release, the site's REVIEW-free
release awaiting approval once approved (a record that carries an approval), and a neighbourhood
release made here (the demo serves both units) whose policy names its impact assessments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from flask import Flask
from markupsafe import escape

from audits import disclosure
from audits.policy import parse_policy
from kernel.errors import GateError
from kernel.home import Home
from kernel.signing import canonical
from lifecycle.catalogue import production_alias, report_path
from lifecycle.release import approve, release, withdraw
from lifecycle.statements import read
from lifecycle.transparency_record import (
    AGENCY,
    SETTINGS_KEYS,
    build_record,
    public_summary,
    render_html,
    required_fields_missing,
    settings_path,
    transparency_record,
    verified_sources,
)
from lifecycle.transparency_sources import NOT_IN_POLICY
from lifecycle.verified_loading import trust_for
from model.data import Dataset, ordinal_to_period, validate
from model.registry import Registry, connect, download_version, sha256_file
from model.scorer import ARTIFACT_NAME
from model.spec import ExperimentSpec
from model.synthetic import generate_preset
from outreach.cli import main
from service import create_app
from store.db import Database, QueueEntry
from tests.support.homes import Site, copy_site
from tests.support.specs import NEIGHBOURHOOD_SPEC, fast_spec
from tests.support.web import SENSITIVE, sign_in

#: Every deploying agency's fact filled in, as a deployment's settings file would.
SETTINGS = {key: f"the agency's {key.replace('_', ' ')}" for key in SETTINGS_KEYS}

#: The ATRS fields every record carries, by tier/section and key.
ATRS_FIELDS = [
    ("tier_1", key)
    for key in (
        "name",
        "description",
        "website",
        "contact_email",
        "organisation",
        "phase",
        "human_oversight",
        "fairness_audit",
        "last_updated",
    )
] + [
    (f"tier_2.{section}", key)
    for section, keys in {
        "owner_and_responsibility": (
            "organisation",
            "team",
            "senior_responsible_owner",
            "external_supplier",
            "release_accountability",
        ),
        "description_and_rationale": (
            "detailed_description",
            "scope",
            "benefit",
            "previous_process",
            "alternatives_considered",
        ),
        "decision_making_process": (
            "process_integration",
            "provided_information",
            "frequency_and_scale",
            "human_decisions_and_review",
            "required_training",
            "appeals_and_review",
        ),
        "tool_specification": ("system_architecture", "phase", "maintenance", "models"),
        "data": (
            "source_data",
            "data_description",
            "sensitive_attributes",
            "completeness_and_representativeness",
            "legal_basis",
        ),
        "risks_and_impact_assessments": ("impact_assessments", "risks"),
    }.items()
    for key in keys
]
#: The fields the deploying agency fills (settings file keys), by path.
AGENCY_FIELDS = {
    "atrs.tier_1.website",
    "atrs.tier_1.contact_email",
    "atrs.tier_1.organisation",
    "atrs.tier_2.owner_and_responsibility.organisation",
    "atrs.tier_2.owner_and_responsibility.team",
    "atrs.tier_2.owner_and_responsibility.senior_responsible_owner",
    "atrs.tier_2.owner_and_responsibility.external_supplier",
    "atrs.tier_2.description_and_rationale.previous_process",
    "atrs.tier_2.decision_making_process.required_training",
    "atrs.tier_2.data.legal_basis",
    "register_entry.contact_email",
    "register_entry.website",
    "register_entry.owner.organisation",
    "register_entry.owner.team",
    "register_entry.owner.senior_responsible_owner",
}
CASES = ("individual", "individual_approved", "neighbourhood")


# ----------------------------------------------------------------------------- fixtures


def run(home: Home, *args: str) -> Result:
    """``outreach --home HOME transparency ARGS...`` in process."""
    return CliRunner().invoke(main, ["--home", str(home.root), "transparency", *args])


@dataclasses.dataclass(frozen=True)
class Served:
    """A home with a served release, its registry and the version the record is of."""

    home: Home
    registry: Registry
    name: str
    version: str
    spec: ExperimentSpec
    dataset: Dataset | None = None


def _neighbourhood_policy() -> Any:
    text = (
        Path(NEIGHBOURHOOD_SPEC).parent.parent / "audits/policies/neighbourhood.toml"
    ).read_text()
    for old, new in {
        "bootstrap_resamples = 1000": "bootstrap_resamples = 200",
        "min_group_positives = 120": "min_group_positives = 10",
        "simulations = 200": "simulations = 40",
        "min = 0.8": "min = 0.3",
        "[impact_assessments]\n": (
            '[impact_assessments]\nfundamental_rights = "FRIA-2026-004"\n'
            'data_protection = { id = "DPIA-2026-011", date = 2026-03-01, '
            'owner = "data-protection officer" }\n'
        ),
    }.items():
        assert old in text
        text = text.replace(old, new, 1)
    return parse_policy(tomllib.loads(text), sha256="test-neighbourhood-policy")


@pytest.fixture(scope="module")
def neighbourhood(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """A neighbourhood release in production (fast candidates), its policy naming a FRIA and a
    DPIA."""
    spec = fast_spec(NEIGHBOURHOOD_SPEC)
    frame = generate_preset(unit="neighbourhood", rows=12_000, seed=5, periods=20)
    dataset = validate(frame, spec)
    home = Home(tmp_path_factory.mktemp("neighbourhood") / "home")
    registry = connect(home)
    result = release(
        spec, dataset, registry, policy=_neighbourhood_policy(), trust=trust_for(registry.home)
    )
    assert result.promoted, result.summary()
    return Served(home, registry, spec.name, str(result.chosen.candidate.version), spec, dataset)


@pytest.fixture(scope="module")
def approved_site(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A copy of the site whose release awaiting approval was approved (now in production)."""
    copy = copy_site(site, tmp_path_factory.mktemp("approved"))
    name, version = copy.awaiting
    assert approve(
        connect(copy.home),
        name,
        version,
        by="oversight-user",
        note="read the audit",
        trust=trust_for(copy.home),
    )
    return copy


@pytest.fixture(scope="module")
def served(
    site: Site,
    approved_site: Site,
    neighbourhood: Served,
    small_spec: ExperimentSpec,
    dataset: Dataset,
) -> dict[str, Served]:
    registry = connect(site.home)
    approved = connect(approved_site.home)
    name = small_spec.name
    return {
        "individual": Served(
            site.home, registry, name, str(production_alias(registry, name)), small_spec, dataset
        ),
        "individual_approved": Served(
            approved_site.home, approved, name, approved_site.awaiting[1], small_spec, dataset
        ),
        "neighbourhood": neighbourhood,
    }


@pytest.fixture(scope="module")
def records(served: dict[str, Served]) -> dict[str, dict[str, Any]]:
    return {
        case: transparency_record(
            s.registry,
            trust_for(s.registry.home, signing=False),
            s.name,
            s.version,
            settings=SETTINGS,
        )
        for case, s in served.items()
    }


@pytest.fixture(scope="module")
def bare_records(served: dict[str, Served]) -> dict[str, dict[str, Any]]:
    """The same records without the agency's settings."""
    return {
        case: transparency_record(
            s.registry, trust_for(s.registry.home, signing=False), s.name, s.version
        )
        for case, s in served.items()
    }


def _get(record: dict[str, Any], path: str) -> Any:
    found: Any = record
    for part in path.split("."):
        found = found[part]
    return found


# ----------------------------------------------------------------------------- the record


@pytest.mark.parametrize("case", CASES)
def test_no_required_field_is_empty_for_a_served_version(
    served: dict[str, Served], records: dict[str, dict[str, Any]], case: str
) -> None:
    record = records[case]
    assert required_fields_missing(record) == []
    assert record["schema"] == "outreach.transparency/1"
    assert (record["name"], record["version"]) == (served[case].name, served[case].version)
    assert record["findings"] == [] or all(isinstance(f, str) and f for f in record["findings"])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("where", "key"), ATRS_FIELDS)
def test_every_atrs_field_says_its_fact_and_where_it_came_from(
    records: dict[str, dict[str, Any]], case: str, where: str, key: str
) -> None:
    field = _get(records[case]["atrs"], where)[key]
    assert re.fullmatch(r"\d(\.\d)*|metadata", field["ref"]), field
    assert field["label"].strip() and field["source"].strip()
    value = field["value"]
    assert value not in (None, "", [], {}) and value != AGENCY
    if isinstance(value, str):
        assert "None" not in value and "{" not in value, value  # no unfilled template


@pytest.mark.parametrize("case", CASES)
def test_without_settings_the_agencys_fields_are_listed_as_to_complete(
    bare_records: dict[str, dict[str, Any]], case: str
) -> None:
    record = bare_records[case]
    listed = required_fields_missing(record)
    assert {item.removesuffix(f" ({AGENCY})") for item in listed} == AGENCY_FIELDS
    assert all(item.endswith(f"({AGENCY})") for item in listed)
    for path in AGENCY_FIELDS:
        value = _get(record, path)
        assert (value["value"] if isinstance(value, dict) else value) == AGENCY


def test_an_empty_field_is_listed(records: dict[str, dict[str, Any]]) -> None:
    record = json.loads(json.dumps(records["individual"]))
    record["atrs"]["tier_2"]["description_and_rationale"]["benefit"]["value"] = " "
    record["datasheet"]["rows"] = None
    record["datasheet"]["columns"][0]["source"] = None
    record["provenance"]["attestation"]["key_id"] = ""
    column = record["datasheet"]["columns"][0]["column"]
    assert required_fields_missing(record) == [
        "atrs.tier_2.description_and_rationale.benefit",
        "datasheet.rows",
        f"datasheet.columns.{column}.source",
        "provenance.attestation.key_id",
    ]


@pytest.mark.parametrize("case", CASES)
def test_provenance_is_the_signed_statement_and_the_actual_bytes(
    served: dict[str, Served], records: dict[str, dict[str, Any]], case: str
) -> None:
    s, provenance = served[case], records[case]["provenance"]
    entries = read(s.home.attestations / f"{s.name}.jsonl")
    signed = [
        e
        for e in entries
        if e.statement.get("kind") == "release" and e.statement.get("version") == s.version
    ]
    assert len(signed) == 1
    statement, key_id = signed[0].statement, signed[0].key_id
    with tempfile.TemporaryDirectory() as folder:
        local = download_version(s.registry, s.name, s.version, Path(folder))
        actual = sha256_file(next(local.rglob(ARTIFACT_NAME)))
    assert provenance["artifact_sha256"] == statement["artifact_sha256"] == actual
    assert provenance["artifact_sha256_verified"] is True
    report_bytes = report_path(s.home.audits, statement["audit_id"]).read_bytes()
    assert provenance["report_sha256"] == statement["report_sha256"]
    assert provenance["report_sha256"] == hashlib.sha256(report_bytes).hexdigest()
    assert provenance["audit_id"] == statement["audit_id"]
    assert provenance["policy_sha256"] == statement["policy_sha256"]
    assert (
        provenance["files_manifest_sha256"]
        == hashlib.sha256(canonical(statement["files"])).hexdigest()
    )
    assert provenance["files"] == len(statement["files"]) > 1
    assert provenance["attestation"]["sequence"] == statement["sequence"]
    assert provenance["attestation"]["key_id"] == key_id
    assert provenance["attestation"]["signed_at"] == statement["at"]
    approvals = [
        e.statement["sequence"]
        for e in entries
        if e.statement.get("kind") == "approval" and e.statement.get("version") == s.version
    ]
    assert [a["sequence"] for a in provenance["approvals"]] == approvals
    assert bool(approvals) == (case == "individual_approved")
    register = records[case]["register_entry"]
    assert register["hashes"] == {
        "artifact_sha256": actual,
        "report_sha256": provenance["report_sha256"],
        "policy_sha256": statement["policy_sha256"],
    }
    assert register["id"] == f"{s.name}:{s.version}"
    origin = {
        "artifact_sha256": actual,
        "attestation": f"{s.name}.jsonl #{statement['sequence']}",
        "key_id": key_id,
    }
    for document in ("atrs", "register_entry", "model_card", "datasheet"):
        assert records[case][document]["generated_from"] == origin, document


def test_an_approval_is_named_where_the_human_decisions_are(
    records: dict[str, dict[str, Any]],
) -> None:
    tier_2 = records["individual_approved"]["atrs"]["tier_2"]
    human = tier_2["decision_making_process"]["human_decisions_and_review"]["value"]
    assert "Approved by oversight-user (oversight)" in human
    plain = records["individual"]["atrs"]["tier_1"]["human_oversight"]["value"]
    assert "did not ask for an oversight approval" in plain


@pytest.mark.parametrize("case", CASES)
def test_the_datasheet_is_the_data_the_release_read(
    served: dict[str, Served], records: dict[str, dict[str, Any]], case: str
) -> None:
    s, sheet = served[case], records[case]["datasheet"]
    assert s.dataset is not None
    periods = np.unique(s.dataset.periods)
    assert sheet["period_range"] == {
        "from": ordinal_to_period(int(periods[0])),
        "to": ordinal_to_period(int(periods[-1])),
    }
    assert sheet["rows"] == len(s.dataset.frame)
    assert sheet["data_fingerprint"] == s.dataset.fingerprint
    audited = np.isin(
        [ordinal_to_period(int(p)) for p in s.dataset.periods], sheet["audited_periods"]
    )
    labels = s.dataset.labels[audited]
    assert sheet["audited_rows"] == int(audited.sum())
    assert sheet["label"]["rate"] == pytest.approx(labels.mean(), abs=1e-6)
    published = 0
    for group in sheet["groups"]:
        if " × " in group["attribute"] or group["attribute"] not in s.spec.sensitive_attributes:
            continue
        mine = np.asarray(s.dataset.sensitive(group["attribute"]))[audited] == group["group"]
        # The small-cell rule (audits.disclosure): a group of few people (or one that would
        # give such a group back), and any rate from a small count, is not published.
        if isinstance(group["rows"], str):
            assert group["rows"].startswith("not published (fewer than"), group
            assert group["label_rate"] == group["rows"]
            continue
        published += 1
        assert group["rows"] == int(mine.sum()), group
        if not isinstance(group["label_rate"], str):
            assert group["label_rate"] == pytest.approx(labels[mine].mean(), abs=1e-6)
    assert published
    # where each column comes from: the spec's words, for every column the release read
    expected = {f.name: f.source for f in s.spec.features} | dict(s.spec.data.sources)
    columns = {c["column"]: c for c in sheet["columns"]}
    for column in (
        *s.spec.feature_names,
        s.spec.data.id_column,
        s.spec.data.time_column,
        s.spec.label.column,
        *s.spec.sensitive_attributes,
    ):
        assert columns[column]["source"] == expected[column] and expected[column], column
    assert {m["feature"] for m in sheet["missingness"]} == set(s.spec.feature_names)


def test_groups_below_the_policys_minimum_are_not_published(served: dict[str, Served]) -> None:
    s = served["individual"]
    sources = verified_sources(
        s.registry, trust_for(s.registry.home, signing=False), s.name, s.version
    )
    sizes = sorted(g["n"] for g in sources.report["groups"])
    threshold = sizes[len(sizes) // 2]
    report = json.loads(json.dumps(sources.report))
    report["policy"]["min_group_size"] = threshold
    record = build_record(dataclasses.replace(sources, report=report), settings=SETTINGS)
    words = f"not published ({disclosure.words(threshold)})"
    withheld: dict[str, list[int]] = {}
    for group in record["datasheet"]["groups"]:
        original = next(
            g
            for g in sources.report["groups"]
            if (g["attribute"], g["group"]) == (group["attribute"], group["group"])
        )
        if original["n"] < threshold:
            assert group["rows"] == group["label_rate"] == words
        if group["rows"] == words:
            assert group["label_rate"] == words  # a rate would give the count back
            withheld.setdefault(group["attribute"], []).append(original["n"])
        else:
            assert group["rows"] == original["n"] >= threshold
            if original["positives"] < threshold:
                assert group["label_rate"] == words
    assert withheld  # the median size makes some groups small
    for attribute, sizes in withheld.items():
        # The groups add up to the audited rows: never one withheld alone, nor a few people.
        assert len(sizes) >= 2 and sum(sizes) >= threshold, attribute
    assert required_fields_missing(record) == []


def test_the_impact_assessments_come_from_the_policy_or_are_a_finding(
    records: dict[str, dict[str, Any]],
) -> None:
    named = records["neighbourhood"]["atrs"]["tier_2"]["risks_and_impact_assessments"]
    listed = named["impact_assessments"]["value"]
    assert [(a["kind"], a["id"], a["date"]) for a in listed] == [
        ("fundamental_rights", "FRIA-2026-004", None),
        ("data_protection", "DPIA-2026-011", "2026-03-01"),
    ]
    assert not any(a["placeholder"] for a in listed)
    assert not [f for f in records["neighbourhood"]["findings"] if "Impact assessments" in f]
    unnamed = records["individual"]["atrs"]["tier_2"]["risks_and_impact_assessments"]
    assert unnamed["impact_assessments"]["value"] == NOT_IN_POLICY
    findings = [f for f in records["individual"]["findings"] if "Impact assessments" in f]
    assert len(findings) == 2 and "FRIA" in findings[0] and "DPIA" in findings[1]
    assert required_fields_missing(records["individual"]) == []  # a finding, not an empty field


# ----------------------------------------------------------------------------- no record


def _tamper_report(copy: Site) -> tuple[str, str]:
    registry = connect(copy.home)
    name = copy.awaiting[0]
    version = str(production_alias(registry, name))
    statement = trust_for(copy.home, signing=False).standing(name, version).release
    assert statement is not None
    path = report_path(copy.home.audits, statement["audit_id"])
    path.write_text(path.read_text().replace('"decision": "PASS"', '"decision": "PASS" '))
    return name, version


def _erase_attestations(copy: Site) -> tuple[str, str]:
    name = copy.awaiting[0]
    version = str(production_alias(connect(copy.home), name))
    (copy.home.attestations / f"{name}.jsonl").write_text("")
    return name, version


def _awaiting(copy: Site) -> tuple[str, str]:
    return copy.awaiting


def _withdrawn(copy: Site) -> tuple[str, str]:
    registry = connect(copy.home)
    name = copy.awaiting[0]
    version = withdraw(
        registry,
        name,
        by="oversight-user",
        note="stop while we look",
        trust=trust_for(registry.home),
    )
    return name, version


REFUSALS = {
    "tampered report": (_tamper_report, "was changed after release"),
    "no attestation": (_erase_attestations, "no signed release attestation"),
    "awaiting approval": (_awaiting, "awaiting an oversight approval"),
    "withdrawn": (_withdrawn, "withdrawn"),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_version_that_may_not_be_served_gets_no_record(
    site: Site, tmp_path: Path, refusal: str
) -> None:
    make, words = REFUSALS[refusal]
    copy = copy_site(site, tmp_path)
    name, version = make(copy)
    with pytest.raises(GateError, match=words):
        transparency_record(connect(copy.home), trust_for(copy.home, signing=False), name, version)
    out = tmp_path / "out"
    result = run(copy.home, name, "--version", version, "--out", str(out))
    assert result.exit_code == 3, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not out.exists()


# ----------------------------------------------------------------------------- the CLI


def test_the_cli_writes_both_files_and_prints_the_record_as_json(
    site: Site, tmp_path: Path, records: dict[str, dict[str, Any]]
) -> None:
    settings = tmp_path / "agency.toml"
    settings.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in SETTINGS.items()))
    out = tmp_path / "record"
    result = run(
        site.home, "individual_outreach", "--out", str(out), "--settings", str(settings), "--json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    written = json.loads((out / "transparency.json").read_text())
    assert document["record"] == written
    assert document["required_fields_missing"] == []
    assert (
        document["sha256"] == hashlib.sha256((out / "transparency.json").read_bytes()).hexdigest()
    )
    expected = records["individual"]
    assert written["provenance"] | {"generated_at": ""} == expected["provenance"] | {
        "generated_at": ""
    }
    page = (out / "transparency.html").read_text()
    assert written["provenance"]["artifact_sha256"] in page
    assert written["provenance"]["report_sha256"] in page
    assert written["provenance"]["attestation"]["key_id"] in page
    assert "<style>" in page and not re.search(r"<link|<script|src=|https?://", page)
    for heading in ("ATRS tier 1", "ATRS tier 2", "Algorithm-register entry", "Model card"):
        assert heading in page
    assert (out / "transparency.json").stat().st_mode & 0o777 == 0o644


def test_the_cli_without_settings_names_the_fields_to_complete(site: Site, tmp_path: Path) -> None:
    result = run(site.home, "individual_outreach", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "transparency.html")
    assert f"atrs.tier_1.contact_email ({AGENCY})" in result.stderr
    assert "finding: Impact assessments" in result.stderr
    assert AGENCY in (tmp_path / "transparency.html").read_text()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["no_such_model"], "has no production version"),
        (["individual_outreach", "--version", "99"], "no version 99"),
        (["individual_outreach", "--settings", "{bad}"], "invalid"),
        (["individual_outreach", "--out-file"], "cannot write the transparency record"),
    ],
)
def test_the_cli_refuses_bad_input_with_exit_2(
    site: Site, tmp_path: Path, args: list[str], words: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    bad = tmp_path / "bad.toml"
    bad.write_text('organisation = ""\ncolour = "blue"\n')
    out = str(blocker / "record" if "--out-file" in args else tmp_path / "out")
    args = [a.replace("{bad}", str(bad)) for a in args if a != "--out-file"]
    result = run(site.home, *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    assert blocker.read_text() == "not a folder"


def test_invalid_settings_name_every_problem(site: Site, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('organisation = ""\ncolour = "blue"\nteam = 3\n')
    result = run(
        site.home, "individual_outreach", "--out", str(tmp_path / "out"), "--settings", str(bad)
    )
    assert result.exit_code == 2
    for words in ("colour: unknown key", "organisation: give", "team: give"):
        assert words in result.output


# ----------------------------------------------------------------------------- the service


def _app(site: Site, folder: Path, **changes: Any) -> tuple[Flask, Site]:
    copy = copy_site(site, folder)
    settings_path(copy.home).write_text(
        "".join(f"{k} = {json.dumps(v)}\n" for k, v in SETTINGS.items())
    )
    for change in changes.values():
        change(copy)
    app = create_app(
        {
            "HOME": copy.home,
            "DATABASE_URL": copy.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
        }
    )
    return app, copy


def _person_ids(database_url: str) -> set[str]:
    from sqlalchemy import select

    with Database(database_url).session() as session:
        return {str(i) for i in session.scalars(select(QueueEntry.person_id))}


@pytest.mark.parametrize("how", ["page", "json", "accept"])
def test_the_public_summary_needs_no_sign_in_and_holds_no_personal_data(
    site: Site, tmp_path: Path, records: dict[str, dict[str, Any]], how: str
) -> None:
    app, copy = _app(site, tmp_path)
    client = app.test_client()
    path, headers = {
        "page": ("/transparency", {}),
        "json": ("/transparency.json", {}),
        "accept": ("/transparency", {"Accept": "application/json"}),
    }[how]
    response = client.get(path, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    text = response.get_data(as_text=True)
    expected = public_summary(records["individual"])
    if how == "page":
        assert response.content_type.startswith("text/html")
        for item in expected["tier_1"].values():
            if item["label"] != "Record generated":
                assert str(escape(item["value"])) in text
        assert expected["generated_from"]["artifact_sha256"] in text
        assert "<style" not in text and " style=" not in text
    else:
        body = response.json
        assert body | {"tier_1": {}} == expected | {"tier_1": {}}
        assert {k: v for k, v in body["tier_1"].items() if k != "last_updated"} == {
            k: v for k, v in expected["tier_1"].items() if k != "last_updated"
        }
    ids = _person_ids(copy.database_url)
    assert ids
    # Times (generated, signed) are not ids: "12:35:10" would otherwise read as "35" and "10".
    untimed = re.sub(r"\d{2}:\d{2}(:\d{2})?(\.\d+)?([+-]\d{2}:\d{2}|Z)?", " ", text)
    words = set(re.findall(r"[A-Za-z0-9_-]+", untimed))
    assert not ids & words
    for value in SENSITIVE:
        assert value not in text
    assert "Set-Cookie" not in response.headers


def test_the_public_summary_answers_503_when_nothing_is_served(site: Site, tmp_path: Path) -> None:
    app, _ = _app(
        site,
        tmp_path,
        withdraw=lambda copy: withdraw(
            connect(copy.home),
            copy.awaiting[0],
            by="oversight-user",
            note="stop",
            trust=trust_for(copy.home),
        ),
    )
    client = app.test_client()
    page = client.get("/transparency")
    assert page.status_code == 503
    assert "No model is being served" in page.get_data(as_text=True)
    as_json = client.get("/transparency.json")
    assert as_json.status_code == 503
    assert as_json.json["error"]["code"] == "unavailable"
    assert "withdrawn" in as_json.json["error"]["message"]


def test_the_public_summary_answers_503_when_the_served_release_no_longer_verifies(
    site: Site, tmp_path: Path
) -> None:
    app, copy = _app(site, tmp_path)
    client = app.test_client()
    assert client.get("/transparency.json").status_code == 200
    _tamper_report(copy)  # after the service loaded it: the record is built again, and refused
    page = client.get("/transparency")
    assert page.status_code == 503
    assert "cannot be verified" in page.get_data(as_text=True)
    assert client.get("/transparency.json").json["error"]["code"] == "unavailable"


def test_the_board_reads_each_released_versions_record_from_the_releases_page(
    site: Site, tmp_path: Path, records: dict[str, dict[str, Any]]
) -> None:
    app, copy = _app(site, tmp_path)
    name = copy.awaiting[0]
    production = str(production_alias(connect(copy.home), name))
    board = app.test_client()
    sign_in(board, copy, "oversight")
    releases = board.get("/oversight/releases").get_data(as_text=True)
    links = set(re.findall(r'href="(/oversight/transparency/[^"]+)"', releases))
    assert f"/oversight/transparency/{name}/{production}" in links
    assert f"/oversight/transparency/{name}/{copy.awaiting[1]}" not in links  # not released
    for link in links:
        page = board.get(link)
        assert page.status_code == 200, page.get_data(as_text=True)[:400]
        html = page.get_data(as_text=True)
        version = link.rsplit("/", 1)[1]
        assert f"Transparency record: {name} version {version}" in html
        assert "<style" not in html and " style=" not in html
    record = board.get(f"/oversight/transparency/{name}/{production}/transparency.json").json
    assert record["provenance"] | {"generated_at": ""} == records["individual"]["provenance"] | {
        "generated_at": ""
    }
    refused = board.get(f"/oversight/transparency/{name}/{copy.awaiting[1]}")
    assert refused.status_code == 409 and "awaiting an oversight approval" in refused.get_data(
        as_text=True
    )
    coordinator = app.test_client()
    sign_in(coordinator, copy, "coordinator")
    assert coordinator.get(f"/oversight/transparency/{name}/{production}").status_code == 403
    stranger = app.test_client().get(f"/oversight/transparency/{name}/{production}")
    assert stranger.status_code == 302 and stranger.headers["Location"].startswith("/login")


def test_the_html_renders_every_document(records: dict[str, dict[str, Any]]) -> None:
    page = render_html(records["neighbourhood"])
    for column in records["neighbourhood"]["datasheet"]["columns"]:
        assert column["column"] in page
    assert "FRIA-2026-004" in page and "DPIA-2026-011" in page


def test_every_page_links_the_public_summary_without_sign_in(site: Site, tmp_path: Path) -> None:
    """The public finds the summary from any page, the sign-in page included."""
    app, _ = _app(site, tmp_path)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/transparency"' in page
    assert client.get("/transparency").status_code == 200


def test_the_demo_writes_the_served_versions_record_into_the_home(
    site: Site, tmp_path: Path
) -> None:
    """`outreach demo` leaves each served version's record in <home>/transparency/<model>/; a
    model with nothing served gets none and the demo goes on."""
    from outreach.cli.demo import demo_transparency

    own = copy_site(site, tmp_path)
    name = "individual_outreach"
    written = demo_transparency(own.home, name)
    assert written == own.home.root / "transparency" / name / "transparency.html"
    record = json.loads(written.with_name("transparency.json").read_text())
    served = production_alias(connect(own.home), name)
    assert record["version"] == served
    assert all(
        item.endswith("(to be completed by the deploying agency)")
        for item in required_fields_missing(record)
    )
    assert demo_transparency(own.home, "no_such_model") is None
