"""Batches for the models: padded (tensor + mask) or ragged (values + offsets), and data loaders.

One job per module: :mod:`.batch` (batch types, converters), :mod:`.padding`,
:mod:`.tensors` (in-memory samples), :mod:`.loader` (datasets, collate, loaders)
and :mod:`.streaming` (the only one that reads files). This package re-exports them.

* ``PaddedBatch`` / ``RaggedBatch``: the two batch layouts every model takes,
  with converters ``padded_to_ragged`` / ``ragged_to_padded``.
* ``raw_inputs``: events as the raw inputs of an exported raw-input ONNX tagger.
* ``pad_tracks``: jagged per-track records -> ``[B, max_tracks, F]`` float32 plus
  a ``valid`` mask, tracks ordered by a key (energy by default) before
  truncation; vectorised (flat numpy scatter, or awkward pad/fill for comparison).
* ``EventTensors`` / ``build_event_tensors``: an in-memory sample as padded numpy
  arrays (features, mask, labels, event features, raw vectors).
* ``EventDataset`` + ``make_loader``: map-style dataset whose loader draws whole
  index batches (one gather per batch, no per-event collate); works with a
  ``DistributedSampler`` for DDP; padded batches are trimmed to their longest
  event by default.
* ``collate_padded`` / ``collate_ragged``: per-event items -> a batch.
* ``StreamingEventDataset``: reads files chunk by chunk through
  ``flavortag.io.iter_events``, computes features per chunk, shuffles inside a
  buffer and yields batches; chunks are dealt out across DataLoader workers and
  DDP ranks so that no event is seen twice in an epoch.

Padded positions (``valid`` False) hold zeros. Tracks are always stored as a
prefix: the valid tracks of an event are its first ``n`` positions.
"""

from flavortag.batching.batch import (
    Device,
    EventItem,
    Layout,
    PaddedBatch,
    RaggedBatch,
    check_layout,
    pad_ragged_tensor,
    padded_to_ragged,
    ragged_to_padded,
    segment_ids,
)
from flavortag.batching.loader import (
    EventDataset,
    collate_padded,
    collate_ragged,
    make_loader,
    n_batches,
)
from flavortag.batching.padding import PaddingPlan, pad_flat, pad_tracks, padding_plan, raw_inputs
from flavortag.batching.streaming import ChunkReader, StreamingEventDataset, make_streaming_loader
from flavortag.batching.tensors import EventTensors, build_event_tensors, concat_event_tensors

__all__ = [
    "check_layout",
    "pad_ragged_tensor",
    "segment_ids",
    "ChunkReader",
    "Device",
    "EventDataset",
    "EventItem",
    "EventTensors",
    "Layout",
    "PaddedBatch",
    "PaddingPlan",
    "RaggedBatch",
    "StreamingEventDataset",
    "build_event_tensors",
    "collate_padded",
    "collate_ragged",
    "concat_event_tensors",
    "make_loader",
    "make_streaming_loader",
    "n_batches",
    "pad_flat",
    "pad_tracks",
    "raw_inputs",
    "padded_to_ragged",
    "padding_plan",
    "ragged_to_padded",
]
