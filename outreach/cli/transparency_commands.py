"""``outreach transparency``: the served release's transparency record."""

from __future__ import annotations

import json

import click

from kernel.home import Home
from outreach.cli.base import deployment_trust, main, open_registry, progress, reported


@main.command("transparency")
@click.argument("name")
@click.option("--version", default=None, help="A released version (default: the production one).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write transparency.json and transparency.html into.",
)
@click.option(
    "--settings",
    type=click.Path(dir_okay=False),
    default=None,
    help="The deploying agency's facts, TOML (default: <home>/transparency.toml if present).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reported
def transparency_command(
    home: Home, name: str, version: str | None, out: str, settings: str | None, as_json: bool
) -> None:
    """Write the transparency record of a served release (UK ATRS tiers 1 and 2, an algorithm-
    register entry, the model card, the datasheet and provenance), generated only from the
    attested release.

    Exit 2 for an unknown model or version, invalid settings or an unwritable folder; 3 when the
    version may not be served (unattested, tampered, rejected or withdrawn): it gets no record.
    """
    from lifecycle.transparency_record import (
        load_settings,
        required_fields_missing,
        settings_path,
        transparency_record,
        write_record,
    )

    default = settings_path(home)
    chosen = settings or (str(default) if default.is_file() else None)
    record = transparency_record(
        open_registry(home),
        deployment_trust(home, signing=False),
        name,
        version,
        settings=load_settings(chosen),
    )
    written = write_record(record, out)
    missing = required_fields_missing(record)
    progress(
        f"{name} version {record['version']}: transparency record written to {written.html_path} "
        f"and {written.json_path}"
    )
    for item in missing:
        progress(f"  required field not filled in: {item}")
    for finding in record["findings"]:
        progress(f"  finding: {finding}")
    if as_json:
        document = {
            "json": str(written.json_path),
            "html": str(written.html_path),
            "sha256": written.sha256,
            "required_fields_missing": missing,
            "record": record,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(str(written.html_path))
