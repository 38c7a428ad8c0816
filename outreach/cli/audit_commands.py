"""``outreach audit``: the fairness audit of a file of predictions or of a registered version."""

from __future__ import annotations

import json
from pathlib import Path

import click

from kernel.errors import BadInputError, CheckFailedError
from kernel.home import Home
from outreach.cli.base import main, open_registry, progress, reported


def _default_policy() -> str:
    import audits

    return str(Path(audits.__file__).resolve().parent / "policies" / "default.toml")


@main.command("audit")
@click.option(
    "--predictions", type=click.Path(dir_okay=False), help="CSV of another tool's output."
)
@click.option("--label", help="Outcome column (0/1).")
@click.option("--sensitive", help="Sensitive attribute columns, comma-separated.")
@click.option("--decision", help="The tool's 0/1 decision column.")
@click.option("--score", help="The tool's score column.")
@click.option("--threshold", type=float, help="Flag records whose score is at least this.")
@click.option("--top-k", "top_k", type=int, help="Flag the top K records by score.")
@click.option(
    "--period",
    help="The month (or period) column: the audit counts its months, and --top-k takes the top "
    "K within each.",
)
@click.option(
    "--id",
    "cluster",
    help="The person (or area) column: rows of one person are resampled together.",
)
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
    label: str | None,
    sensitive: str | None,
    decision: str | None,
    score: str | None,
    threshold: float | None,
    top_k: int | None,
    period: str | None,
    cluster: str | None,
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
        from audits.external import OperatingPoint, audit_predictions
        from model.data import read_table

        if not label or not sensitive:
            raise BadInputError("--predictions needs --label COL and --sensitive A,B")
        frame = read_table(predictions)
        point = OperatingPoint(decision, score, threshold, top_k, period, cluster)
        _, report = audit_predictions(
            frame,
            policy=chosen_policy,
            label=label,
            sensitive=[s.strip() for s in sensitive.split(",") if s.strip()],
            point=point,
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
