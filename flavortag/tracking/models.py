"""A trained tagger as the MLflow model of its run, in a format that holds data only (issue 21)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow

#: The artifact key of a logged model's weights file (see :mod:`flavortag.tracking_pyfunc`).
MODEL_ARTIFACT_KEY = "checkpoint"


def log_model(model: Any, is_torch: bool) -> None:
    """Log a trained tagger as the active run's MLflow model ``model``, in a format that holds data only.

    The weights go in as a data-only artifact (``checkpoint.pt``, written by
    :func:`flavortag.models.checkpoint_state`, or ``bdt.skops``) beside the code
    of :mod:`flavortag.tracking_pyfunc` (MLflow's "models from code"): no
    pickle of the model is logged, so loading it (:func:`load_logged_model`)
    runs nothing from the store.
    """
    from flavortag import safe_load

    with warnings.catch_warnings():  # MLflow's own GenAI types warn about themselves on first import
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType")
        import mlflow.pyfunc
    with tempfile.TemporaryDirectory(prefix="flavortag-model-") as tmp:
        if is_torch:
            import torch

            from flavortag.models import checkpoint_state

            path = Path(tmp) / "checkpoint.pt"
            torch.save({"model": checkpoint_state(model.to("cpu").eval())}, path)
            requirements = ["torch", "flavortag"]
        else:
            path = Path(tmp) / f"bdt{safe_load.BDT_SUFFIX}"
            safe_load.save_bdt(model, path)
            requirements = ["scikit-learn", "skops", "flavortag"]
        mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).parents[1] / "tracking_pyfunc.py"), artifacts={MODEL_ARTIFACT_KEY: str(path)},
            pip_requirements=requirements)


def load_logged_model(uri: str) -> Any:
    """Load a logged tagger (``runs:/<id>/model`` or ``models:/...``) from its data-only artifact.

    Only the weights file is read, through :mod:`flavortag.safe_load`; the
    model's code is not run. A model logged in one of MLflow's pickle formats
    (by flavortag before 0.2) is refused: it could run any code when loaded.
    """
    from flavortag import safe_load

    info = mlflow.models.get_model_info(uri)
    flavors = info.flavors
    if "python_function" not in flavors or "pytorch" in flavors or "sklearn" in flavors:
        raise safe_load.UnsafeFileError(
            f"{uri}: refused: this MLflow model was logged with pickle ({', '.join(sorted(flavors))} "
            "flavour), which can run any code when loaded; retrain it with this flavortag, or, if you "
            "trust the store, convert its checkpoint with `flavortag trust <run dir>/checkpoints/best.pt`")
    with tempfile.TemporaryDirectory(prefix="flavortag-model-") as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        files = sorted(p for p in (local / "artifacts").rglob("*") if p.suffix in safe_load.MODEL_SUFFIXES)
        if len(files) != 1:
            raise ValueError(f"{uri}: expected one weights file ({', '.join(safe_load.MODEL_SUFFIXES)}) among "
                             f"its artifacts, found {[p.name for p in files]}")
        return safe_load.load_model_file(files[0])
