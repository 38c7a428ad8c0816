"""The scoring pyfunc as code (MLflow "models from code"), for :func:`mlflow.pyfunc.save_model`.

MLflow copies this file into a model folder and runs it when the model is loaded; it names the
pyfunc class with :func:`mlflow.models.set_model`. A folder made from it holds no pickle: only
this code, the scoring model's JSON and MLflow's own descriptors. The package never imports it.
"""

from mlflow.models import set_model

from model.pyfunc_wrapper import OutreachPyfunc

set_model(OutreachPyfunc())
