"""MLflow adapter: runs, metrics, plots, registered model versions and their tags.

The tracking store and registry live in the project home (SQLite plus local artifacts) unless
the caller passes another URI. Nothing is configured at import time: :func:`connect` does it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from kernel.home import Home
from kernel.settings import current
from model.scorer import ARTIFACT_NAME, PYFUNC_CODE, scored_frame

if TYPE_CHECKING:  # training (and scikit-learn) only for logging a run, not for loading a model
    from model.train import CandidateResult, TrainingResult

Progress = Callable[[str], None]

#: The tag naming a registered version's artifact sha256 (what registration saw; the signed
#: release attestation is what serving trusts). Other tag names: :mod:`lifecycle.catalogue`.
ARTIFACT_SHA256 = "artifact_sha256"
#: MLflow's note of the registered name and version, written into a model folder on download.
REGISTERED_MODEL_META = "registered_model_meta"
#: The tag holding the registered model folder's manifest: every file's path and sha256, as JSON.
ARTIFACT_FILES = "artifact_files"

#: The packages a served model needs, given explicitly (inferring them costs seconds per model).
_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pydantic", "scikit-learn")


@dataclass(frozen=True)
class Registry:
    """A connected MLflow client and the home whose store it uses."""

    client: MlflowClient
    home: Home
    tracking_uri: str


def connect(home: Home, *, tracking_uri: str | None = None) -> Registry:
    """A client of the home's store (its configured server, else its SQLite file, or
    ``tracking_uri``) with bounded retries.

    Sets no process-wide MLflow URI: two registries in one process (the service's and a
    remote one, say) never read each other's stores. The few fluent MLflow calls (logging a
    training run) point MLflow at this registry only while they run (:func:`fluent`).
    """
    home.ensure()
    uri = tracking_uri or home.tracking_uri
    # MLflow's process settings (bounded retries, no telemetry, no run URLs on stdout) are set
    # once, with the settings the entry point resolved; not here, on every connection.
    current()
    for noisy in ("mlflow", "alembic"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    return Registry(MlflowClient(tracking_uri=uri, registry_uri=uri), home, uri)


_FLUENT_LOCK = threading.Lock()


@contextmanager
def fluent(registry: Registry) -> Iterator[None]:
    """MLflow's fluent API pointed at ``registry`` for the duration, then restored."""
    with _FLUENT_LOCK:
        tracking, registry_uri = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(registry.tracking_uri)
        mlflow.set_registry_uri(registry.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(tracking)
            mlflow.set_registry_uri(registry_uri)


def experiment_id(registry: Registry, name: str) -> str:
    """The MLflow experiment for a spec, created with artifacts under the home if new."""
    found = registry.client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = (registry.home.artifacts / name).as_uri()
    return str(registry.client.create_experiment(name, artifact_location=location))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_manifest(folder: str | Path) -> dict[str, str]:
    """Every file under ``folder`` (its path relative to the folder, with ``/``) and its sha256.

    Of a registered version's folder this is what the signed release covers: the scoring
    model's JSON, the pyfunc's code, MLflow's descriptors and examples. A file added to, changed
    in or removed from the folder afterwards no longer matches. One file is left out:
    :data:`REGISTERED_MODEL_META`, which MLflow itself writes into the folder (of a local store,
    in place) whenever anyone loads or downloads the version as ``models:/NAME/...``; it holds the
    model's name and version and is never run.
    """
    root = Path(folder)
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() != REGISTERED_MODEL_META
    }


def download_version(registry: Registry, name: str, version: str, folder: Path) -> Path:
    """Download a registered version's model folder into ``folder``; returns the model folder.

    Registration and loading both fetch the folder this way, so that the manifest recorded at
    release and the one checked before serving are taken over the same set of files.

    Raises
    ------
    MlflowException, OSError
        If the store cannot give the folder.
    """
    # This registry's own URIs, never MLflow's process-wide ones (another connection in the
    # same process may have set those).
    source = registry.client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(folder), tracking_uri=registry.tracking_uri
    )
    return Path(local)


def _requirements() -> list[str]:
    return [f"{name}=={package_version(name)}" for name in _REQUIREMENTS]


def _metric_name(key: str) -> str:
    return key.replace("@", "_at_")


def _finite(value: float | None) -> bool:
    return value is not None and bool(np.isfinite(value))


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="outreach-") as folder:
        yield Path(folder)


def _log_candidate(
    registry: Registry, result: TrainingResult, candidate: CandidateResult, folder: Path
) -> str:
    spec = result.spec
    config = candidate.config
    mlflow.log_params({"family": config.family, "candidate": config.label, **config.params})
    # One batch for the run's metrics (one store transaction, not one per metric).
    logged: dict[str, float] = {
        key: float(value)  # type: ignore[arg-type]
        for key, value in candidate.mean.items()
        if _finite(value)
    }
    for i, metrics in enumerate(candidate.per_split, start=1):
        for key, value in metrics.as_dict().items():
            if _finite(value):
                logged[f"split_{i}_{key}"] = float(value)  # type: ignore[arg-type]
    random_p = result.baselines["random"].mean["precision_at_k"] or 0.0
    heuristic_p = result.baselines["heuristic"].mean["precision_at_k"] or 0.0
    precision = candidate.mean["precision_at_k"] or 0.0
    if random_p:
        logged["lift_over_random"] = precision / random_p
    if heuristic_p:
        logged["lift_over_heuristic"] = precision / heuristic_p

    # Here, not at the top: matplotlib takes about a second to import, and the service (which
    # connects to the registry in every worker at start) never draws.
    from model.plots import calibration_figure, capacity_curve_figure

    labels = result.validation.labels
    scores = candidate.final.validation_scores
    title = f"{config.label}, validated on the latest held-out period"
    mlflow.log_figure(calibration_figure(labels, scores, title=title), "plots/calibration.png")
    mlflow.log_figure(
        capacity_curve_figure(
            labels, scores, capacity_share=candidate.scoring_model.capacity_share, title=title
        ),
        "plots/precision_recall_at_k.png",
    )

    artifact = folder / config.name / ARTIFACT_NAME
    artifact.parent.mkdir(parents=True)
    candidate.scoring_model.save(artifact)
    artifact_sha = sha256_file(artifact)
    example = result.validation.features.head(5)
    signature = infer_signature(example, scored_frame(candidate.scoring_model, example))
    info = mlflow.pyfunc.log_model(
        name="model",
        # Models from code: the folder holds this code file, not a pickle of the pyfunc object
        # (loading a pickle runs whatever it holds); the scoring model itself is JSON.
        python_model=str(PYFUNC_CODE),
        artifacts={"scoring_model": str(artifact)},
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
    )
    # The metrics after the model, linked to it in the same batch: logged before, MLflow would
    # read each one back and log it again to link it.
    mlflow.log_metrics(logged, model_id=info.model_id)
    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    # The version is created with its tags in one store transaction; the two that vouch for its
    # bytes are set once the registry's copy is shown to hold the logged artifact.
    tags = {
        "candidate": config.label,
        "family": config.family,
        "data_fingerprint": result.data_fingerprint,
        "spec_sha256": spec.sha256 or "",
        "run_id": run_id,
        **{f"metric.{k}": f"{v:.6g}" for k, v in candidate.mean.items() if _finite(v)},
    }
    version = _register(registry, spec.name, info, tags)
    with _scratch() as download:
        candidate.files = folder_manifest(download_version(registry, spec.name, version, download))
    if candidate.files.get(f"artifacts/{ARTIFACT_NAME}") != artifact_sha:
        raise MlflowException(
            f"{spec.name} version {version}: the registry holds other bytes than were logged"
        )
    vouching = {
        ARTIFACT_SHA256: artifact_sha,
        ARTIFACT_FILES: json.dumps(candidate.files, sort_keys=True, separators=(",", ":")),
    }
    for key, text in vouching.items():
        registry.client.set_model_version_tag(spec.name, version, key, text)
    return version


def _register(registry: Registry, name: str, info: Any, tags: dict[str, str]) -> str:
    """A new version of ``name`` for a logged model, with ``tags`` (quietly: MLflow's helper
    prints)."""
    client = registry.client
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    run = mlflow.active_run()
    created = client.create_model_version(
        name,
        source=info.model_uri,
        run_id=run.info.run_id if run else None,
        model_id=info.model_id,
        tags=tags,
    )
    return str(created.version)


def log_training(
    registry: Registry, result: TrainingResult, *, progress: Progress = lambda _: None
) -> str:
    """Log a training run: a parent run with a nested run and a registered version per candidate.

    Sets ``version`` on each candidate and returns the parent run id. No alias is moved.
    """
    spec = result.spec
    experiment = experiment_id(registry, spec.name)
    with (
        fluent(registry),
        mlflow.start_run(experiment_id=experiment, run_name=f"train {spec.name}") as parent,
    ):
        mlflow.set_tags(
            {"outreach.kind": "train", "spec_sha256": spec.sha256 or "", "unit": spec.unit}
        )
        mlflow.log_params(
            {
                "capacity": spec.capacity.describe(),
                "label": spec.label.column,
                "horizon_months": spec.label.horizon_months,
                "splits": json.dumps([s.describe() for s in result.splits]),
                "data_fingerprint": result.data_fingerprint,
                "features": ",".join(spec.feature_names),
                **{f"treated_{k}": v for k, v in result.treatment.as_dict().items()},
            }
        )
        for name, baseline in result.baselines.items():
            for key, value in baseline.mean.items():
                if _finite(value):
                    mlflow.log_metric(f"baseline_{name}_{key}", float(value))  # type: ignore[arg-type]
        if spec.source_path:
            mlflow.log_artifact(spec.source_path, "spec")
        with _scratch() as folder:
            for candidate in result.candidates:
                with mlflow.start_run(
                    experiment_id=experiment, run_name=candidate.config.label, nested=True
                ):
                    candidate.version = _log_candidate(registry, result, candidate, folder)
                progress(f"logged {candidate.config.label} as {spec.name} v{candidate.version}")
        return str(parent.info.run_id)
