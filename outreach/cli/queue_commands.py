"""``outreach queue``: a scored period loaded into the outreach queue."""

from __future__ import annotations

import click

from kernel.home import Home
from outreach.cli.base import check_month, main, reported, served_source, write_into_queue


@main.group()
def queue() -> None:
    """The outreach queue: load a period scored elsewhere."""


@queue.command("load")
@click.option(
    "--from", "source_path", type=click.Path(), required=True, help="A Spark output folder."
)
@click.option("--period", required=True, callback=check_month, help="YYYY-MM")
@click.option("--model", "model_name", default="individual_outreach", show_default=True)
@click.pass_obj
@reported
def queue_load(home: Home, source_path: str, period: str, model_name: str) -> None:
    """Replace a period's queue from `score --engine spark` output, in one transaction."""
    from jobs.batch import load_period, read_scored_period

    scored = read_scored_period(source_path, period)
    serving = served_source(home, model_name, verb="load with", degraded=False).current
    write_into_queue(home, serving, load_period, scored, period, "loaded")
