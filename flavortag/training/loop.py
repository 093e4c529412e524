"""The torch training loop (see :mod:`flavortag.training` for what a run records)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from flavortag import tracking
from flavortag.batching import (
    EventTensors,
    PaddedBatch,
    RaggedBatch,
    StreamingEventDataset,
    make_loader,
    make_streaming_loader,
)
from flavortag.models import TaggerModel, build_model, checkpoint_state
from flavortag.safe_load import load_torch_file
from flavortag.training import preempt
from flavortag.training.checkpoint import (
    CHECKPOINT_VERSION,
    TrainState,
    find_resume_checkpoint,
    save_atomic,
)
from flavortag.training.data import PreparedData
from flavortag.training.runtime import Distributed, autocast_dtype, progress_bar, resolve_device
from flavortag.training.settings import TrainerSettings

if TYPE_CHECKING:
    from flavortag.training.settings import TrainJob

log = logging.getLogger("flavortag.train")


def _lr_factor(step: int, total_steps: int, warmup_fraction: float, min_ratio: float) -> float:
    warmup = max(1, int(warmup_fraction * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _class_weights(class_counts: np.ndarray) -> torch.Tensor:
    counts = np.asarray(class_counts, dtype=np.float64)
    weights = counts.sum() / np.maximum(counts, 1) / len(counts)
    return torch.tensor(weights, dtype=torch.float32)


def _evaluate_loss(model: torch.nn.Module, tensors: EventTensors, settings: TrainerSettings,
                   device: torch.device, dist: Distributed,
                   amp_dtype: torch.dtype | None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on a split (sharded over DDP ranks, reduced)."""
    shard = tensors if not dist.enabled else tensors.subset(
        np.arange(dist.rank, len(tensors.labels), dist.world_size))
    loader = make_loader(shard, batch_size=settings.eval_batch_size, shuffle=False,
                         seed=0, layout=settings.layout)
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


def _build_model(job: TrainJob, data: PreparedData, device: torch.device) -> TaggerModel:
    """A fresh tagger with its feature lists, detector and input shape attached, its standardisation fitted."""
    norm_t = data.stream.normalisation if data.stream is not None else data.tensors["train"]
    model = build_model(dict(job.model), len(data.track_names), len(data.event_names),
                        data.scheme.names)
    model.feature_names = {"track": list(data.track_names), "event": list(data.event_names)}  # type: ignore[assignment]
    model.detector = data.detector.to_dict()  # type: ignore[assignment]
    model.max_tracks = job.data.max_tracks  # type: ignore[assignment]
    model.sort_by = job.data.sort_by  # type: ignore[assignment]
    model.training_resolution = data.training_resolution  # type: ignore[assignment]
    model.fit_normalisation(norm_t.features[norm_t.valid], norm_t.event_features)
    return model.to(device)


def _training_counts(data: PreparedData) -> tuple[int, np.ndarray]:
    """Number of training events and their class counts [n classes] (in memory or streamed)."""
    if data.stream is not None:
        return data.stream.n_events, data.stream.class_counts
    train_t = data.tensors["train"]
    return len(train_t.labels), np.bincount(train_t.labels, minlength=len(data.scheme))


def _steps_per_epoch(n_train: int, settings: TrainerSettings, world_size: int, streaming: bool) -> int:
    """Optimizer steps per epoch (per rank): the length of the learning-rate schedule's epoch."""
    if not streaming:
        steps = max(1, math.ceil((n_train // world_size) / settings.batch_size))
    else:
        # ranks' shares of the stream differ a little: this is the schedule's estimate
        steps = max(1, math.ceil(n_train / world_size / settings.batch_size))
    if settings.max_steps_per_epoch:
        steps = min(steps, settings.max_steps_per_epoch)
    return steps


class _Optimisation:
    """The model as trained (compiled / DDP-wrapped), its optimizer, schedule and loss settings."""

    def __init__(self, model: torch.nn.Module, settings: TrainerSettings, dist: Distributed,
                 device: torch.device, total_steps: int, class_counts: np.ndarray) -> None:
        self.model = model
        self.train_model: torch.nn.Module = model
        if settings.compile:
            self.train_model = torch.compile(model)  # type: ignore[assignment]
        if dist.enabled:
            self.train_model = torch.nn.parallel.DistributedDataParallel(
                self.train_model, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                           weight_decay=settings.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(s, total_steps, settings.warmup_fraction,
                                                 settings.min_lr_ratio))
        self.weight = _class_weights(class_counts).to(device) if settings.class_weights else None
        self.clip = settings.grad_clip_norm

    def load_state(self, blob: dict[str, Any]) -> None:
        """Restore optimizer and schedule from a checkpoint blob."""
        self.optimizer.load_state_dict(blob["optimizer"])
        self.scheduler.load_state_dict(blob["scheduler"])

    def step(self, batch: PaddedBatch | RaggedBatch, amp_dtype: torch.dtype | None,
             real: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on ``batch`` (zero weight when not ``real``); returns loss and logits."""
        with torch.autocast(batch.labels.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = self.train_model(batch)
        loss = torch.nn.functional.cross_entropy(logits.float(), batch.labels, weight=self.weight)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if real else loss * 0.0).backward()
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss, logits


class _EpochSource:
    """The training batches of each epoch: an in-memory loader, or the file stream."""

    def __init__(self, job: TrainJob, data: PreparedData, settings: TrainerSettings,
                 dist: Distributed, pin: bool, steps_per_epoch: int) -> None:
        self.seed, self.data, self.settings, self.dist, self.pin = job.seed, data, settings, dist, pin
        self.steps_per_epoch = steps_per_epoch
        self.stream_ds: StreamingEventDataset | None = None
        self.stream_loader: Any = None
        #: a zero-weight step for a rank whose share of the stream is used up (streaming DDP)
        self.filler: PaddedBatch | RaggedBatch | None = None
        #: after a resume: restores the checkpoint's random state once its steps are replayed
        self.restore_rng: Callable[[], None] | None = None
        stream = data.stream
        if stream is not None:
            self.stream_ds = StreamingEventDataset(
                stream.paths, settings.batch_size, data.track_names, data.event_names,
                job.data.max_tracks, settings.layout, detector=data.detector,
                sort_by=job.data.sort_by, step_size=stream.step_size, shuffle=True,
                buffer_size=stream.shuffle_buffer, seed=job.seed, rank=dist.rank,
                world_size=dist.world_size, drop_last=False, io_options=stream.io_options,
                records=stream.records)
            self.stream_loader = make_streaming_loader(self.stream_ds, num_workers=settings.num_workers,
                                                       pin_memory=pin)
            if dist.enabled:
                self.filler = data.tensors["val"].batch(np.arange(1), settings.layout)

    def epoch(self, epoch: int) -> tuple[Any, int | None]:
        """The loader of ``epoch`` and its step limit (None: until the stream ends)."""
        if self.stream_ds is not None:
            self.stream_ds.set_epoch(epoch)
            return self.stream_loader, (self.settings.max_steps_per_epoch or None)
        train_t = self.data.tensors["train"]
        seed = self.seed
        sampler: torch.utils.data.distributed.DistributedSampler[Any] | None = None
        if self.dist.enabled:
            sampler = torch.utils.data.distributed.DistributedSampler(
                range(len(train_t.labels)),  # type: ignore[arg-type]
                num_replicas=self.dist.world_size, rank=self.dist.rank,
                shuffle=True, seed=seed, drop_last=True)
            sampler.set_epoch(epoch)
        loader = make_loader(train_t, batch_size=self.settings.batch_size, shuffle=sampler is None,
                             seed=seed + epoch, layout=self.settings.layout,
                             drop_last=True, sampler=sampler, pin_memory=self.pin,
                             bucketing=self.settings.bucketing)
        return loader, self.steps_per_epoch


def _restore_rng(source: _EpochSource) -> None:
    """Restore the random state of the checkpoint resumed from (once)."""
    if source.restore_rng is not None:
        source.restore_rng()
        source.restore_rng = None


def _train_epoch(opt: _Optimisation, source: _EpochSource, state: TrainState, epoch: int,
                 device: torch.device, amp_dtype: torch.dtype | None, dist: Distributed,
                 show: bool, save_checkpoint: Any) -> tuple[list[float], float]:
    """One epoch of steps (skipping those done before a mid-epoch resume).

    Returns the per-rank sums ``[loss * n, correct, seen, skipped]`` and the
    elapsed seconds of training. After a mid-epoch resume from a checkpoint
    that carries the epoch's sums so far (``state.epoch_sums``), rank 0's sums
    include them, so the epoch's figures cover the whole epoch; from an older
    checkpoint without them, ``skipped`` counts the events of the steps done
    before the resume.
    """
    settings = source.settings
    if state.step_in_epoch == 0:
        _restore_rng(source)  # resumed at an epoch boundary
    loader, step_limit = source.epoch(epoch)
    opt.train_model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    seen = 0
    skipped = 0  # events of the steps done before a mid-epoch resume
    skip = state.step_in_epoch
    resumed = skip > 0 and len(state.epoch_sums) == 3
    carried = list(state.epoch_sums) if resumed and dist.is_main else [0.0, 0.0, 0.0]
    carried_s = state.epoch_seconds if resumed else 0.0
    t0 = time.perf_counter()
    bar = progress_bar(loader, show, total=source.steps_per_epoch,
                       desc=f"epoch {epoch + 1}/{settings.max_epochs}")
    batches = iter(bar)
    step = 0
    while step_limit is None or step < step_limit:
        batch = next(batches, None)
        if source.filler is not None:
            # streaming under DDP: go on while any rank has batches left
            if not dist.any_rank(batch is not None, device):
                break
        elif batch is None:
            break
        if step < skip:
            skipped += 0 if batch is None else len(batch.labels)
            step += 1
            t0 = time.perf_counter()  # replaying the steps done before the resume is not training
            if step == skip:
                _restore_rng(source)
            continue
        real = batch is not None
        if batch is None:
            assert source.filler is not None
            batch = source.filler
        batch = batch.to(device, non_blocking=True)
        loss, logits = opt.step(batch, amp_dtype, real)
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
        stop = preempt.stop_signal(dist, device, state.global_step)  # SIGTERM / SIGUSR1 received
        if stop or (settings.checkpoint_every_steps
                    and state.global_step % settings.checkpoint_every_steps == 0):
            # every rank gets here at the same step: the reduction is collective
            state.epoch_sums = dist.all_reduce_sum(
                [loss_sum.item() + carried[0], correct.item() + carried[1], seen + carried[2]], device)
            state.epoch_seconds = carried_s + time.perf_counter() - t0
            save_checkpoint("last.pt")
            if stop:
                raise preempt.TrainingStopped(stop, epoch, state.step_in_epoch, "last.pt")
        step += 1
    del batches
    _restore_rng(source)
    if show:
        bar.close()
    elapsed = carried_s + time.perf_counter() - t0
    if resumed:
        skipped = 0  # the carried sums count those events
    return [loss_sum.item() + carried[0], correct.item() + carried[1], float(seen + carried[2]),
            float(skipped)], elapsed


#: Called after each epoch with (epoch number from 1, that epoch's metrics); may raise to stop the fit.
EpochCallback = Callable[[int, dict[str, float]], None]


def fit_torch(job: TrainJob, data: PreparedData, run_dir: Path, dist: Distributed,
              run: tracking.RunHandle | None = None,
              epoch_callback: EpochCallback | None = None) -> tuple[torch.nn.Module, TrainState]:
    """Train a torch tagger; returns the best model (weights restored) and the final state.

    ``run`` (the MLflow run, on the logging rank) gets each epoch's metrics;
    its id is stored in every checkpoint so that a resumed job logs into the
    same run. ``epoch_callback`` (on the logging rank) gets
    each epoch's metrics (``val/loss``, ...) after they are logged and the
    epoch's checkpoints written; an exception it raises (a pruned
    hyperparameter trial) ends the fit. The training events come from
    ``data.tensors["train"]`` or, when ``data.stream`` is set, are streamed from
    its files (see :mod:`flavortag.training.data`).
    """
    settings = job.trainer
    device = resolve_device(settings.device, dist.local_rank)
    amp_dtype = autocast_dtype(settings.precision, device)
    torch.manual_seed(job.seed)
    val_t = data.tensors["val"]
    n_train, class_counts = _training_counts(data)
    model = _build_model(job, data, device)

    checkpoint_dir = run_dir / "checkpoints"
    resume_path = find_resume_checkpoint(settings.resume, checkpoint_dir)
    state = TrainState(run_id=None if run is None else run.run_id)
    resume_blob = None
    if resume_path is not None:
        resume_blob = load_torch_file(resume_path, map_location=device)
        model.load_state_dict(resume_blob["model"]["state_dict"])
        state = TrainState(**resume_blob["train_state"])
        log.info("resuming from %s at epoch %d step %d", resume_path, state.epoch, state.step_in_epoch)

    steps_per_epoch = _steps_per_epoch(n_train, settings, dist.world_size, data.stream is not None)
    opt = _Optimisation(model, settings, dist, device, steps_per_epoch * settings.max_epochs,
                        class_counts)
    pin = (device.type == "cuda") if settings.pin_memory is None else settings.pin_memory
    source = _EpochSource(job, data, settings, dist, pin, steps_per_epoch)
    if resume_blob is not None:
        opt.load_state(resume_blob)
        rng = resume_blob.get("rng")
        if rng is not None and not dist.enabled:
            # dropout etc. go on as in an uninterrupted run (under DDP each rank has its own):
            # restored once the steps done before the checkpoint are replayed
            def restore_rng() -> None:
                torch.set_rng_state(rng["cpu"].cpu())
                if device.type == "cuda" and rng.get("cuda") is not None:
                    torch.cuda.set_rng_state(rng["cuda"].cpu(), device)

            source.restore_rng = restore_rng

    def save_checkpoint(name: str) -> None:
        if not dist.is_main:
            return
        blob = {
            "version": CHECKPOINT_VERSION,
            "model": checkpoint_state(model),
            "optimizer": opt.optimizer.state_dict(),
            "scheduler": opt.scheduler.state_dict(),
            "train_state": state.__dict__.copy(),
            "config": dict(job.config),
            "rng": {"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }
        save_atomic(blob, checkpoint_dir / name)

    show = settings.progress and dist.is_main
    best_state = None
    while state.epoch < settings.max_epochs:
        epoch = state.epoch
        sums, elapsed = _train_epoch(opt, source, state, epoch, device, amp_dtype, dist, show,
                                     save_checkpoint)
        totals = dist.all_reduce_sum(sums, device)
        # no trained events: resumed from an old checkpoint taken at the epoch's last step,
        # which does not carry the epoch's figures; those are then unknown, not 0
        trained = totals[2] > 0
        train_loss = totals[0] / totals[2] if trained else math.nan
        train_acc = totals[1] / totals[2] if trained else math.nan
        events_per_s = totals[2] / max(elapsed, 1e-9) if trained else math.nan
        val_loss, val_acc = _evaluate_loss(model, val_t, settings, device, dist, amp_dtype)
        metrics: dict[str, float] = {"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss,
                                     "val/acc": val_acc, "train/events_per_s": events_per_s,
                                     "train/lr": float(opt.scheduler.get_last_lr()[0]),
                                     "train/events": totals[2] + totals[3]}
        if "val_shifted" in data.tensors:  # augment.shifted_validation: the same events, re-smeared
            metrics["val_shifted/loss"], metrics["val_shifted/acc"] = _evaluate_loss(
                model, data.tensors["val_shifted"], settings, device, dist, amp_dtype)
        for key, value in metrics.items():
            state.history.setdefault(key, []).append(float(value))
        if dist.is_main:
            if run is not None:
                run.log_metrics({k: v for k, v in metrics.items() if not math.isnan(v)}, step=epoch + 1)
            if trained:
                log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.0f events/s",
                         epoch + 1, settings.max_epochs, train_loss, train_acc, val_loss, val_acc,
                         events_per_s)
            else:
                log.info("epoch %d/%d  no training step after the resume (the checkpoint does not "
                         "hold the epoch's training figures) | val loss %.4f acc %.4f",
                         epoch + 1, settings.max_epochs, val_loss, val_acc)
        state.epoch = epoch + 1
        state.step_in_epoch = 0
        state.epoch_sums, state.epoch_seconds = [], 0.0
        if val_loss < state.best_val_loss - 1e-6:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            save_checkpoint("best.pt")
        else:
            state.bad_epochs += 1
        save_checkpoint("last.pt")
        if epoch_callback is not None and dist.is_main:
            epoch_callback(epoch + 1, metrics)
        if state.bad_epochs >= settings.early_stopping_patience:
            log.info("early stopping: no improvement of the validation loss for %d epochs",
                     settings.early_stopping_patience)
            break
    if best_state is None and (checkpoint_dir / "best.pt").exists():
        best_state = load_torch_file(checkpoint_dir / "best.pt", map_location=device)["model"]["state_dict"]
    if best_state is not None:
        model.load_state_dict(best_state)
    if settings.save_rank_weights:
        save_atomic(model.state_dict(), run_dir / f"weights_rank{dist.rank}.pt")
    return model, state
