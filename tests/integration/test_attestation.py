"""Release attestations and the board's stop button, tried as a person with registry rights would.

Every test uses a real MLflow SQLite store, real signed attestation logs and the real service.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner

from kernel.errors import GateError
from kernel.home import Home
from kernel.signing import load_signer
from lifecycle.catalogue import report_path, version_tags
from lifecycle.release import ReleaseResult, approve
from lifecycle.statements import WithdrawnError, read
from lifecycle.verified_loading import load_production, trust_for
from lifecycle.version_state import LogInvalidError
from model.registry import Registry, connect, fluent
from outreach.cli import main
from service import create_app
from tests.support.homes import Site, TwoReleases, copy_home, copy_site


@pytest.fixture(scope="module")
def releases(two_releases: TwoReleases) -> tuple[Home, ReleaseResult, ReleaseResult]:
    """A home with a promoted release and a failed one (two separate releases)."""
    return two_releases.home, two_releases.good, two_releases.failed


@pytest.fixture
def own(releases: tuple[Home, ReleaseResult, ReleaseResult], tmp_path: Path) -> Home:
    """A private copy of the two releases, artifacts included: tests may change its registry,
    files and logs freely."""
    return copy_home(releases[0].root, tmp_path / "home")


def _production(registry: Registry, name: str) -> str:
    return str(registry.client.get_model_version_by_alias(name, "production").version)


def _app(home: Home, tmp_path: Path, **config):
    return create_app(
        {
            "HOME": home,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'service.db'}",
            "WATCH_SECONDS": 0,
            **config,
        }
    )


def test_a_forged_version_with_copied_tags_is_refused(own: Home, tmp_path: Path) -> None:
    """A registry user registers changed bytes as a new version, copies the audited version's
    tags (with the new bytes' sha256) and moves production: nothing signed covers it."""
    registry = connect(own)
    client = registry.client
    name = "individual_outreach"
    good = _production(registry, name)
    with fluent(registry):
        uri, folder = f"models:/{name}/{good}", str(tmp_path / "dl")
        original = Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder))
    artifact = next(original.rglob("scoring_model.json"))
    document = json.loads(artifact.read_text())
    document["intercept"] = float(document.get("intercept", 0.0)) + 3.0  # everyone scores higher
    artifact.write_text(json.dumps(document, indent=1, sort_keys=True))
    tags = version_tags(registry, name, good)
    forged = client.create_model_version(name, original.as_uri(), run_id=tags.get("run_id"))
    from model.registry import sha256_file

    for key, value in {**tags, "artifact_sha256": sha256_file(artifact)}.items():
        client.set_model_version_tag(name, forged.version, key, value)
    client.set_registered_model_alias(name, "production", str(forged.version))
    with pytest.raises(GateError, match="no signed release attestation covers it"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))
    app = _app(own, tmp_path)
    assert app.test_client().get("/api/v1/readyz").status_code == 503


def test_a_failed_version_whose_tags_say_pass_is_refused(
    own: Home, releases: tuple[Home, ReleaseResult, ReleaseResult]
) -> None:
    registry = connect(own)
    name, bad = "individual_outreach", str(releases[2].chosen.candidate.version)
    for key, value in {"audit_decision": "PASS", "approval_required": "false"}.items():
        registry.client.set_model_version_tag(name, bad, key, value)
    registry.client.set_registered_model_alias(name, "production", bad)
    with pytest.raises(GateError, match="decided FAIL"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))


def test_an_edited_report_is_refused(own: Home) -> None:
    registry = connect(own)
    name = "individual_outreach"
    loaded = load_production(registry, name, trust=trust_for(registry.home, signing=False))
    path = report_path(own.audits, loaded.audit_id)
    report = json.loads(path.read_text())
    report["decision"] = "PASS"
    report["breaches"] = []
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + " ")
    with pytest.raises(GateError, match="was changed after release"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))


def test_an_attestation_without_the_key_is_not_trusted(own: Home, tmp_path: Path) -> None:
    """Someone who can write the log but has no key appends a statement: it counts for
    nothing, and it is an alarm (the log is invalid: nothing of the model is served), never a
    statement skipped as if it were absent."""
    registry = connect(own)
    name = "individual_outreach"
    log = trust_for(own).log(name)
    outsider = load_signer(tmp_path / "outsider.key")
    from lifecycle.statements import append

    append(
        log, outsider, {"model": name, "kind": "withdrawal", "version": "", "by": "x", "note": "x"}
    )
    found = trust_for(own, signing=False).standing(name, _production(registry, name))
    assert found.withdrawn is None
    assert any("no valid signature" in p for p in found.problems)
    with pytest.raises(LogInvalidError, match=r"attestation 5 .* has no valid signature"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))


def test_the_releasing_user_cannot_approve_their_own_release(site: Site, tmp_path: Path) -> None:
    """The site's release awaiting approval was released by ``analyst-1``."""
    own = copy_site(site, tmp_path)
    registry = connect(own.home)
    name, version = own.awaiting
    served = _production(registry, name)
    with pytest.raises(GateError, match="analyst-1 released it"):
        approve(
            registry, name, version, by="Analyst-1 ", note="mine", trust=trust_for(registry.home)
        )
    assert _production(registry, name) == served != version
    assert approve(
        registry, name, version, by="oversight-1", note="checked", trust=trust_for(registry.home)
    )
    assert (
        load_production(registry, name, trust=trust_for(registry.home, signing=False)).version
        == version
    )
    entries = [e.statement for e in read(trust_for(registry.home).log(name))]
    assert [e["kind"] for e in entries][-1] == "approval"
    assert entries[-1]["by"] == "oversight-1" and entries[-1]["version"] == version


def test_withdraw_stops_serving_survives_a_restart_and_reapproval_lifts_it(
    own: Home, tmp_path: Path
) -> None:
    registry = connect(own)
    name = "individual_outreach"
    version = _production(registry, name)
    app = _app(own, tmp_path)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "--home",
            str(own.root),
            "models",
            "withdraw",
            name,
            "--by",
            "oversight",
            "--note",
            "harm",
        ],
    )
    assert result.exit_code == 0, result.output
    with pytest.raises(WithdrawnError, match="withdrawn by oversight"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))
    source.refresh()  # what the poll does
    client = app.test_client()
    assert source.current is None and "harm" in source.withdrawn
    assert client.get("/api/v1/readyz").status_code == 503
    assert client.get("/api/v1/readyz").json["status"] == "withdrawn"
    restarted = _app(own, tmp_path)  # a restart: the withdrawal is signed and recorded
    assert restarted.test_client().get("/api/v1/readyz").status_code == 503
    offline = _app(own, tmp_path, TRACKING_URI="http://127.0.0.1:9")
    assert offline.extensions["outreach.model"].current is None  # no last-known-good either
    with pytest.raises(GateError, match="second person"):  # the releasing user, again
        approve(
            registry, name, version, by=getpass.getuser(), note="n", trust=trust_for(registry.home)
        )
    assert approve(
        registry,
        name,
        version,
        by="oversight-2",
        note="reviewed, reinstated",
        trust=trust_for(registry.home),
    )
    source.refresh()
    assert source.current is not None and source.current.version == version
    assert client.get("/api/v1/readyz").status_code == 200


def test_an_alias_that_disappears_means_nothing_to_serve(own: Home, tmp_path: Path) -> None:
    registry = connect(own)
    name = "individual_outreach"
    app = _app(own, tmp_path)
    source = app.extensions["outreach.model"]
    assert source.current is not None
    registry.client.delete_registered_model_alias(name, "production")
    source.refresh()
    assert source.current is None
    assert app.test_client().get("/api/v1/readyz").status_code == 503


@pytest.mark.parametrize("change", ["bytes", "metadata"])
def test_a_changed_last_known_good_copy_is_refused(own: Home, tmp_path: Path, change: str) -> None:
    _app(own, tmp_path)  # serves and keeps a last-known-good copy
    folder = own.root / "service" / "last_known_good"
    if change == "bytes":
        artifact = folder / "individual_outreach.model.json"
        document = json.loads(artifact.read_text())
        document["intercept"] = float(document.get("intercept", 0.0)) + 1.0
        artifact.write_text(json.dumps(document, indent=1, sort_keys=True))
    else:
        meta_path = folder / "individual_outreach.json"
        meta = json.loads(meta_path.read_text())
        meta.update(version="1", decision="PASS")  # claim another (unattested) version
        meta_path.write_text(json.dumps(meta))
    offline = _app(own, tmp_path, TRACKING_URI="http://127.0.0.1:9")
    assert offline.extensions["outreach.model"].current is None
    assert offline.test_client().get("/api/v1/readyz").status_code == 503


def test_a_valid_last_known_good_copy_is_served_degraded(own: Home, tmp_path: Path) -> None:
    _app(own, tmp_path)
    offline = _app(own, tmp_path, TRACKING_URI="http://127.0.0.1:9")
    ready = offline.test_client().get("/api/v1/readyz").json
    assert ready["status"] == "degraded" and ready["model"]["degraded"] is True


def test_rotating_the_key_keeps_what_was_signed_and_retires_the_old_key(
    own: Home, tmp_path: Path
) -> None:
    registry = connect(own)
    name = "individual_outreach"
    old = load_signer(own.signing_keys.release, create=False)
    result = CliRunner().invoke(main, ["--home", str(own.root), "keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert load_production(
        registry, name, trust=trust_for(registry.home, signing=False)
    ).version == _production(registry, name)  # still holds
    new = load_signer(own.signing_keys.release, create=False)
    assert new.verifier.key_id != old.verifier.key_id
    from lifecycle.statements import append

    statement = {"model": name, "kind": "withdrawal", "version": "", "by": "x", "note": "old key"}
    trust_for(own).sign(name, {**statement, "note": "new key"})
    with pytest.raises(WithdrawnError, match="new key"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))
    append(trust_for(own).log(name), old, statement)  # someone kept the old private key
    found = trust_for(own, signing=False).standing(name, _production(registry, name))
    assert any("retired before it" in p for p in found.problems)
    with pytest.raises(LogInvalidError, match="retired before it"):  # an alarm, not a skip
        load_production(registry, name, trust=trust_for(registry.home, signing=False))


def test_a_host_with_only_the_public_key_serves_but_cannot_sign(own: Home) -> None:
    registry = connect(own)
    name = "individual_outreach"
    version = _production(registry, name)
    own.signing_keys.release.unlink()  # a serving host: release.pub only
    assert (
        load_production(registry, name, trust=trust_for(registry.home, signing=False)).version
        == version
    )
    with pytest.raises(GateError, match="can verify, not sign"):
        approve(registry, name, version, by="oversight-3", note="n", trust=trust_for(registry.home))
    assert not own.signing_keys.release.exists()  # no stray key was made


def _served_folder(registry: Registry, name: str) -> Path:
    """The production version's model folder where the store keeps it (a local artifact root)."""
    uri = registry.client.get_model_version_download_uri(name, _production(registry, name))
    assert uri.startswith("file://"), uri
    return Path(uri.removeprefix("file://"))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("add a pickle", "python_model.pkl was added"),
        ("edit the pyfunc's code", "was changed"),
        ("edit MLmodel", "MLmodel was changed"),
        ("remove requirements.txt", "requirements.txt was removed"),
    ],
)
def test_a_changed_file_beside_the_scoring_model_is_refused(
    own: Home, tmp_path: Path, change: str, named: str
) -> None:
    """A registry user leaves the scoring model's JSON as attested but changes another file of
    the version's folder, which MLflow would run or read when the pyfunc is loaded."""
    registry = connect(own)
    name = "individual_outreach"
    load_production(
        registry, name, trust=trust_for(registry.home, signing=False)
    )  # served as released
    folder = _served_folder(registry, name)
    assert folder.is_relative_to(own.root)  # the copy's own artifacts
    _change_folder(folder, change)
    with pytest.raises(GateError, match="model folder differs") as refused:
        load_production(registry, name, trust=trust_for(registry.home, signing=False))
    assert named in str(refused.value)
    assert _app(own, tmp_path).test_client().get("/api/v1/readyz").status_code == 503


def _change_folder(folder: Path, change: str) -> None:
    if change == "add a pickle":
        (folder / "python_model.pkl").write_bytes(b"\x80\x04N.")
    elif change == "edit the pyfunc's code":
        code = next(p for p in folder.rglob("*.py"))
        code.write_text(code.read_text() + "\nimport os  # anything could run here\n")
    elif change == "edit MLmodel":
        (folder / "MLmodel").write_text((folder / "MLmodel").read_text() + "\n# edited\n")
    else:
        (folder / "requirements.txt").unlink()


def test_the_release_attests_every_file_of_the_model_folder(own: Home) -> None:
    """The signed statement lists the folder as the store holds it: the scoring model's JSON,
    the pyfunc's code and MLflow's descriptors, and no pickle."""
    registry = connect(own)
    name = "individual_outreach"
    loaded = load_production(registry, name, trust=trust_for(registry.home, signing=False))
    files = loaded.attestation["files"]
    assert isinstance(files, dict)
    assert files["artifacts/scoring_model.json"] == loaded.artifact_sha256
    assert {"MLmodel", "requirements.txt"} <= set(files)
    assert any(path.endswith(".py") for path in files)
    assert not any(path.endswith((".pkl", ".pickle", ".cloudpickle")) for path in files)
    from model.registry import folder_manifest

    assert folder_manifest(_served_folder(registry, name)) == files


def test_a_release_statement_without_a_manifest_is_refused(own: Home) -> None:
    """A statement signed by an older release (no file manifest) no longer suffices to serve."""
    registry = connect(own)
    name = "individual_outreach"
    attested = load_production(
        registry, name, trust=trust_for(registry.home, signing=False)
    ).attestation
    # The same release as signed before the manifest existed: every field but "files".
    older = {
        k: v
        for k, v in attested.items()
        if k not in ("files", "model", "sequence", "previous", "at")
    }
    trust_for(own).sign(name, older)
    with pytest.raises(GateError, match="names no manifest"):
        load_production(registry, name, trust=trust_for(registry.home, signing=False))
