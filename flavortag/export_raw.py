"""The raw-input ONNX tagger: what a C++ framework has in hand in, class probabilities out.

:func:`export_raw_onnx` writes a graph whose inputs are the event itself
(docs/ONNX.md has the contract):

* ``axis [B, 3]`` float32: the event (thrust) or jet axis, any length;
* ``tracks [B, N, 7]`` float32: (E, px, py, pz, x, y, z) in GeV / mm, as in the
  event files (docs/FORMAT.md), in any order;
* ``valid [B, N]`` bool: True for a real track (padded slots are ignored, any pattern);
* ``particle [B, N, 5]`` float32 (only where the features read the particle flow, issue 25):
  per slot the fields :data:`~flavortag.features.padded.PARTICLE_FIELDS`, particle type
  (0 charged track, 1 photon, 2 neutral hadron), charge, dN/dx [1/mm], time of flight [ns],
  track length [mm], NaN where not measured. The neutral particles are slots of ``tracks``
  too (their measured 4-momentum); the graph writes them as training does
  (:func:`~flavortag.features.particle_flow.as_neutral_tokens`), makes them tokens where the
  tagger's features ask for the particle type, and leaves them out of the event features
  (and of every feature of a tagger without neutral tokens);
* ``track_sigma [B, N, 2]`` float32 (only where the features use resolutions):
  each track's sigma(d0), sigma(z0) in mm from its track fit; a value <= 0
  means "use the detector model's parametric resolution" for that track;
* ``resolution_scale [S, 2]`` float32, S = 1 or B (only where used): the
  (d0, z0) scales of a resolution calibration; optional, default ``[[1, 1]]``.

Inside the graph, in float64, run the same functions that compute the training
features (:func:`flavortag.features.padded_track_features` and
:func:`~flavortag.features.padded_event_features` on
:class:`~flavortag.features.PaddedTracks`, traced through torch): axis-relative
kinematics, lifetime-signed significances, joint prompt probabilities, the
event features; then the tracks are ordered by energy (descending, ties in
input order, padding last) and cut to the tagger's ``max_tracks`` exactly as
:func:`flavortag.batching.build_event_tensors` does, and the tagger (its input
standardisation inside) gives ``logits`` and ``probabilities [B, n_classes]``.

A BDT's graph (:func:`export_raw_bdt_onnx`) is the event-feature graph followed
by its trees (skl2onnx), merged into one file with the same inputs.

The metadata (``flavortag.*`` properties) carry the class names, the input
contract, the feature lists, the detector model and ``max_tracks``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flavortag.detector import DetectorModel
from flavortag.export import attach_metadata, class_names, frozen_copy, onnx_metadata
from flavortag.features import PaddedTracks, padded_event_features, padded_track_features
from flavortag.features import particle_flow as pf
from flavortag.features.padded import PARTICLE_FIELDS
from flavortag.features.track import VECTOR_FIELDS
from flavortag.io.atomic import atomic_output

#: Every input name the raw graph can have, in this order.
RAW_INPUTS: tuple[str, ...] = ("axis", "tracks", "valid", "particle", "track_sigma", "resolution_scale")
#: Shapes of the inputs (symbolic names for the dynamic axes).
RAW_INPUT_SHAPES: dict[str, list[str | int]] = {
    "axis": ["batch", 3], "tracks": ["batch", "tracks", 7], "valid": ["batch", "tracks"],
    "particle": ["batch", "tracks", len(PARTICLE_FIELDS)],
    "track_sigma": ["batch", "tracks", 2], "resolution_scale": ["scale_rows", 2],
}
RAW_OUTPUTS: tuple[str, ...] = ("logits", "probabilities")
#: The raw track columns, in the order of the ``tracks`` input (a tagger's ``sort_by`` is one of them).
TRACK_COLUMNS: tuple[str, ...] = VECTOR_FIELDS


def sort_column(model: Any) -> int:
    """The column of ``tracks`` the graph orders tracks by: the tagger's own ``sort_by``.

    A tagger trained with another order (``data.sort_by=null``: file order, or a
    field the raw inputs lack) cannot be reproduced from raw inputs in any order:
    refused, naming the setting.
    """
    from flavortag.scoring.inference import input_shape

    sort_by = input_shape(model)[1]
    if sort_by not in TRACK_COLUMNS:
        raise ValueError(f"this tagger was trained with data.sort_by={sort_by}: the raw-input graph "
                         f"orders tracks by one of {', '.join(TRACK_COLUMNS)}; export it without the raw "
                         "format (--formats onnx,torchscript)")
    return TRACK_COLUMNS.index(str(sort_by))


def _feature_names(model: Any) -> tuple[list[str], list[str]]:
    names = getattr(model, "feature_names", None) or {}
    if not isinstance(names, dict) or "track" not in names:
        raise ValueError("the model carries no feature_names {'track': [...], 'event': [...]}: "
                         "only a trained tagger (checkpoint, MLflow model) can be exported with raw inputs")
    return list(names.get("track") or []), list(names.get("event") or [])


def used_raw_inputs(track_names: list[str], event_names: list[str], detector: DetectorModel) -> tuple[str, ...]:
    """The graph inputs that features ``track_names`` / ``event_names`` read (in ``RAW_INPUTS`` order).

    Found by computing them once on one dummy track with every optional input
    given and recording which ones the quantities touched.
    """
    q = PaddedTracks(np.array([[[1.0, 0.6, 0.0, 0.8, 0.01, 0.0, 0.0]]]), np.array([[True]]),
                     np.array([[0.0, 0.0, 1.0]]), detector, np.ones((1, 2)), np.full((1, 1, 2), 0.01))
    if track_names:
        padded_track_features(q, track_names)
    if event_names:
        padded_event_features(q, event_names)
    missing = sorted(q.used_inputs - set(RAW_INPUTS))
    if missing:  # an input the graph has no place for: refused, never silently diverging
        raise ValueError(f"this tagger's features read {', '.join(missing)}, which the raw-input graph does not "
                         "take; export it without the raw format (--formats onnx,torchscript)")
    return tuple(n for n in RAW_INPUTS if n in ("axis", "tracks", "valid") or n in q.used_inputs)


class RawFeatures(nn.Module):
    """Raw event inputs -> the tagger's track and event features (float32), in the namespace of torch."""

    def __init__(self, track_names: list[str], event_names: list[str], detector: DetectorModel) -> None:
        super().__init__()
        self.track_names, self.event_names = list(track_names), list(event_names)
        self.detector = detector
        self.input_names = used_raw_inputs(self.track_names, self.event_names, detector)
        #: the neutral particles are tokens beside the tracks (as ``build_event_tensors`` makes them)
        self.neutral_tokens = pf.uses_neutral_tokens(self.track_names)

    def forward(self, axis: Tensor, tracks: Tensor, valid: Tensor, track_sigma: Tensor | None = None,
                resolution_scale: Tensor | None = None,
                particle: Tensor | None = None) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        """``(track features [B, N, F] | None, event features [B, G] | None, tokens [B, N, 7], token mask [B, N])``.

        The tokens are the tracks (and the neutral particles where the tagger takes them as
        tokens), every other slot zeroed; the event features see the charged tracks only, as
        in training.
        """
        valid = valid.to(torch.bool)
        vectors = tracks.to(torch.float32).to(torch.float64)
        fields, charged = None, valid
        if particle is not None:
            vectors, fields = pf.as_neutral_tokens(vectors, particle.to(torch.float32).to(torch.float64))
            charged = valid & (fields[..., PARTICLE_FIELDS.index("particle_type")] == pf.CHARGED)
        tokens = valid if self.neutral_tokens else charged
        scale = None if resolution_scale is None else resolution_scale.to(torch.float64)

        def quantities(mask: Tensor) -> PaddedTracks:
            def zeroed(x: Tensor | None) -> Tensor | None:
                return None if x is None else x.to(torch.float64).masked_fill(~mask.unsqueeze(-1), 0.0)
            return PaddedTracks(zeroed(vectors), mask, axis.to(torch.float64), self.detector, scale,
                                zeroed(track_sigma), zeroed(fields))

        q = quantities(tokens)
        track_features = None
        if self.track_names:
            track_features = padded_track_features(q, self.track_names).to(torch.float32)
        event_features = None
        if self.event_names:
            q_event = q if tokens is charged else quantities(charged)
            event_features = padded_event_features(q_event, self.event_names).to(torch.float32)
        return track_features, event_features, q.vectors.to(torch.float32), tokens

    def named(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
        """:meth:`forward` on positional inputs named ``self.input_names``."""
        named = dict(zip(self.input_names, inputs))
        return self(named["axis"], named["tracks"], named["valid"], named.get("track_sigma"),
                    named.get("resolution_scale"), named.get("particle"))


class RawInputScorer(nn.Module):
    """Raw event inputs -> ``(logits, probabilities)``: features, track order and tagger in one module."""

    def __init__(self, model: nn.Module, detector: DetectorModel, max_tracks: int) -> None:
        super().__init__()
        self.model = model
        self.max_tracks = int(max_tracks)
        self.sort_column = sort_column(model)
        track_names, event_names = _feature_names(model)
        self.reads_tracks = "features" in tuple(getattr(model, "export_inputs", ()))
        self.raw = RawFeatures(track_names if self.reads_tracks else [], event_names, detector)
        self.input_names = self.raw.input_names

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Positional inputs named ``self.input_names`` -> ``(logits, probabilities)``."""
        track_features, event_features, tracks, valid = self.raw.named(inputs)
        batch = tracks.shape[0]
        if track_features is None:
            features = tracks.new_zeros((batch, 0, int(getattr(self.model, "n_track_features", 0))))
            kept_valid = torch.zeros((batch, 0), dtype=torch.bool)
            vectors = tracks[:, :0]
        else:
            # the tagger's order (sort_by, descending), padding last, ties in input order
            # (ONNX TopK), then the first max_tracks
            key = tracks[..., self.sort_column].masked_fill(~valid, -float("inf"))
            order = torch.topk(key, key.shape[1], dim=1, largest=True, sorted=True).indices[:, : self.max_tracks]
            kept_valid = torch.gather(valid, 1, order)
            features = torch.gather(track_features, 1, order.unsqueeze(-1).expand(-1, -1, track_features.shape[-1]))
            vectors = torch.gather(tracks, 1, order.unsqueeze(-1).expand(-1, -1, tracks.shape[-1]))
        model: Any = self.model
        logits = model.forward_padded(features, kept_valid, event_features, vectors)
        return logits, torch.softmax(logits, dim=-1)


def example_raw_inputs(batch_size: int = 3, n_tracks: int = 12, seed: int = 0) -> dict[str, Tensor]:
    """Plausible raw inputs (pion-like tracks near the origin, some padding) for tracing."""
    gen = torch.Generator().manual_seed(seed)
    n_valid = [max(1, n_tracks - (b * n_tracks) // max(batch_size, 1)) for b in range(batch_size)]
    valid = torch.arange(n_tracks)[None, :] < torch.tensor(n_valid)[:, None]
    momentum = torch.randn(batch_size, n_tracks, 3, generator=gen) * 3.0
    energy = (momentum.square().sum(-1) + 0.13957**2).sqrt()
    points = torch.randn(batch_size, n_tracks, 3, generator=gen) * 0.05
    axis = torch.nn.functional.normalize(torch.randn(batch_size, 3, generator=gen), dim=-1)
    kind = torch.randint(0, 3, (batch_size, n_tracks), generator=gen).to(torch.float32)
    pid = torch.tensor([1.3, 6.0, 1800.0]) * (1.0 + 0.1 * torch.rand(batch_size, n_tracks, 3, generator=gen))
    pid = pid.masked_fill(torch.rand(batch_size, n_tracks, 1, generator=gen) < 0.2, float("nan"))
    charge = torch.where(torch.rand(batch_size, n_tracks, generator=gen) < 0.5, -1.0, 1.0)
    return {
        "axis": axis,
        "tracks": torch.cat((energy[..., None], momentum, points), dim=-1),
        "valid": valid,
        "track_sigma": torch.where(torch.rand(batch_size, n_tracks, 2, generator=gen) < 0.5,
                                   torch.full((batch_size, n_tracks, 2), 0.02), torch.zeros(batch_size, n_tracks, 2)),
        "resolution_scale": torch.ones(1, 2),
        "particle": torch.cat((kind[..., None], charge[..., None], pid), dim=-1),
    }


def raw_contract(input_names: tuple[str, ...]) -> dict[str, Any]:
    """The input contract written into the metadata: names, shapes, dtypes, units."""
    units = {
        "axis": "unit-free direction (normalised in the graph; zero -> +z)",
        "tracks": ("E, px, py, pz [GeV], x, y, z [mm]: reference point (point of closest approach to the beam axis); "
                   "a neutral particle's slot (particle_type 1, 2): its E, px, py, pz"),
        "valid": "bool, True = real track (or neutral particle)",
        "particle": ("particle_type (0 charged track, 1 photon, 2 neutral hadron), charge [e], dndx [1/mm], "
                     "tof_ns [ns], track_length_mm [mm]; NaN = not measured. A neutral's tracks row is its "
                     "E, px, py, pz (x, y, z, charge and PID ignored)"),
        "track_sigma": "sigma(d0), sigma(z0) [mm] of the track fit; <= 0: the detector model's parametric resolution",
        "resolution_scale": "(d0, z0) resolution scales, rows 1 or B; default [[1, 1]]",
    }
    return {n: {"shape": RAW_INPUT_SHAPES[n], "dtype": "bool" if n == "valid" else "float32", "meaning": units[n]}
            for n in input_names}


def _model_context(model: Any, detector: DetectorModel | dict[str, Any] | None,
                   max_tracks: int | None) -> tuple[DetectorModel, int]:
    det = detector if isinstance(detector, DetectorModel) else DetectorModel.from_config(
        detector if detector is not None else getattr(model, "detector", None))
    n = max_tracks if max_tracks is not None else getattr(model, "max_tracks", None)
    return det, int(n or 64)


def _metadata(model: Any, names: tuple[str, ...], detector: DetectorModel, max_tracks: int,
              config: dict[str, Any]) -> dict[str, str]:
    track_names, event_names = _feature_names(model)
    return onnx_metadata(
        model, config, names, {"track": track_names, "event": event_names}, kind="raw_inputs",
        input_contract=json.dumps(raw_contract(names)),
        detector=json.dumps(detector.to_dict(), sort_keys=True), max_tracks=str(max_tracks),
        track_order=f"by {TRACK_COLUMNS[sort_column(model)]} descending, then the first max_tracks")


def _finish(proto: Any, path: Path, metadata: dict[str, str], doc: str) -> Path:
    """Default the resolution scale to 1, attach the metadata, check and write atomically."""
    import onnx
    from onnx import numpy_helper

    if any(i.name == "resolution_scale" for i in proto.graph.input):
        # an initializer with an input's name is that input's default (ONNX IR >= 4)
        proto.graph.initializer.append(numpy_helper.from_array(np.ones((1, 2), np.float32), "resolution_scale"))
    attach_metadata(proto, metadata)
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    with atomic_output(path) as tmp:
        onnx.save(proto, str(tmp))
    return path


def export_raw_onnx(model: nn.Module, path: str | os.PathLike[str], detector: DetectorModel | dict | None = None,
                    max_tracks: int | None = None, opset: int = 17) -> Path:
    """Write a torch tagger as a raw-input ONNX graph (module doc); return the path.

    ``detector`` / ``max_tracks`` default to those the model was trained with
    (``model.detector``, ``model.max_tracks``).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    det, n_max = _model_context(model, detector, max_tracks)
    frozen = frozen_copy(model)  # type: ignore[arg-type]
    scorer = RawInputScorer(frozen, det, n_max).eval()
    names = scorer.input_names
    example = example_raw_inputs()
    dynamic_axes: dict[str, dict[int, str]] = {
        n: {i: a for i, a in enumerate(RAW_INPUT_SHAPES[n]) if isinstance(a, str)} for n in names}
    for n in RAW_OUTPUTS:
        dynamic_axes[n] = {0: "batch"}
    tmp = path.with_name(path.name + ".trace.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(scorer, tuple(example[n] for n in names), str(tmp), dynamo=False, opset_version=opset,
                          input_names=list(names), output_names=list(RAW_OUTPUTS), dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    metadata = _metadata(frozen, names, det, n_max, dict(getattr(frozen, "config", {})))
    doc = (f"flavortag {getattr(frozen, 'name', 'torch')} tagger with raw inputs {list(names)} -> "
           f"logits/probabilities {class_names(frozen)}")
    return _finish(proto, path, metadata, doc)


class _EventFeatureGraph(nn.Module):
    """Raw inputs -> event features ``[B, G]`` (the BDT's inputs)."""

    def __init__(self, raw: RawFeatures) -> None:
        super().__init__()
        self.raw = raw

    def forward(self, *inputs: Tensor) -> Tensor:
        """Positional inputs named ``self.raw.input_names`` -> ``event_features [B, G]``."""
        _, event_features, _, _ = self.raw.named(inputs)
        if event_features is None:
            raise ValueError("the BDT has no event features")
        return event_features


def export_raw_bdt_onnx(clf: Any, path: str | os.PathLike[str], detector: DetectorModel | dict | None = None,
                        opset: int = 17) -> Path:
    """Write a BDT as one raw-input ONNX graph: event features (traced torch) then its trees (skl2onnx).

    Outputs ``label [B]`` and ``probabilities [B, n_classes]``; inputs as for
    :func:`export_raw_onnx` (a BDT reads no track features, so the track order does not matter).
    """
    import onnx
    from onnx import compose

    from flavortag.export import export_bdt_onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    det, n_max = _model_context(clf, detector, None)
    raw = RawFeatures([], _feature_names(clf)[1], det)
    names = raw.input_names
    example = example_raw_inputs()
    dynamic_axes: dict[str, dict[int, str]] = {
        n: {i: a for i, a in enumerate(RAW_INPUT_SHAPES[n]) if isinstance(a, str)} for n in names}
    dynamic_axes["event_features"] = {0: "batch"}
    features_path = path.with_name(path.name + ".features.tmp")
    trees_path = path.with_name(path.name + ".trees.tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        torch.onnx.export(_EventFeatureGraph(raw), tuple(example[n] for n in names), str(features_path),
                          dynamo=False, opset_version=opset, input_names=list(names),
                          output_names=["event_features"], dynamic_axes=dynamic_axes, do_constant_folding=True)
    export_bdt_onnx(clf, trees_path, opset=opset)
    features, trees = onnx.load(str(features_path)), onnx.load(str(trees_path))
    features_path.unlink()
    trees_path.unlink()
    del trees.metadata_props[:]
    features = compose.add_prefix(features, prefix="features/", rename_inputs=False, rename_outputs=False)
    trees = compose.add_prefix(trees, prefix="trees/", rename_inputs=False, rename_outputs=False)
    features.ir_version = trees.ir_version = max(features.ir_version, trees.ir_version)
    opsets = {o.domain: o.version for o in [*features.opset_import, *trees.opset_import]}
    for model in (features, trees):
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_operatorsetid(d, v) for d, v in opsets.items())
    merged = compose.merge_models(features, trees, io_map=[("event_features", "event_features")])
    from flavortag.export import bdt_config

    metadata = _metadata(clf, names, det, n_max, bdt_config(clf))
    doc = f"flavortag bdt tagger with raw inputs {list(names)} -> probabilities {class_names(clf)}"
    return _finish(merged, path, metadata, doc)
