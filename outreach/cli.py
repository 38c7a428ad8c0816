"""The ``outreach`` command line: a thin adapter over the model, audits and service packages.

Errors from the project's exception tree become one line on stderr and their exit code (2 for bad
input); progress goes to stderr; ``--json`` prints one document on stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from model.errors import BadInputError, CheckFailedError, GateError, OutreachError
from model.home import Home

F = TypeVar("F", bound=Callable[..., Any])


def _progress(message: str) -> None:
    click.echo(message, err=True)


def reported(func: F) -> F:
    """Turn project errors into a clear message and their exit code, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OutreachError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="OUTREACH_HOME",
    help="Project home folder (MLflow store, artifacts, service data). Default ./.outreach",
)
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Fair, audited, explainable scoring for voluntary welfare outreach."""
    import os

    from model.files import private_umask

    # What any command writes in the home (stores, keys, audits, the database) is the owner's
    # alone; restored when the command ends (it matters when called in-process, as tests do).
    previous = private_umask()
    ctx.call_on_close(lambda: os.umask(previous))
    ctx.obj = Home.resolve(home)


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
    _progress(f"wrote {len(frame):,} rows to {out} in {time.perf_counter() - started:.1f} s")


def load_dataset(spec_path: str, data: str | None, *, progress: Callable[[str], None]) -> Any:
    """Load the spec, then its data (``--data`` first, else the spec's source), validated."""
    from model.data import read_table, validate
    from model.spec import load_spec

    spec = load_spec(spec_path)
    if data is not None:
        frame = read_table(data)
    elif spec.data.path is not None:
        frame = read_table(spec.resolve_path(spec.data.path))
    else:
        from model.synthetic import generate_preset

        assert spec.data.synthetic_preset is not None
        progress(
            f"generating the synthetic '{spec.data.synthetic_preset}' {spec.unit} population "
            f"({spec.data.synthetic_rows:,} rows, seed {spec.data.synthetic_seed})"
        )
        frame = generate_preset(
            unit=spec.unit,
            rows=spec.data.synthetic_rows,
            seed=spec.data.synthetic_seed,
            preset=spec.data.synthetic_preset,
            periods=spec.data.synthetic_periods,
        )
    dataset = validate(frame, spec)
    progress(f"validated {len(dataset.frame):,} rows against {spec.name}")
    return spec, dataset


def train_summary(result: Any, run_id: str) -> dict[str, Any]:
    """The ``train --json`` document."""

    def metrics(values: dict[str, float | None]) -> dict[str, float | None]:
        keys = ("precision_at_k", "recall_at_k", "roc_auc", "average_precision", "brier")
        return {k: values[k] for k in keys}

    random_p = result.baselines["random"].mean["precision_at_k"]
    heuristic_p = result.baselines["heuristic"].mean["precision_at_k"]
    candidates = []
    for c in result.candidates:
        precision = c.mean["precision_at_k"] or 0.0
        candidates.append(
            {
                "name": c.config.name,
                "label": c.config.label,
                "family": c.config.family,
                "version": c.version,
                "metrics": metrics(c.mean),
                "lift_over_random": precision / random_p if random_p else None,
                "lift_over_heuristic": precision / heuristic_p if heuristic_p else None,
                "per_split": [m.as_dict() for m in c.per_split],
            }
        )
    spec = result.spec
    return {
        "experiment": spec.name,
        "registered_model": spec.name,
        "run_id": run_id,
        "capacity": spec.capacity.describe(),
        "splits": [s.describe() for s in result.splits],
        "data_fingerprint": result.data_fingerprint,
        "best": result.best().config.name,
        "candidates": candidates,
        "baselines": {name: metrics(b.mean) for name, b in result.baselines.items()},
        "treated": result.treatment.as_dict(),
    }


def print_table(summary: dict[str, Any]) -> None:
    """A human-readable comparison of candidates and baselines on stderr."""
    rows = [(c["label"], c["version"], c["metrics"]) for c in summary["candidates"]] + [
        (f"baseline: {n}", "-", m) for n, m in summary["baselines"].items()
    ]
    _progress(
        f"\n{summary['experiment']}: mean over {len(summary['splits'])} temporal splits, "
        f"capacity {summary['capacity']}"
    )
    _progress(
        f"{'model':<58} {'ver':>4} {'prec@k':>7} {'recall@k':>8} {'AUC':>6} {'AP':>6} {'Brier':>6}"
    )

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for label, version, m in rows:
        _progress(
            f"{label[:58]:<58} {version or '-':>4} {fmt(m['precision_at_k']):>7} "
            f"{fmt(m['recall_at_k']):>8} {fmt(m['roc_auc']):>6} "
            f"{fmt(m['average_precision']):>6} {fmt(m['brier']):>6}"
        )


def experiment_command(func: F) -> F:
    """The arguments ``train`` and ``release`` share: EXPERIMENT, --data, --json."""
    decorated: Any = reported(func)
    for option in (
        click.pass_obj,
        click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout."),
        click.option(
            "--data", type=click.Path(dir_okay=False), help="CSV or Parquet instead of the spec's."
        ),
        click.argument("experiment", type=click.Path(dir_okay=False)),
    ):
        decorated = option(decorated)
    return decorated


def run_training(home: Home, spec_path: str, data: str | None) -> dict[str, Any]:
    from model.registry import connect, log_training
    from model.train import train

    spec, dataset = load_dataset(spec_path, data, progress=_progress)
    result = train(spec, dataset, progress=_progress)
    registry = connect(home)
    run_id = log_training(registry, result, progress=_progress)
    return train_summary(result, run_id)


@main.command("train")
@experiment_command
def train_command(home: Home, experiment: str, data: str | None, as_json: bool) -> None:
    """Train an experiment's candidates and log them to MLflow (no alias is moved)."""
    summary = run_training(home, experiment, data)
    print_table(summary)
    if as_json:
        click.echo(json.dumps(summary, indent=2))


def _registry(home: Home) -> Any:
    from model.registry import connect

    return connect(home)


def _has_service_db(home: Home) -> bool:
    return home.database_url is not None or (home.root / "service.db").exists()


def _trust(home: Home, *, signing: bool = True, anchored: bool = False) -> Any:
    """The deployment's trust, its log heads anchored in the service database (when there is
    one, or ``anchored``: a home that never ran the service anchors at its first poll)."""
    from audits.loading import trust_for
    from service.attestation_heads import DatabaseAnchors

    trust = trust_for(home, signing=signing)
    if anchored or _has_service_db(home):
        return trust.with_anchors(DatabaseAnchors(_service_db(home)))
    return trust


def release_job(home: Home, spec_path: str, data: str | None) -> Any:
    """Train, audit, gate and register one experiment; returns the release result."""
    return release_with_data(home, spec_path, data)[0]


def release_with_data(home: Home, spec_path: str, data: str | None) -> tuple[Any, Any]:
    from audits.release import policy_for

    spec, dataset = load_dataset(spec_path, data, progress=_progress)
    return _release(home, spec, dataset, policy_for(spec)), dataset


def _release(home: Home, spec: Any, dataset: Any, policy: Any) -> Any:
    """Release ``spec`` on ``dataset`` under ``policy`` with progress on stderr, the audit
    carrying the labelled months since earlier releases (the CLI's one way to release)."""
    from audits.release import release

    _progress(f"policy '{policy.name}' (sha256 {policy.sha256[:12]}...)")
    for note in policy.changed_meanings:
        _progress(f"  note: {note}")
    trust = _trust(home)
    done = release(
        spec,
        dataset,
        _registry(home),
        policy=policy,
        progress=_progress,
        after_release=_after_release(home, spec.name),
        trust=trust,
    )
    if trust.anchors is not None:
        trust.anchor(spec.name)
    return done


def _after_release(home: Home, name: str) -> dict[str, Any] | None:
    """What the labelled months since earlier releases showed (none for a new home)."""
    from service.period_report import after_release_evidence

    if not _has_service_db(home):
        return None
    with _service_db(home).session() as session:
        found = after_release_evidence(session, name)
    if found:
        _progress(
            f"the audit report carries {len(found['months'])} labelled month(s) since release"
        )
    return found


def print_release(summary: dict[str, Any]) -> None:
    _progress(
        f"\n{summary['registered_model']}: {summary['decision']} - version {summary['version']} "
        f"({summary['candidate']})"
    )
    for c in summary["candidates"]:
        ratio = c["worst_recall_ratio"]
        ratio_text = "-" if ratio is None else f"{ratio:.2f}"
        _progress(
            f"  {c['name']:<34} v{c['version']:<4} {c['decision']:<5} precision@k "
            f"{c['precision_at_k']:.3f}  worst recall ratio {ratio_text}  "
            f"breaches {c['breaches']}  open questions {c['review']}"
        )
    for b in summary["breaches"]:
        if None in b["ci"]:  # a finding without an interval (proxy, missingness) says itself
            _progress(f"  breach: {b['message']}")
            continue
        _progress(
            f"  breach: {b['metric']} for {b['group']} ({b['attribute']}): {b['value']} "
            f"(interval {b['ci']}), limit {b['limit']}"
        )
    for r in summary["review"][:20]:
        _progress(f"  review: {r['message']}")
    if len(summary["review"]) > 20:
        _progress(f"  ... and {len(summary['review']) - 20} more open question(s) in the report")
    if summary.get("not_assessable"):
        names = "; ".join(f"{n['group']} ({n['attribute']})" for n in summary["not_assessable"])
        _progress(
            f"  not assessable with this data ({len(summary['not_assessable'])} group(s), "
            f"named in the report and any approval): {names}"
        )
    for w in summary["warnings"][:10]:
        _progress(f"  warning: {w['message']}")
    if len(summary["warnings"]) > 10:
        _progress(f"  ... and {len(summary['warnings']) - 10} more warning(s) in the report")
    if summary["promoted"]:
        _progress(f"  promoted version {summary['version']} to production")
    elif summary["awaiting_approval"] and summary["decision"] == "REVIEW":
        _progress(
            f"  version {summary['version']} needs a review: the audit could not settle every "
            "question, so an oversight user decides, taking on the groups named above: "
            f"outreach models approve {summary['registered_model']} {summary['version']} "
            "--by ROLE --note TEXT"
        )
    elif summary["awaiting_approval"]:
        if summary.get("disclosed_beyond"):
            names = "; ".join(
                f"{n['group']} ({n['attribute']})" for n in summary["disclosed_beyond"]
            )
            _progress(
                "  too small to judge, but their own estimates are beyond a limit, so a person "
                f"accepts them before serving: {names}"
            )
        _progress(
            f"  version {summary['version']} passed and awaits an oversight approval: "
            f"outreach models approve {summary['registered_model']} {summary['version']} "
            "--by ROLE --note TEXT"
        )
    else:
        _progress("  nothing was promoted")
    _progress(f"  audit report: {summary['report']}")


@main.command("release")
@experiment_command
def release_command(home: Home, experiment: str, data: str | None, as_json: bool) -> None:
    """Train, audit every candidate, gate, register; promote the best that passes.

    Exit 0 when promoted or awaiting approval (PASS, or REVIEW), 3 when the gate failed
    (nothing promoted).
    """
    summary = release_job(home, experiment, data).summary()
    print_release(summary)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    if summary["decision"] == "FAIL":
        raise GateError("the gate failed every candidate; nothing was promoted")


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
    from audits.loading import version_states

    rows = version_states(_registry(home), name, trust=_trust(home, signing=False))
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
    from audits.catalogue import production_alias

    trust = _trust(home, signing=False, anchored=True)
    state = trust.state(name, production_alias(_registry(home), name))
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
    anchor = _trust(home, signing=False, anchored=True).repair(name, by=by, note=note)
    click.echo(
        f"repaired the attestation log of {name}: it verifies up to statement {anchor.sequence} "
        f"(key {anchor.key_id}); the service serves it again within one poll interval"
    )


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
    from service.approvals import decide

    registry = _registry(home)
    promoted = decide(
        _service_db(home), registry, name, version, decision="approve", by=by, note=note
    )
    # The groups the signed release left open (the statement just approved, not a tag).
    release = _trust(home, signing=False).standing(name, version).release or {}
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
    from service.approvals import decide

    decide(_service_db(home), _registry(home), name, version, decision="reject", by=by, note=note)
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
    from audits.release import production_version
    from service.approvals import decide

    registry = _registry(home)
    version = production_version(registry, name)  # '' if none: later ones are stopped too
    decide(_service_db(home), registry, name, version, decision="withdraw", by=by, note=note)
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
    from audits.release import rollback

    version = rollback(_registry(home), name)
    click.echo(f"{name}: production is now version {version}")


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
        _progress(f"note: {note}")
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
            progress=_progress,
        )
    else:
        from audits.reaudit import reaudit

        if data is None:
            raise BadInputError("--model needs --data PATH")
        report = reaudit(_registry(home), model_ref or "", data, policy=chosen_policy)
    folder = Path(out) if out else home.ensure().audits / report["audit_id"]
    written = write_report(report, folder)
    if report.get("not_assessable"):
        names = ", ".join(f"{n['group']} ({n['attribute']})" for n in report["not_assessable"])
        _progress(f"not assessable with this data: {names}")
    paths = {"report": str(written.html_path), "report_json": str(written.json_path)}
    _progress(
        f"{report['decision']}: {len(report['breaches'])} breach(es), "
        f"{len(report.get('review', []))} open question(s); report {written.html_path}"
    )
    for breach in report["breaches"]:
        _progress(f"  {breach['message']}")
    for question in report.get("review", []):
        _progress(f"  review: {question['message']}")
    if as_json:
        click.echo(json.dumps(json_document(report, paths), indent=2))
    if report["decision"] != "PASS":
        raise CheckFailedError(
            f"the audit's decision is {report['decision']}, not PASS (report {written.html_path})"
        )


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
@click.option("--label", help="With --data: the outcome column (0/1).")
@click.option("--sensitive", help="With --data: sensitive attribute columns, comma-separated.")
@click.option("--decision", help="With --data: the 0/1 decision column.")
@click.option("--score", help="With --data: the score column.")
@click.option("--threshold", type=float, help="With --data and --score: flag from this score.")
@click.option("--top-k", "top_k", type=int, help="With --data and --score: flag the top K.")
@click.option("--period", help="With --data: the month column.")
@click.option("--id", "cluster", help="With --data: the person (or area) column.")
@click.option("--reps", type=click.IntRange(10, 5000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@reported
def policy_simulate(
    policy_path: str,
    like: str | None,
    data: str | None,
    label: str | None,
    sensitive: str | None,
    decision: str | None,
    score: str | None,
    threshold: float | None,
    top_k: int | None,
    period: str | None,
    cluster: str | None,
    reps: int,
    seed: int,
    as_json: bool,
) -> None:
    """How often POLICY's gate fails, asks about, or passes each group it judges, at true
    ratios 0.5 to 1.0 of the rest's rate, on data shaped like a report's or a file's.

    Exit 0; 2 for bad input.
    """
    from audits.policy import load_policy
    from audits.simulate import operating_characteristics, shape_from_report

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
        from audits.external import OperatingPoint, audit_frame
        from audits.report import audit_shape
        from model.data import read_table

        if not label or not sensitive:
            raise BadInputError("--data needs --label COL and --sensitive A,B")
        point = OperatingPoint(decision, score, threshold, top_k, period, cluster)
        _progress(f"auditing {data} once to learn its shape")
        outcome, chosen = audit_frame(
            read_table(data or ""),
            policy=chosen,
            label=label,
            sensitive=[s.strip() for s in sensitive.split(",") if s.strip()],
            point=point,
        )
        shape = audit_shape(chosen, outcome)
    table = operating_characteristics(chosen, shape, replicates=reps, seed=seed, progress=_progress)
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


def _service_db(home: Home) -> Any:
    from service.db import Database, default_url

    db = Database(home.database_url or default_url(home.ensure().root))
    db.upgrade()
    return db


@main.group()
def users() -> None:
    """Service users, their API tokens, areas and access.

    Tokens expire after OUTREACH_TOKEN_DAYS days (default 90) unless --days says otherwise.
    """


ROLE_CHOICE = click.Choice(["coordinator", "analyst", "oversight", "admin"])
DAYS_OPTION = click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help="Days the token works (default: OUTREACH_TOKEN_DAYS, else 90).",
)


def _expiry(days: int | None) -> str:
    from datetime import UTC, datetime, timedelta

    from service.auth import default_token_days

    lifetime = days if days is not None else default_token_days()
    return f"{datetime.now(UTC) + timedelta(days=lifetime):%Y-%m-%d}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


#: What ``--password`` holds when given alone: ask for it without echo.
_ASK = "\x00ask"


def _new_password(password: str | None, from_stdin: bool, from_file: str | None) -> str | None:
    """The page password of ``users add``: asked for without echo (``--password`` alone), read
    from stdin (``--password-stdin``) or from a file (``--password-file``); never taken from the
    command line, where ``ps`` and /proc/*/cmdline show it to every local user."""
    given = [password is not None, from_stdin, from_file is not None]
    if sum(given) > 1:
        raise BadInputError("give one of --password, --password-stdin and --password-file")
    if password is not None and password != _ASK:
        raise BadInputError(
            "a password is never given on the command line (any local user can read it there): "
            "give --password alone to be asked for it without echo, or pipe it with "
            "--password-stdin, or name a file only you can read with --password-file PATH"
        )
    if password == _ASK:
        entered: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
        return entered
    if from_stdin:
        return _first_line(sys.stdin.readline(), "stdin")
    if from_file is not None:
        try:
            text = Path(from_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise BadInputError(f"--password-file {from_file}: cannot read it: {err}") from err
        return _first_line(text.splitlines()[0] if text else "", from_file)
    return None


def _first_line(line: str, where: str) -> str:
    value = line.rstrip("\r\n")
    if not value:
        raise BadInputError(f"no password in {where} (its first line is empty)")
    return value


@users.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option(
    "--password",
    is_flag=False,
    flag_value=_ASK,
    default=None,
    help="Also set a password for the web pages (12+ characters): give the option alone to be "
    "asked for it without echo (a value on the command line is refused).",
)
@click.option(
    "--password-stdin",
    "password_stdin",
    is_flag=True,
    help="Read the page password from the first line of stdin.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="Read the page password from the first line of this file.",
)
@DAYS_OPTION
@click.pass_obj
@reported
def users_add(
    home: Home,
    name: str,
    role: str,
    password: str | None,
    password_stdin: bool,
    password_file: str | None,
    days: int | None,
) -> None:
    """Create a user; prints its API token once, alone on the last line."""
    from service.auth import add_user

    secret = _new_password(password, password_stdin, password_file)
    expires = _expiry(days)
    token = add_user(_service_db(home), name, role, password=secret, days=days)
    click.echo(f"created {role} '{name}'; its API token (shown only now; expires {expires}):")
    click.echo(token)


@users.command("password")
@click.argument("name")
@click.password_option(help="The new password (12+ characters); asked for without echo.")
@click.pass_obj
@reported
def users_password(home: Home, name: str, password: str) -> None:
    """Set or replace a user's password for the web pages.

    Also ends every page session of the user and revokes every API token they hold.
    """
    from service.auth import set_password

    revoked = set_password(_service_db(home), name, password)
    click.echo(
        f"password set for '{name}'; signed out everywhere and "
        f"{_plural(revoked, 'API token')} revoked (outreach users token {name} makes a new one)"
    )


@users.command("token")
@click.argument("name")
@DAYS_OPTION
@click.pass_obj
@reported
def users_token(home: Home, name: str, days: int | None) -> None:
    """A new API token for NAME; printed once, alone on the last line."""
    from service.auth import issue_token

    expires = _expiry(days)
    token = issue_token(_service_db(home), name, days=days)
    click.echo(f"new API token for '{name}' (shown only now; expires {expires}):")
    click.echo(token)


@users.command("tokens")
@click.argument("name")
@click.pass_obj
@reported
def users_tokens(home: Home, name: str) -> None:
    """List NAME's API tokens: id, created, expires, status (never the token itself)."""
    from service.auth import list_tokens

    found = list_tokens(_service_db(home), name)
    if not found:
        click.echo(f"'{name}' has no API tokens")
        return
    click.echo(f"{'id':>6}  {'created':<17}  {'expires':<17}  status")
    for info in found:
        expires = f"{info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at else "-"
        click.echo(f"{info.id:>6}  {info.created_at:%Y-%m-%d %H:%M}  {expires:<17}  {info.status}")


@users.command("revoke-token")
@click.argument("name")
@click.option("--id", "token_id", type=click.IntRange(min=1), help="The token's id (users tokens).")
@click.option("--all", "every", is_flag=True, help="Every token of NAME.")
@click.option(
    "--token-stdin",
    is_flag=True,
    help="Read the token itself from stdin (never give a token as an argument: it would be "
    "kept in shell history and shown to other users by ps).",
)
@click.pass_obj
@reported
def users_revoke_token(
    home: Home, name: str, token_id: int | None, every: bool, token_stdin: bool
) -> None:
    """Revoke one of NAME's API tokens (--id or --token-stdin) or all of them (--all).

    A revoked token is refused from the next request on, in every worker.
    """
    from service.auth import revoke_token_value, revoke_tokens

    if sum((token_id is not None, every, token_stdin)) != 1:
        raise BadInputError("say which token: exactly one of --id ID, --all or --token-stdin")
    db = _service_db(home)
    if token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise BadInputError("no token on stdin")
        found = revoke_token_value(db, name, token)
        click.echo(f"revoked token {found} of '{name}'")
        return
    revoked = revoke_tokens(db, name, token_id=token_id)
    if token_id is not None:
        state = "revoked" if revoked else "was already revoked:"
        click.echo(f"{state} token {token_id} of '{name}'")
    else:
        click.echo(f"revoked {_plural(revoked, 'API token')} of '{name}'")


@users.command("disable")
@click.argument("name")
@click.pass_obj
@reported
def users_disable(home: Home, name: str) -> None:
    """Disable NAME: no sign-in, every page session ended, every API token revoked."""
    from service.auth import disable_user

    revoked = disable_user(_service_db(home), name)
    click.echo(
        f"disabled '{name}': signed out everywhere and {_plural(revoked, 'API token')} revoked"
    )


@users.command("delete")
@click.argument("name")
@click.pass_obj
@reported
def users_delete(home: Home, name: str) -> None:
    """Remove NAME: every API token revoked and every page session ended first, then the user
    (a new user never gets its id again)."""
    from service.auth import delete_user

    revoked = delete_user(_service_db(home), name)
    click.echo(
        f"deleted '{name}': {_plural(revoked, 'API token')} revoked and every session ended first"
    )


@users.command("enable")
@click.argument("name")
@click.pass_obj
@reported
def users_enable(home: Home, name: str) -> None:
    """Let a disabled user sign in again; their old tokens stay revoked."""
    from service.auth import enable_user

    was = enable_user(_service_db(home), name)
    if not was:
        click.echo(f"'{name}' was not disabled; nothing changed")
        return
    click.echo(
        f"enabled '{name}': they may sign in with their password; old API tokens stay revoked "
        f"(outreach users token {name} makes a new one)"
    )


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=ROLE_CHOICE)
@click.pass_obj
@reported
def users_set_role(home: Home, name: str, role: str) -> None:
    """Give NAME a new role: page sessions end; API tokens carry the new role from the next
    request (revoke them with revoke-token --all if that is not wanted); leaving the
    coordinator role clears the areas."""
    from service.auth import set_role

    change = set_role(_service_db(home), name, role)
    if change.previous == role:
        click.echo(f"'{name}' is already {role}; nothing changed")
    else:
        click.echo(
            f"'{name}' is now {role} (was {change.previous}); signed out of the pages; API "
            "tokens kept, with the new role"
        )
    if change.cleared:
        click.echo(f"areas cleared (only coordinators have areas): {', '.join(change.cleared)}")


@users.command("areas")
@click.argument("name")
@click.argument("area", nargs=-1)
@click.option("--clear", is_flag=True, help="Remove every area (the coordinator sees no one).")
@click.pass_obj
@reported
def users_areas(home: Home, name: str, area: tuple[str, ...], clear: bool) -> None:
    """Set the areas coordinator NAME works in (replacing the old ones), or show them.

    '*' stands for every area. With no AREA and no --clear, prints the current areas. Applies
    from the user's next request.
    """
    from service.auth import areas_of, known_areas, set_areas

    db = _service_db(home)
    if clear and area:
        raise BadInputError("give areas or --clear, not both")
    if not clear and not area:
        now = areas_of(db, name)
        click.echo(f"'{name}' works in: {', '.join(now)}" if now else f"'{name}' has no areas")
        return
    chosen = set_areas(db, name, list(area))
    if not chosen:
        click.echo(f"cleared the areas of '{name}': they see no one on the outreach list")
        return
    click.echo(f"'{name}' now works in: {', '.join(chosen)}")
    unknown = sorted(set(chosen) - set(known_areas(db)) - {"*"})
    if unknown:
        _progress(f"warning: no outreach list has these areas yet: {', '.join(unknown)}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_obj
@reported
def users_list(home: Home, as_json: bool) -> None:
    """Every user: role, status, working API tokens, page password, areas."""
    from service.auth import list_users

    found = list_users(_service_db(home))
    if as_json:
        document = [
            {
                "name": u.name,
                "role": u.role,
                "disabled": u.disabled,
                "password": u.password,
                "active_tokens": u.active_tokens,
                "areas": list(u.areas),
            }
            for u in found
        ]
        click.echo(json.dumps({"users": document}, indent=2))
        return
    if not found:
        click.echo("no users yet (outreach users add NAME --role ROLE)")
        return
    width = max(4, *(len(u.name) for u in found))
    click.echo(f"{'name':<{width}}  {'role':<11}  {'status':<8}  tokens  pages  areas")
    for u in found:
        click.echo(
            f"{u.name:<{width}}  {u.role:<11}  {'disabled' if u.disabled else 'active':<8}  "
            f"{u.active_tokens:>6}  {'yes' if u.password else 'no':<5}  "
            f"{', '.join(u.areas) if u.areas else '-'}"
        )


@users.command("unlock")
@click.argument("name")
@click.pass_obj
@reported
def users_unlock(home: Home, name: str) -> None:
    """Lift the sign-in locks on NAME (after too many wrong passwords), at every address."""
    from service.signin import unlock

    removed = unlock(_service_db(home), name)
    if removed:
        click.echo(f"lifted the sign-in locks and counts on '{name}'")
    else:
        click.echo(f"'{name}' had no sign-in locks or counts")


def _monitored_attributes(home: Home, audit_id: str) -> list[str]:
    """The sensitive attributes the serving model's audit covered (for monitoring counts)."""
    from audits.catalogue import read_report
    from service.monitoring import audited_attributes

    try:
        return audited_attributes(read_report(_registry(home), audit_id))
    except OutreachError:
        return []


def _month(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A month option, by the one month rule (:func:`model.rules.month_problem`); exit 2."""
    from model.rules import month_problem

    if value is not None and (problem := month_problem(value)) is not None:
        raise click.BadParameter(problem)
    return value


@main.command("score")
@click.option("--data", type=click.Path(), required=True)
@click.option(
    "--period",
    callback=_month,
    help="YYYY-MM (default: the latest period in the data; with --out or on Spark: every period).",
)
@click.option("--model", "model_name", default="individual_outreach", show_default=True)
@click.option(
    "--out",
    type=click.Path(),
    help="Write scores here, not the queue (on Spark: a Parquet folder, by period).",
)
@click.option(
    "--engine",
    type=click.Choice(["process", "spark"]),
    default="process",
    show_default=True,
    help="process: in this process; spark: MLflow's pyfunc Spark UDF over Parquet.",
)
@click.option(
    "--master", default="local[*]", show_default=True, help="Spark master (--engine spark)."
)
@click.pass_obj
@reported
def score_command(
    home: Home,
    data: str,
    period: str | None,
    model_name: str,
    out: str | None,
    engine: str,
    master: str,
) -> None:
    """Score a period with reasons into the outreach queue (or a file), in one transaction."""
    if engine == "spark":
        _score_on_spark(home, data, period, model_name, out, master)
        return
    from model.data import read_month, read_table
    from service.batch import score_file, score_period

    serving = _served(home, model_name, verb="score with").current
    assert serving is not None
    if out is not None and period is None:
        frame = read_table(data)  # every period
    else:
        # One month: from Parquet only its rows are read (the filter is pushed into the
        # reader); a CSV cannot be filtered while it is read, so it is read whole.
        frame, pushed = read_month(
            data, serving.model.time_column, period, keep=[serving.model.id_column]
        )
        if not pushed:
            _progress(
                f"read every row of {data} ({Path(data).suffix or 'no extension'}: a month can "
                "be read alone only from Parquet)"
            )
    if out is not None:
        from model.synthetic import write_population

        scored = score_file(_service_db(home), serving, frame, period=period)
        write_population(scored.frame, out)
        click.echo(
            f"wrote {len(scored.frame):,} scored rows of {', '.join(scored.periods)} to {out} "
            f"(model {serving.name} v{serving.version}, audit {serving.audit_id}; each row "
            "names its month in scored_period; percentiles against the release's validation "
            f"population, the same in every month); {scored.opted_out:,} opted out, not scored"
        )
        return
    _into_queue(home, serving, score_period, frame, period, "scored")


def _served(home: Home, model_name: str, *, verb: str, degraded: bool = True) -> Any:
    """The model source after one poll, resolved exactly as the service resolves it (the
    attestation log checked against its anchored head, the freeze pin, production mode), or
    exit 3 in the service's words (``degraded``: whether a last-known-good copy will do)."""
    import os

    from service.attestation_heads import DatabaseAnchors
    from service.loader import ModelSource
    from service.startup import environment_mode

    source = ModelSource(
        home.ensure(),
        model_name,
        production=environment_mode(os.environ.get("OUTREACH_ENV")) == "production",
        anchors=DatabaseAnchors(_service_db(home)),
    )
    source.refresh()
    current = source.current
    if current is None or (current.degraded and not degraded):
        pause = source.pause()
        raise GateError(
            f"no verified production model to {verb}: {source.problem}",
            code=pause.code if pause is not None else "model_unavailable",
        )
    return source


def _verified_production(home: Home, model_name: str) -> Any:
    """The version the service would serve, as a loaded model for Spark, or exit 3."""
    from audits.loading import LoadedModel

    source = _served(home, model_name, verb="score with", degraded=False)
    current = source.current
    release = source.state.version(current.version).release
    return LoadedModel(
        current.name,
        current.version,
        current.audit_id,
        current.decision,
        current.model,
        {},
        current.artifact_sha256,
        release,
    )


def _score_on_spark(
    home: Home, data: str, period: str | None, model_name: str, out: str | None, master: str
) -> None:
    if out is None:
        raise BadInputError("--engine spark writes a Parquet folder: give it with --out PATH")
    if not Path(data).exists():
        raise BadInputError(f"{data}: no such file or folder")
    if Path(data).is_file() and Path(data).suffix.lower() not in (".parquet", ".pq"):
        raise BadInputError(f"{data}: --engine spark reads Parquet (a file or a folder)")
    from service.spark_batch import score_on_spark, spark_session

    loaded = _verified_production(home, model_name)  # before any Spark work starts
    started = time.perf_counter()
    spark = spark_session(master)
    _progress(
        f"Spark session on {spark.sparkContext.master} in {time.perf_counter() - started:.1f} s"
    )
    from service.batch import opted_out

    excluded = opted_out(_service_db(home))
    result = score_on_spark(
        spark, loaded, data, out, period=period, exclude=excluded, progress=_progress
    )
    click.echo(
        f"scored {result.rows:,} rows of {', '.join(result.periods)} on Spark into {result.out} "
        f"(model {loaded.name} v{loaded.version}, audit {loaded.audit_id}); people who opted "
        f"out ({len(excluded):,} in all) left out"
    )


@main.group()
def queue() -> None:
    """The outreach queue: load a period scored elsewhere."""


@queue.command("load")
@click.option(
    "--from", "source_path", type=click.Path(), required=True, help="A Spark output folder."
)
@click.option("--period", required=True, callback=_month, help="YYYY-MM")
@click.option("--model", "model_name", default="individual_outreach", show_default=True)
@click.pass_obj
@reported
def queue_load(home: Home, source_path: str, period: str, model_name: str) -> None:
    """Replace a period's queue from `score --engine spark` output, in one transaction."""
    from service.batch import load_period, read_scored_period

    scored = read_scored_period(source_path, period)
    serving = _served(home, model_name, verb="load with", degraded=False).current
    _into_queue(home, serving, load_period, scored, period, "loaded")


def _into_queue(
    home: Home, serving: Any, write: Callable[..., Any], frame: Any, period: str | None, verb: str
) -> None:
    """Write a period into the queue (``score_period`` or ``load_period``) with its group counts
    and monitoring, and say what was done."""
    result = write(
        _service_db(home),
        serving,
        frame,
        period=period,
        attributes=_monitored_attributes(home, serving.audit_id),
        monitoring=_monitoring(home, serving.audit_id),
        progress=_progress,
    )
    lottery = f" and {result.lottery:,} by the evaluation lottery" if result.lottery else ""
    click.echo(
        f"{result.period}: {verb} {result.scored:,}, queued {result.queued:,}{lottery} "
        f"(model {serving.name} v{serving.version}, audit {serving.audit_id}); "
        f"{result.opted_out:,} opted out"
    )


def _monitoring(home: Home, audit_id: str) -> Any:
    """What scoring keeps for monitoring, from the serving model's audit report."""
    from audits.catalogue import read_report
    from service.periods import Monitoring

    try:
        report = read_report(_registry(home), audit_id)
    except OutreachError:
        report = None
    return Monitoring.from_report(home.monitoring, report)


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
    from audits.catalogue import read_report
    from model.data import read_table
    from service.labels import LabelColumns, ingest
    from service.loader import ModelSource

    source = ModelSource(home.ensure(), model_name)
    source.refresh()
    serving = source.current
    if serving is None:
        raise GateError(f"no verified production model for {model_name}: {source.problem}")
    model = serving.model
    registry = _registry(home)
    done = ingest(
        _service_db(home),
        name=model_name,
        frame=read_table(file),
        columns=LabelColumns(model.id_column, model.time_column, model.label_column),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=home.monitoring,
        by=by,
        progress=_progress,
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


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.pass_obj
@reported
def serve(home: Home, host: str, port: int, workers: int) -> None:
    """Run the service with gunicorn (native threads limited to one per worker).

    With OUTREACH_ENV=production, exit 2 before any server starts if the production version's
    policy does not name its impact assessments (or names placeholders)."""
    import os

    from service.startup import check_production

    check_production(home, os.environ)
    # Service-wide metrics: every worker counts into one folder of the home (emptied by
    # gunicorn's master at start), named before any process imports prometheus-client.
    multiproc = "PROMETHEUS_MULTIPROC_DIR"
    env = {
        **os.environ,
        multiproc: os.environ.get(multiproc) or str(home.metrics),
        "OUTREACH_HOME": str(home.root),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    args = [
        str(gunicorn),
        "--config",
        "python:service.gunicorn_conf",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "service:create_app()",
    ]
    os.execvpe(args[0], args, env)


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
    from service.incidents import freeze_recorded

    done = freeze_recorded(
        _service_db(home), _registry(home), _trust(home, anchored=True), name, by=by, note=note
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
    from service.incidents import lift_recorded

    done = lift_recorded(_service_db(home), _trust(home, anchored=True), name, by=by, note=note)
    for f in done:
        click.echo(f"lifted the freeze of {f.model} (pinned at version {f.version or 'none'})")


@main.group()
def keys() -> None:
    """The release signing key: where it is, and replacing it."""


@keys.command("show")
@click.pass_obj
@reported
def keys_show(home: Home) -> None:
    """Print the release public key's path and id (the id to pin with
    OUTREACH_RELEASE_PUBLIC_KEY in production)."""
    from audits.loading import trust_for

    trust = trust_for(home, signing=False)
    pinned = home.signing_keys.pinned_key_id
    click.echo(f"release public key {home.signing_keys.release_public}: id {trust.verifier.key_id}")
    if pinned:
        click.echo(f"pinned by OUTREACH_RELEASE_PUBLIC_KEY: {pinned}")
    click.echo(trust.verifier.key_id)


@keys.command("rotate")
@click.pass_obj
@reported
def keys_rotate(home: Home) -> None:
    """Replace the release key. What the old key signed still holds; it can sign nothing new."""
    from audits.attestation import rotate

    old, new = rotate(home.signing_keys, home.attestations)
    click.echo(
        f"release key {old} retired, {new} in use; give services the new public key "
        f"{home.signing_keys.release_public} (OUTREACH_RELEASE_PUBLIC_KEY) and keep "
        f"{home.signing_keys.release.parent / 'retired'} beside it"
    )


@main.group("access-log")
def access_log_command() -> None:
    """The access log: verify it against its signed checkpoints, export them, purge old rows."""


def _access_log_writer(home: Home, db: Any) -> Any:
    """The home's checkpoint writer (file, key and intervals resolved here, from the
    environment, as the service resolves them)."""
    import os

    from service.access_log import CheckpointSettings, CheckpointWriter

    return CheckpointWriter(db, CheckpointSettings.resolve(home, db, os.environ))


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
    from model.signing import load_verifier
    from service.access_log import CheckpointLog, verify

    db = _service_db(home)
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
    from service.access_log import AccessLogBrokenError

    where = f" at row {result.first_broken}: {result.reason}" if result.first_broken else ""
    raise AccessLogBrokenError(
        f"access log broken{where}", details=[f"access log problem: {p}" for p in result.problems]
    )


@access_log_command.command("export-checkpoints")
@click.pass_obj
@reported
def access_log_export(home: Home) -> None:
    """Print the signed checkpoints (JSON lines, as written) for shipping elsewhere."""
    log = _access_log_writer(home, _service_db(home)).log
    data = log.export()
    click.echo(data, nl=False)
    _progress(f"{len(data.splitlines())} checkpoint lines from {log.path}")


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
    import os

    from audits.incident import trust_to_check
    from service.access_log import purge, retention_days

    min_days = retention_days(os.environ)
    writer = _access_log_writer(home, _service_db(home))
    # Refused while an incident freeze holds the evidence, or a log does not verify.
    incidents = trust_to_check(home)
    if incidents is not None:
        incidents = incidents.with_anchors(_trust(home, signing=False, anchored=True).anchors)
    done = purge(writer, before=before.date(), min_days=min_days, by=by, incidents=incidents)
    if done.up_to is None:
        click.echo(f"nothing to purge: no signed checkpoint before {before:%Y-%m-%d}")
        return
    click.echo(
        f"purged {done.removed} rows up to row {done.up_to} (signed off before "
        f"{before:%Y-%m-%d}); the chain is verified from there. Recorded as access-log row "
        f"{done.record} and a signed anchor in {writer.log.path}"
    )


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
    from audits.transparency import (
        load_settings,
        required_fields_missing,
        settings_path,
        transparency_record,
        write_record,
    )

    default = settings_path(home)
    chosen = settings or (str(default) if default.is_file() else None)
    record = transparency_record(
        _registry(home), None, name, version, settings=load_settings(chosen)
    )
    written = write_record(record, out)
    missing = required_fields_missing(record)
    _progress(
        f"{name} version {record['version']}: transparency record written to {written.html_path} "
        f"and {written.json_path}"
    )
    for item in missing:
        _progress(f"  required field not filled in: {item}")
    for finding in record["findings"]:
        _progress(f"  finding: {finding}")
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


DEMO_ROLES = ("coordinator", "analyst", "oversight", "admin")
#: The contact line of the demo's explanations: a placeholder, marked as one, never a real agency.
DEMO_CONTACT = (
    "[DEMO PLACEHOLDER - set OUTREACH_CONTACT] The outreach team: telephone, address and hours "
    "go here."
)
#: Months the demo simulates after the release: scored, offered, outcomes recorded, labelled.
DEMO_MONTHS_AFTER = 3
#: The demo's oversight board turns the evaluation arm on at a small share.
DEMO_EVALUATION_SHARE = 0.05


def _demo_policy(home: Home, spec: Any) -> Any:
    """The spec's policy as the demo's board set it, written into the home (its own file and
    sha256): the impact-assessment ids filled with marked placeholders and, where the policy has
    the evaluation arm, the arm on. The shipped policies keep both unset. The individual
    experiment's is ``<home>/demo-policy.toml``, any other's ``<home>/demo-policy-<name>.toml``."""
    from audits.policy import load_policy
    from audits.release import policy_for

    shipped = policy_for(spec)
    if shipped.source_path is None:
        return shipped
    text = Path(shipped.source_path).read_text()
    off = "\nshare = 0.0\n"
    name = f"{shipped.name} (demo)"
    if off in text:
        text = text.replace(off, f"\nshare = {DEMO_EVALUATION_SHARE}\n", 1)
        name = f"{shipped.name} (demo: evaluation arm on)"
    text = text.replace(f'name = "{shipped.name}"', f'name = "{name}"', 1)
    file = "demo-policy.toml" if spec.unit == "individual" else f"demo-policy-{spec.name}.toml"
    path = home.ensure().root / file
    path.write_text(_demo_assessments(text))
    return load_policy(path)


def _demo_assessments(text: str) -> str:
    """The policy text with the impact-assessment ids filled by clearly marked placeholders:
    the demo runs in development mode, where they are a warning; production refuses them."""
    from audits.policy import DEMO_PLACEHOLDERS

    header = "\n[impact_assessments]\n"
    lines = "# DEMO PLACEHOLDERS, not real assessments: the deploying agency names its own.\n"
    lines += "".join(f'{key} = "{value}"\n' for key, value in DEMO_PLACEHOLDERS.items())
    if header in text:
        return text.replace(header, header + lines, 1)
    return text.rstrip("\n") + "\n" + header + lines


def _demo_release(home: Home, spec_path: Path) -> tuple[Any, Any]:
    """Release one experiment under the demo's policy. For individuals, the synthetic population
    runs ``DEMO_MONTHS_AFTER`` months past the released data: those months come back after
    release. Returns the release result and the later months' rows (or ``None``)."""
    from model.data import validate
    from model.spec import load_spec
    from model.synthetic import generate_preset

    spec = load_spec(str(spec_path))
    data = spec.data
    if spec.unit != "individual" or data.synthetic_preset is None or data.path is not None:
        spec, dataset = load_dataset(str(spec_path), None, progress=_progress)
        return _release(home, spec, dataset, _demo_policy(home, spec)), None
    months = data.synthetic_periods + DEMO_MONTHS_AFTER
    _progress(
        f"generating the synthetic '{data.synthetic_preset}' population for {months} months: "
        f"{data.synthetic_periods} to release on, {DEMO_MONTHS_AFTER} after release"
    )
    frame = generate_preset(
        unit=spec.unit,
        rows=data.synthetic_rows // data.synthetic_periods * months,
        seed=data.synthetic_seed,
        preset=data.synthetic_preset,
        periods=months,
    )
    labels = sorted(frame[data.time_column].astype(str).unique())
    later = frame[data.time_column].astype(str).isin(labels[-DEMO_MONTHS_AFTER:]).to_numpy()
    dataset = validate(frame.loc[~later].reset_index(drop=True), spec)
    result = _release(home, spec, dataset, _demo_policy(home, spec))
    return result, frame.loc[later].reset_index(drop=True)


def _demo_transparency(home: Home, name: str) -> Path | None:
    """The served version's transparency record in ``<home>/transparency/<name>/`` (the
    deploying agency's own facts still to complete), or ``None`` when nothing is served."""
    from audits.transparency import load_settings, settings_path, transparency_record, write_record

    default = settings_path(home)
    settings = load_settings(str(default) if default.is_file() else None)
    try:
        record = transparency_record(_registry(home), None, name, None, settings=settings)
    except OutreachError as err:
        _progress(f"  no transparency record for {name}: {err}")
        return None
    return write_record(record, home.root / "transparency" / name).html_path


def _demo_after_release(home: Home, spec: Any, after: Any) -> None:
    """Score each month after release into the queue (evaluation lottery included), record
    the demo coordinator's outcomes, then ingest the labels that come back."""
    import pandas as pd

    from audits.catalogue import read_report
    from service.batch import score_period
    from service.labels import LabelColumns, ingest
    from service.loader import ModelSource
    from service.simulation import labels_after_help, record_outcomes

    source = ModelSource(home, spec.name)
    source.refresh()
    serving = source.current
    if serving is None:
        _progress(f"  not in production ({source.problem}): no months after release")
        return
    db = _service_db(home)
    columns = (spec.data.id_column, spec.data.time_column)
    files = []
    for number, period in enumerate(sorted(after[columns[1]].astype(str).unique()), start=1):
        rows = after.loc[after[columns[1]].astype(str) == period]
        batch = score_period(
            db,
            serving,
            after,
            period=period,
            attributes=_monitored_attributes(home, serving.audit_id),
            monitoring=_monitoring(home, serving.audit_id),
            progress=_progress,
        )
        month, accepted = record_outcomes(
            db,
            model=spec.name,
            period=period,
            rows=rows,
            id_column=columns[0],
            coordinator="demo-coordinator",
            seed=spec.seed + number,
        )
        _progress(
            f"  {period} (month {number} after release): {batch.queued:,} on the list, "
            f"{batch.lottery:,} by the evaluation lottery; {month.reached:,} reached, "
            f"{month.accepted:,} accepted help"
        )
        files.append(
            labels_after_help(
                rows,
                id_column=columns[0],
                time_column=columns[1],
                label_column=spec.label.column,
                truth_column=spec.label.truth_column or spec.label.column,
                accepted=accepted,
                seed=spec.seed + 100 + number,
            )
        )
    registry = _registry(home)
    done = ingest(
        db,
        name=spec.name,
        frame=pd.concat(files, ignore_index=True),
        columns=LabelColumns(*columns, spec.label.column),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=home.monitoring,
        by="demo-analyst",
        progress=_progress,
    )
    for p in done:
        _progress(
            f"  labels for {p.period}: {p.labelled:,} ({p.positives:,} crises); realised at "
            f"capacity: {p.verdict}; {len(p.warnings)} warning(s)"
        )


def demo_users(home: Home) -> tuple[list[tuple[str, str, str, str]], int]:
    """One demo user per role: (name, role, password, fresh API token), and how many earlier
    demo tokens were revoked.

    The passwords are random and new at every run (printed once); a demo user who already
    exists gets the new password, which revokes their earlier tokens and ends their sessions.
    """
    import secrets

    from service.auth import add_user, issue_token, set_password

    db = _service_db(home)
    out = []
    revoked = 0
    for role in DEMO_ROLES:
        name, password = f"demo-{role}", secrets.token_urlsafe(12)
        try:
            token = add_user(db, name, role, password=password)
        except BadInputError:  # made by an earlier run
            revoked += set_password(db, name, password)
            token = issue_token(db, name)
        out.append((name, role, password, token))
    return out, revoked


def _demo_areas(home: Home) -> None:
    """The demo coordinator works in every area on the outreach queue."""
    from service.auth import assign_all_areas

    areas = assign_all_areas(_service_db(home), "demo-coordinator")
    click.echo(f"demo-coordinator works in: {', '.join(areas) if areas else 'no area yet'}")


@main.command()
@click.option("--no-serve", is_flag=True, help="Stop before starting the service.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
@reported
def demo(ctx: click.Context, no_serve: bool, port: int) -> None:
    """The main job on embedded defaults: releases through the gate, queue, users, service."""
    from service.approvals import decide

    home: Home = ctx.obj
    root = Path(__file__).resolve().parent.parent / "experiments"
    specs = sorted(root.glob("*_outreach.toml"))
    if not specs:
        raise BadInputError(f"no experiment specs found in {root}")
    started = time.perf_counter()
    reports = []
    for spec_path in specs:
        _progress(f"\n== {spec_path.name} ==")
        result, after = _demo_release(home, spec_path)
        summary = result.summary()
        print_table(train_summary(result.training, ""))
        print_release(summary)
        if summary["awaiting_approval"]:
            decide(
                _service_db(home),
                _registry(home),
                summary["registered_model"],
                str(summary["version"]),
                decision="approve",
                by="demo-oversight",
                note="approved by the demo's oversight user",
            )
            taken = f" (taking on: {', '.join(r['group'] for r in summary['review'][:6])}...)"
            _progress(
                "  approved as the demo oversight user; now in production"
                + (taken if summary["decision"] == "REVIEW" else "")
            )
        decision = summary["decision"]
        if summary["awaiting_approval"]:
            decision += " (approved by demo-oversight)"
        reports.append((summary["registered_model"], decision, summary["report"]))
        if after is not None:
            _demo_after_release(home, result.spec, after)
        record = _demo_transparency(home, summary["registered_model"])
        if record is not None:
            _progress(f"  transparency record: {record}")
    _progress(f"\ndemo finished in {time.perf_counter() - started:.0f} s; home: {home.root}")
    for name, decision, report in reports:
        click.echo(f"{name}: {decision}; audit report: {report}")
    click.echo(
        "MLflow UI on this store:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri {home.tracking_uri} --port 5000"
    )
    click.echo("\nDemo users (name / password / API token), new at every run:")
    made, revoked = demo_users(home)
    for name, role, password, token in made:
        click.echo(f"  {role:<12} {name:<18} {password:<28} {token}")
    if revoked:
        click.echo(
            f"warning: {_plural(revoked, 'earlier demo API token')} revoked, and the demo "
            "users' earlier passwords replaced"
        )
    _demo_areas(home)
    if no_serve:
        return
    import os

    # Explanations name whom a person may contact (OUTREACH_CONTACT): a marked placeholder here.
    os.environ.setdefault("OUTREACH_CONTACT", DEMO_CONTACT)
    click.echo(f"\nServing on http://127.0.0.1:{port} (Ctrl-C to stop).")
    click.echo(
        f"  pages: open http://127.0.0.1:{port}/ and sign in as demo-coordinator or "
        "demo-oversight with the password above"
    )
    click.echo(
        f"  API:   curl -s -H 'Authorization: Bearer <analyst token>' "
        f"http://127.0.0.1:{port}/api/v1/model"
    )
    ctx.invoke(serve, host="127.0.0.1", port=port, workers=2)


if __name__ == "__main__":  # pragma: no cover
    main()
