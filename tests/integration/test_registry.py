"""MLflow logging in a real SQLite store: runs, versions, tags, and a loadable pyfunc."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from kernel.home import Home
from model.registry import Registry, connect, fluent, log_training, sha256_file
from model.scorer import scored_frame
from model.train import TrainingResult


@pytest.fixture
def logged(home: Home, trained: TrainingResult) -> tuple[Registry, str]:
    registry = connect(home)
    run_id = log_training(registry, trained)
    return registry, run_id


def test_every_candidate_is_a_registered_version_with_tags(
    logged: tuple[Registry, str], trained: TrainingResult
) -> None:
    registry, _ = logged
    versions = registry.client.search_model_versions(f"name='{trained.spec.name}'")
    assert len(versions) == len(trained.candidates)
    for version in versions:
        tags = version.tags
        assert tags["data_fingerprint"] == trained.data_fingerprint
        assert len(tags["artifact_sha256"]) == 64
        assert float(tags["metric.precision_at_k"]) > 0
    model = registry.client.get_registered_model(trained.spec.name)
    assert model.aliases == {}


def test_runs_are_nested_with_metrics_and_plots(
    logged: tuple[Registry, str], trained: TrainingResult
) -> None:
    registry, run_id = logged
    parent = registry.client.get_run(run_id)
    assert "baseline_random_precision_at_k" in parent.data.metrics
    children = registry.client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert len(children) == len(trained.candidates)
    by_label = {c.config.label: c for c in trained.candidates}
    random_p = trained.baselines["random"].mean["precision_at_k"]
    for child in children:
        metrics = child.data.metrics
        assert {"precision_at_k", "recall_at_k", "roc_auc", "brier"} <= set(metrics)
        candidate = by_label[child.data.params["candidate"]]
        assert metrics["precision_at_k"] == pytest.approx(candidate.mean["precision_at_k"])
        for i, split in enumerate(candidate.per_split, start=1):  # every split's, one batch
            assert metrics[f"split_{i}_recall_at_k"] == pytest.approx(split.recall_at_k)
        assert metrics["lift_over_random"] == pytest.approx(
            candidate.mean["precision_at_k"] / random_p
        )
        # Linked to the run's logged model too (what MLflow's model page shows), once each.
        (output,) = child.outputs.model_outputs
        linked = registry.client.get_logged_model(output.model_id).metrics or []
        assert sorted(m.key for m in linked) == sorted(metrics)
        assert {m.key: m.value for m in linked}["precision_at_k"] == metrics["precision_at_k"]
        paths = {a.path for a in registry.client.list_artifacts(child.info.run_id, "plots")}
        assert paths == {"plots/calibration.png", "plots/precision_recall_at_k.png"}


def test_registered_pyfunc_scores_like_the_scorer(
    logged: tuple[Registry, str], trained: TrainingResult
) -> None:
    registry, _ = logged
    candidate = trained.candidates[1]
    uri = f"models:/{trained.spec.name}/{candidate.version}"
    with fluent(registry):
        loaded = mlflow.pyfunc.load_model(uri)
    frame = trained.validation.features.head(50)
    served = loaded.predict(frame)
    expected = scored_frame(candidate.scoring_model, frame)
    assert np.allclose(served["score"], expected["score"], rtol=0, atol=1e-12)
    assert list(served["band"]) == list(expected["band"])
    with fluent(registry):
        local = mlflow.artifacts.download_artifacts(f"{uri}")
    version = registry.client.get_model_version(trained.spec.name, str(candidate.version))
    artifact = next(__import__("pathlib").Path(local).rglob("scoring_model.json"))
    assert sha256_file(artifact) == version.tags["artifact_sha256"]
    # Logged as models from code: no pickle anywhere in the registered folder.
    files = [p for p in __import__("pathlib").Path(local).rglob("*") if p.is_file()]
    assert not [p.name for p in files if p.suffix in (".pkl", ".pickle", ".cloudpickle")]


def test_connect_sets_no_process_wide_uri(tmp_path) -> None:
    from kernel.home import Home

    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    first = connect(Home(tmp_path / "a"))
    second = connect(Home(tmp_path / "b"), tracking_uri="http://127.0.0.1:9")
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
    assert first.tracking_uri.startswith("sqlite:///") and second.tracking_uri.endswith(":9")
    with fluent(first):
        assert mlflow.get_tracking_uri() == first.tracking_uri
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before


def test_the_home_carries_the_deployments_settings(tmp_path, monkeypatch) -> None:
    from kernel.home import Home

    monkeypatch.setenv("OUTREACH_TRACKING_URI", "http://tracking.invalid:5000")
    monkeypatch.setenv("OUTREACH_DATABASE_URL", "postgresql+psycopg://x@127.0.0.1/outreach")
    monkeypatch.setenv("OUTREACH_RELEASE_KEY", str(tmp_path / "k" / "release.key"))
    home = Home.resolve(tmp_path / "home")
    assert home.tracking_uri == "http://tracking.invalid:5000"
    assert home.database_url == "postgresql+psycopg://x@127.0.0.1/outreach"
    assert home.signing_keys.release == tmp_path / "k" / "release.key"
    assert home.signing_keys.release_public == tmp_path / "k" / "release.pub"


def test_a_registry_opened_in_another_thread_logs_from_this_one(
    home: Home, trained: TrainingResult
) -> None:
    """The demo opens the store (a new home: its tables made) in a thread while it generates
    the data, then logs the release from the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        registry = pool.submit(connect, home).result()
    log_training(registry, trained)
    versions = registry.client.search_model_versions(f"name='{trained.spec.name}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, len(trained.candidates) + 1))
