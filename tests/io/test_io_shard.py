"""``flavortag shard``: mixed-class, shuffled, row-grouped shards; a glob of shards reads and streams as one sample."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from flavortag.io import iter_events, read_events
from flavortag.io.shard import make_shards, shard_assignment, shard_path

N_SHARDS = 3


@pytest.fixture(scope="module")
def shards(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flavortag.apps.shard import main

    out = tmp_path_factory.mktemp("shards")
    inputs = [str(sample_dir / f"{c}.parquet") for c in ("uds", "cc", "bb")]
    assert main([*inputs, "--out", str(out), "--shards", str(N_SHARDS), "--rows-per-group", "64",
                 "--seed", "7", "--step-size", "100", "--no-progress"]) == 0
    return out


def _keys(events: ak.Array) -> list[tuple]:
    """One hashable key per event: label, multiplicity and the first track's energy and x."""
    tracks = events["tracks"]
    first_e = ak.to_numpy(ak.fill_none(ak.firsts(tracks["E"]), -1.0))
    first_x = ak.to_numpy(ak.fill_none(ak.firsts(tracks["x"]), -1.0))
    return sorted(zip(ak.to_numpy(events["label"]).tolist(), ak.num(tracks).to_numpy().tolist(),
                      first_e.tolist(), first_x.tolist(), strict=True))


def test_shards_hold_every_event_once_with_classes_mixed(sample_dir: Path, shards: Path) -> None:
    original = read_events([str(sample_dir / f"{c}.parquet") for c in ("uds", "cc", "bb")])
    files = sorted(shards.glob("shard-*.parquet"))
    assert [p.name for p in files] == [shard_path(shards, i, N_SHARDS).name for i in range(N_SHARDS)]
    union = read_events(str(shards / "shard-*.parquet"))  # a glob reads as one sample
    assert len(union) == len(original) == 900
    assert _keys(union) == _keys(original)  # nothing lost, nothing doubled
    np.testing.assert_array_equal(np.bincount(ak.to_numpy(union["label"])), [300, 300, 300])
    assert ak.fields(union["tracks"]) == ak.fields(original["tracks"])  # truth fields kept
    manifest = json.loads((shards / "shards.json").read_text())
    assert manifest["n_events"] == 900
    for path, entry in zip(files, manifest["shards"], strict=True):
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == entry["n_events"] == 300  # 900 events dealt one per block of 3
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [64] * 4 + [44]
        labels = ak.to_numpy(read_events(path)["label"])
        counts = np.bincount(labels, minlength=3)
        assert entry["class_counts"] == {str(k): int(v) for k, v in enumerate(counts)}
        assert counts.min() > 60  # every class in every shard
        # shuffled: the first row group is not one class, and classes alternate often
        assert len(set(labels[:64].tolist())) == 3
        assert np.mean(labels[1:] != labels[:-1]) > 0.4


def test_shards_are_reproducible_and_independent_of_read_chunking(sample_dir: Path, shards: Path,
                                                                  tmp_path: Path) -> None:
    inputs = [sample_dir / f"{c}.parquet" for c in ("uds", "cc", "bb")]
    again = make_shards(inputs, tmp_path / "again", N_SHARDS, rows_per_group=64, seed=7, step_size="1 MB",
                        progress=False)
    for i, path in enumerate(again.paths):
        assert ak.array_equal(read_events(path), read_events(shard_path(shards, i, N_SHARDS)))
    other = make_shards(inputs, tmp_path / "other", N_SHARDS, rows_per_group=64, seed=8, progress=False)
    assert not ak.array_equal(read_events(other.paths[0])["label"],
                              read_events(shard_path(shards, 0, N_SHARDS))["label"])
    # dealing: one event per block to each shard, whatever the chunking
    whole = shard_assignment(0, 30, 3, seed=7)
    np.testing.assert_array_equal(np.concatenate([shard_assignment(0, 7, 3, 7), shard_assignment(7, 23, 3, 7)]),
                                  whole)
    assert all(sorted(whole[b:b + 3].tolist()) == [0, 1, 2] for b in range(0, 30, 3))


def test_more_shards_than_events_and_refusals(sample_dir: Path, tmp_path: Path) -> None:
    small = tmp_path / "bb.parquet"
    from flavortag.io import write_events

    write_events(read_events(sample_dir / "bb.parquet")[:2], small)
    result = make_shards(small, tmp_path / "s", 4, progress=False)
    assert [sum(c.values()) for c in result.class_counts] in ([1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1],
                                                              [0, 1, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1])
    assert len(read_events(str(tmp_path / "s" / "*.parquet"))) == 2  # the empty shards have the same fields
    with pytest.raises(ValueError, match="n_shards"):
        make_shards(small, tmp_path / "x", 0)
    with pytest.raises(ValueError, match="overwrite their own inputs"):
        make_shards(str(tmp_path / "s" / "*.parquet"), tmp_path / "s", 4)


def test_a_glob_of_shards_iterates_and_streams_as_one_sample(shards: Path) -> None:
    from flavortag.batching import StreamingEventDataset
    from flavortag.dataset import resolve_paths

    pattern = str(shards / "shard-*.parquet")
    chunks = list(iter_events(pattern, step_size="1 kB"))  # whole row groups at a time
    assert [len(c) for c in chunks] == [64, 64, 64, 64, 44] * N_SHARDS
    files = [str(p) for p in resolve_paths([pattern])]
    assert len(files) == N_SHARDS
    seen = []
    for rank in range(2):
        ds = StreamingEventDataset(files, batch_size=50, max_tracks=16, step_size="1 kB", buffer_size=200,
                                   seed=3, rank=rank, world_size=2, event_feature_names=None)
        seen.append(sum(len(b.labels) for b in ds))
    assert sum(seen) == 900 and min(seen) > 300
