"""Incident freezes: ``outreach incident freeze | release``, tried on private copies of the site.

While frozen the service serves exactly the pinned version whatever the alias says; releases,
approvals, rollbacks and access-log purges are refused (exit 3) and allowed again after the
release; withdrawing still works. Real MLflow store, real signed attestation logs, the real
access log, Flask app and command line. A copied home's MLflow artifact URIs still point at the
original's artifact folder, so these tests never touch artifacts, only aliases, logs and rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from kernel.home import Home
from kernel.signing import Signer
from lifecycle.freeze import FREEZE, LIFT, FrozenError, freeze_in_force, freezes
from lifecycle.release import approve, production_version, release
from lifecycle.statements import GENESIS, Entry, entry_digest, read, verified
from lifecycle.verified_loading import trust_for
from model.data import Dataset
from model.registry import connect
from model.spec import ExperimentSpec
from outreach.cli import main
from service import create_app
from store.access_log import verify
from store.db import AccessLogRow, Database
from tests.support.homes import Site, copy_site
from tests.support.specs import LENIENT, policy_text
from tests.support.web import sign_in

NAME = "individual_outreach"


def run(home: Home, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["--home", str(home.root), *args], env=env)


def freeze_cli(home: Home, *name: str) -> Any:
    return run(home, "incident", "freeze", *name, "--note", "complaint about who is listed",
               "--by", "oversight-board")  # fmt: skip


def lift_cli(home: Home, *name: str) -> Any:
    return run(home, "incident", "release", *name, "--note", "looked into; nothing wrong",
               "--by", "oversight-board")  # fmt: skip


def rows(site: Site, action: str) -> list[AccessLogRow]:
    with Database(site.database_url).session() as session:
        found = session.scalars(select(AccessLogRow).where(AccessLogRow.action == action)).all()
        session.expunge_all()
        return list(found)


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
def own(site: Site, tmp_path: Path) -> Site:
    return copy_site(site, tmp_path)


@pytest.mark.parametrize("named", [True, False], ids=["one model", "every model"])
def test_a_freeze_and_its_release_are_signed_and_recorded(own: Site, named: bool) -> None:
    home = own.home
    pinned = production_version(connect(home), NAME)
    assert pinned
    target = (NAME,) if named else ()
    result = freeze_cli(home, *target)
    assert result.exit_code == 0, result.output
    assert f"froze {NAME} at version {pinned}" in result.output
    trust = trust_for(home, signing=False)
    statements, problems = verified(trust.log(NAME), trust.verifiers)
    assert problems == []
    frozen = statements[-1]
    assert frozen["kind"] == FREEZE and frozen["version"] == pinned
    assert frozen["by"] == "oversight-board" and frozen["note"] == "complaint about who is listed"
    assert frozen["scope"] == ("model" if named else "deployment") and frozen["at"]
    found = freeze_in_force(trust, NAME)
    assert found is not None and found.version == pinned
    [row] = rows(own, "incident_freeze")
    assert (row.user, row.role, row.purpose) == ("oversight-board", "oversight", "oversight")
    assert row.model_version == f"{NAME}:{pinned}" and row.subject_ids == []

    again = freeze_cli(home, *target)
    assert again.exit_code == 2
    assert "refusing a second freeze" in again.output and f"version {pinned}" in again.output
    assert len(rows(own, "incident_freeze")) == 1  # a refused freeze records nothing

    lifted = lift_cli(home, *target)
    assert lifted.exit_code == 0, lifted.output
    assert f"lifted the freeze of {NAME} (pinned at version {pinned})" in lifted.output
    statements, problems = verified(trust.log(NAME), trust.verifiers)
    assert problems == [] and statements[-1]["kind"] == LIFT
    assert freeze_in_force(trust, NAME) is None and freezes(trust) == []
    [row] = rows(own, "incident_release")
    assert row.model_version == f"{NAME}:{pinned}"

    nothing = lift_cli(home, *target)
    assert nothing.exit_code == 2
    assert ("is not frozen" if named else "no model is frozen") in nothing.output
    assert len(rows(own, "incident_release")) == 1
    assert verify(Database(own.database_url)).ok  # the rows are in the hash chain


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["freeze", "no_such_model", "--note", "n", "--by", "b"], "no registered model"),
        (["release", "no_such_model", "--note", "n", "--by", "b"], "no registered model"),
        (["freeze", "--note", " ", "--by", "board"], "needs --note"),
        (["freeze", "--note", "why", "--by", ""], "needs --by"),
    ],
)
def test_bad_freeze_requests_exit_2_and_sign_nothing(
    own: Site, args: list[str], message: str
) -> None:
    log = own.home.attestations / f"{NAME}.jsonl"
    before = log.read_bytes()
    result = run(own.home, "incident", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert log.read_bytes() == before
    assert rows(own, "incident_freeze") == []


def test_while_frozen_nothing_moves_production_and_the_log_is_kept(
    own: Site,
    small_spec: ExperimentSpec,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = own.home
    registry = connect(home)
    pinned = production_version(registry, NAME)
    name, waiting = own.awaiting
    assert freeze_cli(home, NAME).exit_code == 0
    hint = f"'outreach incident release {NAME} --note TEXT --by ROLE'"

    approved = run(home, "models", "approve", name, waiting, "--by", "oversight-2", "--note", "ok")
    assert approved.exit_code == 3, approved.output
    assert f"refusing to approve a version: {NAME} is frozen at version {pinned}" in (
        approved.output
    )
    assert hint in approved.output
    rolled = run(home, "models", "rollback", name)
    assert rolled.exit_code == 3 and "refusing to roll production back" in rolled.output
    purged = run(home, "access-log", "purge", "--before", "2020-01-01", "--by", "records")
    assert purged.exit_code == 3 and "refusing to purge the access log" in purged.output
    assert hint in purged.output

    def trained(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a frozen model was trained for a release")

    monkeypatch.setattr("lifecycle.release.train", trained)
    with pytest.raises(FrozenError, match="refusing to release a new version"):
        release(
            small_spec,
            dataset,
            registry,
            policy=policy_text(**LENIENT),
            trust=trust_for(registry.home),
        )
    with pytest.raises(FrozenError, match="refusing to approve"):  # the pages' path, too
        approve(
            registry, name, waiting, by="oversight-2", note="ok", trust=trust_for(registry.home)
        )
    assert production_version(registry, NAME) == pinned

    assert lift_cli(home, NAME).exit_code == 0
    approved = run(home, "models", "approve", name, waiting, "--by", "oversight-2", "--note", "ok")
    assert approved.exit_code == 0, approved.output
    assert "and promoted it" in approved.output
    assert production_version(registry, NAME) == waiting
    rolled = run(home, "models", "rollback", name)
    assert rolled.exit_code == 0, rolled.output
    assert production_version(registry, NAME) not in ("", waiting)
    purged = run(home, "access-log", "purge", "--before", "2020-01-01", "--by", "records")
    assert purged.exit_code == 0, purged.output


def test_a_deployment_wide_freeze_holds_a_model_not_released_yet(
    own: Site, small_spec: ExperimentSpec, dataset: Dataset
) -> None:
    assert freeze_cli(own.home).exit_code == 0
    other = small_spec.model_copy(update={"name": "another_outreach"})
    with pytest.raises(FrozenError, match=f"{NAME} is frozen"):
        release(
            other,
            dataset,
            connect(own.home),
            policy=policy_text(**LENIENT),
            trust=trust_for(own.home),
        )


def test_withdrawing_still_works_while_frozen(own: Site) -> None:
    home = own.home
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    assert freeze_cli(home).exit_code == 0
    result = run(home, "models", "withdraw", NAME, "--by", "oversight", "--note", "harm found")
    assert result.exit_code == 0, result.output
    source.refresh()
    assert source.current is None and "harm found" in source.withdrawn
    ready = app.test_client().get("/api/v1/readyz")
    assert ready.status_code == 503 and ready.get_json()["status"] == "withdrawn"
    version = production_version(connect(home), NAME)
    reinstated = run(home, "models", "approve", NAME, version, "--by", "oversight-2", "--note", "x")
    assert reinstated.exit_code == 3 and "is frozen" in reinstated.output


def test_a_moved_alias_does_not_change_what_is_served_while_frozen(own: Site) -> None:
    """The board approves the waiting version (production moves to it), freezes, and then a
    registry user moves the alias back by hand: every worker keeps serving the pinned version,
    a restarted one too, and the last-known-good copy stands in for it; after the release the
    alias is followed again."""
    home = own.home
    registry = connect(home)
    earlier = production_version(registry, NAME)
    _, waiting = own.awaiting
    assert approve(
        registry, NAME, waiting, by="oversight-2", note="reviewed", trust=trust_for(registry.home)
    )
    app = app_for(own)
    source = app.extensions["outreach.model"]
    assert source.current is not None and source.current.version == waiting
    assert freeze_cli(home).exit_code == 0
    registry.client.set_registered_model_alias(NAME, "production", earlier)

    assert not source.refresh()
    assert source.current is not None and source.current.version == waiting
    assert f"the production alias names version {earlier}" in source.problem
    assert f"{NAME} is frozen at version {waiting} by an incident" in source.problem
    assert f"frozen at version {waiting}" in source.frozen
    restarted = app_for(own)
    ready = restarted.test_client().get("/api/v1/readyz").get_json()
    assert ready["status"] == "ready" and ready["model"]["version"] == waiting
    offline = app_for(own, TRACKING_URI="http://127.0.0.1:9")
    kept = offline.extensions["outreach.model"].current
    assert kept is not None and kept.degraded and kept.version == waiting

    client = app.test_client()
    sign_in(client, own, "oversight")
    page = client.get("/oversight/policy").get_data(as_text=True)
    assert "Incident freeze:" in page and f"frozen at version {waiting}" in page

    assert lift_cli(home).exit_code == 0
    assert source.refresh()
    assert source.current is not None and source.current.version == earlier
    assert source.problem == "" and source.frozen == ""


def test_the_last_known_good_copy_of_another_version_is_not_served_while_frozen(
    own: Site,
) -> None:
    home = own.home
    registry = connect(home)
    earlier = production_version(registry, NAME)
    app_for(own)  # serves the earlier version and keeps its copy
    _, waiting = own.awaiting
    assert approve(
        registry, NAME, waiting, by="oversight-2", note="reviewed", trust=trust_for(registry.home)
    )
    assert freeze_cli(home).exit_code == 0  # pinned at the waiting version, never served here
    offline = app_for(own, TRACKING_URI="http://127.0.0.1:9").extensions["outreach.model"]
    assert offline.current is None
    assert freeze_in_force(trust_for(home, signing=False), NAME).version == waiting
    meta = json.loads((home.service / "last_known_good" / f"{NAME}.json").read_text())
    assert meta["version"] == earlier  # the copy is there, and of another version


def _forged(log: Path, signer: Signer, statement: dict[str, Any]) -> None:
    """Append a statement linked and numbered as a real one would be, signed by ``signer``."""
    existing = read(log)
    previous = entry_digest(existing[-1].as_dict()) if existing else GENESIS
    full = {**statement, "sequence": len(existing) + 1, "previous": previous, "at": "now"}
    entry = Entry(full, signer.sign(full), signer.verifier.key_id)
    with log.open("a") as out:
        out.write(json.dumps(entry.as_dict(), sort_keys=True) + "\n")


def test_a_forged_release_of_the_freeze_lifts_nothing(own: Site) -> None:
    home = own.home
    assert freeze_cli(home).exit_code == 0
    log = home.attestations / f"{NAME}.jsonl"
    _forged(
        log,
        Signer(Ed25519PrivateKey.generate()),
        {"model": NAME, "kind": LIFT, "version": "", "by": "someone", "note": "lifted"},
    )
    trust = trust_for(home, signing=False)
    assert freeze_in_force(trust, NAME) is not None
    purged = run(home, "access-log", "purge", "--before", "2020-01-01", "--by", "records")
    # The forged statement is an alarm: the log is invalid, so the evidence is kept all the more.
    assert purged.exit_code == 3 and "is invalid" in purged.output, purged.output
    assert "has no valid signature" in purged.output


def test_deleting_the_log_to_lift_a_freeze_serves_nothing(own: Site) -> None:
    home = own.home
    assert freeze_cli(home).exit_code == 0
    (home.attestations / f"{NAME}.jsonl").unlink()
    restarted = app_for(own)
    source = restarted.extensions["outreach.model"]
    assert source.current is None and source.frozen == ""
    # The freeze anchored the log's head in the service database: a missing log is an alarm.
    assert "individual_outreach.jsonl is missing" in source.problem and source.alarm
    assert restarted.test_client().get("/api/v1/readyz").status_code == 503
