"""The MLflow model of a flavortag run: data-only weights plus this code (MLflow "models from code").

:func:`flavortag.tracking.models.log_model` logs a tagger as an MLflow pyfunc model
whose only artifact is a data-only file (``checkpoint.pt``, read with
``torch.load(weights_only=True)``, or ``bdt.skops``) and whose code is this
module, not a pickle of the model. flavortag itself never runs this file: it
reads the artifact through :mod:`flavortag.safe_load`. MLflow's own
``mlflow.pyfunc.load_model`` runs it, and then scores a list of event file
paths through :class:`flavortag.Tagger`.

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

    def predict(self, context, model_input: list[str], params=None) -> list[dict[str, float]]:  # noqa: ANN001
        """``model_input``: event file paths; one record of scores per event, all files in order."""
        import awkward as ak

        from flavortag.io import read_events

        return [dict(r) for p in model_input for r in ak.to_list(self.tagger.score(read_events(str(p))))]


mlflow.models.set_model(FlavortagModel())
