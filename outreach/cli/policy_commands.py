"""``outreach policy``: a policy's operating characteristics, simulated."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kernel.errors import BadInputError
from outreach.cli.base import main, progress, reported
from outreach.cli.prediction_options import PredictionColumns, prediction_options


@main.group("policy")
def policy_group() -> None:
    """Fairness policies: what a policy's gate decides, and how reliably."""


@policy_group.command("simulate")
@click.argument("policy_path", metavar="POLICY", type=click.Path(dir_okay=False))
@click.option(
    "--like",
    type=click.Path(dir_okay=False),
    help="An audit report (audit.json) whose groups, people and months to simulate.",
)
@click.option("--data", type=click.Path(dir_okay=False), help="A predictions file to audit.")
@prediction_options(needs="--data")
@click.option("--reps", type=click.IntRange(10, 5000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@reported
def policy_simulate(
    policy_path: str,
    like: str | None,
    data: str | None,
    columns: PredictionColumns,
    reps: int,
    seed: int,
    as_json: bool,
) -> None:
    """How often POLICY's gate fails, asks about, or passes each group it judges, at true
    ratios 0.5 to 1.0 of the rest's rate, on data shaped like a report's or a file's.

    Exit 0; 2 for bad input.
    """
    from audits.operating_characteristics import operating_characteristics, shape_from_report
    from audits.policy import load_policy

    chosen = load_policy(policy_path)
    if (like is None) == (data is None):
        raise BadInputError("give either --like REPORT.json or --data FILE")
    if like is not None:
        try:
            report = json.loads(Path(like).read_text())
            shape = shape_from_report(report)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInputError(f"cannot read the report {like}: {err}") from None
        except (ValueError, KeyError, TypeError) as err:
            raise BadInputError(f"{like} is not an audit report with groups: {err}") from None
    else:
        from audits.external import audit_frame
        from audits.report import audit_shape
        from model.data import read_table

        label, sensitive = columns.required("--data")
        point = columns.point()
        progress(f"auditing {data} once to learn its shape")
        outcome, chosen = audit_frame(
            read_table(data or ""),
            policy=chosen,
            label=label,
            sensitive=sensitive,
            point=point,
        )
        shape = audit_shape(chosen, outcome)
    table = operating_characteristics(chosen, shape, replicates=reps, seed=seed, progress=progress)
    if table is None:
        raise BadInputError(
            "the policy has no blocking gate the simulation can draw (a recall or selection-rate "
            "ratio with a minimum)"
        )
    document = table.as_dict()
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"{table.gate}: {table.family} group(s) judged on their own, {reps} simulated audits per "
        f"cell, {table.resamples} resamples, persistence {table.persistence:.2f}"
    )
    click.echo("fail / question / pass (%) at the group's true ratio to the rest's rate")
    header = f"{'group':<44}{'in need':>8}" + "".join(f"{r:>14}" for r in document["ratios"])
    click.echo(header + f"{'caught 80% at':>15}")
    for g in table.groups:
        cells = "".join(
            f"{c.fail * 100:>5.0f}/{c.question * 100:>3.0f}/{c.passed * 100:>3.0f}"
            for _, c in sorted(g.cells.items())
        )
        caught = "below 0.5" if g.detectable is None else f"{g.detectable:.2f}"
        name = f"{g.group} ({g.attribute})"[:43]
        click.echo(f"{name:<44}{g.people_in_need:>8}{cells}{caught:>15}")
    for sentence in document["sentences"]:
        click.echo(f"- {sentence}")
