"""What a command's path does not load: each module below is imported in a fresh interpreter and
the heavy packages it must leave alone are looked for in ``sys.modules`` (``outreach score``
reads the service's startup rules, and pays for every package it loads)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.specs import ROOT


def _loaded(module: str, packages: list[str]) -> list[str]:
    probe = f"import sys, {module}; print(','.join(p for p in {packages!r} if p in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return [p for p in done.stdout.strip().split(",") if p]


@pytest.mark.parametrize(
    ("module", "packages"),
    [
        ("service.startup", ["flask", "werkzeug"]),  # the factory imports Flask, not the package
        # A scored period's drift tests: their tails from audits.tails, not scipy.stats.
        ("audits.drift", ["scipy.stats"]),
        ("jobs.batch", ["scipy.stats", "flask", "sklearn"]),
        # What gunicorn's master imports before it forks the workers (service.gunicorn_conf's
        # PRELOADED): the service records the board's decisions and reads audit reports, and
        # fits nothing, so every start is spared scikit-learn, Fairlearn and scipy.stats.
        (
            "service, service.api.routes, service.pages, lifecycle.model_source, "
            "lifecycle.verified_loading, store.approvals, lifecycle.decisions",
            ["sklearn", "fairlearn", "scipy.stats"],
        ),
    ],
)
def test_a_module_leaves_the_heavy_packages_alone(module: str, packages: list[str]) -> None:
    assert _loaded(module, packages) == []


def test_the_probe_sees_a_package_that_is_loaded() -> None:
    assert _loaded("service", ["flask"]) == []
    assert _loaded("flask", ["flask"]) == ["flask"]
    assert _loaded("audits.shrinkage", ["scipy.stats"]) == []
    assert _loaded("scipy.stats", ["scipy.stats"]) == ["scipy.stats"]
