"""Issue 21: junk input is refused at once, in bounded memory, whatever its size or compression ratio.

Before, ``flavortag info`` on 200 MB of random bytes took 30 s and 900 MB
before it failed at line 1, and a 2 MB gzip that inflates to 2 GiB of zero
bytes ran on for minutes, its buffer growing towards the whole inflated file:
the reader grew its buffer until it found an event boundary. Each case runs
in a fresh interpreter, which reports the peak resident memory above its
resident memory after the imports (``VmHWM`` of ``/proc/self/status``: unlike
``ru_maxrss`` it does not inherit the forking pytest process's size) and the
time per case.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

#: Peak memory allowed above the interpreter's own (MB): 8 default chunks of text (16 MB each);
#: reading a valid 6 MB text file costs 70-85 MB on the same measure.
PEAK_EXTRA_MB = 128
#: Time allowed per refusal (s): it takes 0.01-0.8 s on an idle machine (minutes before issue 21).
SECONDS = 10.0

BINARY = ("binary data (NUL bytes{where}): not an event text file (a ROOT or Parquet file with a text "
          "name? then give its real suffix), or a damaged one (a zero-filled block after a crash?)")
LONG_LINE = ("a line of more than 1 MB (no line break): not an event text file (binary or compressed "
             "data?), or a damaged one")
NO_AXIS = ("no line starting with 'Axis' in the 16 MB of text from this line on: an event this large is "
           "not an event of the format; not an event text file, or a damaged one (axis lines lost?)")


def _bomb(path: Path, byte: bytes, gib: int = 2) -> Path:
    """A gzip file of ``gib`` GiB of ``byte``: one 16 MiB member, compressed once, written 128 x gib times."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = packer.compress(byte * (16 << 20)) + packer.flush()
    with open(path, "wb") as f:
        for _ in range(64 * gib):
            f.write(member)
    return path


def _random(path: Path, mb: int, head: bytes = b"") -> Path:
    rng = np.random.default_rng(21)
    with open(path, "wb") as f:
        f.write(head)
        for _ in range(mb // 4):
            f.write(rng.bytes(4 << 20))
    return path


@pytest.fixture(scope="module")
def junk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Name -> (file, expected message without the file name)."""
    d = tmp_path_factory.mktemp("junk")
    random = _random(d / "garbage_bb.txt", 200)
    zeros = _bomb(d / "zeros_bb.txt.gz", b"\0")
    spaces = _bomb(d / "spaces_bb.txt.gz", b" ")
    newlines = _bomb(d / "newlines_bb.txt.gz", b"\n")
    fake_gzip = _random(d / "fake_bb.txt.gz", 100, head=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
    first_nul = random.open("rb").read(1 << 20).find(b"\0")
    line = 1 + random.open("rb").read(first_nul).count(b"\n")
    return {
        "random": (random, f":{line}: " + BINARY.format(where=f" from byte {first_nul} of the text")),
        "zeros": (zeros, ":1: " + BINARY.format(where="")),
        "spaces": (spaces, ":1: " + LONG_LINE),
        "newlines": (newlines, ":"),  # the line depends on the piece size (info: 4 MB, streaming: 2 MB)
        "fake_gzip": (fake_gzip, ": corrupt gzip data ("),
    }


DRIVER = r"""
import contextlib, io, json, sys, time
import flavortag.apps.info as info
from flavortag.io import EventFormatError, count_events
def status_mb(key):  # VmRSS: resident now; VmHWM: peak resident of this process image (not the forking parent's)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024
def rss_mb():
    return status_mb("VmRSS")
base = rss_mb()
out = {}
for path in sys.argv[1:]:
    t = time.perf_counter()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = info.main([path])
    t_info = time.perf_counter() - t
    t = time.perf_counter()
    try:
        count_events([path])
        counted = "no error"
    except EventFormatError as e:
        counted = str(e)
    out[path] = {"info": [status, err.getvalue().strip(), t_info], "count": [counted, time.perf_counter() - t],
                 "peak_so_far_mb": status_mb("VmHWM") - base}
out["peak_extra_mb"] = status_mb("VmHWM") - base
print(json.dumps(out))
"""


def test_junk_is_refused_at_once_in_bounded_memory(junk: dict[str, tuple[Path, str]]) -> None:
    paths = [str(path) for path, _ in junk.values()]
    proc = subprocess.run([sys.executable, "-c", DRIVER, *paths], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    for name, (path, expected) in junk.items():
        status, info_err, t_info = result[str(path)]["info"]
        counted, t_count = result[str(path)]["count"]
        assert status == 1, name
        if name != "newlines":  # info and streaming say the same
            assert info_err == f"flavortag info: {counted}", name
        assert counted.startswith(f"{path}{expected}"), (name, counted)
        assert t_info < SECONDS and t_count < SECONDS, (name, t_info, t_count)
    newlines = result[str(junk["newlines"][0])]
    assert newlines["count"][0].endswith(NO_AXIS) and newlines["info"][1].endswith(NO_AXIS)
    peaks = {name: round(result[str(path)]["peak_so_far_mb"]) for name, (path, _) in junk.items()}
    assert result["peak_extra_mb"] < PEAK_EXTRA_MB, peaks
