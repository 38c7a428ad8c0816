"""``outreach models``: registered versions, their signed states, approvals and rollback."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from kernel.errors import GateError
from kernel.home import Home
from outreach.cli.base import deployment_trust, main, open_registry, open_service_db, reported

if TYPE_CHECKING:
    from store.approvals import Decision


@main.group()
def models() -> None:
    """Registered versions, and the only ways to move production."""


@models.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reported
def models_list(home: Home, name: str | None, as_json: bool) -> None:
    """Versions with their aliases, audit decisions, state now and metrics at capacity.

    Decisions and states come from the signed statements (never from registry tags); a model
    whose attestation log does not verify shows every version as log_invalid (exit 3)."""
    from lifecycle.verified_loading import version_states

    rows = version_states(open_registry(home), name, trust=deployment_trust(home, signing=False))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_versions(rows)
    broken = sorted({str(r["name"]) for r in rows if r["state"] == "log_invalid"})
    if broken:
        first = next(r for r in rows if r["state"] == "log_invalid")
        raise GateError(str(first["reason"]), code="attestation_log_invalid")


def _print_versions(rows: list[dict[str, Any]]) -> None:
    click.echo(
        f"{'model':<24} {'ver':>4} {'aliases':<22} {'audit':<6} {'prec@k':>7} "
        f"{'state':<18} approval"
    )
    for r in rows:
        review = r.get("review_groups") or ""
        waiting = f"awaiting review ({review[:60]}{'...' if len(review) > 60 else ''})"
        approval = (
            (waiting if r["decision"] == "REVIEW" else "awaiting")
            if r["awaiting_approval"]
            else f"approved by {r['approved_by']}"
            if r["approved_by"]
            else f"rejected by {r['rejected_by']}"
            if r["rejected_by"]
            else ""
        )
        precision = "-" if r["precision_at_k"] is None else f"{r['precision_at_k']:.3f}"
        state = f"{r['state']}{' (served)' if r['serving'] else ''}"
        click.echo(
            f"{r['name']:<24} {r['version']:>4} {','.join(r['aliases']):<22} "
            f"{r['decision'] or '-':<6} {precision:>7} {state:<18} {approval}"
        )


@models.command("verify")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reported
def models_verify(home: Home, name: str, as_json: bool) -> None:
    """Check NAME's attestation log: every signature and link, its head against the one
    anchored in the service database, the verifying key against the pinned one. Exit 0 when it
    verifies; 3 naming every problem (nothing of NAME is served then)."""
    from lifecycle.catalogue import production_alias

    trust = deployment_trust(home, signing=False, anchored=True)
    state = trust.state(name, production_alias(open_registry(home), name))
    anchored, _ = trust.anchors.latest(name) if trust.anchors else (None, "")
    document = {
        "model": name,
        "valid": state.valid,
        "problems": list(state.problems),
        "statements": len(state.statements),
        "key_id": trust.verifier.key_id,
        "anchored": None
        if anchored is None
        else {"sequence": anchored.sequence, "hash": anchored.hash, "key_id": anchored.key_id},
        "serving": state.serving().as_dict(),
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
    if not state.valid:
        raise GateError(state.invalid_reason, code="attestation_log_invalid")
    if not as_json:
        where = (
            f"; head anchored at statement {anchored.sequence}" if anchored else "; no anchor yet"
        )
        click.echo(
            f"{name}: attestation log verifies ({len(state.statements)} statements, key "
            f"{trust.verifier.key_id}{where}); {state.serving().code}"
        )


@models.command("repair")
@click.argument("name")
@click.option("--by", required=True, help="Who repairs (recorded).")
@click.option("--note", required=True, help="What was restored, and from where (recorded).")
@click.pass_obj
@reported
def models_repair(home: Home, name: str, by: str, note: str) -> None:
    """Close NAME's trust alarm after the log (or the public key) was restored from a copy kept
    elsewhere: the log must verify and extend the head anchored before; exit 3 if it does not.
    The repair is recorded with who and why; nothing recovers without it."""
    anchor = deployment_trust(home, signing=False, anchored=True).repair(name, by=by, note=note)
    click.echo(
        f"repaired the attestation log of {name}: it verifies up to statement {anchor.sequence} "
        f"(key {anchor.key_id}); the service serves it again within one poll interval"
    )


def _decide(
    home: Home,
    name: str,
    version: str,
    decision: Decision,
    by: str,
    note: str,
    registry: Any = None,
) -> tuple[bool, Any]:
    """Sign and record a board's decision on ``version`` (approve, reject or withdraw) with the
    deployment's anchored trust; whether it promoted the version, and that trust."""
    from store.approvals import decide

    trust = deployment_trust(home, anchored=True)
    promoted = decide(
        open_service_db(home),
        registry if registry is not None else open_registry(home),
        name,
        version,
        trust=trust,
        decision=decision,
        by=by,
        note=note,
    )
    return promoted, trust


@models.command("approve")
@click.argument("name")
@click.argument("version")
@click.option("--by", required=True, help="Who approves (a role name).")
@click.option("--note", required=True, help="Why.")
@click.pass_obj
@reported
def models_approve(home: Home, name: str, version: str, by: str, note: str) -> None:
    """Approve a version that passed, or one whose audit asks for a review; it becomes
    production if it was awaiting approval. A review's approval names the groups it takes on."""
    promoted, trust = _decide(home, name, version, "approve", by, note)
    # The groups the signed release left open (the statement just approved, not a tag).
    release = trust.standing(name, version).release or {}
    groups = release.get("review_groups") if release.get("decision") == "REVIEW" else ""
    click.echo(f"approved {name} version {version}" + (" and promoted it" if promoted else ""))
    if groups:
        click.echo(f"the approval takes on the groups its audit could not judge: {groups}")


@models.command("reject")
@click.argument("name")
@click.argument("version")
@click.option("--by", required=True, help="Who rejects (a role name).")
@click.option("--note", required=True, help="Why.")
@click.pass_obj
@reported
def models_reject(home: Home, name: str, version: str, by: str, note: str) -> None:
    """Reject a version: it can never be served."""
    _decide(home, name, version, "reject", by, note)
    click.echo(f"rejected {name} version {version}")


@models.command("withdraw")
@click.argument("name")
@click.option("--by", required=True, help="Who withdraws (a role name).")
@click.option("--note", required=True, help="Why.")
@click.pass_obj
@reported
def models_withdraw(home: Home, name: str, by: str, note: str) -> None:
    """The board's stop button: nothing of NAME is served (503) until a new PASS release or an
    explicit re-approval. Signed and recorded; survives restarts."""
    from lifecycle.decisions import production_version

    registry = open_registry(home)
    version = production_version(registry, name)  # '' if none: later ones are stopped too
    _decide(home, name, version, "withdraw", by, note, registry=registry)
    stopped = f"version {version}" if version else "no version was in production"
    click.echo(
        f"withdrew {name} ({stopped}); the service stops serving it within one poll interval. "
        f"A new PASS release, or 'outreach models approve {name} VERSION', lifts it."
    )


@models.command("rollback")
@click.argument("name")
@click.pass_obj
@reported
def models_rollback(home: Home, name: str) -> None:
    """Move production back to the previous version that passed its audit."""
    from lifecycle.decisions import rollback

    version = rollback(open_registry(home), name, trust=deployment_trust(home))
    click.echo(f"{name}: production is now version {version}")
