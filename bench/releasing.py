"""A model released and, where its audit asks for one, approved for the benchmarks to serve.

Releases run as ``bench-analyst``; a release that awaits an oversight approval (a REVIEW, or a
PASS the policy wants approved) is approved as a second person, ``bench-oversight``, through the
command line (``outreach models approve``), as the README shows an oversight user doing it. A
release whose gate failed stops the benchmark, naming the decision.

:func:`released` is how a benchmark gets its release: in a measuring run each benchmark releases
its own experiment; the smoke run releases once (the small experiment under the evaluation-arm
policy, :func:`smoke_release`) and hands every benchmark its own copy of that home.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from audits.policy import Policy, load_policy
from bench.scale import smoke
from kernel.home import Home, copy_home
from lifecycle.release import ReleaseResult, policy_for, release
from lifecycle.verified_loading import trust_for
from model.data import Dataset, validate
from model.registry import connect
from model.spec import ExperimentSpec, parse_spec, read_toml
from model.synthetic import generate_preset

RELEASED_BY = "bench-analyst"
#: Resamples of the smoke run's audits (the policy's own number in a measuring run).
SMOKE_RESAMPLES = 200
APPROVED_BY = "bench-oversight"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SPEC = ROOT / "experiments" / "individual_outreach.toml"
#: The evaluation arm's share in :func:`evaluation_policy` (as the demo's board sets it).
EVALUATION_SHARE = 0.05
#: Rows (person-months, over 20 months) of the smoke run's one release.
SMOKE_TRAIN_ROWS = 40_000


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


def small_spec() -> ExperimentSpec:
    """The shipped experiment with one logistic candidate, no mitigation and one split."""
    raw, _ = read_toml(SHIPPED_SPEC, "experiment spec")
    raw["candidates"] = [{"name": "logistic", "family": "logistic", "grid": {"C": [1.0]}}]
    raw.pop("mitigation", None)
    raw["validation"] = {"splits": 1, "step_months": 3, "window_months": 1, "min_train_periods": 6}
    return parse_spec(raw, source_path=str(SHIPPED_SPEC))


def evaluation_policy(home: Home, spec: ExperimentSpec, *, relaxed: bool = True) -> Policy:
    """The shipped policy with the evaluation arm on, written into the home (its own sha256).

    As the demo's board sets it (``share = 0.05``); ``relaxed``: the power rule only noted and a
    low recall limit, so that a small release is promoted (else the shipped gate, whose REVIEW
    an oversight user approves); 1,000 bootstrap resamples and the race x sex intersection
    kept, so a realised audit does the policy's full work.
    """
    shipped = policy_for(spec)
    assert shipped.source_path is not None
    text = Path(shipped.source_path).read_text()
    changes = {"\nshare = 0.0\n": f"\nshare = {EVALUATION_SHARE}\n"}
    if relaxed:
        changes.update(
            {"min_group_positives = 200": "min_group_positives = 20", "min = 0.8": "min = 0.3"}
        )
    changes[f'name = "{shipped.name}"'] = f'name = "{shipped.name} (bench: evaluation arm on)"'
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = home.root / "bench-policy.toml"
    path.write_text(text)
    return load_policy(path)


@dataclass(frozen=True)
class Released:
    """A home whose model is released (and approved where asked) and can be served."""

    home: Home
    spec: ExperimentSpec
    version: str
    #: The chosen candidate's fitted scikit-learn pipeline (the service benchmark's bare peer).
    pipeline: Any


def released(
    folder: Path,
    spec: ExperimentSpec,
    train: Callable[[], pd.DataFrame],
    policy: Callable[[Home, ExperimentSpec], Policy],
) -> Released:
    """A served release in ``folder / "home"`` (``folder`` exists, ``home`` does not yet).

    A measuring run releases ``spec`` on ``train()`` under ``policy(home, spec)``. The smoke run
    checks that each benchmark runs, not what it measures: every benchmark gets a copy of the
    run's one release (:func:`smoke_release`), and these arguments are not used; the
    benchmark reads the spec it was released with from the result.
    """
    if smoke():
        shared = smoke_release()
        return Released(
            copy_home(shared.home.root, folder / "home"),
            shared.spec,
            shared.version,
            shared.pipeline,
        )
    home = Home(folder / "home").ensure()
    result = release_served(home, spec, validate(train(), spec), policy(home, spec))
    chosen = result.chosen.candidate
    return Released(home, spec, str(chosen.version), chosen.final.pipeline)


_SMOKE: list[Released] = []


def smoke_release() -> Released:
    """The smoke run's one release, made at the first call: the small experiment on
    ``SMOKE_TRAIN_ROWS`` rows under the shipped gate with the evaluation arm on (what the
    monitoring benchmark needs), approved by the oversight user; in a folder removed at exit."""
    if not _SMOKE:
        folder = Path(tempfile.mkdtemp(prefix="outreach-bench-release-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        print("benchmarks (smoke): one release for every benchmark ...", file=sys.stderr)
        home = Home(folder / "home").ensure()
        spec = small_spec()
        frame = generate_preset(unit="individual", rows=SMOKE_TRAIN_ROWS, seed=3, periods=20)
        # The shipped gate: its REVIEW is approved by the oversight user, as in a measuring run.
        policy = evaluation_policy(home, spec, relaxed=False)
        result = release_served(home, spec, validate(frame, spec), policy)
        chosen = result.chosen.candidate
        _SMOKE.append(Released(home, spec, str(chosen.version), chosen.final.pipeline))
    return _SMOKE[0]
