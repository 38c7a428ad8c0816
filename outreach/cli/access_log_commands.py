"""``outreach access-log``: the access log verified, its checkpoints exported, old rows purged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kernel.home import Home
from kernel.settings import current
from outreach.cli.base import deployment_trust, main, open_service_db, progress, reported


@main.group("access-log")
def access_log_command() -> None:
    """The access log: verify it against its signed checkpoints, export them, purge old rows."""


def _access_log_writer(home: Home, db: Any) -> Any:
    """The home's checkpoint writer (file, key and intervals resolved here, from the
    environment, as the service resolves them)."""

    from store.access_log import CheckpointSettings, CheckpointWriter

    return CheckpointWriter(db, CheckpointSettings.resolve(home, db, current().environment))


@access_log_command.command("verify")
@click.option(
    "--checkpoints",
    "checkpoints_file",
    type=click.Path(dir_okay=False, exists=True),
    help="A shipped copy of the checkpoint file (default: the home's).",
)
@click.option(
    "--public-key",
    type=click.Path(dir_okay=False, exists=True),
    help="The access-log public key (PEM) to check it with (default: the home's).",
)
@click.pass_obj
@reported
def access_log_verify(home: Home, checkpoints_file: str | None, public_key: str | None) -> None:
    """Check every row's hash and link and every signed checkpoint; exit 3 naming what is
    broken and where."""
    from kernel.signing import load_verifier
    from store.access_log import CheckpointLog, verify

    db = open_service_db(home)
    log = _access_log_writer(home, db).log
    if checkpoints_file or public_key:
        log = CheckpointLog(
            Path(checkpoints_file) if checkpoints_file else log.path,
            key_path=log.key_path,
            verifier=load_verifier(Path(public_key)) if public_key else None,
        )
    result = verify(db, checkpoints=log)
    if result.ok:
        click.echo(f"access log {result.describe()}")
        return
    from store.access_log import AccessLogBrokenError

    where = f" at row {result.first_broken}: {result.reason}" if result.first_broken else ""
    raise AccessLogBrokenError(
        f"access log broken{where}", details=[f"access log problem: {p}" for p in result.problems]
    )


@access_log_command.command("export-checkpoints")
@click.pass_obj
@reported
def access_log_export(home: Home) -> None:
    """Print the signed checkpoints (JSON lines, as written) for shipping elsewhere."""
    log = _access_log_writer(home, open_service_db(home)).log
    data = log.export()
    click.echo(data, nl=False)
    progress(f"{len(data.splitlines())} checkpoint lines from {log.path}")


@access_log_command.command("purge")
@click.option(
    "--before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Remove the rows signed off before this day (YYYY-MM-DD, UTC), segment by segment.",
)
@click.option("--by", required=True, help="Who purges (recorded in the access log).")
@click.pass_obj
@reported
def access_log_purge(home: Home, before: Any, by: str) -> None:
    """Remove whole old segments up to a signed checkpoint, never rows younger than the
    deployment's minimum (OUTREACH_ACCESS_LOG_MIN_DAYS, default 183 days); signed and recorded."""

    from store.access_log import purge, retention_days

    min_days = retention_days(current().environment)
    writer = _access_log_writer(home, open_service_db(home))
    # Refused while an incident freeze holds the evidence, or a log does not verify. With no
    # attestation log nothing was ever attested here, so no freeze can be in force; with logs
    # but no key to verify them, nothing can be shown unfrozen (exit 3).
    attested = any(home.attestations.glob("*.jsonl"))
    incidents = deployment_trust(home, signing=False, anchored=True) if attested else None
    done = purge(writer, before=before.date(), min_days=min_days, by=by, incidents=incidents)
    if done.up_to is None:
        click.echo(f"nothing to purge: no signed checkpoint before {before:%Y-%m-%d}")
        return
    click.echo(
        f"purged {done.removed} rows up to row {done.up_to} (signed off before "
        f"{before:%Y-%m-%d}); the chain is verified from there. Recorded as access-log row "
        f"{done.record} and a signed anchor in {writer.log.path}"
    )
