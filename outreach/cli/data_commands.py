"""``outreach generate``: a synthetic population to a file."""

from __future__ import annotations

import time

import click

from outreach.cli.base import main, progress, reported


@main.command()
@click.option(
    "--unit", type=click.Choice(["individual", "neighbourhood"]), required=True, help="Population."
)
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Rows (person-months).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--periods", type=click.IntRange(min=8), default=24, show_default=True)
@click.option("--preset", default="default", show_default=True, help="Bias preset, e.g. biased.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help=".parquet or .csv")
@reported
def generate(unit: str, rows: int, seed: int, periods: int, preset: str, out: str) -> None:
    """Write a seeded synthetic population (Parquet or CSV by extension)."""
    from model.synthetic import generate_preset, write_population

    started = time.perf_counter()
    frame = generate_preset(unit=unit, rows=rows, seed=seed, preset=preset, periods=periods)  # type: ignore[arg-type]
    write_population(frame, out)
    progress(f"wrote {len(frame):,} rows to {out} in {time.perf_counter() - started:.1f} s")
