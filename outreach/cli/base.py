"""The ``outreach`` group, its error reporting and the helpers several command groups share."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

import click

from kernel import settings
from kernel.errors import GateError, OutreachError
from kernel.home import Home

F = TypeVar("F", bound=Callable[..., Any])


def progress(message: str) -> None:
    """Say how a command is getting on, on stderr (stdout is kept for its result)."""
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

    from kernel.files import private_umask

    # What any command writes in the home (stores, keys, audits, the database) is the owner's
    # alone; restored when the command ends (it matters when called in-process, as tests do).
    previous = private_umask()
    ctx.call_on_close(lambda: os.umask(previous))
    found = settings.resolve()  # every OUTREACH_* variable, read once for this command
    ctx.obj = Home.resolve(home, found)


def open_registry(home: Home) -> Any:
    """The home's MLflow registry (:func:`model.registry.connect`)."""
    from model.registry import connect

    return connect(home)


def has_service_db(home: Home) -> bool:
    """Whether the home has a service database (a URL configured, or the SQLite file)."""
    return home.database_url is not None or (home.root / "service.db").exists()


def deployment_trust(home: Home, *, signing: bool = True, anchored: bool = False) -> Any:
    """The deployment's trust, built here once per command for everything it checks or signs:
    its log heads anchored in the service database (when there is one, or ``anchored``: a home
    that never ran the service anchors at its first poll). In production mode
    (``OUTREACH_ENV``) always anchored, and a log with no anchored head is invalid until a
    person adopts it (``outreach models repair``)."""
    from lifecycle.verified_loading import trust_for
    from service.startup import environment_mode
    from store.attestation_heads import DatabaseAnchors

    production = environment_mode(settings.current().mode) == "production"
    trust = trust_for(home, signing=signing, production=production)
    if anchored or production or has_service_db(home):
        return trust.with_anchors(DatabaseAnchors(open_service_db(home)))
    return trust


def open_service_db(home: Home) -> Any:
    """The service database, its schema upgraded to the newest migration."""
    from store.db import Database, default_url

    db = Database(home.database_url or default_url(home.ensure().root))
    db.upgrade()
    return db


def plural(count: int, word: str) -> str:
    """``count`` and ``word``, plural unless the count is 1 (``"1 token"``, ``"2 tokens"``)."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def audit_report(home: Home, audit_id: str) -> dict[str, Any] | None:
    """The stored audit report ``audit_id`` of the home (``None`` if there is none), read from
    the home's audits folder: no registry connection is needed for it."""
    from lifecycle.catalogue import report_in

    try:
        return report_in(home.audits, audit_id)
    except OutreachError:
        return None


def monitored_attributes(home: Home, audit_id: str) -> list[str]:
    """The sensitive attributes the serving model's audit covered (for monitoring counts)."""
    from monitoring.group_shares import audited_attributes

    report = audit_report(home, audit_id)
    return audited_attributes(report) if report is not None else []


def check_month(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A month option, by the one month rule (:func:`model.rules.month_problem`); exit 2."""
    from model.rules import month_problem

    if value is not None and (problem := month_problem(value)) is not None:
        raise click.BadParameter(problem)
    return value


def served_source(
    home: Home, model_name: str, *, verb: str, degraded: bool = True, db: Any = None
) -> Any:
    """The model source after one poll, resolved exactly as the service resolves it (the
    attestation log checked against its anchored head, the freeze pin, production mode), or
    exit 3 in the service's words (``degraded``: whether a last-known-good copy will do).
    ``db``: the service database, when the caller opened it already."""

    from lifecycle.model_source import ModelSource
    from service.startup import environment_mode
    from store.attestation_heads import DatabaseAnchors

    source = ModelSource(
        home.ensure(),
        model_name,
        production=environment_mode(settings.current().mode) == "production",
        anchors=DatabaseAnchors(db if db is not None else open_service_db(home)),
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


def verified_production(home: Home, model_name: str) -> Any:
    """The version the service would serve, as a loaded model for Spark, or exit 3."""
    from lifecycle.verified_loading import LoadedModel

    source = served_source(home, model_name, verb="score with", degraded=False)
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


@dataclass(frozen=True)
class QueueTarget:
    """Where a period is written and what is kept with it: the service database, the audited
    sensitive attributes whose group counts are kept, and the monitoring settings."""

    db: Any
    attributes: list[str]
    monitoring: Any


def queue_target(home: Home, audit_id: str, *, db: Any = None) -> QueueTarget:
    """The :class:`QueueTarget` of the serving model's audit ``audit_id`` (its report read once;
    ``db``: the service database, when the caller opened it already)."""
    from monitoring.group_shares import audited_attributes
    from monitoring.periods import Monitoring

    report = audit_report(home, audit_id)
    return QueueTarget(
        db if db is not None else open_service_db(home),
        audited_attributes(report) if report is not None else [],
        Monitoring.from_report(home.monitoring, report),
    )


def write_into_queue(
    home: Home,
    serving: Any,
    write: Callable[..., Any],
    frame: Any,
    period: str | None,
    verb: str,
    *,
    target: QueueTarget | None = None,
) -> None:
    """Write a period into the queue (``score_period`` or ``load_period``) with its group counts
    and monitoring, and say what was done. ``target``: :func:`queue_target`, when the caller
    prepared it already."""
    target = target or queue_target(home, serving.audit_id)
    result = write(
        target.db,
        serving,
        frame,
        period=period,
        attributes=target.attributes,
        monitoring=target.monitoring,
        progress=progress,
    )
    lottery = f" and {result.lottery:,} by the evaluation lottery" if result.lottery else ""
    click.echo(
        f"{result.period}: {verb} {result.scored:,}, queued {result.queued:,}{lottery} "
        f"(model {serving.name} v{serving.version}, audit {serving.audit_id}); "
        f"{result.opted_out:,} opted out"
    )


def monitoring_for(home: Home, audit_id: str) -> Any:
    """What scoring keeps for monitoring, from the serving model's audit report."""
    from monitoring.periods import Monitoring

    return Monitoring.from_report(home.monitoring, audit_report(home, audit_id))
