"""The training app: ``flavortag train`` / ``python -m flavortag.train`` (Hydra).

One run = one MLflow record: resolved config (params + ``config.yaml``), git
commit, feature lists, per-epoch train/validation loss and accuracy, the
number of training events used (``train/events``), throughput, checkpoints,
the logged model and, by default, the test-split evaluation (metrics, plots,
working points, predictions). After a mid-epoch resume, that epoch's
``train/loss`` and ``train/acc`` cover the steps after the resume;
``train/events`` counts the whole epoch.

The torch loop: AdamW, linear warm-up + cosine schedule per step, gradient
clipping, early stopping on the validation loss, best/last checkpoints written
atomically (also every ``checkpoint_every_steps`` steps inside an epoch), and
``trainer.resume=auto`` to continue a killed run from its last checkpoint (same
MLflow run, same data order). ``trainer.device=auto`` picks CUDA when present;
bf16 autocast on GPU; DistributedDataParallel under ``torchrun`` with
``trainer=ddp``. ``model=bdt`` trains scikit-learn gradient-boosted trees on the
event features through the same app.

Streaming (``data.streaming=true``, torch models only) is for training files
larger than memory. The training events are read from ``data.paths`` chunk by
chunk every epoch (``data.step_size``), their features computed per chunk,
shuffled inside a buffer of ``data.shuffle_buffer`` events and dealt out over
DDP ranks and loader workers (``flavortag.batching.StreamingEventDataset``,
reseeded per epoch), so every training event is seen once per epoch
(``train/events`` says how many were). Validation and test events come from
their own files, ``data.val_paths`` (required) and ``data.test_paths`` (optional:
without it there is no test evaluation), read into memory; ``data.split`` is not
used. Before training, the events are counted once (Parquet / ROOT: file
metadata and the label column; text: one reading pass) for the length of the
learning-rate schedule and the class weights, and the input standardisation is
fitted on ``data.normalisation_events`` events taken from the start of every
training file (the first N / n_files of each). The buffer only mixes events
that are near each other in the stream, so each training file should hold a
mix of classes (not one class per file) unless the buffer holds the whole
sample. Under DDP, ranks whose share of the stream runs out before the others'
take zero-weight steps until every rank is done, so all ranks take the same
steps and keep identical weights. Resuming (``trainer.resume``) works at epoch
and mid-epoch level; a mid-epoch resume replays the interrupted epoch's stream
(same file order, same buffer shuffling) up to the checkpointed step without
training on it, which costs reading time but keeps the data order of an
uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from flavortag import tracking
from flavortag.augment import ResolutionAugmentation, augment_events
from flavortag.batching import (
    EventTensors,
    PaddedBatch,
    RaggedBatch,
    StreamingEventDataset,
    build_event_tensors,
    concat_event_tensors,
    make_loader,
    make_streaming_loader,
)
from flavortag.classes import N_CLASSES
from flavortag.dataset import load_sample, reader_options, resolve_paths, split_indices
from flavortag.detector import DetectorModel
from flavortag.inference import feature_names_from_config
from flavortag.io.atomic import atomic_output
from flavortag.models import build_model, checkpoint_state, count_parameters

log = logging.getLogger("flavortag.train")

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
CHECKPOINT_VERSION = 1


@dataclass
class StreamingSource:
    """Training events read from files each epoch (``data.streaming``) instead of held in memory.

    ``n_events`` / ``class_counts`` [N_CLASSES] come from one counting pass
    before training; ``normalisation`` holds the events the input
    standardisation is fitted on (the first of every file).
    """

    paths: list[str]
    n_events: int
    class_counts: np.ndarray
    step_size: int | str
    shuffle_buffer: int
    io_options: dict[str, Any]
    normalisation: EventTensors


@dataclass
class PreparedData:
    """Feature tensors of each split plus what is needed to reproduce them.

    In memory, ``tensors`` holds train / val / test, ``events`` (if kept) the
    whole sample and ``indices[split]`` the split's positions in it. When
    streaming, ``stream`` describes the training files, ``tensors`` holds only
    val (and test) and ``events`` (if kept) the val events followed by the test
    events, ``indices`` giving their positions.
    """

    tensors: dict[str, EventTensors]
    indices: dict[str, np.ndarray]
    track_names: list[str]
    event_names: list[str]
    detector: DetectorModel
    events: Any = None
    stream: StreamingSource | None = None

    def n_events(self) -> dict[str, int]:
        """Number of events per split (streamed training events included)."""
        sizes = {name: len(t.labels) for name, t in self.tensors.items()}
        if self.stream is not None:
            sizes = {"train": self.stream.n_events, **sizes}
        return sizes


@dataclass
class TrainState:
    """Everything a checkpoint must restore to continue a run."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    run_id: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)


def prepare_data(cfg: DictConfig, keep_events: bool = False) -> PreparedData:
    """Read the sample, split it (stratified, seeded) and build feature tensors per split.

    With ``data.streaming`` the training events stay on disk (see
    :func:`prepare_streaming_data`).
    """
    if cfg.data.get("streaming", False):
        return prepare_streaming_data(cfg, keep_events)
    events = load_sample(cfg.data)
    detector = DetectorModel.from_config(OmegaConf.to_container(cfg.detector, resolve=True))  # type: ignore[arg-type]
    track_names, event_names = feature_names_from_config(cfg.get("features"))
    labels = np.asarray(events["label"])
    fractions = {str(k): float(v) for k, v in cfg.data.split.items()}
    indices = split_indices(labels, fractions, int(cfg.data.get("split_seed", cfg.seed)))
    augment = ResolutionAugmentation.from_config(_plain(cfg.augment) if cfg.get("augment") else None)
    tensors: dict[str, EventTensors] = {}
    for k, (name, idx) in enumerate(indices.items()):
        if len(idx) == 0:
            continue
        split_events = events[idx]
        if augment.enabled and name in ("train", "val"):
            # the test split stays as simulated: it measures the nominal performance
            split_events = augment_events(split_events, augment, detector, seed_offset=k)
            log.info("%s split re-smeared: resolution scale in [%.2f, %.2f] for %.0f%% of the events",
                     name, augment.scale_min, augment.scale_max, 100 * augment.fraction)
        tensors[name] = build_event_tensors(
            split_events,
            track_feature_names=track_names,
            event_feature_names=event_names,
            max_tracks=int(cfg.data.max_tracks),
            detector=detector,
            sort_by=cfg.data.get("sort_by", "E"),
        )
    for name, t in tensors.items():
        log.info("%s split: %d events, %d tracks truncated at max_tracks=%d",
                 name, len(t.labels), t.n_truncated, int(cfg.data.max_tracks))
    return PreparedData(tensors, indices, track_names, event_names, detector,
                        events if keep_events else None)


def _read_first_events(paths: list[str], n_events: int, io_options: Mapping[str, Any]) -> list[Any]:
    """About ``n_events`` events from the start of the files: the first ``n_events / len(paths)`` of each."""
    from flavortag.io import iter_events

    per_file = max(1, math.ceil(n_events / len(paths)))
    parts = []
    for path in paths:
        chunks = iter_events(path, step_size=per_file, **io_options)
        first = next(chunks, None)
        del chunks  # the rest of the file is not read
        if first is not None and len(first):
            parts.append(first)
    return parts


def prepare_streaming_data(cfg: DictConfig, keep_events: bool = False) -> PreparedData:
    """Streaming set-up: count the training files, read the normalisation events, load val / test."""
    import awkward as ak

    from flavortag.io import count_events
    from flavortag.io.api import parse_step_size

    data_cfg = cfg.data
    if cfg.get("augment") and cfg.augment.get("enabled", False):
        raise ValueError("augment (resolution augmentation) works on in-memory samples only: "
                         "set data.streaming=false or augment=none")
    if not data_cfg.get("val_paths"):
        raise ValueError("data.streaming=true needs data.val_paths: the validation events come "
                         "from their own files (data.split is not used when streaming)")
    if data_cfg.get("max_events_per_class") is not None:
        log.warning("data.max_events_per_class is ignored when streaming")
    detector = DetectorModel.from_config(OmegaConf.to_container(cfg.detector, resolve=True))  # type: ignore[arg-type]
    track_names, event_names = feature_names_from_config(cfg.get("features"))
    io_options = reader_options(data_cfg)
    step_size: int | str = data_cfg.get("step_size") or "16 MB"
    parse_step_size(step_size)  # a bad value fails here, not in the first epoch
    shuffle_buffer = int(data_cfg.get("shuffle_buffer") or 50_000)
    max_tracks = int(data_cfg.max_tracks)
    sort_by = data_cfg.get("sort_by", "E")

    def tensors_of(events: Any) -> EventTensors:
        return build_event_tensors(events, track_feature_names=track_names,
                                   event_feature_names=event_names, max_tracks=max_tracks,
                                   detector=detector, sort_by=sort_by)

    train_paths = [str(p) for p in resolve_paths(data_cfg.paths)]
    t0 = time.perf_counter()
    n_train, class_counts = count_events(train_paths, **io_options)
    if n_train == 0:
        raise ValueError(f"no training events in {train_paths}")
    log.info("streaming %d training events from %d file(s) (%s; counted in %.1f s)", n_train,
             len(train_paths), ", ".join(f"class {c}: {n}" for c, n in enumerate(class_counts)),
             time.perf_counter() - t0)
    n_norm = int(data_cfg.get("normalisation_events") or 20_000)
    normalisation = concat_event_tensors(
        [tensors_of(part) for part in _read_first_events(train_paths, n_norm, io_options)])
    log.info("input normalisation from %d events (the first of each training file)", len(normalisation))

    plain = {**_plain(data_cfg), "max_events_per_class": None}
    split_events: dict[str, Any] = {}
    for name, key in (("val", "val_paths"), ("test", "test_paths")):
        if data_cfg.get(key):
            split_events[name] = load_sample({**plain, "paths": data_cfg.get(key)})
    tensors = {name: tensors_of(events) for name, events in split_events.items()}
    indices: dict[str, np.ndarray] = {}
    start = 0
    for name, events in split_events.items():
        indices[name] = np.arange(start, start + len(events))
        start += len(events)
    for name, t in tensors.items():
        log.info("%s split: %d events, %d tracks truncated at max_tracks=%d",
                 name, len(t.labels), t.n_truncated, max_tracks)
    if "test" not in tensors:
        log.info("no data.test_paths: the run will not be evaluated on a test split")
    events = ak.concatenate(list(split_events.values())) if keep_events else None
    stream = StreamingSource(train_paths, n_train, class_counts, step_size, shuffle_buffer,
                             io_options, normalisation)
    return PreparedData(tensors, indices, track_names, event_names, detector, events, stream)


def _plain(node: Any) -> dict[str, Any]:
    """A config node as a plain dict with string keys."""
    container = OmegaConf.to_container(node, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def _layout(cfg: DictConfig) -> Literal["padded", "ragged"]:
    layout = str(cfg.trainer.layout)
    if layout not in ("padded", "ragged"):
        raise ValueError(f"trainer.layout must be padded or ragged, not {layout!r}")
    return "padded" if layout == "padded" else "ragged"


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA (``cuda:<local_rank>``) when available, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "bf16":
        return torch.bfloat16
    if precision in ("fp32", "32"):
        return None
    raise ValueError(f"trainer.precision must be auto, fp32 or bf16, not {precision!r}")


def _save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file, so a kill never leaves a half-written checkpoint."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _lr_factor(step: int, total_steps: int, warmup_fraction: float, min_ratio: float) -> float:
    warmup = max(1, int(warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _Distributed:
    """torch.distributed set-up from torchrun's environment (no-op when not distributed)."""

    def __init__(self, enabled: bool, backend: str) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        self.enabled = bool(enabled) and world > 1
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.world_size = world if self.enabled else 1
        if self.enabled and not torch.distributed.is_initialized():
            if backend == "auto":
                backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, values: list[float], device: torch.device) -> list[float]:
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def any_rank(self, flag: bool, device: torch.device) -> bool:
        """True if ``flag`` is true on at least one rank."""
        if not self.enabled:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        return bool(tensor.item())

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _class_weights(class_counts: np.ndarray) -> torch.Tensor:
    counts = np.asarray(class_counts, dtype=np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / N_CLASSES
    return torch.tensor(weights, dtype=torch.float32)


def _evaluate_loss(model: torch.nn.Module, tensors: EventTensors, cfg: DictConfig,
                   device: torch.device, dist: _Distributed,
                   amp_dtype: torch.dtype | None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split (sharded over DDP ranks, reduced)."""
    shard = tensors if not dist.enabled else tensors.subset(
        np.arange(dist.rank, len(tensors.labels), dist.world_size))
    loader = make_loader(shard, batch_size=int(cfg.trainer.eval_batch_size), shuffle=False,
                         seed=0, layout=_layout(cfg))
    loss_sum, correct, count = 0.0, 0.0, 0.0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(batch)
            logits = logits.float()
            loss_sum += torch.nn.functional.cross_entropy(logits, batch.labels, reduction="sum").item()
            correct += (logits.argmax(1) == batch.labels).sum().item()
            count += len(batch.labels)
    loss_sum, correct, count = dist.all_reduce_sum([loss_sum, correct, count], device)
    return loss_sum / max(count, 1.0), correct / max(count, 1.0)


def _find_resume_checkpoint(cfg: DictConfig, checkpoint_dir: Path) -> Path | None:
    resume = cfg.trainer.get("resume")
    if resume in (None, "", False):
        return None
    if str(resume) == "auto":
        last = checkpoint_dir / "last.pt"
        return last if last.exists() else None
    path = Path(str(resume))
    if not path.exists():
        raise FileNotFoundError(f"trainer.resume: checkpoint {path} not found")
    return path


def _progress(iterable: Any, enabled: bool, **kwargs: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, dynamic_ncols=True, leave=False, file=sys.stderr, **kwargs)


def fit_torch(cfg: DictConfig, data: PreparedData, run_dir: Path, dist: _Distributed,
              run_id: str | None = None) -> tuple[torch.nn.Module, TrainState]:
    """Train a torch tagger; returns the best model (weights restored) and the final state.

    ``run_id`` (the MLflow run) is stored in every checkpoint so that a resumed
    job logs into the same run. The training events come from
    ``data.tensors["train"]`` or, when ``data.stream`` is set, are streamed from
    its files (see the module docstring).
    """
    device = resolve_device(str(cfg.trainer.device), dist.local_rank)
    amp_dtype = _autocast_dtype(str(cfg.trainer.precision), device)
    torch.manual_seed(int(cfg.seed))
    stream = data.stream
    val_t = data.tensors["val"]
    train_t: EventTensors | None = None
    if stream is None:
        train_t = data.tensors["train"]
        norm_t = train_t
        n_train = len(train_t.labels)
        class_counts = np.bincount(train_t.labels, minlength=N_CLASSES)
    else:
        norm_t = stream.normalisation
        n_train = stream.n_events
        class_counts = stream.class_counts
    model = build_model(_plain(cfg.model), len(data.track_names), len(data.event_names))
    model.feature_names = {"track": list(data.track_names), "event": list(data.event_names)}  # type: ignore[assignment]
    model.detector = data.detector.to_dict()  # type: ignore[assignment]
    model.max_tracks = int(cfg.data.max_tracks)  # type: ignore[assignment]
    model.fit_normalisation(norm_t.features[norm_t.valid], norm_t.event_features)
    model.to(device)

    checkpoint_dir = run_dir / "checkpoints"
    resume_path = _find_resume_checkpoint(cfg, checkpoint_dir)
    state = TrainState(run_id=run_id)
    resume_blob = None
    if resume_path is not None:
        resume_blob = torch.load(resume_path, map_location=device, weights_only=False)
        model.load_state_dict(resume_blob["model"]["state_dict"])
        state = TrainState(**resume_blob["train_state"])
        log.info("resuming from %s at epoch %d step %d", resume_path, state.epoch, state.step_in_epoch)

    train_model: torch.nn.Module = model
    if cfg.trainer.get("compile"):
        train_model = torch.compile(model)  # type: ignore[assignment]
    if dist.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)

    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg.trainer.lr),
                                  weight_decay=float(cfg.trainer.weight_decay))
    batch_size = int(cfg.trainer.batch_size)
    max_steps = int(cfg.trainer.get("max_steps_per_epoch") or 0)
    if stream is None:
        n_train_local = n_train // dist.world_size
        steps_per_epoch = max(1, math.ceil(n_train_local / batch_size))
    else:
        # ranks' shares of the stream differ a little: this is the schedule's estimate
        steps_per_epoch = max(1, math.ceil(n_train / dist.world_size / batch_size))
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    total_steps = steps_per_epoch * int(cfg.trainer.max_epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, total_steps, float(cfg.trainer.warmup_fraction),
                                        float(cfg.trainer.min_lr_ratio)))
    if resume_blob is not None:
        optimizer.load_state_dict(resume_blob["optimizer"])
        scheduler.load_state_dict(resume_blob["scheduler"])

    weight = _class_weights(class_counts).to(device) if cfg.trainer.class_weights else None
    pin = (device.type == "cuda") if str(cfg.trainer.pin_memory) == "auto" else bool(cfg.trainer.pin_memory)
    clip = float(cfg.trainer.grad_clip_norm or 0.0)
    ckpt_every = int(cfg.trainer.get("checkpoint_every_steps") or 0)

    stream_loader = None
    stream_ds: StreamingEventDataset | None = None
    filler: PaddedBatch | RaggedBatch | None = None
    if stream is not None:
        stream_ds = StreamingEventDataset(
            stream.paths, batch_size, data.track_names, data.event_names, int(cfg.data.max_tracks),
            _layout(cfg), detector=data.detector, sort_by=cfg.data.get("sort_by", "E"),
            step_size=stream.step_size, shuffle=True, buffer_size=stream.shuffle_buffer,
            seed=int(cfg.seed), rank=dist.rank, world_size=dist.world_size, drop_last=False,
            io_options=stream.io_options)
        stream_loader = make_streaming_loader(stream_ds, num_workers=int(cfg.trainer.get("num_workers") or 0),
                                              pin_memory=pin)
        if dist.enabled:
            # a zero-weight step for a rank whose share of the stream is used up
            filler = val_t.batch(np.arange(1), _layout(cfg))

    def save_checkpoint(name: str) -> None:
        if not dist.is_main:
            return
        blob = {
            "version": CHECKPOINT_VERSION,
            "model": checkpoint_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "train_state": state.__dict__.copy(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        _save_atomic(blob, checkpoint_dir / name)

    show = bool(cfg.trainer.progress) and dist.is_main
    max_epochs = int(cfg.trainer.max_epochs)
    patience = int(cfg.trainer.early_stopping_patience)
    best_state = None
    while state.epoch < max_epochs:
        epoch = state.epoch
        loader: Any
        step_limit: int | None
        if stream_ds is not None:
            stream_ds.set_epoch(epoch)
            loader, step_limit = stream_loader, (max_steps or None)
        else:
            assert train_t is not None
            sampler: torch.utils.data.distributed.DistributedSampler[Any] | None = None
            if dist.enabled:
                sampler = torch.utils.data.distributed.DistributedSampler(
                    range(len(train_t.labels)),  # type: ignore[arg-type]
                    num_replicas=dist.world_size, rank=dist.rank,
                    shuffle=True, seed=int(cfg.seed), drop_last=True)
                sampler.set_epoch(epoch)
            loader = make_loader(train_t, batch_size=batch_size, shuffle=sampler is None,
                                 seed=int(cfg.seed) + epoch, layout=_layout(cfg),
                                 drop_last=True, sampler=sampler, pin_memory=pin)
            step_limit = steps_per_epoch
        train_model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        skipped = 0  # events of the steps done before a mid-epoch resume
        t0 = time.perf_counter()
        skip = state.step_in_epoch
        bar = _progress(loader, show, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{max_epochs}")
        batches = iter(bar)
        step = 0
        while step_limit is None or step < step_limit:
            batch = next(batches, None)
            if filler is not None:
                # streaming under DDP: go on while any rank has batches left
                if not dist.any_rank(batch is not None, device):
                    break
            elif batch is None:
                break
            if step < skip:
                skipped += 0 if batch is None else len(batch.labels)
                step += 1
                continue
            real = batch is not None
            if batch is None:
                assert filler is not None
                batch = filler
            batch = batch.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = train_model(batch)
            loss = torch.nn.functional.cross_entropy(logits.float(), batch.labels, weight=weight)
            optimizer.zero_grad(set_to_none=True)
            (loss if real else loss * 0.0).backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            if real:
                n = len(batch.labels)
                loss_sum += loss.detach() * n
                correct += (logits.detach().argmax(1) == batch.labels).sum()
                seen += n
            state.step_in_epoch = step + 1
            state.global_step += 1
            if show and step % 10 == 0 and seen:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{(loss_sum / seen).item():.4f}", ev_s=f"{rate:,.0f}")
            if ckpt_every and state.global_step % ckpt_every == 0:
                save_checkpoint("last.pt")
            step += 1
        del batches
        if show:
            bar.close()
        elapsed = time.perf_counter() - t0
        totals = dist.all_reduce_sum([loss_sum.item(), correct.item(), float(seen), float(skipped)], device)
        train_loss = totals[0] / max(totals[2], 1.0)
        train_acc = totals[1] / max(totals[2], 1.0)
        events_per_s = totals[2] / max(elapsed, 1e-9)
        val_loss, val_acc = _evaluate_loss(model, val_t, cfg, device, dist, amp_dtype)
        metrics: dict[str, float] = {"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss,
                   "val/acc": val_acc, "train/events_per_s": events_per_s,
                   "train/lr": float(scheduler.get_last_lr()[0]),
                   "train/events": totals[2] + totals[3]}
        for key, value in metrics.items():
            state.history.setdefault(key, []).append(float(value))
        if dist.is_main:
            import mlflow

            mlflow.log_metrics(metrics, step=epoch + 1)
            log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f events/s",
                     epoch + 1, max_epochs, train_loss, train_acc, val_loss, val_acc, events_per_s)
        state.epoch = epoch + 1
        state.step_in_epoch = 0
        improved = val_loss < state.best_val_loss - 1e-6
        if improved:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            save_checkpoint("best.pt")
        else:
            state.bad_epochs += 1
        save_checkpoint("last.pt")
        if state.bad_epochs >= patience:
            log.info("early stopping: no improvement of the validation loss for %d epochs", patience)
            break
    if best_state is None and (checkpoint_dir / "best.pt").exists():
        best_state = torch.load(checkpoint_dir / "best.pt", map_location=device,
                                weights_only=False)["model"]["state_dict"]
    if best_state is not None:
        model.load_state_dict(best_state)
    if cfg.trainer.get("save_rank_weights"):
        _save_atomic(model.state_dict(), run_dir / f"weights_rank{dist.rank}.pt")
    return model, state


def fit_bdt(cfg: DictConfig, data: PreparedData) -> tuple[Any, TrainState]:
    """Train scikit-learn gradient-boosted trees on the event features (LCFIPlus-style reference)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from flavortag.metrics import accuracy, log_loss

    params = {k: v for k, v in _plain(cfg.model).items() if k not in ("name", "description")}
    params.setdefault("random_state", int(cfg.seed))
    clf = HistGradientBoostingClassifier(**params)
    train_t, val_t = data.tensors["train"], data.tensors["val"]
    t0 = time.perf_counter()
    clf.fit(train_t.event_features, train_t.labels)
    elapsed = time.perf_counter() - t0
    clf.feature_names = {"track": [], "event": list(data.event_names)}
    clf.detector = data.detector.to_dict()
    state = TrainState(epoch=1)
    metrics: dict[str, float] = {"train/events_per_s": len(train_t.labels) / max(elapsed, 1e-9),
                                 "train/events": float(len(train_t.labels))}
    for split, t in (("train", train_t), ("val", val_t)):
        probs = clf.predict_proba(t.event_features)
        metrics[f"{split}/loss"] = log_loss(probs, t.labels)
        metrics[f"{split}/acc"] = accuracy(probs, t.labels)
    state.best_val_loss = metrics["val/loss"]
    state.best_epoch = 1
    state.history = {k: [v] for k, v in metrics.items()}
    import mlflow

    mlflow.log_metrics(metrics, step=1)
    log.info("bdt: %d iterations, train acc %.4f, val acc %.4f", clf.n_iter_,
             metrics["train/acc"], metrics["val/acc"])
    return clf, state


def _log_model(model: Any, is_torch: bool) -> None:
    import mlflow

    if is_torch:
        import mlflow.pytorch

        model_cpu = model.to("cpu").eval()
        mlflow.pytorch.log_model(model_cpu, name="model", serialization_format="pickle",
                                 pip_requirements=["torch", "flavortag"])
    else:
        import mlflow.sklearn

        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                 pip_requirements=["scikit-learn", "flavortag"])


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns run id, history and test metrics."""
    run_dir = Path(str(cfg.get("output_dir") or "outputs/train")).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    is_torch = str(cfg.model.name) != "bdt"
    if not is_torch and cfg.data.get("streaming", False):
        raise ValueError("model=bdt trains on the whole sample in memory: data.streaming=true "
                         "is for the torch models")
    dist = _Distributed(bool(cfg.trainer.get("distributed", False)), str(cfg.trainer.get("backend", "auto")))
    try:
        data = prepare_data(cfg, keep_events=bool(cfg.get("evaluate_after_training", False)))
        # The run to log into: a fresh one, or the run of the checkpoint being resumed.
        resume_path = _find_resume_checkpoint(cfg, run_dir / "checkpoints") if is_torch else None
        resume_run_id = None
        if resume_path is not None:
            resume_run_id = torch.load(resume_path, map_location="cpu", weights_only=False)["train_state"].get("run_id")
        if not dist.is_main:
            model, state = fit_torch(cfg, data, run_dir, dist)
            return {"run_id": None, "history": state.history, "metrics": {}}
        with tracking.start_run(cfg.tracking, run_name=str(cfg.run_name), run_id=resume_run_id,
                                tags={"flavortag.model": str(cfg.model.name),
                                      "flavortag.data": str(cfg.data.get("name", ""))}) as run:
            import mlflow

            if resume_run_id is None:
                tracking.log_config(cfg)
                mlflow.log_dict({"track": data.track_names, "event": data.event_names}, "features.json")
                mlflow.log_dict(data.detector.to_dict(), "detector.json")
                mlflow.log_params({f"n_{k}_events": n for k, n in data.n_events().items()})
            if is_torch:
                model, state = fit_torch(cfg, data, run_dir, dist, run_id=run.info.run_id)
                if resume_run_id is None:
                    mlflow.log_param("n_parameters", count_parameters(model))
                for name in ("best.pt", "last.pt"):
                    path = run_dir / "checkpoints" / name
                    if path.exists():
                        mlflow.log_artifact(str(path), artifact_path="checkpoints")
            else:
                model, state = fit_bdt(cfg, data)
                ckpt = run_dir / "checkpoints" / "bdt.pkl"
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                with open(ckpt, "wb") as fh:
                    pickle.dump(model, fh)
                mlflow.log_artifact(str(ckpt), artifact_path="checkpoints")
            mlflow.log_metrics({"best/val_loss": state.best_val_loss, "best/epoch": state.best_epoch})
            mlflow.log_dict(state.history, "history.json")
            _log_model(model, is_torch)
            metrics: dict[str, float] = {}
            if cfg.get("evaluate_after_training", False) and "test" in data.tensors:
                from flavortag.evaluate import evaluate_split

                metrics = evaluate_split(model, data, "test", cfg, run_dir, history=state.history)
            log.info("MLflow run %s (%s) in %s", run.info.run_id, cfg.run_name,
                     mlflow.get_tracking_uri())
            return {"run_id": run.info.run_id, "history": state.history, "metrics": metrics}
    finally:
        dist.close()


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Hydra entry point; returns the best validation loss (for sweepers)."""
    result = train(cfg)
    history: Mapping[str, list[float]] = result["history"]
    val = history.get("val/loss", [math.inf])
    return float(min(val)) if val else math.inf


if __name__ == "__main__":
    main()
