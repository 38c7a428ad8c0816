"""``outreach labels``: a period's outcomes ingested and judged."""

from __future__ import annotations

import json

import click

from kernel.errors import GateError
from kernel.home import Home
from outreach.cli.base import main, open_registry, open_service_db, progress, reported


@main.group()
def labels() -> None:
    """Outcomes that came back for scored periods: ingest them and judge the list on them."""


@labels.command("ingest")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--model", "model_name", default="individual_outreach", show_default=True)
@click.option("--by", required=True, help="Who ingests (a role name; recorded with the labels).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
@reported
def labels_ingest(home: Home, file: str, model_name: str, by: str, as_json: bool) -> None:
    """Ingest FILE (CSV or Parquet: the model's id, period and label columns) for every period
    it covers; all of it or nothing. Each period must have been scored (outreach score)."""
    from lifecycle.catalogue import read_report
    from lifecycle.model_source import ModelSource
    from model.data import read_table
    from monitoring.labels import LabelColumns, ingest

    source = ModelSource(home.ensure(), model_name)
    source.refresh()
    serving = source.current
    if serving is None:
        raise GateError(f"no verified production model for {model_name}: {source.problem}")
    model = serving.model
    registry = open_registry(home)
    done = ingest(
        open_service_db(home),
        name=model_name,
        frame=read_table(file),
        columns=LabelColumns(model.id_column, model.time_column, model.label_column),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=home.monitoring,
        by=by,
        progress=progress,
    )
    if as_json:
        click.echo(json.dumps({"periods": [vars(p) for p in done]}, indent=2))
        return
    for p in done:
        extra = f"; {p.unknown:,} ids not scored that period were left out" if p.unknown else ""
        click.echo(
            f"{p.period}: {p.labelled:,} labels ({p.positives:,} positive), "
            f"{p.unlabelled:,} scored people without a label{extra}; realised at capacity: "
            f"{p.verdict}"
        )
        for warning in p.warnings:
            click.echo(f"  warning: {warning}")
