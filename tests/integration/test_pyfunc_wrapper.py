"""The MLflow pyfunc adapter lives in :mod:`model.pyfunc_wrapper`, so that scoring imports neither
MLflow's pyfunc machinery nor scikit-learn; a model folder logged while the adapter was
``model.scorer.OutreachPyfunc`` (its code file imports that name) still loads and scores."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pandas as pd

from lifecycle.model_source import Serving
from model.data import Dataset
from model.pyfunc_wrapper import OutreachPyfunc
from model.scorer import ARTIFACT_NAME, PYFUNC_CODE, scored_frame

ROOT = Path(__file__).resolve().parents[2]

#: The code of model folders logged before the adapter moved (their copy of
#: ``model/pyfunc_code.py``, its docstring left out): it imports ``model.scorer.OutreachPyfunc``.
OLD_CODE = """from mlflow.models import set_model

from model.scorer import OutreachPyfunc

set_model(OutreachPyfunc())
"""


def _records(dataset: Dataset, serving: Serving) -> pd.DataFrame:
    return dataset.frame[list(serving.model.feature_names)].head(50).reset_index(drop=True)


def _saved(folder: Path, serving: Serving, code: Path) -> Path:
    artifact = folder / ARTIFACT_NAME
    serving.model.save(artifact)
    mlflow.pyfunc.save_model(
        str(folder / "model"),
        python_model=str(code),
        artifacts={"scoring_model": str(artifact)},
        pip_requirements=[],
    )
    return folder / "model"


def test_a_folder_logged_with_the_old_module_path_still_loads_and_scores(
    in_memory: Serving, dataset: Dataset, tmp_path: Path
) -> None:
    code = tmp_path / "pyfunc_code.py"
    code.write_text(OLD_CODE)
    loaded = mlflow.pyfunc.load_model(str(_saved(tmp_path, in_memory, code)))
    records = _records(dataset, in_memory)
    scored = loaded.predict(records)
    pd.testing.assert_frame_equal(scored, scored_frame(in_memory.model, records))
    assert type(loaded.unwrap_python_model()) is OutreachPyfunc


def test_the_old_name_is_the_new_class_and_other_names_still_fail() -> None:
    import model.scorer

    assert model.scorer.OutreachPyfunc is OutreachPyfunc
    try:
        model.scorer.NoSuchName  # noqa: B018
    except AttributeError as err:
        assert "NoSuchName" in str(err)
    else:
        raise AssertionError("model.scorer.NoSuchName resolved")


def test_new_folders_name_the_adapter_in_its_own_module(
    in_memory: Serving, dataset: Dataset, tmp_path: Path
) -> None:
    assert "from model.pyfunc_wrapper import OutreachPyfunc" in PYFUNC_CODE.read_text()
    loaded = mlflow.pyfunc.load_model(str(_saved(tmp_path, in_memory, PYFUNC_CODE)))
    records = _records(dataset, in_memory)
    pd.testing.assert_frame_equal(loaded.predict(records), scored_frame(in_memory.model, records))


def test_the_scoring_path_imports_neither_the_pyfunc_machinery_nor_scikit_learn() -> None:
    probe = textwrap.dedent(
        """
        import sys
        import jobs.batch, lifecycle.model_source, model.data, outreach.cli.score_commands
        import outreach.cli.base
        # (pyspark is left out: MLflow itself imports it, where it is installed)
        heavy = ("mlflow.pyfunc", "sklearn", "model.pyfunc_wrapper", "model.train")
        print(",".join(name for name in heavy if name in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == ""
