"""The trust layer fails closed, loudly: each way of lifting a stop by writing files ends with
nothing served and an alarm a person can see.

Tried as someone with write access to the project home would: one changed character in the
attestation log, a log cut short, a deleted log, a replaced public key, a log re-signed with a
foreign key pair, swapped keys. Each test ends with "not served" (503 with a reason code, exit 3
on the command line) and a visible alarm (an error in the service log, the Prometheus gauge, the
banner on the oversight pages). Real MLflow store, real signed logs, real Flask app and CLI, on
private copies of the site (its service database is the CLI's too, so heads the CLI anchors are
the ones the service checks).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kernel.home import Home
from kernel.signing import KeyPaths, Signer, load_signer
from lifecycle.statements import GENESIS, Entry, entry_digest, read
from lifecycle.verified_loading import load_production, trust_for
from lifecycle.version_state import LogInvalidError
from model.registry import connect
from outreach.cli import main
from service import create_app
from service.startup import check_production
from tests.support.homes import Site, copy_site, on_both_databases, site_database
from tests.support.web import sign_in

NAME = "individual_outreach"


def run(site: Site, *args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI on the site's home and its service database (SQLite in the home, or PostgreSQL
    through OUTREACH_DATABASE_URL)."""
    database = (
        {}
        if site.database_url.startswith("sqlite")
        else {"OUTREACH_DATABASE_URL": site.database_url}
    )
    return CliRunner().invoke(
        main, ["--home", str(site.home.root), *args], env={**database, **(env or {})}
    )


def app_for(site: Site, **config: Any) -> Any:
    return create_app(
        {
            "HOME": site.home,
            "DATABASE_URL": site.database_url,
            "WATCH_SECONDS": 0,
            "TESTING": True,
            **config,
        }
    )


@pytest.fixture
def own(site: Site, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Site:
    return copy_site(site, tmp_path, site_database(request, backend))


def log_of(home: Home) -> Path:
    return home.attestations / f"{NAME}.jsonl"


def change_one_character(log: Path, *, in_note_of: str) -> None:
    """Change one letter of the note of the last statement of kind ``in_note_of``."""
    lines = log.read_text().splitlines()
    for number in range(len(lines) - 1, -1, -1):
        entry = json.loads(lines[number])
        if entry["statement"]["kind"] == in_note_of:
            note = entry["statement"]["note"]
            entry["statement"]["note"] = ("X" if note[0] != "X" else "Y") + note[1:]
            lines[number] = json.dumps(entry, sort_keys=True)
            log.write_text("\n".join(lines) + "\n")
            return
    raise AssertionError(f"no {in_note_of} statement in {log}")


def assert_not_served_with_an_alarm(
    app: Any,
    site: Site,
    caplog: pytest.LogCaptureFixture,
    said: str,
    env: dict[str, str] | None = None,
) -> None:
    """Nothing served (503 with the reason code), an error-level log line, the gauge at 1, the
    banner on the oversight pages, and the CLI exits 3 naming the problem."""
    source = app.extensions["outreach.model"]
    assert source.current is None
    assert said in source.alarm
    client = app.test_client()
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 503
    assert ready.json["status"] == "log_invalid" and ready.json["code"] == "attestation_log_invalid"
    assert any(r.levelno >= logging.ERROR and said in r.getMessage() for r in caplog.records), (
        "no error-level log line names the problem"
    )
    from store.accounts import add_user
    from store.db import Database

    token = add_user(Database(site.database_url), "alarm reader", "oversight")
    audits = client.get("/api/v1/audits", headers={"Authorization": f"Bearer {token}"})
    assert audits.status_code == 200 and audits.json["audits"]
    assert {r["state"] for r in audits.json["audits"]} == {"log_invalid"}
    assert not any(r["serving"] for r in audits.json["audits"])
    metrics = client.get("/api/v1/metrics").get_data(as_text=True)
    assert f'outreach_attestation_log_invalid{{model="{NAME}"}} 1.0' in metrics
    sign_in(client, site, "oversight")
    page = client.get("/oversight/releases").get_data(as_text=True)
    assert 'id="trust-alarm"' in page and "nothing of the model is served" in page
    coordinator = app.test_client()
    sign_in(coordinator, site, "coordinator")
    paused = coordinator.get("/outreach/")
    assert paused.status_code == 503 and "does not verify" in paused.get_data(as_text=True)
    verified = run(site, "models", "verify", NAME, env=env)
    assert verified.exit_code == 3 and said in verified.output, verified.output
    listed = run(site, "models", "list", env=env)
    assert listed.exit_code == 3 and "log_invalid" in listed.output, listed.output


@on_both_databases
def test_one_changed_character_does_not_lift_a_withdrawal(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    withdrew = run(own, "models", "withdraw", NAME, "--by", "oversight", "--note", "harm")
    assert withdrew.exit_code == 0, withdrew.output
    source.refresh()
    assert source.current is None and source.pause().code == "model_withdrawn"
    change_one_character(log_of(own.home), in_note_of="withdrawal")
    source.refresh()  # the next poll
    assert_not_served_with_an_alarm(app, own, caplog, "has no valid signature")
    approved = run(own, "models", "approve", NAME, own.awaiting[1], "--by", "o2", "--note", "n")
    assert approved.exit_code == 3 and "attestation log" in approved.output, approved.output


def test_one_changed_character_does_not_lift_a_freeze(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Under a freeze: after one changed character, approving (which would move production)
    exits 3, the hand-moved alias is not served, and 'incident release' names the problem."""
    app = app_for(own)
    source = app.extensions["outreach.model"]
    pinned = source.current.version
    frozen = run(own, "incident", "freeze", NAME, "--note", "complaint", "--by", "board")
    assert frozen.exit_code == 0, frozen.output
    change_one_character(log_of(own.home), in_note_of="incident_freeze")
    registry = connect(own.home)
    registry.client.set_registered_model_alias(NAME, "production", own.awaiting[1])
    source.refresh()
    assert_not_served_with_an_alarm(app, own, caplog, "has no valid signature")
    assert pinned != own.awaiting[1]
    approved = run(own, "models", "approve", NAME, own.awaiting[1], "--by", "o2", "--note", "n")
    assert approved.exit_code == 3 and "is invalid" in approved.output, approved.output
    lifted = run(own, "incident", "release", NAME, "--note", "n", "--by", "board")
    assert lifted.exit_code == 3 and "is invalid" in lifted.output, lifted.output


@on_both_databases
def test_a_log_cut_short_is_found_against_its_anchored_head(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Removing the withdrawal (the last line) leaves a log whose every statement verifies: only
    the head anchored in the service database shows it was cut."""
    app = app_for(own)
    source = app.extensions["outreach.model"]
    withdrew = run(own, "models", "withdraw", NAME, "--by", "oversight", "--note", "harm")
    assert withdrew.exit_code == 0, withdrew.output
    log = log_of(own.home)
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:-1]))
    assert trust_for(own.home, signing=False).standing(NAME, "1").problems == []  # in itself
    source.refresh()
    assert_not_served_with_an_alarm(app, own, caplog, "statements were removed from its end")
    # Restoring the line is not enough by itself: a person repairs, and the withdrawal holds.
    log.write_text("".join(lines))
    source.refresh()
    assert source.current is None and source.alarm
    repaired = run(own, "models", "repair", NAME, "--by", "ops", "--note", "restored")
    assert repaired.exit_code == 0, repaired.output
    source.refresh()
    assert source.alarm == "" and source.pause().code == "model_withdrawn"
    assert app.test_client().get("/api/v1/readyz").json["status"] == "withdrawn"


@pytest.mark.parametrize("mode", ["production", "development"])
def test_a_cut_log_with_its_database_deleted_serves_nothing_in_production_mode(
    own: Site, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    """Someone who can write the home cuts the withdrawal off the end of the log (every
    statement left still verifies) and deletes the service database (SQLite, in the home), so
    no anchored head remains to compare with. In production mode a log with no anchored head
    is invalid: nothing is served (503 with its reason), ``models verify`` exits 3 naming it,
    until a person adopts the log with ``models repair``. Development mode keeps accepting it
    (the docs say so)."""
    env = {"OUTREACH_ENV": mode}
    app_for(own)  # the service ran on this database: the log's head is anchored
    withdrew = run(own, "models", "withdraw", NAME, "--by", "oversight", "--note", "harm", env=env)
    assert withdrew.exit_code == 0, withdrew.output
    log = log_of(own.home)
    lines = log.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1])["statement"]["kind"] == "withdrawal"
    log.write_text("".join(lines[:-1]))
    for stray in own.home.root.glob("service.db*"):
        stray.unlink()
    app = app_for(own, ENV_MODE=mode)  # the restart: a new, empty service database
    source = app.extensions["outreach.model"]
    ready = app.test_client().get("/api/v1/readyz")
    if mode == "development":  # today's behaviour: the shorter log is accepted
        assert source.current is not None and ready.status_code == 200
        return
    said = "no head of it is anchored in the service database"
    assert source.current is None and said in source.alarm
    assert ready.status_code == 503
    assert ready.json["status"] == "log_invalid" and ready.json["code"] == "attestation_log_invalid"
    assert any(r.levelno >= logging.ERROR and said in r.getMessage() for r in caplog.records)
    metrics = app.test_client().get("/api/v1/metrics").get_data(as_text=True)
    assert f'outreach_attestation_log_invalid{{model="{NAME}"}} 1.0' in metrics
    verified = run(own, "models", "verify", NAME, env=env)
    assert verified.exit_code == 3 and said in verified.output, verified.output
    assert f"outreach models repair {NAME} --by ROLE --note TEXT" in verified.output
    source.refresh()  # polling again changes nothing
    assert source.current is None and said in source.alarm
    adopted = run(
        own,
        "models",
        "repair",
        NAME,
        "--by",
        "ops",
        "--note",
        "compared with the copy kept offsite",
        env=env,
    )
    assert adopted.exit_code == 0, adopted.output
    assert f"repaired the attestation log of {NAME}" in adopted.output
    assert run(own, "models", "verify", NAME, env=env).exit_code == 0
    source.refresh()
    assert source.alarm == ""
    ready = app.test_client().get("/api/v1/readyz")
    assert ready.json["status"] != "log_invalid", ready.json


def test_a_deleted_log_stops_a_running_service_within_one_poll(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    from store.accounts import add_user
    from store.db import Database

    token = add_user(Database(own.database_url), "state reader", "analyst")
    rows = app.test_client().get("/api/v1/audits", headers={"Authorization": f"Bearer {token}"})
    served = [r for r in rows.json["audits"] if r["serving"]]
    assert [(r["version"], r["state"]) for r in served] == [(source.current.version, "servable")]
    log_of(own.home).unlink()
    source.refresh()
    assert_not_served_with_an_alarm(app, own, caplog, "is missing")
    refused = run(own, "models", "repair", NAME, "--by", "ops", "--note", "n")
    assert refused.exit_code == 3 and "still does not verify" in refused.output


def test_a_replaced_public_key_stops_a_running_service_within_one_poll(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    stranger = Signer(Ed25519PrivateKey.generate())
    own.home.signing_keys.release_public.write_bytes(stranger.verifier.pem())
    source.refresh()
    assert_not_served_with_an_alarm(app, own, caplog, "unknown key")


def resign(log: Path, signer: Signer, change: dict[str, Any]) -> None:
    """Rewrite the whole log with ``signer``: every statement re-signed and re-chained, the
    last release statement changed by ``change``."""
    entries = read(log)
    last_release = max(i for i, e in enumerate(entries) if e.statement["kind"] == "release")
    previous, lines = GENESIS, []
    for number, entry in enumerate(entries):
        statement = {**entry.statement, "previous": previous}
        if number == last_release:
            statement.update(change)
        rewritten = Entry(statement, signer.sign(statement), signer.verifier.key_id)
        lines.append(json.dumps(rewritten.as_dict(), sort_keys=True) + "\n")
        previous = entry_digest(rewritten.as_dict())
    log.write_text("".join(lines))


def test_a_log_resigned_with_a_foreign_key_pair_is_refused(
    own: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A new key pair, the public key replaced and the whole log re-signed (every statement
    verifies with the new key): the anchored head and key show it."""
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    foreign = Signer(Ed25519PrivateKey.generate())
    resign(log_of(own.home), foreign, {"by": "someone else"})
    keys = own.home.signing_keys
    keys.release_public.write_bytes(foreign.verifier.pem())
    keys.release.unlink()
    assert trust_for(own.home, signing=False).standing(NAME, "1").problems == []  # in itself
    source.refresh()
    assert_not_served_with_an_alarm(app, own, caplog, "the log was rewritten")
    assert "public key changed" in source.alarm


def fresh_database(site: Site, backend: str, request: pytest.FixtureRequest) -> str:
    """An empty service database in place of the site's: on SQLite its file deleted (as someone
    who can write the home could), on PostgreSQL a new database."""
    if backend == "sqlite":
        for stray in site.home.root.glob("service.db*"):
            stray.unlink()
        return site.database_url
    cluster = request.getfixturevalue("postgres")
    return str(cluster.create_database())


@on_both_databases
@pytest.mark.parametrize("where", ["public key replaced", "key dropped in retired/"])
def test_a_foreign_key_pair_on_a_fresh_database_is_refused_under_a_pinned_key(
    own: Site,
    backend: str,
    where: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Everything in the home rewritten: a new key pair, the whole log re-signed with it (the
    release statement changed), the service database emptied (no anchored head to compare
    with). The key id pinned in the service's environment is the trust root: a log signed by
    another key is invalid, whether its public key replaced ``release.pub`` or was dropped in
    ``keys/retired/`` (which only keys retired by a signed rotation may use)."""
    keys = own.home.signing_keys
    genuine = load_signer(keys.release, create=False).verifier.key_id
    foreign = Signer(Ed25519PrivateKey.generate())
    resign(log_of(own.home), foreign, {"by": "someone else"})
    if where == "public key replaced":
        keys.release_public.write_bytes(foreign.verifier.pem())
        keys.release.unlink()
        said = f"pins {genuine}"
    else:
        retired = keys.release.parent / "retired"
        retired.mkdir(exist_ok=True)
        (retired / f"{foreign.verifier.key_id}.pub").write_bytes(foreign.verifier.pem())
        said = "nor a key rotation it signed vouches for"
    env = {"OUTREACH_RELEASE_PUBLIC_KEY": genuine}
    pinned = Site(
        Home(own.home.root, KeyPaths.resolve(own.home.keys, env)),
        fresh_database(own, backend, request),
        own.passwords,
        own.awaiting,
    )
    app = app_for(pinned)
    from store.accounts import add_user
    from store.db import Database

    for role in ("oversight", "coordinator"):
        add_user(
            Database(pinned.database_url), pinned.user(role), role, password=own.passwords[role]
        )
    assert_not_served_with_an_alarm(app, pinned, caplog, said, env=env)
    assert app.test_client().get("/api/v1/readyz").json["code"] == "attestation_log_invalid"


def test_swapped_keys_sign_nothing(own: Site) -> None:
    """The release key and the access-log key swapped: the stop button refuses (exit 2) and
    writes nothing, instead of reporting a withdrawal the service can never verify."""
    keys = own.home.signing_keys
    load_signer(keys.access_log)  # created at the service's first access-log checkpoint
    release, access = keys.release.read_bytes(), keys.access_log.read_bytes()
    keys.release.write_bytes(access)
    keys.access_log.write_bytes(release)
    before = log_of(own.home).read_bytes()
    withdrew = run(own, "models", "withdraw", NAME, "--by", "oversight", "--note", "harm")
    assert withdrew.exit_code == 2, withdrew.output
    assert "refusing to sign" in withdrew.output and "nothing was written" in withdrew.output
    assert "withdrew" not in withdrew.output
    assert log_of(own.home).read_bytes() == before
    from sqlalchemy import select

    from store.db import Approval, Database

    with Database(own.database_url).session() as session:
        assert not session.scalars(select(Approval).where(Approval.decision == "withdrawn")).all()


def test_a_pinned_key_id_refuses_a_replaced_public_key(own: Site) -> None:
    keys = own.home.signing_keys
    genuine = load_signer(keys.release, create=False).verifier.key_id
    shown = run(own, "keys", "show")
    assert shown.exit_code == 0 and shown.output.strip().splitlines()[-1] == genuine
    pinned = Home(
        own.home.root,
        KeyPaths.resolve(own.home.keys, {"OUTREACH_RELEASE_PUBLIC_KEY": genuine}),
    )
    assert pinned.signing_keys.pinned_key_id == genuine
    assert load_production(
        connect(pinned), NAME, trust=trust_for(pinned, signing=False)
    ).version  # the genuine key: served
    keys.release_public.write_bytes(Signer(Ed25519PrivateKey.generate()).verifier.pem())
    with pytest.raises(LogInvalidError, match=f"pins {genuine}"):
        load_production(connect(pinned), NAME, trust=trust_for(pinned, signing=False))


def test_production_mode_refuses_a_writable_verifying_key(own: Site) -> None:
    from kernel.errors import BadInputError

    env = {"OUTREACH_ENV": "production"}
    with pytest.raises(BadInputError, match="writable by this user") as found:
        check_production(own.home, env)
    assert found.value.code == "verifying_key_writable"
    served = run(own, "serve", env=env)
    assert served.exit_code == 2 and "OUTREACH_RELEASE_PUBLIC_KEY" in served.output


# ----------------------------------------------------------------------------- the pure fold


def _release(version: str, decision: str = "PASS", **extra: Any) -> dict[str, Any]:
    return {"kind": "release", "version": version, "decision": decision, "promoted": True, **extra}


@pytest.mark.parametrize(
    ("statements", "alias", "problems", "code", "version"),
    [
        ([_release("1")], "1", (), "servable", "1"),
        (
            [_release("1"), {"kind": "withdrawal", "by": "b", "note": "n"}],
            "1",
            (),
            "withdrawn",
            "1",
        ),
        (
            [
                _release("1"),
                {"kind": "withdrawal", "by": "b"},
                {"kind": "approval", "version": "1"},
            ],
            "1",
            (),
            "servable",
            "1",
        ),
        (  # frozen at 1: the alias moved to 2 is not followed
            [_release("1"), {"kind": "incident_freeze", "version": "1"}, _release("2")],
            "2",
            (),
            "servable",
            "1",
        ),
        ([_release("1"), {"kind": "incident_freeze", "version": ""}], "1", (), "frozen", ""),
        (
            [_release("1"), {"kind": "rejection", "version": "1", "by": "b"}],
            "1",
            (),
            "rejected",
            "1",
        ),
        ([_release("1", "FAIL")], "1", (), "audit_failed", "1"),
        ([_release("1", "REVIEW", review_groups="g")], "1", (), "review_unapproved", "1"),
        ([_release("1", approval_required=True)], "1", (), "awaiting_approval", "1"),
        ([_release("1")], "2", (), "unattested", "2"),
        ([_release("1")], None, (), "no_production", ""),
        ([_release("1")], "1", ("attestation 2 has no valid signature",), "log_invalid", ""),
    ],
)
def test_the_state_of_what_may_be_served(
    statements: list[dict[str, Any]],
    alias: str | None,
    problems: tuple[str, ...],
    code: str,
    version: str,
) -> None:
    from lifecycle.version_state import ModelState, freeze_of

    state = ModelState(NAME, tuple(statements), problems, alias, freeze_of(statements))
    serving = state.serving()
    assert (serving.code, serving.version) == (code, version), serving.reason
    assert serving.servable == (code == "servable")
    if problems:
        assert "repairs it" in serving.reason and problems[0] in serving.reason


def test_the_log_problems_against_the_anchored_head() -> None:
    from lifecycle.version_state import log_problems

    def problems(**changed: Any) -> list[str]:
        given: dict[str, Any] = {
            "name": NAME,
            "chain": [],
            "entries": 5,
            "hash_at": {n: f"h{n}" for n in range(1, 6)},
            "anchored": (5, "h5"),
            "log_exists": True,
            "expected": True,
            "key_id": "k1",
            "pinned_key_id": None,
            "anchored_key_id": "k1",
            "rotated_to": (),
            **changed,
        }
        return log_problems(**given)

    assert problems() == []
    assert problems(entries=7, hash_at={n: f"h{n}" for n in range(1, 8)}) == []  # it grew
    assert "removed from its end" in problems(entries=4)[0]
    assert "the log was rewritten" in problems(hash_at={5: "other"})[0]
    assert "is missing" in problems(log_exists=False)[0]
    assert problems(log_exists=False, expected=False, anchored=None) == []
    assert "no signed key rotation" in problems(key_id="k2")[0]
    assert problems(key_id="k2", rotated_to=("k2",)) == []
    assert "pins k9" in problems(pinned_key_id="k9")[0]
    # Production mode (anchors kept): a log with statements and no anchored head is invalid.
    assert problems(anchored=None, anchored_key_id=None) == []  # development mode
    unanchored = problems(anchored=None, anchored_key_id=None, anchor_required=True)
    assert len(unanchored) == 1 and "no head of it is anchored" in unanchored[0]
    assert problems(anchored=None, entries=0, hash_at={}, anchor_required=True) == []


def test_a_new_log_is_anchored_as_its_first_statement_is_signed(tmp_path: Path) -> None:
    """In production mode a log is trusted only from an anchored head, so a new log's head is
    anchored as its first statement is signed; a log signed where nothing was anchored is
    invalid there (development mode anchors it at the first look, as before)."""
    from lifecycle.version_state import Anchor
    from store.attestation_heads import DatabaseAnchors
    from store.db import Database

    def anchors(file: str) -> DatabaseAnchors:
        db = Database(f"sqlite:///{tmp_path / file}")
        db.upgrade()
        return DatabaseAnchors(db)

    home = Home(tmp_path / "home").ensure()
    production = trust_for(home, production=True).with_anchors(anchors("service.db"))
    first = production.sign("new_outreach", {"kind": "release", "version": "1"})
    assert production.anchors is not None
    anchored, alarm = production.anchors.latest("new_outreach")
    assert anchored == Anchor(1, entry_digest(first.as_dict()), production.verifier.key_id)
    assert alarm == "" and production.state("new_outreach", None).valid
    production.sign("new_outreach", {"kind": "release", "version": "2"})
    assert production.state("new_outreach", None).valid  # it extends the anchored head

    trust_for(home).sign("elsewhere_outreach", {"kind": "release", "version": "1"})  # no anchors
    development = trust_for(home, signing=False).with_anchors(anchors("development.db"))
    assert development.state("elsewhere_outreach", None).valid
    state = production.state("elsewhere_outreach", None)
    assert not state.valid and "no head of it is anchored" in state.problems[0]


def test_registry_tags_changed_by_hand_change_no_decision(own: Site) -> None:
    """A registry user rewrites every version's tags (the offered version no longer 'awaiting',
    every other one 'awaiting' and PASS, approvals invented): the states, what is served, and
    what an approval does all stay as the signed statements say."""
    app = app_for(own)
    source = app.extensions["outreach.model"]
    served = source.current.version
    name, offered = own.awaiting

    def states() -> dict[str, tuple[str, bool, bool]]:
        listed = run(own, "models", "list", "--json")
        assert listed.exit_code == 0, listed.output
        return {
            r["version"]: (r["state"], r["servable"], r["awaiting_approval"])
            for r in json.loads(listed.stdout)
        }

    before = states()
    assert before[offered][2] is True
    others = [v for v, (_, _, awaiting) in before.items() if v not in (offered, served)]
    assert others and not any(before[v][2] for v in others)
    client = connect(own.home).client
    for version in before:
        for key, value in {
            "awaiting_approval": "true",
            "audit_decision": "PASS",
            "approved_by": "registry user",
            "approval_required": "false",
        }.items():
            client.set_model_version_tag(NAME, version, key, value)
    client.delete_model_version_tag(NAME, offered, "awaiting_approval")
    assert states() == before
    source.refresh()
    assert source.current is not None and source.current.version == served
    # A version the release did not offer is approved, and stays where it is.
    other = others[0]
    approved = run(own, "models", "approve", name, other, "--by", "oversight-2", "--note", "n")
    if before[other][0] in ("audit_failed", "rejected"):
        assert approved.exit_code == 3, approved.output
    else:
        assert approved.exit_code == 0 and "promoted" not in approved.output, approved.output
    assert str(client.get_model_version_by_alias(NAME, "production").version) == served
    # The offered one, its tag gone, is still promoted by its approval.
    approved = run(own, "models", "approve", name, offered, "--by", "oversight-2", "--note", "n")
    assert approved.exit_code == 0 and "and promoted it" in approved.output, approved.output
    assert str(client.get_model_version_by_alias(NAME, "production").version) == offered
