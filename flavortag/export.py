"""Export trained taggers for use outside Python training code: ONNX and TorchScript.

Both exports take *raw* inputs (the normalisation buffers are inside the
graph) in the padded layout of :meth:`TaggerModel.forward_padded`:

* ``features [B, N, F]`` float32, ``valid [B, N]`` bool (True = real track),
* ``event_features [B, G]`` float32 (models that read them),
* ``vectors [B, N, 7]`` float32 raw (E, px, py, pz, x, y, z) in GeV/mm
  (transformers with pair features).

ONNX: the graph inputs are exactly those the model reads
(``model.export_inputs``, in that order), with dynamic batch and track axes;
outputs ``logits [B, 3]`` and ``probabilities [B, 3]`` (softmax; class order
uds, cc, bb). The model config, class names and feature names are stored as
metadata properties (JSON strings). Exported with the TorchScript-based
exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``.

TorchScript: a scripted module whose ``forward(features, valid,
event_features=None, vectors=None)`` returns logits; the same JSON documents
ride along as extra files (``config.json``, ``class_names.json``,
``feature_names.json``).

A BDT (scikit-learn ``HistGradientBoostingClassifier``, ``model=bdt``) exports
to ONNX only (:func:`export_bdt_onnx`, through skl2onnx): input
``event_features [B, G]`` float32, outputs ``label`` and ``probabilities``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from flavortag.classes import class_scheme
from flavortag.io.atomic import atomic_output
from flavortag.models.base import TaggerModel
from flavortag.schema.groups import BDT

ONNX_OUTPUTS: tuple[str, ...] = ("logits", "probabilities")


def example_inputs(model: TaggerModel, batch_size: int = 2, max_tracks: int = 16, seed: int = 0) -> dict[str, Tensor]:
    """Return plausible random raw inputs for ``model`` (all four names), with padding.

    Event ``b`` has ``max_tracks - b * max_tracks // batch_size`` valid tracks
    (at least one), so every batch mixes full and padded events. Momenta are
    pion-like (E >= |p|), reference points within a millimetre of the origin.
    """
    gen = torch.Generator().manual_seed(seed)
    n_valid = [max(1, max_tracks - (b * max_tracks) // max(batch_size, 1)) for b in range(batch_size)]
    valid = torch.arange(max_tracks)[None, :] < torch.tensor(n_valid)[:, None]
    momentum = torch.randn(batch_size, max_tracks, 3, generator=gen) * 3.0
    energy = (momentum.square().sum(-1) + 0.13957**2).sqrt()
    points = torch.randn(batch_size, max_tracks, 3, generator=gen) * 0.1
    vectors = torch.cat((energy[..., None], momentum, points), dim=-1)
    return {
        "features": torch.randn(batch_size, max_tracks, model.n_track_features, generator=gen),
        "valid": valid,
        "event_features": torch.randn(batch_size, max(model.n_event_features, 0), generator=gen),
        "vectors": vectors,
    }


class _OnnxScorer(nn.Module):
    """Positional inputs (``model.export_inputs``) -> ``(logits, probabilities)``, for tracing."""

    def __init__(self, model: TaggerModel) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(model.export_inputs)

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        named: dict[str, Tensor] = dict(zip(self.input_names, inputs))
        if "features" in named:
            features, valid = named["features"], named["valid"]
        else:  # event-level model: track inputs are not read
            batch = named["event_features"].shape[0]
            features = named["event_features"].new_zeros((batch, 0, self.model.n_track_features))
            valid = torch.zeros((batch, 0), dtype=torch.bool)
        logits = self.model.forward_padded(features, valid, named.get("event_features"), named.get("vectors"))
        return logits, torch.softmax(logits, dim=-1)


class PaddedScorer(nn.Module):
    """``forward(features, valid, event_features=None, vectors=None) -> logits``: the scriptable face."""

    def __init__(self, model: TaggerModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        features: Tensor,
        valid: Tensor,
        event_features: Tensor | None = None,
        vectors: Tensor | None = None,
    ) -> Tensor:
        """Return logits ``[B, 3]`` from raw padded inputs."""
        return self.model.forward_padded(features, valid, event_features, vectors)


def class_names(model: Any) -> list[str]:
    """The classes of a tagger's outputs, in order (its ``class_names``; none stored: uds, cc, bb)."""
    return list(class_scheme(getattr(model, "class_names", None)).names)


def onnx_metadata(model: Any, config: Mapping[str, Any], inputs: Sequence[str], feature_names: Any,
                  **extra: str) -> dict[str, str]:
    """The ``flavortag.*`` metadata of every exported ONNX file (the one place its keys are written).

    ``config``: the model's hyperparameters; ``inputs``: the graph's input
    names; ``feature_names``: ``{"track": [...], "event": [...]}``; ``extra``:
    further keys (``n_track_features`` -> ``flavortag.n_track_features``), as text.
    """
    return {
        "flavortag.config": json.dumps(dict(config), sort_keys=True),
        "flavortag.class_names": json.dumps(class_names(model)),
        "flavortag.feature_names": json.dumps(feature_names),
        "flavortag.inputs": json.dumps(list(inputs)),
        **{f"flavortag.{key}": value for key, value in extra.items()},
    }


def attach_metadata(proto: Any, metadata: Mapping[str, str]) -> None:
    """Write ``metadata`` into an ONNX model's ``metadata_props``."""
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def frozen_copy(model: TaggerModel) -> TaggerModel:
    """A CPU, eval-mode deep copy (the caller's model keeps its device and mode)."""
    frozen = copy.deepcopy(model).to("cpu").eval()
    for param in frozen.parameters():
        param.requires_grad_(False)
    return frozen


def export_onnx(
    model: TaggerModel,
    path: str | os.PathLike[str],
    max_tracks_example: int = 16,
    opset: int = 17,
    batch_size_example: int = 2,
) -> Path:
    """Write ``model`` as an ONNX file with dynamic batch and track axes; return the path.

    ``max_tracks_example`` / ``batch_size_example`` only shape the tracing
    example; the file accepts any batch size and track count. The file is
    checked with ``onnx.checker`` and written atomically.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frozen = frozen_copy(model)
    scorer = _OnnxScorer(frozen)
    names = list(scorer.input_names)
    inputs = example_inputs(frozen, batch_size_example, max_tracks_example)
    args = tuple(inputs[n] for n in names)
    dynamic_axes: dict[str, dict[int, str]] = {}
    for n in names:
        dynamic_axes[n] = {0: "batch"} if n == "event_features" else {0: "batch", 1: "tracks"}
    for n in ONNX_OUTPUTS:
        dynamic_axes[n] = {0: "batch"}
    with atomic_output(path) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            torch.onnx.export(
                scorer, args, str(tmp), dynamo=False, opset_version=opset, input_names=names,
                output_names=list(ONNX_OUTPUTS), dynamic_axes=dynamic_axes, do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        attach_metadata(proto, onnx_metadata(
            frozen, frozen.config, frozen.export_inputs, getattr(frozen, "feature_names", None),
            n_track_features=str(frozen.n_track_features), n_event_features=str(frozen.n_event_features)))
        proto.doc_string = (f"flavortag {frozen.name} tagger: raw inputs {names} -> logits/probabilities "
                            f"{class_names(frozen)}")
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return path


def export_torchscript(model: TaggerModel, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a scripted :class:`PaddedScorer` (``torch.jit.load`` reads it); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frozen = frozen_copy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        scripted = torch.jit.script(PaddedScorer(frozen))
    extra = {
        "config.json": json.dumps(frozen.config, sort_keys=True),
        "class_names.json": json.dumps(class_names(frozen)),
        "feature_names.json": json.dumps(getattr(frozen, "feature_names", None)),
    }
    with atomic_output(path) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files=extra)
    return path


def load_torchscript(path: str | os.PathLike[str]) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load a TorchScript export; return the module and its JSON extras (config, class/feature names)."""
    extra = {"config.json": "", "class_names.json": "", "feature_names.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    info = {name.removesuffix(".json"): json.loads(text) if text else None for name, text in extra.items()}
    return module, info


@contextmanager
def _skl2onnx_int_missing_flags() -> Iterator[None]:
    """skl2onnx 1.20 passes a Python bool as a leaf's ``nodes_missing_value_tracks_true``, which
    onnx >= 1.19 refuses in an ints attribute; give it an int while converting (restored after)."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        kwargs["nodes_missing_value_tracks_true"] = int(kwargs.get("nodes_missing_value_tracks_true", 0))
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def bdt_config(clf: Any) -> dict[str, Any]:
    """The ``model`` config of a trained BDT (``name: bdt`` and its scikit-learn parameters)."""
    params = {k: v for k, v in clf.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))}
    return {"name": BDT, **params}


def export_bdt_onnx(clf: Any, path: str | os.PathLike[str], opset: int = 17) -> Path:
    """Write a trained BDT (scikit-learn ``HistGradientBoostingClassifier``) as ONNX; return the path.

    Input ``event_features [B, G]`` float32 (raw, as the BDT was trained on);
    output ``probabilities [B, 3]`` (class order uds, cc, bb) and ``label [B]``.
    Converted by skl2onnx (a ``TreeEnsembleClassifier``, softmax inside), with
    the same metadata properties as :func:`export_onnx`; checked with
    ``onnx.checker`` and written atomically.
    """
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_features = int(clf.n_features_in_)
    with _skl2onnx_int_missing_flags():
        proto = convert_sklearn(
            clf, initial_types=[("event_features", FloatTensorType([None, n_features]))],
            options={id(clf): {"zipmap": False}}, target_opset={"": opset, "ai.onnx.ml": 3})
    names = getattr(clf, "feature_names", {"track": [], "event": []})
    attach_metadata(proto, onnx_metadata(clf, bdt_config(clf), ["event_features"], names,
                                         n_track_features="0", n_event_features=str(n_features)))
    proto.doc_string = f"flavortag bdt tagger: raw event_features -> probabilities {class_names(clf)}"
    onnx.checker.check_model(proto)
    with atomic_output(path) as tmp:
        onnx.save(proto, str(tmp))
    return path
