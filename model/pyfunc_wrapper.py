"""The MLflow ``pyfunc`` adapter of the scoring model (:class:`OutreachPyfunc`).

Kept apart from :mod:`model.scorer` so that scoring never imports MLflow's pyfunc machinery:
only loading a model through MLflow (``mlflow.pyfunc.load_model``, the Spark UDF) needs it.
Model folders logged before this module existed name ``model.scorer.OutreachPyfunc`` in their
code file; :mod:`model.scorer` still resolves that name, importing this module on first use.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from model.scorer import ScoringModel, scored_frame


class OutreachPyfunc(PythonModel):
    """MLflow pyfunc adapter: loads the JSON scoring model, returns scored rows."""

    def load_context(self, context: Any) -> None:
        self.model = ScoringModel.load(context.artifacts["scoring_model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return scored_frame(self.model, model_input)
