"""Training: the library of the train pipeline (:mod:`flavortag.pipelines.train`; the app is :mod:`flavortag.apps.train`).

One job per module: :mod:`.settings` (typed ``trainer`` settings, checked before
anything is read), :mod:`.owner` (who owns a run directory), :mod:`.data`
(read, split, feature tensors, streaming set-up), :mod:`.loop` (the torch loop),
:mod:`.checkpoint`, :mod:`.runtime` (devices, precision, DDP), and :mod:`.bdt` (the
scikit-learn trees); one whole job and its MLflow record is the train
pipeline, :mod:`flavortag.pipelines.train`.

One run = one MLflow record: resolved config (params + ``config.yaml``), git
commit, feature lists, per-epoch train/validation loss and accuracy, the
number of training events used (``train/events``), throughput, checkpoints,
the logged model and, by default, the test-split evaluation (metrics, plots,
working points, predictions). After a mid-epoch resume, that epoch's
``train/loss``, ``train/acc`` and ``train/events`` cover the whole epoch (the
checkpoint carries the epoch's sums so far; ``train/events_per_s`` counts the
training time before and after the resume, not the replay); from a checkpoint
of an older version without those sums, the figures cover the steps after the
resume, and none are logged if there were none. With ``data.on_error=skip``
the dropped events are logged per reason (``data/skipped/<reason>``).

Every job claims its run directory (:mod:`.owner`): no two live jobs share
one, ``owner.json`` names the MLflow run the directory's checkpoints belong
to, and ``trainer.resume`` refuses a checkpoint of another run or model. The
default run directory, ``outputs/train/<run name>/<time>_<pid><random>``, is
unique per job.

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


from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flavortag.training.bdt import fit_bdt
    from flavortag.training.checkpoint import CHECKPOINT_VERSION, TrainState, find_resume_checkpoint
    from flavortag.training.data import PreparedData, StreamingSource, prepare_data
    from flavortag.training.loop import fit_torch
    from flavortag.training.runtime import Distributed, resolve_device
    from flavortag.training.settings import TrainerSettings, TrainJob, feature_names

#: Where each public name lives. Imported on first use: the apps read :mod:`.settings` to check a
#: config (and answer ``--help``) without importing torch, scikit-learn or MLflow.
_HOMES: dict[str, str] = {
    "fit_bdt": "bdt", "CHECKPOINT_VERSION": "checkpoint", "TrainState": "checkpoint",
    "find_resume_checkpoint": "checkpoint", "PreparedData": "data", "StreamingSource": "data",
    "prepare_data": "data", "fit_torch": "loop", "Distributed": "runtime", "resolve_device": "runtime",
    "TrainerSettings": "settings", "TrainJob": "settings", "feature_names": "settings",
}


def __getattr__(name: str) -> Any:
    """The public names, imported from their module on first use (:data:`_HOMES`)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "CHECKPOINT_VERSION",
    "Distributed",
    "PreparedData",
    "StreamingSource",
    "TrainState",
    "TrainerSettings",
    "feature_names",
    "find_resume_checkpoint",
    "fit_bdt",
    "fit_torch",
    "prepare_data",
    "resolve_device",
    "TrainJob",
]
