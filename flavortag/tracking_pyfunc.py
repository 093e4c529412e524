"""The MLflow model of a flavortag run: data-only weights plus this code (MLflow "models from code").

:func:`flavortag.tracking.log_model` logs a tagger as an MLflow pyfunc model
whose only artifact is a data-only file (``checkpoint.pt``, read with
``torch.load(weights_only=True)``, or ``bdt.skops``) and whose code is this
module, not a pickle of the model. flavortag itself never runs this file: it
reads the artifact through :mod:`flavortag.safe_load`. MLflow's own
``mlflow.pyfunc.load_model`` runs it, and then scores a pandas frame of event
file paths (column ``path``) through :class:`flavortag.Tagger`.

Beside :mod:`flavortag.tracking`, the only module that imports MLflow;
nothing in flavortag imports it (MLflow reads it as a file).
"""

from __future__ import annotations

from typing import Any

import mlflow
from mlflow.pyfunc import PythonModel

from flavortag.tracking import MODEL_ARTIFACT_KEY


class FlavortagModel(PythonModel):
    """Scores event files with the logged tagger (flavortag must be installed)."""

    def load_context(self, context: Any) -> None:
        """Read the weights artifact without running code from it."""
        from flavortag import Tagger

        self.tagger = Tagger.from_checkpoint(context.artifacts[MODEL_ARTIFACT_KEY])

    # no type hints on the inputs: MLflow would read them as a schema to enforce
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def] # noqa: ANN001, ANN201
        """``model_input``: a frame with a ``path`` column (event files); per-event scores as a frame."""
        import awkward as ak
        import pandas as pd

        from flavortag.io import read_events

        paths = list(model_input["path"]) if hasattr(model_input, "columns") else list(model_input)
        frames = [ak.to_dataframe(self.tagger.score(read_events(str(p)))) for p in paths]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


mlflow.models.set_model(FlavortagModel())
