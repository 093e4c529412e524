"""Issue 16: an empty text file reads as zero events (no hang); a killed writer's .tmp is cleaned up."""

from __future__ import annotations

import gzip
import logging
import os
import subprocess
import sys
import textwrap

from flavortag.io import read_events, write_events
from flavortag.io.atomic import atomic_output
from flavortag.io.synthetic import synthetic_events

# Run in a child process: on a hang the child is killed and the test fails
# instead of the whole test session spinning at 100 % CPU.
_EMPTY_SCRIPT = textwrap.dedent("""
    import json, sys
    from flavortag.io import convert, count_events, iter_events, read_events
    out = {}
    for name in sys.argv[1:]:
        events = read_events(name)
        n_total, per_class = count_events([name])
        report = convert(name, name + ".parquet")
        convert(name, name + ".root")
        out[name] = {
            "read": len(events),
            "fields": list(events.fields),
            "iter_bytes": sum(len(c) for c in iter_events(name)),
            "iter_events": sum(len(c) for c in iter_events(name, step_size=7)),
            "count": [n_total, per_class.tolist()],
            "convert": report.summary(),
            "parquet_back": len(read_events(name + ".parquet")),
            "root_back": len(read_events(name + ".root")),
        }
    out["mixed"] = len(read_events(["empty_bb.txt", "five_bb.txt", "empty_bb.txt.gz"]))
    print(json.dumps(out))
""")


def test_empty_text_and_empty_gzip_are_zero_events(tmp_path):
    import json

    (tmp_path / "empty_bb.txt").write_bytes(b"")
    (tmp_path / "empty_bb.txt.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "blank_bb.txt").write_bytes(b"\n\n  \n")
    write_events(synthetic_events(5, seed=1, label=2), tmp_path / "five_bb.txt")
    names = ["empty_bb.txt", "empty_bb.txt.gz", "blank_bb.txt"]
    done = subprocess.run(
        [sys.executable, "-c", _EMPTY_SCRIPT, *names], cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for name in names:
        assert result[name] == {
            "read": 0, "fields": ["axis", "tracks", "label"], "iter_bytes": 0, "iter_events": 0,
            "count": [0, [0, 0, 0]], "convert": "0 events read from 1 file(s)",
            "parquet_back": 0, "root_back": 0,
        }, name
    assert result["mixed"] == 5


def test_leftover_of_a_killed_writer_is_removed_on_the_next_write(tmp_path, caplog):
    target = tmp_path / "o.parquet"
    # A writer that died: its process id no longer runs (a finished child's id).
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    dead_pid = int(child.stdout)
    leftover = tmp_path / f".o.parquet.{dead_pid}.0123abcd.tmp"
    leftover.write_bytes(b"x" * 1000)
    # Not ours / still running: kept.
    alive = tmp_path / f".o.parquet.{os.getpid()}.89abcdef.tmp"
    alive.write_bytes(b"y")
    other = tmp_path / f".other.parquet.{dead_pid}.0123abcd.tmp"
    other.write_bytes(b"z")
    with caplog.at_level(logging.WARNING, logger="flavortag.io"):
        write_events(synthetic_events(3, seed=2, label=1), target)
    assert not leftover.exists()
    assert alive.exists() and other.exists()
    assert len(read_events(target)) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        f".o.parquet.{dead_pid}.0123abcd.tmp (1000 bytes), the unfinished output of a killed writer "
        f"(process {dead_pid})" in m for m in messages
    ), messages


def test_killed_convert_leaves_nothing_after_the_next_convert(tmp_path):
    src = tmp_path / "in_bb.txt"
    write_events(synthetic_events(20_000, seed=3, label=2), src)
    out = tmp_path / "out.parquet"
    script = (
        "import os, signal\n"
        "from flavortag.io import api\n"
        "orig = api.write_parquet_chunks\n"
        "def killed(chunks, path):\n"
        "    path.write_bytes(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "api.write_parquet_chunks = killed\n"
        f"from flavortag.io import convert; convert({str(src)!r}, {str(out)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]
    assert len(hidden) == 1 and hidden[0].endswith(".tmp")
    from flavortag.io import convert

    convert(src, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert len(read_events(out)) == 20_000


def test_remove_stale_temporaries_with_a_live_writer(tmp_path):
    from flavortag.io.atomic import remove_stale_temporaries

    target = tmp_path / "x.root"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"in progress")
        assert remove_stale_temporaries(target) == []  # our own, alive: kept
        assert tmp.exists()
    assert target.read_bytes() == b"in progress"
