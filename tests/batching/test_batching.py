"""Tests of flavortag.batching: padding, batch layouts, loaders, DDP sharding, streaming."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from flavortag.batching import (
    EventDataset,
    EventTensors,
    PaddedBatch,
    RaggedBatch,
    StreamingEventDataset,
    build_event_tensors,
    collate_padded,
    collate_ragged,
    make_loader,
    make_streaming_loader,
    pad_tracks,
    padded_to_ragged,
    ragged_to_padded,
)
from flavortag.features import EVENT_FEATURES, TRACK_FEATURES, track_features

FIELDS = ("E", "px", "py", "pz", "x", "y", "z")


def synthetic_events(n, seed=0, mean_tracks=8, min_tracks=0, id_energy=False):
    """Random events in the contract layout. With ``id_energy`` the leading track of event i
    has E = 100 + i (after sorting by E it is first), so events can be recognised in batches."""
    rng = np.random.default_rng(seed)
    counts = np.maximum(rng.poisson(mean_tracks, n), min_tracks)
    total = int(counts.sum())
    p = rng.normal(size=(total, 3)) * 2.0
    e = np.sqrt((p**2).sum(1) + 0.0195)
    if id_energy:
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])[counts > 0]
        e[first] = 100.0 + np.flatnonzero(counts > 0)
    pos = rng.normal(size=(total, 3)) * 0.02
    cols = [e, p[:, 0], p[:, 1], p[:, 2], pos[:, 0], pos[:, 1], pos[:, 2]]
    tracks = ak.zip({f: c.astype(np.float32) for f, c in zip(FIELDS, cols)})
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    return ak.zip({"axis": ak.to_regular(ak.Array(axis.astype(np.float32)), axis=1),
                   "tracks": ak.unflatten(tracks, counts),
                   "label": rng.integers(0, 3, n).astype(np.int32)}, depth_limit=1)


def event_ids(batch):
    """Event ids of a batch made from ``synthetic_events(..., id_energy=True)``."""
    if isinstance(batch, RaggedBatch):
        first_rows = batch.vectors[batch.offsets[:-1], 0]
    else:
        first_rows = batch.vectors[:, 0, 0]
    return np.rint(first_rows.numpy() - 100.0).astype(np.int64)


@pytest.fixture(scope="module")
def tensors():
    events = synthetic_events(203, seed=1, mean_tracks=10)
    t = build_event_tensors(events, max_tracks=16)
    t.labels = np.arange(len(t), dtype=np.int64)  # labels as event ids
    return t


# ---- padding ---------------------------------------------------------------------------------
def _tracks_from_energies(energy_lists):
    counts = np.array([len(e) for e in energy_lists], dtype=np.int64)
    energies = np.array([v for e in energy_lists for v in e], dtype=np.float32)
    return ak.unflatten(ak.zip({"E": energies, "tag": energies * 10}), counts)


def test_pad_tracks_orders_by_energy_and_truncates():
    tracks = _tracks_from_energies([[], [1, 3, 2], [5, 1, 4, 2, 6, 3, 7]])
    values, valid, n_trunc = pad_tracks(tracks, ["tag"], max_tracks=5)
    assert values.shape == (3, 5, 1) and values.dtype == np.float32
    assert n_trunc == 2
    np.testing.assert_array_equal(valid.sum(1), [0, 3, 5])
    np.testing.assert_array_equal(values[1, :, 0], [30, 20, 10, 0, 0])
    np.testing.assert_array_equal(values[2, :, 0], [70, 60, 50, 40, 30])  # E = 1, 2 dropped
    assert not values[0].any()
    up, _, _ = pad_tracks(tracks, ["tag"], max_tracks=5, descending=False)
    np.testing.assert_array_equal(up[2, :, 0], [10, 20, 30, 40, 50])
    stored, _, _ = pad_tracks(tracks, ["tag"], max_tracks=5, sort_by=None)
    np.testing.assert_array_equal(stored[2, :, 0], [50, 10, 40, 20, 60])
    # a key kept outside the records (here -E: the lowest energies first)
    by_key, _, _ = pad_tracks(tracks[["tag"]], ["tag"], max_tracks=5, sort_values=-tracks.E)
    np.testing.assert_array_equal(by_key[2, :, 0], [10, 20, 30, 40, 50])
    with pytest.raises(ValueError, match="sort_values"):
        pad_tracks(tracks[["tag"]], ["tag"], max_tracks=5)


def test_flat_and_awkward_padding_agree():
    events = synthetic_events(300, seed=2, mean_tracks=12)
    tf = track_features(events)
    names = list(TRACK_FEATURES[:5])
    for max_tracks in (4, 32):
        a = pad_tracks(tf, names, max_tracks, sort_values=events.tracks.E)
        b = pad_tracks(tf, names, max_tracks, sort_values=events.tracks.E, method="awkward")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[2] == b[2] == int(np.maximum(ak.num(events.tracks).to_numpy() - max_tracks, 0).sum())


# ---- in-memory tensors -------------------------------------------------------------------------
def test_build_event_tensors_matches_features_sorted_by_energy():
    events = synthetic_events(50, seed=3, mean_tracks=9)
    t = build_event_tensors(events, max_tracks=8)
    counts = ak.num(events.tracks).to_numpy()
    assert t.features.shape == (50, 8, len(TRACK_FEATURES))
    assert t.event_features.shape == (50, len(EVENT_FEATURES))
    assert t.vectors.shape == (50, 8, 7)
    assert t.n_truncated == int(np.maximum(counts - 8, 0).sum())
    np.testing.assert_array_equal(t.valid.sum(1), np.minimum(counts, 8))
    np.testing.assert_array_equal(t.labels, events.label.to_numpy())
    tf = track_features(events)
    order = ak.argsort(events.tracks.E, axis=1, ascending=False)
    for i in (0, 7, 31):
        n = min(counts[i], 8)
        expected_e = events.tracks.E[i][order[i]].to_numpy()[:n]
        np.testing.assert_array_equal(t.vectors[i, :n, 0], expected_e)
        assert np.all(np.diff(t.vectors[i, :n, 0]) <= 0)
        for j, name in enumerate(TRACK_FEATURES):
            np.testing.assert_array_equal(t.features[i, :n, j], tf[name][i][order[i]].to_numpy()[:n])
        assert not t.features[i, n:].any() and not t.vectors[i, n:].any()
    sub = t.subset([3, 1])
    np.testing.assert_array_equal(sub.features, t.features[[3, 1]])
    np.testing.assert_array_equal(sub.n_tracks, counts[[3, 1]])
    np.testing.assert_array_equal(t.valid_track_features(), t.features[t.valid])


def test_build_event_tensors_options():
    events = synthetic_events(20, seed=4)
    t = build_event_tensors(events, ["log_pt_gev", "hemisphere"], None, max_tracks=4,
                            sort_by="log_pt_gev", with_vectors=False)
    assert t.event_features is None and t.vectors is None and t.event_feature_names == ()
    pt = t.features[..., 0]
    assert np.all(np.diff(np.where(t.valid, pt, -np.inf), axis=1)[t.valid[:, 1:]] <= 0)
    unlabelled = ak.without_field(events, "label")
    np.testing.assert_array_equal(build_event_tensors(unlabelled, max_tracks=4).labels, -1)
    with pytest.raises(ValueError, match="sort_by='charge'"):
        build_event_tensors(events, max_tracks=4, sort_by="charge")
    with pytest.raises(ValueError, match="unknown track features"):
        build_event_tensors(events, ["nope"], max_tracks=4)


# ---- batch layouts --------------------------------------------------------------------------------
def test_padded_ragged_round_trip_is_exact(tensors):
    t = tensors.subset(np.arange(40))
    t.n_tracks[5] = 0  # an empty event
    t.features[5] = 0
    t.vectors[5] = 0
    t.valid[5] = False
    padded = t.batch(np.arange(40), "padded", trim=False)
    ragged = padded_to_ragged(padded)
    assert ragged.values.shape == (int(t.valid.sum()), len(TRACK_FEATURES))
    np.testing.assert_array_equal(ragged.offsets.numpy()[1:], np.cumsum(t.valid.sum(1)))
    back = ragged_to_padded(ragged, max_tracks=t.max_tracks)
    for name in ("features", "valid", "labels", "event_features", "vectors"):
        assert torch.equal(getattr(back, name), getattr(padded, name)), name
    again = padded_to_ragged(back)
    assert torch.equal(again.values, ragged.values) and torch.equal(again.offsets, ragged.offsets)
    # default length: the longest event; a shorter max_tracks keeps the first rows
    assert ragged_to_padded(ragged).features.shape[1] == int(t.n_valid.max())
    short = ragged_to_padded(ragged, max_tracks=2)
    assert torch.equal(short.features, padded.features[:, :2])
    assert torch.equal(short.valid, padded.valid[:, :2])


def test_ragged_batches_have_correct_offsets(tensors):
    loader = make_loader(tensors, batch_size=32, layout="ragged", shuffle=True, seed=3)
    for batch in loader:
        assert isinstance(batch, RaggedBatch)
        ids = batch.labels.numpy()
        counts = tensors.n_valid[ids]
        np.testing.assert_array_equal(batch.offsets.numpy(), np.concatenate([[0], np.cumsum(counts)]))
        np.testing.assert_array_equal(batch.n_tracks.numpy(), counts)
        for b in (0, len(ids) - 1):
            rows = batch.values[batch.offsets[b]:batch.offsets[b + 1]].numpy()
            np.testing.assert_array_equal(rows, tensors.features[ids[b], :counts[b]])
        np.testing.assert_array_equal(batch.event_index().numpy(), np.repeat(np.arange(len(ids)), counts))


def test_padded_batches_are_trimmed_to_longest_event(tensors):
    for trim, check in ((True, lambda b: int(b.valid.sum(1).max())), (False, lambda b: 16)):
        for batch in make_loader(tensors, batch_size=8, trim=trim):
            assert batch.features.shape[1] == check(batch)
            assert batch.vectors.shape[1] == batch.features.shape[1]
            ids = batch.labels.numpy()
            np.testing.assert_array_equal(batch.valid.numpy(), tensors.valid[ids, :batch.valid.shape[1]])


# ---- loaders -----------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["padded", "ragged"])
def test_loader_yields_every_event_once_per_epoch(tensors, layout):
    loader = make_loader(tensors, batch_size=32, shuffle=True, seed=11, layout=layout)
    assert len(loader) == 7  # ceil(203 / 32)
    epochs = []
    for _ in range(2):
        ids = np.concatenate([b.labels.numpy() for b in loader])
        np.testing.assert_array_equal(np.sort(ids), np.arange(len(tensors)))
        epochs.append(ids)
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    again = make_loader(tensors, batch_size=32, shuffle=True, seed=11, layout=layout)
    np.testing.assert_array_equal(np.concatenate([b.labels.numpy() for b in again]), epochs[0])
    ordered = np.concatenate([b.labels.numpy() for b in make_loader(tensors, batch_size=50)])
    np.testing.assert_array_equal(ordered, np.arange(len(tensors)))
    dropped = [len(b) for b in make_loader(tensors, batch_size=50, drop_last=True, layout=layout)]
    assert dropped == [50, 50, 50, 50]


def test_loader_batches_are_finite_and_typed(tensors):
    for batch in make_loader(tensors, batch_size=64):
        assert isinstance(batch, PaddedBatch)
        assert batch.features.dtype == torch.float32 and batch.valid.dtype == torch.bool
        assert batch.labels.dtype == torch.int64
        for name in ("features", "event_features", "vectors"):
            assert torch.isfinite(getattr(batch, name)).all()
        assert not batch.features[~batch.valid].any()


def test_distributed_sampler_two_ranks_cover_all_events(tensors):
    t = tensors.subset(np.arange(200))
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(t, num_replicas=2, rank=rank, shuffle=True, seed=5)
        sampler.set_epoch(3)
        ids = np.concatenate([b.labels.numpy() for b in make_loader(t, 16, sampler=sampler)])
        assert len(ids) == 100
        seen.append(ids)
    assert not set(seen[0]) & set(seen[1])
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(200))
    with pytest.raises(ValueError, match="mutually exclusive"):
        make_loader(t, 16, shuffle=True, sampler=DistributedSampler(t, num_replicas=2, rank=0))


def test_loader_with_worker_processes(tensors):
    loader = make_loader(tensors, batch_size=64, shuffle=True, seed=2, num_workers=1)
    ids = np.concatenate([b.labels.numpy() for b in loader])
    np.testing.assert_array_equal(np.sort(ids), np.arange(len(tensors)))


def test_collate_functions_match_batch_gather(tensors):
    dataset = EventDataset(tensors)
    idx = [4, 0, 17, 9]
    items = [dataset[i] for i in idx]
    assert items[0].features.shape == (tensors.n_valid[4], len(TRACK_FEATURES))
    gathered = dataset[idx]
    padded = collate_padded(items)
    for name in ("features", "valid", "labels", "event_features", "vectors"):
        assert torch.equal(getattr(padded, name), getattr(gathered, name)), name
    ragged = collate_ragged(items)
    reference = EventDataset(tensors, layout="ragged")[np.array(idx)]
    for name in ("values", "offsets", "labels", "event_features", "vectors"):
        assert torch.equal(getattr(ragged, name), getattr(reference, name)), name
    fixed = collate_padded(items, max_tracks=16)
    assert fixed.features.shape == (4, 16, len(TRACK_FEATURES))
    # the plain per-item DataLoader path works with these collate functions too
    plain = DataLoader(dataset, batch_size=10, collate_fn=collate_padded)
    assert sum(len(b) for b in plain) == len(tensors)


def test_batch_to_device_and_pin_memory(tensors):
    batch = tensors.batch(np.arange(5))
    moved = batch.to("cpu", non_blocking=True)
    assert isinstance(moved, PaddedBatch) and len(moved) == 5
    assert torch.equal(moved.features, batch.features)
    ragged = padded_to_ragged(batch).to(torch.device("cpu"))
    assert len(ragged) == 5
    if not torch.cuda.is_available():
        pytest.skip("pinned memory needs CUDA")
    pinned = batch.pin_memory()
    assert pinned.features.is_pinned() and pinned.vectors.is_pinned()
    assert padded_to_ragged(batch).pin_memory().values.is_pinned()
    loader = make_loader(tensors, batch_size=32, pin_memory=True)
    assert next(iter(loader)).features.is_pinned()
    on_gpu = batch.to("cuda")
    assert on_gpu.features.is_cuda and on_gpu.valid.is_cuda


# ---- streaming ---------------------------------------------------------------------------------
def _write_parquet_files(tmp_path, sizes, row_group_size):
    """Parquet files in the contract layout; event ids run on across files (E of the leading track)."""
    paths, start = [], 0
    for k, n in enumerate(sizes):
        events = synthetic_events(start + n, seed=7, min_tracks=1, id_energy=True)[start:]
        path = tmp_path / f"sample_{k}.parquet"
        ak.to_parquet(events, path, row_group_size=row_group_size)
        paths.append(path)
        start += n
    return paths, start


def parquet_row_groups(path, step_size=None, **_):
    """A chunk reader over the row groups of one parquet file (stands in for flavortag.io)."""
    n_groups = ak.metadata_from_parquet(path)["num_row_groups"]
    for i in range(n_groups):
        yield ak.from_parquet(path, row_groups=[i])


def _ids(batches):
    return np.concatenate([event_ids(b) for b in batches]) if batches else np.zeros(0, np.int64)


@pytest.mark.parametrize("shard_by", ["chunk", "file"])
def test_streaming_shards_cover_every_event_once(tmp_path, shard_by):
    paths, n = _write_parquet_files(tmp_path, [70, 45, 90, 30], row_group_size=20)
    per_rank = []
    for rank in (0, 1):
        ds = StreamingEventDataset(paths, batch_size=16, max_tracks=8, buffer_size=40, rank=rank,
                                   world_size=2, seed=1, shard_by=shard_by, reader=parquet_row_groups)
        ds.set_epoch(2)
        batches = list(ds)
        assert all(isinstance(b, PaddedBatch) and len(b) <= 16 for b in batches)
        assert all(torch.isfinite(b.features).all() for b in batches)
        per_rank.append(_ids(batches))
    assert not set(per_rank[0]) & set(per_rank[1])
    np.testing.assert_array_equal(np.sort(np.concatenate(per_rank)), np.arange(n))


def test_streaming_with_dataloader_workers_shuffles_per_epoch(tmp_path):
    paths, n = _write_parquet_files(tmp_path, [60, 60, 60], row_group_size=25)
    ds = StreamingEventDataset(paths, batch_size=32, max_tracks=8, buffer_size=64, seed=3,
                               layout="ragged", reader=parquet_row_groups)
    loader = make_streaming_loader(ds, num_workers=2)
    first = _ids(list(loader))
    np.testing.assert_array_equal(np.sort(first), np.arange(n))
    ds.set_epoch(1)  # workers are not persistent: the new epoch reaches them
    second = _ids(list(loader))
    np.testing.assert_array_equal(np.sort(second), np.arange(n))
    assert not np.array_equal(first, second)
    ordered = StreamingEventDataset(paths, batch_size=32, max_tracks=8, shuffle=False,
                                    event_feature_names=None, reader=parquet_row_groups)
    batches = list(ordered)
    assert batches[0].event_features is None
    np.testing.assert_array_equal(_ids(batches), np.arange(n))
    dropped = StreamingEventDataset(paths, batch_size=32, max_tracks=8, shuffle=False,
                                    drop_last=True, buffer_size=1000, reader=parquet_row_groups)
    assert [len(b) for b in dropped] == [32] * (n // 32)


def test_streaming_with_flavortag_io(tmp_path):
    io = pytest.importorskip("flavortag.io")
    if not hasattr(io, "iter_events"):
        pytest.skip("flavortag.io.iter_events not written yet")
    paths, n = _write_parquet_files(tmp_path, [50, 70], row_group_size=30)
    per_rank = []
    for rank in (0, 1):
        ds = StreamingEventDataset(paths, batch_size=16, max_tracks=8, step_size=25, rank=rank,
                                   world_size=2, buffer_size=32)
        per_rank.append(_ids(list(ds)))
    assert not set(per_rank[0]) & set(per_rank[1])
    np.testing.assert_array_equal(np.sort(np.concatenate(per_rank)), np.arange(n))


def test_event_tensors_len_and_properties(tensors):
    assert isinstance(tensors, EventTensors)
    assert len(tensors) == 203 and tensors.max_tracks == 16
    assert tensors.n_truncated == int(np.maximum(tensors.n_tracks - 16, 0).sum())


def test_sliced_events_give_the_same_rows():
    events = synthetic_events(60, seed=9, mean_tracks=7)
    perm = np.random.default_rng(0).permutation(60)[:45]
    whole = build_event_tensors(events, max_tracks=6)
    sliced = build_event_tensors(events[perm], max_tracks=6)  # ListArray layout underneath
    for name in ("features", "valid", "labels", "n_tracks", "event_features", "vectors"):
        np.testing.assert_array_equal(getattr(sliced, name), getattr(whole.subset(perm), name))
