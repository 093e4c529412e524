"""Reading model files without running code: the one place flavortag opens a checkpoint.

Python's pickle runs whatever a file tells it to, so a shared checkpoint or
MLflow store could run any command on the machine that loads it. flavortag
therefore reads only formats that hold data:

- torch checkpoints (``best.pt``, ``last.pt``, an exported tagger, the MLflow
  model's ``checkpoint.pt``) with ``torch.load(weights_only=True)``: tensors
  and plain containers, numbers and strings only (what
  :func:`flavortag.models.checkpoint_state` and the trainer write);
- the BDT (scikit-learn) as a skops file (``bdt.skops``): skops rebuilds an
  estimator from a schema of known types and refuses every type that is not
  on the list of :data:`BDT_TRUSTED_TYPES` (the tree predictor of
  ``HistGradientBoostingClassifier``; scikit-learn, numpy and builtin types
  are trusted by skops itself). skops is scikit-learn's own answer to this
  problem, it is a dependency of MLflow's safe sklearn format, and unlike an
  ONNX export plus JSON it keeps the very estimator that was trained (its
  ``predict_proba``, feature names and class names) with no second
  implementation to keep equal;
- nothing else: a pickle (``.pkl``), a checkpoint that needs pickle, a model
  that MLflow logged with its pickle formats, are refused with one line that
  says how to convert a *trusted* file (:func:`convert_trusted`,
  ``flavortag trust <file>``).

A truncated or corrupt checkpoint is refused with its name and what to use
instead. Nothing here imports MLflow or touches the network.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

#: Types beyond scikit-learn's, numpy's and Python's own that a BDT file may hold.
BDT_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
#: File suffixes of the formats read here.
TORCH_SUFFIXES = (".pt", ".pth")
BDT_SUFFIX = ".skops"
#: Pickle files: refused (convert a trusted one with :func:`convert_trusted`).
PICKLE_SUFFIXES = (".pkl", ".pickle")
#: The model files flavortag writes and reads: torch checkpoints and the BDT.
MODEL_SUFFIXES = (*TORCH_SUFFIXES, BDT_SUFFIX)


class UnsafeFileError(ValueError):
    """A model file that could only be read by running code from it (pickle): refused."""


class CorruptCheckpointError(ValueError):
    """A checkpoint that cannot be read at all (truncated, not a checkpoint)."""


def _convert_hint(path: Path) -> str:
    return (f"if you trust where it came from, convert it once with `flavortag trust {path}` "
            "(writes a weights-only copy beside it), then load the copy")


def load_torch_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` of ``path`` with ``weights_only=True``: tensors and plain data only.

    Raises :class:`UnsafeFileError` for a file that needs pickle (old flavortag
    checkpoints, or a file built to run code) and :class:`CorruptCheckpointError`
    for a truncated or unreadable one; both messages name the file.
    """
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err):
            detail = _unsafe_detail(str(err))
            raise UnsafeFileError(
                f"{path}: refused: loading it would need Python pickle, which can run any code "
                f"({detail}); {_convert_hint(path)}") from None
        raise CorruptCheckpointError(_corrupt_message(path, err)) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as err:
        raise CorruptCheckpointError(_corrupt_message(path, err)) from None


def _unsafe_detail(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line.startswith(("Trying to load", "Unsupported")):
            return line.rstrip(".")
    return "it holds Python objects, not only tensors and plain data"


def _corrupt_message(path: Path, err: BaseException) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    siblings = [p.name for p in (path.parent / "best.pt", path.parent / "last.pt")
                if p.exists() and p != path]
    instead = (f"use {siblings[0]} beside it" if siblings else "use another checkpoint")
    return (f"{path}: not a readable checkpoint, truncated or corrupt ({first}); {instead}, "
            "or start a fresh run without trainer.resume")


def save_bdt(model: Any, path: str | Path) -> None:
    """Write a scikit-learn BDT as a skops file (readable by :func:`load_bdt`)."""
    import skops.io as sio

    sio.dump(model, str(path))


def load_bdt(path: str | Path) -> Any:
    """Read a BDT written by :func:`save_bdt`; any type outside :data:`BDT_TRUSTED_TYPES` is refused."""
    import skops.io as sio

    path = Path(path)
    try:
        untrusted = sio.get_untrusted_types(file=str(path))
    except Exception as err:  # a zip skops cannot read: truncated, or not a skops file
        raise CorruptCheckpointError(_corrupt_message(path, err)) from None
    unknown = sorted(set(untrusted) - set(BDT_TRUSTED_TYPES))
    if unknown:
        raise UnsafeFileError(f"{path}: refused: it holds types that are not a flavortag BDT's "
                              f"({', '.join(unknown)}); loading them could run code")
    model = sio.load(str(path), trusted=list(untrusted))
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(model, HistGradientBoostingClassifier):
        raise CorruptCheckpointError(f"{path}: not a flavortag BDT (holds a {type(model).__name__}, "
                                     "not a HistGradientBoostingClassifier)")
    return model


def load_model_file(path: str | Path) -> Any:
    """A tagger from a file: a torch checkpoint (``.pt``) or a BDT (``.skops``); pickles refused."""
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise UnsafeFileError(f"{path}: refused: a pickle file can run any code when loaded; "
                              + _convert_hint(path))
    if path.suffix == BDT_SUFFIX:
        return load_bdt(path)
    from flavortag.models import model_from_checkpoint

    blob = load_torch_file(path)
    if not isinstance(blob, dict):
        raise CorruptCheckpointError(f"{path}: not a flavortag checkpoint (holds a "
                                     f"{type(blob).__name__}, not a dict)")
    state = blob["model"] if "model" in blob else blob
    try:
        return model_from_checkpoint(state)
    except ValueError as err:
        raise CorruptCheckpointError(f"{path}: {err}") from None


def convert_trusted(path: str | Path) -> Path:
    """Rewrite a *trusted* pickle-based model file in a format that holds data only.

    This is the one place that unpickles, and only when a person asks for it by
    name (``flavortag trust <file>``): ``.pkl`` BDT -> ``.skops``; a torch
    checkpoint that needs pickle -> ``<name>.safe.pt`` with plain containers
    (OmegaConf and numpy values turned into Python ones). Returns the new path.
    """
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        with open(path, "rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - the user vouched for this file
        out = path.with_suffix(BDT_SUFFIX)
        save_bdt(model, out)
        load_bdt(out)
        return out
    import torch

    from flavortag.io.atomic import atomic_output

    blob = torch.load(path, map_location="cpu", weights_only=False)  # the user vouched for it
    out = path.with_name(path.stem + ".safe" + path.suffix)
    with atomic_output(out) as tmp:
        torch.save(_plain(blob), tmp)
    load_torch_file(out)
    return out


def _plain(value: Any) -> Any:
    """``value`` with containers turned into dicts / lists and numpy scalars into Python numbers."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k) if not isinstance(k, int) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if hasattr(value, "__dict__"):
        return _plain(vars(value))
    return str(value)


__all__ = [
    "BDT_SUFFIX",
    "BDT_TRUSTED_TYPES",
    "MODEL_SUFFIXES",
    "CorruptCheckpointError",
    "UnsafeFileError",
    "convert_trusted",
    "load_bdt",
    "load_model_file",
    "load_torch_file",
    "save_bdt",
]
