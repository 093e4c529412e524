"""Issue 21: a killed ``flavortag shard`` leaves the set whole or refused, never half there.

Before, kill -9 during ``flavortag shard ... --shards 8`` left 6 of 8 shards
under their final names and no ``shards.json``; a glob then read 6/8 of the
events without a word, and the killed run's ``.spill-<pid>`` folder stayed.
Each run here is the real command in a subprocess that SIGKILLs itself at a
chosen point: in pass 2 after some shards are written, or while the finished
set is moved into place.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from flavortag.io import read_events
from flavortag.io.shard import make_shards
from flavortag.io.shard_set import IncompleteShardSetError

KILLED_RUN = r"""
import os, signal, sys
from pathlib import Path
from flavortag.io import shard
mode, after = sys.argv[1], int(sys.argv[2])
calls = [0]
def count_then_kill():
    if calls[0] == after:
        os.kill(os.getpid(), signal.SIGKILL)
    calls[0] += 1
if mode == "write":  # pass 2: killed after `after` shards are written
    write = shard.write_columns
    def writing(*args, **kwargs):
        count_then_kill()
        return write(*args, **kwargs)
    shard.write_columns = writing
else:  # the finished set moving into place: killed after `after` shards are renamed
    replace = os.replace
    def renaming(src, dst):
        if Path(src).parent.name.startswith(".spill-") and Path(src).name.startswith("shard-"):
            count_then_kill()
        return replace(src, dst)
    os.replace = renaming
from flavortag.apps.shard import main
sys.exit(main(sys.argv[3:]))
"""


def _killed_shard(mode: str, after: int, inputs: list[str], out: Path, seed: int) -> None:
    args = [*inputs, "--out", str(out), "--shards", "8", "--seed", str(seed), "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, mode, str(after), *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr


def test_a_killed_shard_leaves_the_set_whole_or_refused(sample_dir: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    inputs = [str(sample_dir / f"{c}.parquet") for c in ("uds", "cc", "bb")]
    out = tmp_path / "mixed"
    pattern = str(out / "*.parquet")

    # killed after 6 of 8 shards: nothing under a final name (before: 6 shards, 675 of 900 events read)
    _killed_shard("write", 6, inputs, out, seed=1)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_events(pattern)
    spills = [p.name for p in out.iterdir()]
    assert len(spills) == 1 and spills[0].startswith(".spill-")
    (out / ".spill-1").mkdir()  # a live process's (pid 1): kept

    # the next run removes the killed run's staging directory and writes a whole set
    with caplog.at_level(logging.WARNING, logger="flavortag.io"):
        make_shards(inputs, out, 8, seed=2, progress=False)
    assert [r.getMessage() for r in caplog.records] == [
        f"{out}: removed {spills[0]}, the staging directory of a killed `flavortag shard` (process "
        f"{spills[0].removeprefix('.spill-')})"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".spill-1"]
    assert len(read_events(pattern)) == 900

    # killed in pass 2 of a new run: the earlier set still reads whole
    _killed_shard("write", 3, inputs, out, seed=3)
    assert len(read_events(pattern)) == 900

    # killed while moving a finished set into place, after 3 of 8 renames: readers refuse the set
    _killed_shard("rename", 3, inputs, out, seed=4)
    message = (f"{out}: an incomplete set of shards: the `flavortag shard` that wrote it was stopped before "
               "it finished (shards.json says complete: false); run it again")
    with pytest.raises(IncompleteShardSetError) as err:
        read_events(pattern)
    assert str(err.value) == message
    with pytest.raises(IncompleteShardSetError):
        read_events(out / "shard-00000-of-00008.parquet")  # one file of it too
    from flavortag.apps.info import main as info

    assert info([pattern]) == 1

    # and the next complete run is read again
    make_shards(inputs, out, 8, seed=4, progress=False)
    assert len(read_events(pattern)) == 900
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".spill-1"]


def test_shards_of_an_earlier_set_are_replaced_and_strays_refused(sample_dir: Path, tmp_path: Path) -> None:
    inputs = [str(sample_dir / "bb.parquet")]
    out = tmp_path / "s"
    make_shards(inputs, out, 4, progress=False)
    make_shards(inputs, out, 2, progress=False)  # the 4-shard set is replaced, not mixed in
    assert sorted(p.name for p in out.glob("*.parquet")) == ["shard-00000-of-00002.parquet",
                                                             "shard-00001-of-00002.parquet"]
    assert len(read_events(str(out / "*.parquet"))) == 300
    stray = out / "shard-00003-of-00004.parquet"
    stray.write_bytes((out / "shard-00000-of-00002.parquet").read_bytes())
    with pytest.raises(IncompleteShardSetError, match=r"shard-00003-of-00004.parquet: not one of the 2 shards"):
        read_events(str(out / "*.parquet"))
    copied = tmp_path / "copied"  # shards copied without their manifest read as they are
    copied.mkdir()
    stray.rename(copied / stray.name)
    assert len(read_events(copied / stray.name)) == 150
