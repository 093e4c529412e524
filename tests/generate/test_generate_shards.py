"""Sample production in shards: disjoint, reproducible, together the unsharded sample; row groups per chunk."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import awkward as ak
import pyarrow.parquet as pq
import pytest
import yaml

from flavortag.generate.events import plan_chunks
from flavortag.generate.production import produce_samples, shard_chunks
from flavortag.io import read_events

KWARGS = dict(flavours=["uds", "bb"], seed=11, chunk_size=15, workers=1, progress=False)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shard_chunk_blocks_are_disjoint_and_cover_the_plan() -> None:
    plan = plan_chunks("bb", 100, chunk_size=10)
    for n_shards in (1, 3, 4, 10, 13):
        blocks = [shard_chunks(plan, i, n_shards) for i in range(n_shards)]
        assert [spec for block in blocks for spec in block] == plan
    with pytest.raises(ValueError, match="0 <= shard < n_shards"):
        shard_chunks(plan, 2, 2)


def test_two_shards_are_the_unsharded_sample(tmp_path: Path) -> None:
    whole = produce_samples(tmp_path / "whole", 50, **KWARGS)
    shards = [produce_samples(tmp_path / "sharded", 50, shard=i, n_shards=2, **KWARGS) for i in range(2)]
    for name in ("uds", "bb"):
        parts = [s.paths[name] for s in shards]
        assert [p.name for p in parts] == [f"{name}-00000-of-00002.parquet", f"{name}-00001-of-00002.parquet"]
        a, b = (read_events(p) for p in parts)
        assert (len(a), len(b)) == (30, 20)  # 4 chunks of 15, 15, 15, 5 events: blocks [0, 1] and [2, 3]
        assert ak.array_equal(ak.concatenate([a, b]), read_events(whole.paths[name]))  # event for event
        # a glob of the shards reads as the whole sample (in shard order)
        assert ak.array_equal(read_events(str(tmp_path / "sharded" / f"{name}-*.parquet")),
                              read_events(whole.paths[name]))
        # one row group per chunk
        meta = pq.ParquetFile(whole.paths[name]).metadata
        assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [15, 15, 15, 5]
    again = produce_samples(tmp_path / "again", 50, shard=1, n_shards=2, **KWARGS)
    assert _digest(again.paths["bb"]) == _digest(shards[1].paths["bb"])  # reproducible


@pytest.mark.slow
def test_generate_multirun_with_the_submitit_local_launcher(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flavortag", "generate", "-m", "shard=0,1", "n_shards=2", "n_events=30",
           "chunk_size=10", "flavours=[cc]", "workers=1", "progress=false", "seed=4", f"out={out}",
           "hydra/launcher=local", f"paths.multirun={tmp_path / 'multirun'}"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "cc-00000-of-00002.parquet", "cc-00001-of-00002.parquet",
        "generation-00000-of-00002.yaml", "generation-00001-of-00002.yaml"]
    # both jobs ran through submitit (its logs), in one sweep directory
    sweeps = list((tmp_path / "multirun" / "generate").iterdir())
    assert len(sweeps) == 1 and len(list((sweeps[0] / ".submitit").glob("*/*_result.pkl"))) == 2
    meta = [yaml.safe_load((out / f"generation-0000{i}-of-00002.yaml").read_text()) for i in range(2)]
    assert [m["n_events"]["cc"] for m in meta] == [10, 20]
    whole = produce_samples(tmp_path / "whole", 30, ["cc"], seed=4, chunk_size=10, workers=1, progress=False)
    union = read_events(str(out / "cc-*.parquet"))
    assert ak.array_equal(union, read_events(whole.paths["cc"]))
