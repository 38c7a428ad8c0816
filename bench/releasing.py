"""A model released and, where its audit asks for one, approved for the benchmarks to serve.

Releases run as ``bench-analyst``; a release that awaits an oversight approval (a REVIEW, or a
PASS the policy wants approved) is approved as a second person, ``bench-oversight``, through the
command line (``outreach models approve``), as the README shows an oversight user doing it. A
release whose gate failed stops the benchmark, naming the decision.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from audits.policy import Policy
from bench.scale import smoke
from kernel.home import Home
from lifecycle.release import ReleaseResult, release
from lifecycle.verified_loading import trust_for
from model.data import Dataset
from model.registry import connect
from model.spec import ExperimentSpec

RELEASED_BY = "bench-analyst"
#: Resamples of the smoke run's audits (the policy's own number in a measuring run).
SMOKE_RESAMPLES = 200
APPROVED_BY = "bench-oversight"


def outreach_env(home: Home, **extra: str) -> dict[str, str]:
    """The environment for an ``outreach`` command (or server) on ``home``.

    The registry URI is set too: MLflow's fluent API (``model.registry.fluent``) leaves its
    default in this process's ``MLFLOW_REGISTRY_URI``, which a child (``mlflow models serve``)
    would otherwise follow to an empty store of its own.
    """
    return {
        **os.environ,
        "OUTREACH_HOME": str(home.root),
        "MLFLOW_TRACKING_URI": home.tracking_uri,
        "MLFLOW_REGISTRY_URI": home.tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        **extra,
    }


def outreach_command() -> str:
    """The ``outreach`` script of this environment."""
    return str(Path(sys.executable).parent / "outreach")


def release_served(
    home: Home, spec: ExperimentSpec, dataset: Dataset, policy: Policy
) -> ReleaseResult:
    """Release ``dataset`` under ``policy``; approve the chosen version if it awaits approval.

    Raises
    ------
    RuntimeError
        If nothing can be served: the gate failed, or the approval was refused.
    """
    if smoke():
        # The smoke run checks that the benchmark runs, not what it measures: a lighter audit.
        policy = policy.model_copy(update={"bootstrap_resamples": SMOKE_RESAMPLES})
    result = release(
        spec,
        dataset,
        connect(home),
        policy=policy,
        released_by=RELEASED_BY,
        trust=trust_for(home),
    )
    version = str(result.chosen.candidate.version)
    if result.awaiting_approval:
        done = subprocess.run(
            [
                outreach_command(),
                "models",
                "approve",
                spec.name,
                version,
                "--by",
                APPROVED_BY,
                "--note",
                "benchmark: approved by the benchmark's oversight user",
            ],
            env=outreach_env(home),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"approving {spec.name} version {version} failed (exit {done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        print(
            f"  {spec.name} v{version}: {result.decision}, approved by {APPROVED_BY}",
            file=sys.stderr,
        )
    elif not result.promoted:
        raise RuntimeError(
            f"{spec.name} version {version} cannot be served: the gate decided {result.decision}"
        )
    return result
