"""Scoring events from analysis code in one line: :class:`Tagger`.

    >>> import flavortag
    >>> from flavortag.io import read_events
    >>> tagger = flavortag.Tagger.from_run("3f2c0d...")        # or .load(any source)
    >>> scores = tagger.score(read_events("events.parquet"))
    >>> scores.fields
    ['prob_uds', 'prob_cc', 'prob_bb', 'D_b', 'D_c']

A tagger comes from an MLflow run id (:meth:`Tagger.from_run`), an MLflow
model URI (``runs:/<id>/model``, ``models:/<name>/<version>``;
:meth:`Tagger.from_uri`), a trainer checkpoint (``best.pt`` or ``bdt.skops``;
:meth:`Tagger.from_checkpoint`) or the directory that ``flavortag export``
writes (``tagger.onnx`` + ``tagger.json``, scored with onnxruntime;
:meth:`Tagger.from_exported`); :meth:`Tagger.load` picks the right one.

Scores are computed exactly as ``flavortag predict`` computes them: the same
features (:func:`flavortag.batching.build_event_tensors`), the same model call
(:func:`flavortag.scoring.inference.predict_proba`) and the same output columns and
discriminant definitions (:func:`flavortag.metrics.score_columns`,
``f_c`` / ``f_b`` defaulting to :data:`flavortag.metrics.DEFAULT_F_C` /
:data:`flavortag.metrics.DEFAULT_F_B`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np

from flavortag.ragged import DEFAULT_MAX_TRACKS, DEFAULT_SORT_BY

if TYPE_CHECKING:
    from flavortag.batching import EventTensors
    from flavortag.calibration import Calibration
    from flavortag.calibration_function import FunctionCalibration
    from flavortag.classes import ClassScheme


@dataclass(frozen=True)
class Prediction:
    """What one scoring pass gives: the probabilities, the model inputs (with the labels of
    labelled events) and the calibration that was applied (None: nominal resolutions)."""

    probs: np.ndarray
    tensors: EventTensors
    calibration: Calibration | None

    @property
    def labels(self) -> np.ndarray:
        """The events' true class codes (``-1`` where unknown)."""
        return np.asarray(self.tensors.labels)


class TaggerError(ValueError):
    """A tagger that cannot be found or events it cannot score: one line that says what is needed."""


#: The files of an exported tagger directory that :meth:`Tagger.from_exported` reads.
EXPORTED_ONNX, EXPORTED_INFO = "tagger.onnx", "tagger.json"
#: The raw-input ONNX tagger that ``flavortag export`` writes beside them (docs/ONNX.md).
EXPORTED_RAW_ONNX = "tagger_raw.onnx"


def _quiet_mlflow() -> None:
    """No INFO chatter (the artifact-download bars are off in :mod:`flavortag.tracking`)."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def _resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees one, else ``cpu``; a device the machine lacks is an error."""
    from flavortag.training.runtime import resolve_device

    if device == "auto":
        return str(resolve_device("auto").type)
    return str(resolve_device(device, key="device"))


class _OnnxModel:
    """An exported tagger (``tagger.onnx``) run by onnxruntime, fed the padded raw inputs."""

    def __init__(self, path: Path, device: str, class_names: list[str] | None = None) -> None:
        self.class_names = class_names  # the outputs' classes (tagger.json; None: uds, cc, bb)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the export extra
            raise ImportError("scoring an exported tagger needs onnxruntime: pip install onnxruntime") from exc
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def predict_proba(self, tensors: EventTensors, batch_size: int) -> np.ndarray:
        """Class probabilities [n, n_classes] in batches of ``batch_size`` (each trimmed to its longest event)."""
        out = []
        for start in range(0, len(tensors), batch_size):
            batch = tensors.batch(np.arange(start, min(start + batch_size, len(tensors))), layout="padded")
            feeds = {name: getattr(batch, name).numpy() for name in self.input_names}
            (probs,) = self.session.run(["probabilities"], feeds)
            out.append(np.asarray(probs, dtype=np.float64))
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names) if self.class_names else 3))


class Tagger:
    """A trained tagger with everything needed to score events: features, detector model, max_tracks.

    Build one with :meth:`load` (or ``from_run`` / ``from_uri`` /
    ``from_checkpoint`` / ``from_exported``), then call :meth:`score`.

    ``device``: ``"cpu"``, ``"cuda"`` (``"cuda:1"``, ...) or ``"auto"`` (CUDA
    when torch sees one); a BDT always runs on the CPU. ``batch_size``: events
    per model call. ``calibration``: the default of :meth:`score`'s
    ``calibration``. ``f_c`` / ``f_b``: the discriminant fractions (None: the
    package defaults, as ``flavortag predict`` uses).
    """

    def __init__(
        self,
        model: Any,
        *,
        feature_names: dict[str, list[str]],
        detector: Any = None,
        max_tracks: int | None = None,
        sort_by: str | None = DEFAULT_SORT_BY,
        source: str = "",
        kind: str = "torch",
        device: str = "auto",
        batch_size: int = 2048,
        calibration: Any = None,
        f_c: float | None = None,
        f_b: float | None = None,
        training_resolution: dict[str, Any] | None = None,
    ) -> None:
        from flavortag import metrics as ftm

        self.model = model
        self.feature_names = {"track": list(feature_names.get("track") or []),
                              "event": list(feature_names.get("event") or [])}
        self.detector_config = detector
        self.max_tracks = int(max_tracks or DEFAULT_MAX_TRACKS)
        self.sort_by = sort_by
        self.source = source
        self.kind = kind
        self.device = "cpu" if kind == "bdt" else _resolve_device(device)
        self.batch_size = int(batch_size)
        self.calibration = calibration
        #: the resolution functions of the training sample (``calibration=auto`` is relative to them)
        self.training_resolution = training_resolution
        self.f_c = ftm.DEFAULT_F_C if f_c is None else float(f_c)
        self.f_b = ftm.DEFAULT_F_B if f_b is None else float(f_b)
        if kind == "torch":
            self.model = model.to(self.device).eval()

    def __repr__(self) -> str:
        return (f"Tagger({self.kind}, source={self.source!r}, device={self.device!r}, "
                f"max_tracks={self.max_tracks})")

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_model(cls, model: Any, source: str = "", *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """A tagger loaded already (a torch :class:`~flavortag.models.TaggerModel` or a BDT).

        Every constructor takes the options of :class:`Tagger`: ``device``,
        ``batch_size``, ``calibration``, ``f_c``, ``f_b``.
        """
        from flavortag.scoring.inference import input_shape, is_torch_model

        max_tracks, sort_by = input_shape(model)
        return cls(model, feature_names=model.feature_names, detector=getattr(model, "detector", None),
                   max_tracks=max_tracks, sort_by=sort_by, source=source,
                   kind="torch" if is_torch_model(model) else "bdt", device=device, batch_size=batch_size, calibration=calibration, f_c=f_c, f_b=f_b,
                   training_resolution=getattr(model, "training_resolution", None))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """A trainer checkpoint: ``checkpoints/best.pt`` (torch) or ``checkpoints/bdt.skops`` (BDT)."""
        from flavortag.scoring.inference import load_model

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}: a training writes them under "
                                    "<output_dir>/checkpoints/ (best.pt, or bdt.skops for model=bdt)")
        return cls.from_model(load_model(str(path)), str(path), device=device, batch_size=batch_size, calibration=calibration, f_c=f_c, f_b=f_b)

    @classmethod
    def from_uri(cls, uri: str, tracking_uri: str | None = None, *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """An MLflow model URI: ``runs:/<run id>/model`` or ``models:/<name>/<version or alias>``.

        ``tracking_uri``: the MLflow store (None: ``MLFLOW_TRACKING_URI`` or
        ``sqlite:///mlflow.db`` in the working directory, as the apps use).
        """
        from flavortag import tracking
        from flavortag.scoring.inference import load_model

        _quiet_mlflow()
        from flavortag.schema.groups import DEFAULT_TRACKING_URI

        store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        db = tracking.sqlite_path(store)
        if db is not None and not db.is_file():
            raise FileNotFoundError(f"no MLflow store at {db}: train a tagger first (`flavortag train`), "
                                    "or pass tracking_uri= / set MLFLOW_TRACKING_URI to the store of the run")
        tracking.set_tracking_uri(store)
        if uri.startswith("runs:/"):
            run_id = uri[len("runs:/"):].split("/", 1)[0]
            if not tracking.run_exists(run_id):
                raise TaggerError(f"no run {run_id} in the MLflow store {store}: give the run id of a "
                                  "training in that store, or pass tracking_uri= (or set MLFLOW_TRACKING_URI) "
                                  "to the store the run was logged to")
        return cls.from_model(load_model(uri), uri, device=device, batch_size=batch_size, calibration=calibration, f_c=f_c, f_b=f_b)

    @classmethod
    def from_run(cls, run_id: str, tracking_uri: str | None = None, *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """The model logged by the training run ``run_id`` (see :meth:`from_uri` for ``tracking_uri``)."""
        return cls.from_uri(f"runs:/{run_id}/model", tracking_uri=tracking_uri, device=device, batch_size=batch_size, calibration=calibration, f_c=f_c, f_b=f_b)

    @classmethod
    def from_exported(cls, directory: str | os.PathLike[str], *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """The directory ``flavortag export`` writes: ``tagger.onnx`` run by onnxruntime, ``tagger.json`` beside."""
        directory = Path(directory)
        onnx_path, info_path = directory / EXPORTED_ONNX, directory / EXPORTED_INFO
        for path in (onnx_path, info_path):
            if not path.is_file():
                raise FileNotFoundError(f"no {path.name} in {directory}: make the directory with "
                                        f"`flavortag export <run id> {directory}` (with --formats onnx)")
        info = json.loads(info_path.read_text())
        device = _resolve_device(device)
        model = _OnnxModel(onnx_path, device, info.get("class_names"))
        return cls(model, feature_names=info["feature_names"], detector=info.get("detector"),
                   max_tracks=info.get("max_tracks"), sort_by=info.get("sort_by", DEFAULT_SORT_BY),
                   source=str(directory), kind="onnx", device=device, batch_size=batch_size, calibration=calibration, f_c=f_c, f_b=f_b,
                   training_resolution=info.get("training_resolution"))

    @classmethod
    def load(cls, source: str | os.PathLike[str], tracking_uri: str | None = None, *, device: str = "auto", batch_size: int = 2048,
                   calibration: Any = None, f_c: float | None = None, f_b: float | None = None) -> Tagger:
        """Whatever ``source`` is: an exported directory, a checkpoint file, an MLflow URI or a run id.

        ``tracking_uri``: the MLflow store of a run id or URI (see :meth:`from_uri`).
        """
        options: dict[str, Any] = {"device": device, "batch_size": batch_size, "calibration": calibration,
                                   "f_c": f_c, "f_b": f_b}
        text = str(source)
        path = Path(text)
        if path.is_dir():
            return cls.from_exported(path, **options)
        if path.is_file():
            return cls.from_checkpoint(path, **options)
        if text.startswith(("runs:/", "models:/")):
            return cls.from_uri(text, tracking_uri=tracking_uri, **options)
        from flavortag.scoring.inference import MODEL_FILE_SUFFIXES

        if "/" in text or path.suffix in MODEL_FILE_SUFFIXES:
            raise FileNotFoundError(f"no tagger at {text}: give a checkpoint file, a directory from "
                                    "`flavortag export`, an MLflow URI (runs:/<id>/model) or a run id")
        return cls.from_run(text, tracking_uri=tracking_uri, **options)

    # ---------------------------------------------------------------- scoring
    @property
    def scheme(self) -> ClassScheme:
        """The classes of the outputs (uds, cc, bb for events; light, c, b[, g] for jets)."""
        from flavortag.scoring.inference import model_scheme

        return model_scheme(self.model)

    @property
    def level(self) -> str:
        """``event`` or ``jet``: what the tagger's records are (an EDM4hep file is read at this level)."""
        return "event" if self.scheme.is_event_scheme else "jet"

    @property
    def reference(self) -> FunctionCalibration | None:
        """The resolution functions of the training sample (``calibration=auto`` is relative to them)."""
        from flavortag.calibration_function import FunctionCalibration

        stored = self.training_resolution
        return FunctionCalibration.from_dict(stored) if stored else None

    def _calibration(self, spec: Any, events: ak.Array, detector: Any, min_tracks: int | None) -> Calibration | None:
        from flavortag.calibration import MIN_TRACKS, resolve_calibration

        return resolve_calibration(spec, events, detector, reference=self.reference,
                                   min_tracks=MIN_TRACKS if min_tracks is None else min_tracks)

    def tensors(self, events: ak.Array, calibration: Any = "default",
                min_tracks: int | None = None) -> EventTensors:
        """The padded model inputs of ``events`` (features as the tagger was trained on)."""
        return self.predict(events, calibration, min_tracks, call_model=False).tensors

    def predict(self, events: ak.Array, calibration: Any = "default", min_tracks: int | None = None,
                call_model: bool = True) -> Prediction:
        """Score ``events``: the calibration resolved, the model inputs built, the model called.

        The one place where flavortag turns events into probabilities: ``predict``,
        ``evaluate``, ``robustness`` and :meth:`score` all come here. ``calibration``:
        as :meth:`score`; ``min_tracks``: the fewest negative-side tracks a fit
        (``calibration="auto"``) accepts (None: the calibration's own minimum).
        """
        check_events(events)
        from flavortag.detector import DetectorModel
        from flavortag.scoring.inference import model_inputs

        detector = DetectorModel.from_config(self.detector_config)
        spec = self.calibration if isinstance(calibration, str) and calibration == "default" else calibration
        calib = self._calibration(spec, events, detector, min_tracks)
        tensors = model_inputs(events, self.feature_names, detector, calib, self.max_tracks, self.sort_by)
        probs = self.predict_tensors(tensors) if call_model and len(events) else np.zeros((0, len(self.scheme)))
        return Prediction(probs, tensors, calib)

    def predict_tensors(self, tensors: EventTensors) -> np.ndarray:
        """Class probabilities ``[n, n_classes]`` of ready model inputs (a training's own split)."""
        if self.kind == "onnx":
            return np.asarray(self.model.predict_proba(tensors, self.batch_size))
        from flavortag.scoring.inference import predict_proba

        return predict_proba(self.model, tensors, batch_size=self.batch_size,
                             device=None if self.kind == "bdt" else self.device)

    def predict_proba(self, events: ak.Array, calibration: Any = "default") -> np.ndarray:
        """Class probabilities ``[n_events, 3]`` (order uds, cc, bb) of ``events``."""
        return self.predict(events, calibration).probs

    def score(self, events: ak.Array, calibration: Any = "default") -> ak.Array:
        """Per-event ``prob_uds, prob_cc, prob_bb, D_b, D_c`` (float32) of ``events``, in their order.

        ``events``: from :func:`flavortag.io.read_events` or any awkward Array
        of that layout (``tracks`` with E, px, py, pz, x, y, z; ``axis``).
        ``calibration``: None (nominal resolutions), ``"auto"`` (fit these
        events' resolution scale, no labels read), the path of a file from
        ``flavortag calibrate`` or a calibration object (``"auto"`` and a function
        calibration are applied relative to the tagger's ``training_resolution``);
        by default the tagger's own ``calibration``.
        """
        return ak.zip(self.score_columns(self.predict(events, calibration).probs), depth_limit=1)

    def score_columns(self, probs: np.ndarray) -> dict[str, np.ndarray]:
        """The output columns of probabilities ``probs`` (:func:`flavortag.metrics.score_columns`)."""
        from flavortag.metrics import score_columns

        return score_columns(probs, self.f_c, self.f_b, self.scheme)

    def working_points(self, events: ak.Array, efficiencies: Sequence[float] | None = None,
                       calibration: Any = "default") -> dict[str, Any]:
        """The b- and c-tagger's discriminant cuts at each signal efficiency, measured on labelled ``events``.

        ``events`` need a ``label`` field (true class code, as :func:`flavortag.io.read_events`
        gives it); ``efficiencies``: None for 0.5 ... 0.9. The dict of
        :func:`flavortag.metrics.working_points` (with this tagger's ``f_c``, ``f_b``);
        apply one with :func:`flavortag.metrics.apply_working_point`.
        """
        from flavortag import metrics as ftm

        check_events(events)
        if "label" not in events.fields:
            raise TaggerError("working points are measured on labelled events: these events have no "
                              "'label' field (read simulated events with flavortag.io.read_events)")
        probs = self.predict_proba(events, calibration)
        return ftm.working_points(probs, np.asarray(events["label"]),
                                  efficiencies=ftm.DEFAULT_EFFICIENCIES if efficiencies is None else efficiencies,
                                  f_c=self.f_c, f_b=self.f_b, scheme=self.scheme)


def check_events(events: Any) -> None:
    """Refuse (:class:`TaggerError`) what is not an awkward Array of events with ``tracks`` and ``axis``."""
    what = ("an awkward Array of events with fields 'tracks' (var * {E, px, py, pz, x, y, z}) and "
            "'axis' (the thrust or jet axis), as flavortag.io.read_events gives")
    if not isinstance(events, ak.Array):
        raise TaggerError(f"Tagger needs {what}, not a {type(events).__module__}.{type(events).__name__}")
    missing = [f for f in ("tracks", "axis") if f not in events.fields]
    if missing:
        raise TaggerError(f"Tagger needs {what}; these events have no {' or '.join(repr(m) for m in missing)} "
                          f"(fields: {', '.join(events.fields) or 'none'})")
