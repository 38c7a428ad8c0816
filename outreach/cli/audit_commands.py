"""``outreach audit``: the fairness audit of a file of predictions or of a registered version."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kernel.errors import BadInputError, CheckFailedError
from kernel.home import Home
from outreach.cli.base import main, open_registry, progress, reported
from outreach.cli.prediction_options import PredictionColumns, prediction_options


def _default_policy() -> str:
    import audits

    return str(Path(audits.__file__).resolve().parent / "policies" / "default.toml")


@main.command("audit")
@click.option(
    "--predictions", type=click.Path(dir_okay=False), help="CSV of another tool's output."
)
@prediction_options()
@click.option("--model", "model_ref", help="A registered version to re-audit: NAME/VERSION.")
@click.option("--data", type=click.Path(dir_okay=False), help="With --model: data to audit on.")
@click.option("--policy", type=click.Path(dir_okay=False), help="Policy file (default: shipped).")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Folder for audit.json and audit.html."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
@reported
def audit_command(
    home: Home,
    predictions: str | None,
    columns: PredictionColumns,
    model_ref: str | None,
    data: str | None,
    policy: str | None,
    out: str | None,
    as_json: bool,
) -> None:
    """Audit another tool's predictions, or re-audit a registered version on new data.

    Exit 0 pass, 3 fail, 2 bad input.
    """
    from audits.external import json_document
    from audits.policy import load_policy
    from audits.report import write_report

    if (predictions is None) == (model_ref is None):
        raise BadInputError("give either --predictions FILE or --model NAME/VERSION")
    if out:
        from audits.report import check_report_folder

        check_report_folder(out)  # before the work: an unwritable --out is said at once
    chosen_policy = load_policy(policy or _default_policy())
    for note in chosen_policy.changed_meanings:
        progress(f"note: {note}")
    if predictions is not None:
        from audits.external import audit_predictions
        from model.data import read_table

        label, sensitive = columns.required("--predictions")
        frame = read_table(predictions)
        _, report = audit_predictions(
            frame,
            policy=chosen_policy,
            label=label,
            sensitive=sensitive,
            point=columns.point(),
            source=Path(predictions).name,
            progress=progress,
        )
    else:
        from lifecycle.reaudit import reaudit

        if data is None:
            raise BadInputError("--model needs --data PATH")
        report = reaudit(open_registry(home), model_ref or "", data, policy=chosen_policy)
    folder = Path(out) if out else home.ensure().audits / report["audit_id"]
    written = write_report(report, folder)
    if report.get("not_assessable"):
        names = ", ".join(f"{n['group']} ({n['attribute']})" for n in report["not_assessable"])
        progress(f"not assessable with this data: {names}")
    paths = {"report": str(written.html_path), "report_json": str(written.json_path)}
    progress(
        f"{report['decision']}: {len(report['breaches'])} breach(es), "
        f"{len(report.get('review', []))} open question(s); report {written.html_path}"
    )
    for breach in report["breaches"]:
        progress(f"  {breach['message']}")
    for question in report.get("review", []):
        progress(f"  review: {question['message']}")
    if as_json:
        click.echo(json.dumps(json_document(report, paths), indent=2))
    if report["decision"] != "PASS":
        raise CheckFailedError(
            f"the audit's decision is {report['decision']}, not PASS (report {written.html_path})"
        )
