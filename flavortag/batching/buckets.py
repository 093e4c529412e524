"""Length bucketing: batches of events with similar track counts, so padding costs little.

A padded batch is cut to its longest event (``trim``), and attention and pair
features cost ``O(N^2)`` in that length: a batch of random Z-pole events (5 to
40+ tracks) is padded to nearly the cap, one of similar events is not.
:class:`BucketBatchSampler` takes the event order of any sampler (a seeded
random permutation, or a :class:`~torch.utils.data.distributed.DistributedSampler`'s
share of a rank), cuts it into windows of ``window_batches`` batches, sorts
each window by track count, cuts it into batches and shuffles the order of
all batches of the epoch (seeded). Given the labels, the sort is by the
event's length quantile within its class (``stratify``): b events have more
tracks than uds ones, and a plain length sort would give batches mostly of one
class (batch-to-batch class fractions spread three times wider than in random
batches, which changes how training goes); quantile batches keep each batch's
class mix that of the window and cost only a little more padding. Every event is still seen once per epoch,
batches keep ``batch_size`` events (the last may be smaller unless
``drop_last``), so DDP ranks get equal numbers of batches, and the same seed
and epoch give the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import numpy as np
from torch.utils.data import Sampler

#: Batches per sorting window: large enough for similar lengths in a batch,
#: small enough that a batch still mixes events from across the sample.
DEFAULT_WINDOW_BATCHES: int = 32


class BucketBatchSampler(Sampler[list[int]]):
    """Index batches of similar track counts from the order of ``sampler``.

    ``n_tracks`` [n] gives each event's (padded) length, ``labels`` [n] (optional)
    the classes to keep mixed in every batch; ``seed`` and
    :meth:`set_epoch` fix the shuffle of the batch order (the event order
    comes from ``sampler``, which must be re-seeded for each epoch too).
    """

    def __init__(self, sampler: Sampler[int] | Sized, n_tracks: np.ndarray, batch_size: int,
                 drop_last: bool = False, window_batches: int = DEFAULT_WINDOW_BATCHES,
                 seed: int = 0, labels: np.ndarray | None = None) -> None:
        if batch_size < 1 or window_batches < 1:
            raise ValueError(f"batch_size and window_batches must be >= 1, got {batch_size}, {window_batches}")
        self.sampler = sampler
        self.n_tracks = np.asarray(n_tracks)
        self.labels = None if labels is None else np.asarray(labels)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.window = batch_size * window_batches
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use another shuffle of the batch order (call once per epoch, as for DDP samplers)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64)  # type: ignore[arg-type, call-overload]
        if self.drop_last:
            order = order[: len(order) // self.batch_size * self.batch_size]
        batches: list[np.ndarray] = []
        for start in range(0, len(order), self.window):
            window = order[start : start + self.window]
            # stable sorts: ties keep the sampler's (random) order
            window = window[np.argsort(self.n_tracks[window], kind="stable")]
            if self.labels is not None:
                window = window[np.argsort(_class_quantiles(self.labels[window]), kind="stable")]
            batches.extend(window[k : k + self.batch_size] for k in range(0, len(window), self.batch_size))
        rng = np.random.default_rng([self.seed, self.epoch])
        for k in rng.permutation(len(batches)):
            yield batches[k].tolist()


def _class_quantiles(labels: np.ndarray) -> np.ndarray:
    """Each position's rank among the positions of its class, as a fraction in (0, 1)."""
    quantile = np.empty(len(labels))
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        quantile[where] = (np.arange(len(where)) + 0.5) / len(where)
    return quantile
