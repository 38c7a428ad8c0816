"""``outreach train`` and ``outreach release``: an experiment trained, audited and registered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from kernel.errors import GateError
from kernel.home import Home
from outreach.cli.base import (
    F,
    deployment_trust,
    has_service_db,
    main,
    open_registry,
    open_service_db,
    progress,
    reported,
)


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
    progress(
        f"\n{summary['experiment']}: mean over {len(summary['splits'])} temporal splits, "
        f"capacity {summary['capacity']}"
    )
    progress(
        f"{'model':<58} {'ver':>4} {'prec@k':>7} {'recall@k':>8} {'AUC':>6} {'AP':>6} {'Brier':>6}"
    )

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for label, version, m in rows:
        progress(
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

    spec, dataset = load_dataset(spec_path, data, progress=progress)
    result = train(spec, dataset, progress=progress)
    registry = connect(home)
    run_id = log_training(registry, result, progress=progress)
    return train_summary(result, run_id)


@main.command("train")
@experiment_command
def train_command(home: Home, experiment: str, data: str | None, as_json: bool) -> None:
    """Train an experiment's candidates and log them to MLflow (no alias is moved)."""
    summary = run_training(home, experiment, data)
    print_table(summary)
    if as_json:
        click.echo(json.dumps(summary, indent=2))


def release_job(home: Home, spec_path: str, data: str | None) -> Any:
    """Train, audit, gate and register one experiment; returns the release result."""
    return release_with_data(home, spec_path, data)[0]


def release_with_data(home: Home, spec_path: str, data: str | None) -> tuple[Any, Any]:
    from lifecycle.release import policy_for

    spec, dataset = load_dataset(spec_path, data, progress=progress)
    return release_with_progress(home, spec, dataset, policy_for(spec)), dataset


def release_with_progress(
    home: Home, spec: Any, dataset: Any, policy: Any, *, workers: int = 1
) -> Any:
    """Release ``spec`` on ``dataset`` under ``policy`` with progress on stderr, the audit
    carrying the labelled months since earlier releases (the CLI's one way to release);
    ``workers`` processes train the candidates."""
    from lifecycle.release import release

    progress(f"policy '{policy.name}' (sha256 {policy.sha256[:12]}...)")
    for note in policy.changed_meanings:
        progress(f"  note: {note}")
    trust = deployment_trust(home)
    done = release(
        spec,
        dataset,
        open_registry(home),
        policy=policy,
        progress=progress,
        after_release=_after_release(home, spec.name),
        trust=trust,
        workers=workers,
    )
    if trust.anchors is not None:
        trust.anchor(spec.name)
    return done


def _after_release(home: Home, name: str) -> dict[str, Any] | None:
    """What the labelled months since earlier releases showed (none for a new home)."""
    from monitoring.period_report import after_release_evidence

    if not has_service_db(home):
        return None
    with open_service_db(home).session() as session:
        found = after_release_evidence(session, name)
    if found:
        progress(f"the audit report carries {len(found['months'])} labelled month(s) since release")
    return found


def print_release(summary: dict[str, Any]) -> None:
    progress(
        f"\n{summary['registered_model']}: {summary['decision']} - version {summary['version']} "
        f"({summary['candidate']})"
    )
    for c in summary["candidates"]:
        ratio = c["worst_recall_ratio"]
        ratio_text = "-" if ratio is None else f"{ratio:.2f}"
        progress(
            f"  {c['name']:<34} v{c['version']:<4} {c['decision']:<5} precision@k "
            f"{c['precision_at_k']:.3f}  worst recall ratio {ratio_text}  "
            f"breaches {c['breaches']}  open questions {c['review']}"
        )
    for b in summary["breaches"]:
        if None in b["ci"]:  # a finding without an interval (proxy, missingness) says itself
            progress(f"  breach: {b['message']}")
            continue
        progress(
            f"  breach: {b['metric']} for {b['group']} ({b['attribute']}): {b['value']} "
            f"(interval {b['ci']}), limit {b['limit']}"
        )
    for r in summary["review"][:20]:
        progress(f"  review: {r['message']}")
    if len(summary["review"]) > 20:
        progress(f"  ... and {len(summary['review']) - 20} more open question(s) in the report")
    if summary.get("not_assessable"):
        names = "; ".join(f"{n['group']} ({n['attribute']})" for n in summary["not_assessable"])
        progress(
            f"  not assessable with this data ({len(summary['not_assessable'])} group(s), "
            f"named in the report and any approval): {names}"
        )
    for w in summary["warnings"][:10]:
        progress(f"  warning: {w['message']}")
    if len(summary["warnings"]) > 10:
        progress(f"  ... and {len(summary['warnings']) - 10} more warning(s) in the report")
    if summary["promoted"]:
        progress(f"  promoted version {summary['version']} to production")
    elif summary["awaiting_approval"] and summary["decision"] == "REVIEW":
        progress(
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
            progress(
                "  too small to judge, but their own estimates are beyond a limit, so a person "
                f"accepts them before serving: {names}"
            )
        progress(
            f"  version {summary['version']} passed and awaits an oversight approval: "
            f"outreach models approve {summary['registered_model']} {summary['version']} "
            "--by ROLE --note TEXT"
        )
    else:
        progress("  nothing was promoted")
    progress(f"  audit report: {summary['report']}")


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
