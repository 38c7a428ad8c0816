"""``outreach serve``: the service under gunicorn (a new process); ``outreach demo`` serves from
its own process (:func:`serve_in_process`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kernel.home import Home
from kernel.settings import current
from outreach.cli.base import main, reported


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

    from service.gunicorn_app import APP, CONFIG, server_environment
    from service.startup import check_production

    check_production(home, current().environment)
    env = server_environment(home, os.environ)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    args = [
        str(gunicorn),
        "--config",
        CONFIG,
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        APP,
    ]
    os.execvpe(args[0], args, env)


def serve_in_process(home: Home, host: str, port: int, workers: int) -> None:
    """What ``outreach serve`` does, with this process as gunicorn's master instead of a new
    one (:func:`service.gunicorn_app.serve_here`): for a command that has already imported the
    service and its libraries. The same check first: in production mode, exit 2 before any
    server starts if the production version's policy does not name its impact assessments."""
    from service.gunicorn_app import serve_here
    from service.startup import check_production

    check_production(home, current().environment)
    serve_here(home, host, port, workers)
