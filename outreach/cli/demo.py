"""``outreach demo``: the main job on embedded defaults, from a release to a served queue."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from kernel.errors import BadInputError, OutreachError
from kernel.home import Home
from outreach.cli.base import (
    deployment_trust,
    main,
    monitored_attributes,
    monitoring_for,
    open_registry,
    open_service_db,
    plural,
    progress,
    reported,
)
from outreach.cli.release_commands import (
    load_dataset,
    print_release,
    print_table,
    release_with_progress,
    train_summary,
)
from outreach.cli.serve_commands import serve_in_process

DEMO_ROLES = ("coordinator", "analyst", "oversight", "admin")


#: The contact line of the demo's explanations: a placeholder, marked as one, never a real agency.
DEMO_CONTACT = (
    "[DEMO PLACEHOLDER - set OUTREACH_CONTACT] The outreach team: telephone, address and hours "
    "go here."
)


#: Months the demo simulates after the release: scored, offered, outcomes recorded, labelled.
DEMO_MONTHS_AFTER = 3


#: Processes training an experiment's candidates at once: the machine's cores, at most two.
DEMO_WORKERS = max(1, min(2, os.cpu_count() or 1))


#: The demo's oversight board turns the evaluation arm on at a small share.
DEMO_EVALUATION_SHARE = 0.05


@contextmanager
def _stage(name: str) -> Iterator[None]:
    """Time one stage of the demo; its seconds go to stderr when it ends."""
    started = time.perf_counter()
    yield
    progress(f"  [{name}: {time.perf_counter() - started:.1f} s]")


def demo_policy(home: Home, spec: Any) -> Any:
    """The spec's policy as the demo's board set it, written into the home (its own file and
    sha256): the impact-assessment ids filled with marked placeholders and, where the policy has
    the evaluation arm, the arm on. The shipped policies keep both unset. The individual
    experiment's is ``<home>/demo-policy.toml``, any other's ``<home>/demo-policy-<name>.toml``."""
    from audits.policy import load_policy
    from lifecycle.release import policy_for

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


def _demo_release(
    home: Home, spec_path: Path, ready: Callable[[], object] = lambda: None
) -> tuple[Any, Any]:
    """Release one experiment under the demo's policy. For individuals, the synthetic population
    runs ``DEMO_MONTHS_AFTER`` months past the released data: those months come back after
    release. ``ready`` is called between the data and the release (it waits for the registry's
    store). Returns the release result and the later months' rows (or ``None``)."""
    from model.data import validate
    from model.spec import load_spec
    from model.synthetic import generate_preset

    spec = load_spec(str(spec_path))
    data = spec.data
    if spec.unit != "individual" or data.synthetic_preset is None or data.path is not None:
        with _stage("population generated and validated"):
            spec, dataset = load_dataset(str(spec_path), None, progress=progress)
        ready()
        with _stage("released through the gate"):
            return release_with_progress(
                home, spec, dataset, demo_policy(home, spec), workers=DEMO_WORKERS
            ), None
    months = data.synthetic_periods + DEMO_MONTHS_AFTER
    progress(
        f"generating the synthetic '{data.synthetic_preset}' population for {months} months: "
        f"{data.synthetic_periods} to release on, {DEMO_MONTHS_AFTER} after release"
    )
    with _stage("population generated and validated"):
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
    ready()
    with _stage("released through the gate"):
        result = release_with_progress(
            home, spec, dataset, demo_policy(home, spec), workers=DEMO_WORKERS
        )
    return result, frame.loc[later].reset_index(drop=True)


def demo_transparency(home: Home, name: str) -> Path | None:
    """The served version's transparency record in ``<home>/transparency/<name>/`` (the
    deploying agency's own facts still to complete), or ``None`` when nothing is served."""
    from lifecycle.transparency_record import (
        load_settings,
        settings_path,
        transparency_record,
        write_record,
    )

    default = settings_path(home)
    settings = load_settings(str(default) if default.is_file() else None)
    try:
        record = transparency_record(
            open_registry(home),
            deployment_trust(home, signing=False),
            name,
            None,
            settings=settings,
        )
    except OutreachError as err:
        progress(f"  no transparency record for {name}: {err}")
        return None
    return write_record(record, home.root / "transparency" / name).html_path


def demo_after_release(home: Home, spec: Any, after: Any) -> None:
    """Score each month after release into the queue (evaluation lottery included), record
    the demo coordinator's outcomes, then ingest the labels that come back."""
    import pandas as pd

    from jobs.batch import score_period
    from jobs.simulation import labels_after_help, record_outcomes
    from lifecycle.catalogue import read_report
    from lifecycle.model_source import ModelSource
    from monitoring.labels import LabelColumns, ingest

    source = ModelSource(home, spec.name)
    source.refresh()
    serving = source.current
    if serving is None:
        progress(f"  not in production ({source.problem}): no months after release")
        return
    db = open_service_db(home)
    columns = (spec.data.id_column, spec.data.time_column)
    files = []
    for number, period in enumerate(sorted(after[columns[1]].astype(str).unique()), start=1):
        rows = after.loc[after[columns[1]].astype(str) == period]
        batch = score_period(
            db,
            serving,
            after,
            period=period,
            attributes=monitored_attributes(home, serving.audit_id),
            monitoring=monitoring_for(home, serving.audit_id),
            progress=progress,
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
        progress(
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
    registry = open_registry(home)
    done = ingest(
        db,
        name=spec.name,
        frame=pd.concat(files, ignore_index=True),
        columns=LabelColumns(*columns, spec.label.column),
        report_for=lambda audit_id: read_report(registry, audit_id),
        folder=home.monitoring,
        by="demo-analyst",
        progress=progress,
    )
    for p in done:
        progress(
            f"  labels for {p.period}: {p.labelled:,} ({p.positives:,} crises); realised at "
            f"capacity: {p.verdict}; {len(p.warnings)} warning(s)"
        )


class DemoPasswords:
    """The demo users' new passwords (random, new at every run), hashed in a process of their
    own while the demo goes on: scrypt holds the interpreter's lock, so a thread would not run
    beside the demo's work, and the four hashes would otherwise wait at its end."""

    def __init__(self) -> None:
        import multiprocessing
        import secrets
        from concurrent.futures import ProcessPoolExecutor

        self.plain = {role: secrets.token_urlsafe(12) for role in DEMO_ROLES}
        # Forked before the demo starts any thread; the child only hashes.
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self._hashes = self._pool.submit(_hash_passwords, list(self.plain.values()))

    def hashed(self) -> dict[str, Any]:
        """Each role's password hash (:class:`store.accounts.PasswordHash`), once made."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            hashes = self._hashes.result()
        except BrokenProcessPool:  # the process was killed: hashed here instead
            hashes = _hash_passwords(list(self.plain.values()))
        finally:
            self._pool.shutdown()
        return dict(zip(self.plain, hashes, strict=True))


def _hash_passwords(passwords: list[str]) -> list[Any]:
    from store.accounts import hash_password

    return [hash_password(password) for password in passwords]


def demo_users(
    home: Home, passwords: DemoPasswords | None = None
) -> tuple[list[tuple[str, str, str, str]], int]:
    """One demo user per role: (name, role, password, fresh API token), and how many earlier
    demo tokens were revoked.

    The passwords are random and new at every run (printed once), ``passwords``' if given; a
    demo user who already exists gets the new password, which revokes their earlier tokens and
    ends their sessions.
    """
    import secrets

    from store.accounts import add_user, issue_token, set_password

    if passwords is None:
        plain = {role: secrets.token_urlsafe(12) for role in DEMO_ROLES}
        hashed: dict[str, Any] = dict(plain)  # hashed as they are stored
    else:
        plain, hashed = passwords.plain, passwords.hashed()
    db = open_service_db(home)
    out = []
    revoked = 0
    for role in DEMO_ROLES:
        name = f"demo-{role}"
        try:
            token = add_user(db, name, role, password=hashed[role])
        except BadInputError:  # made by an earlier run
            revoked += set_password(db, name, hashed[role])
            token = issue_token(db, name)
        out.append((name, role, plain[role], token))
    return out, revoked


def _demo_areas(home: Home) -> None:
    """The demo coordinator works in every area on the outreach queue."""
    from store.accounts import assign_all_areas

    areas = assign_all_areas(open_service_db(home), "demo-coordinator")
    click.echo(f"demo-coordinator works in: {', '.join(areas) if areas else 'no area yet'}")


def _demo_decide(home: Home, result: Any, after: Any) -> tuple[str, str, str]:
    """After one release: its tables printed, the demo's oversight approval where one is
    awaited, the months after release, the served version's transparency record. Returns the
    model's name, decision and audit report."""
    from store.approvals import decide

    summary = result.summary()
    print_table(train_summary(result.training, ""))
    print_release(summary)
    if summary["awaiting_approval"]:
        decide(
            open_service_db(home),
            open_registry(home),
            summary["registered_model"],
            str(summary["version"]),
            trust=deployment_trust(home, anchored=True),
            decision="approve",
            by="demo-oversight",
            note="approved by the demo's oversight user",
        )
        taken = f" (taking on: {', '.join(r['group'] for r in summary['review'][:6])}...)"
        progress(
            "  approved as the demo oversight user; now in production"
            + (taken if summary["decision"] == "REVIEW" else "")
        )
    decision = summary["decision"]
    if summary["awaiting_approval"]:
        decision += " (approved by demo-oversight)"
    if after is not None:
        with _stage(f"{DEMO_MONTHS_AFTER} months after release"):
            demo_after_release(home, result.spec, after)
    with _stage("transparency record"):
        record = demo_transparency(home, summary["registered_model"])
    if record is not None:
        progress(f"  transparency record: {record}")
    return summary["registered_model"], decision, summary["report"]


def _demo_releases(home: Home, specs: list[Path]) -> list[tuple[str, str, str]]:
    """Release each experiment, then decide on it (:func:`_demo_decide`); its results."""
    from model.train import start_workers

    reports = []
    # While the first population is generated, the registry's store opens (on a new home: its
    # tables made) in one thread and the fits' worker processes start in another; the release
    # waits for both before using them.
    with ThreadPoolExecutor(2, thread_name_prefix="demo-start") as starting:
        opened = starting.submit(open_registry, home)
        started = starting.submit(start_workers, DEMO_WORKERS)

        def ready() -> None:
            opened.result()
            started.result()

        for spec_path in specs:
            progress(f"\n== {spec_path.name} ==")
            result, after = _demo_release(home, spec_path, ready=ready)
            reports.append(_demo_decide(home, result, after))
    return reports


@main.command()
@click.option("--no-serve", is_flag=True, help="Stop before starting the service.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.pass_context
@reported
def demo(ctx: click.Context, no_serve: bool, port: int) -> None:
    """The main job on embedded defaults: releases through the gate, queue, users, service."""
    # Imported here, before the registry's thread starts (see below), so that the two threads
    # do not import the same modules at once.
    import store.approvals  # noqa: F401
    from model.train import stop_workers

    home: Home = ctx.obj
    root = Path(__file__).resolve().parents[2] / "experiments"
    specs = sorted(root.glob("*_outreach.toml"))
    if not specs:
        raise BadInputError(f"no experiment specs found in {root}")
    started = time.perf_counter()
    passwords = DemoPasswords()
    # Only the reports' names are kept: the releases' data and models go before serving.
    reports = _demo_releases(home, specs)
    # The releases' idle worker processes would keep their memory for minutes while serving.
    stop_workers()
    progress(f"\ndemo finished in {time.perf_counter() - started:.0f} s; home: {home.root}")
    for name, decision, report in reports:
        click.echo(f"{name}: {decision}; audit report: {report}")
    click.echo(
        "MLflow UI on this store:\n"
        f"  .venv/bin/mlflow ui --backend-store-uri {home.tracking_uri} --port 5000"
    )
    click.echo("\nDemo users (name / password / API token), new at every run:")
    made, revoked = demo_users(home, passwords)
    for name, role, password, token in made:
        click.echo(f"  {role:<12} {name:<18} {password:<28} {token}")
    if revoked:
        click.echo(
            f"warning: {plural(revoked, 'earlier demo API token')} revoked, and the demo "
            "users' earlier passwords replaced"
        )
    _demo_areas(home)
    if no_serve:
        return
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
    # This process becomes the server: the service and its libraries are already imported.
    serve_in_process(home, host="127.0.0.1", port=port, workers=2)


if __name__ == "__main__":  # pragma: no cover
    main()
