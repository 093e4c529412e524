"""Issue 14: length bucketing gives every event once per epoch, in batches of similar track counts,
reproducibly, and keeps DDP ranks' batch counts equal."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import RandomSampler
from torch.utils.data.distributed import DistributedSampler

from flavortag.batching import EventTensors
from flavortag.batching.buckets import BucketBatchSampler
from flavortag.batching.loader import make_loader


def _lengths(n: int = 2000, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 41, n)


def _batches(sampler: BucketBatchSampler) -> list[list[int]]:
    return [list(b) for b in sampler]


def test_every_event_once_in_batches_of_similar_length() -> None:
    n_tracks = _lengths()
    gen = torch.Generator().manual_seed(5)
    sampler = BucketBatchSampler(RandomSampler(range(2000), generator=gen), n_tracks, 64, seed=7)
    batches = _batches(sampler)
    assert len(batches) == len(sampler) == 32  # 31 full + one of 16
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(2000))
    assert sorted(len(b) for b in batches)[0] == 2000 - 31 * 64
    # padded length (longest of the batch) summed over batches: far below random batches
    bucketed = sum(n_tracks[b].max() * len(b) for b in batches)
    order = np.random.default_rng(0).permutation(2000)
    random = sum(n_tracks[order[k : k + 64]].max() * len(order[k : k + 64]) for k in range(0, 2000, 64))
    assert bucketed < 0.7 * random
    spread = np.mean([np.ptp(n_tracks[b]) for b in batches if len(b) == 64])
    assert spread <= 3  # 2048 events of 40 lengths in 32-batch windows: a batch spans a few lengths


def test_reproducible_and_epochs_differ() -> None:
    n_tracks = _lengths()

    def epoch(e: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(100 + e)
        return _batches(BucketBatchSampler(RandomSampler(range(2000), generator=gen), n_tracks, 50,
                                           drop_last=True, seed=100 + e))

    assert epoch(0) == epoch(0)
    assert epoch(0) != epoch(1)
    assert all(len(b) == 50 for b in epoch(1)) and len(epoch(1)) == 40


def test_ddp_ranks_get_equal_batch_counts_and_disjoint_events() -> None:
    n_tracks = _lengths(1003)
    seen: list[int] = []
    counts = []
    for rank in range(2):
        ddp = DistributedSampler(range(1003), num_replicas=2, rank=rank, shuffle=True, seed=1, drop_last=True)
        ddp.set_epoch(3)
        batches = _batches(BucketBatchSampler(ddp, n_tracks, 32, drop_last=True, seed=4))
        counts.append(len(batches))
        seen.extend(np.concatenate(batches).tolist())
    assert counts[0] == counts[1] == 501 // 32
    assert len(seen) == len(set(seen)) == 2 * 15 * 32


def test_loader_pads_each_batch_to_its_longest_event() -> None:
    n = 300
    n_tracks = _lengths(n, seed=9)
    max_tracks = 48
    valid = np.arange(max_tracks)[None, :] < n_tracks[:, None]
    tensors = EventTensors(features=np.random.default_rng(1).normal(size=(n, max_tracks, 2)).astype(np.float32),
                           valid=valid, labels=np.arange(n) % 3, n_tracks=n_tracks.astype(np.int64),
                           track_feature_names=("a", "b"))
    loader = make_loader(tensors, 32, shuffle=True, seed=2, bucketing=True)
    widths, labels = [], []
    for batch in loader:
        assert batch.features.shape[1] == int(batch.valid.sum(1).max())
        widths.append(batch.features.shape[1] * len(batch.labels))
        labels.append(batch.labels.numpy())
    assert sorted(np.concatenate(labels).tolist()) == sorted(tensors.labels.tolist())
    plain = sum(b.features.shape[1] * len(b.labels) for b in make_loader(tensors, 32, shuffle=True, seed=2))
    assert sum(widths) < 0.8 * plain


def test_batches_keep_the_class_mix() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 1000)
    n_tracks = rng.poisson(15 + 3 * labels)  # b events have more tracks, as in Z-pole samples
    gen = torch.Generator().manual_seed(8)
    batches = _batches(BucketBatchSampler(RandomSampler(range(3000), generator=gen), n_tracks, 100,
                                          drop_last=True, labels=labels))
    fractions = np.array([np.bincount(labels[b], minlength=3) / len(b) for b in batches])
    assert np.abs(fractions - 1 / 3).max() <= 0.04  # plain length sorting: batches of mostly one class
    plain = _batches(BucketBatchSampler(RandomSampler(range(3000), generator=gen), n_tracks, 100, drop_last=True))
    assert np.array([np.bincount(labels[b], minlength=3) / len(b) for b in plain]).std(0).min() > 0.05
