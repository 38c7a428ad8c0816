"""``outreach incident``: incident freezes, signed and lifted."""

from __future__ import annotations

import click

from kernel.home import Home
from outreach.cli.base import deployment_trust, main, open_registry, open_service_db, reported


@main.group()
def incident() -> None:
    """Incident freezes: hold what is served and the evidence still while an incident is
    looked into.

    While frozen, the service serves exactly the version in production at the freeze; releases,
    approvals, rollbacks and access-log purges are refused (exit 3). Withdrawing the model is
    never blocked. Without NAME, every model released here is frozen (or released).
    """


@incident.command("freeze")
@click.argument("name", required=False)
@click.option("--note", required=True, help="What happened (recorded and signed).")
@click.option("--by", required=True, help="Who freezes (a role or user name).")
@click.pass_obj
@reported
def incident_freeze(home: Home, name: str | None, note: str, by: str) -> None:
    """Freeze NAME (default: every released model) at its production version. Signed into the
    attestation log and recorded in the access log; lifted only by 'outreach incident release'."""
    from store.incidents import freeze_recorded

    done = freeze_recorded(
        open_service_db(home),
        open_registry(home),
        deployment_trust(home, anchored=True),
        name,
        by=by,
        note=note,
    )
    for f in done:
        click.echo(f"froze {f.model} at " + (f"version {f.version}" if f.version else "no version"))
    click.echo(
        "releases, approvals, rollbacks and access-log purges are refused until "
        f"'outreach incident release{f' {name}' if name else ''} --note TEXT --by ROLE'; "
        "'outreach models withdraw' still works"
    )


@incident.command("release")
@click.argument("name", required=False)
@click.option("--note", required=True, help="How the incident was settled.")
@click.option("--by", required=True, help="Who lifts the freeze (a role or user name).")
@click.pass_obj
@reported
def incident_release(home: Home, name: str | None, note: str, by: str) -> None:
    """Lift the freeze of NAME (default: every frozen model). Signed and recorded."""
    from store.incidents import lift_recorded

    done = lift_recorded(
        open_service_db(home), deployment_trust(home, anchored=True), name, by=by, note=note
    )
    for f in done:
        click.echo(f"lifted the freeze of {f.model} (pinned at version {f.version or 'none'})")
