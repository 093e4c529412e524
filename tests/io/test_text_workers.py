"""Issue 14: the text reader's parallel piece path (several pieces parsed at once by worker
threads, track values copied straight into the chunk) gives the careful parser's bits, in file
order, and still names the exact line of bad input."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.io import EventFormatError, ReadReport, iter_events, read_events, text
from flavortag.io.api import write_columns
from flavortag.io.synthetic import synthetic_columns
from flavortag.io.text_careful import parse_careful

# Edge cases the fast path must read exactly as the careful parser: -0.0, subnormals, the
# largest accepted value (io.checks.MAX_ABS_VALUE: 1e18, issue 21), E = |p| within rounding, an event without tracks, separators and blanks.
EDGE = b"""\
-----
Axis = -0.0 0.6 0.8
-0.0 -0.0 0 0 -0.0 1e-45 -1.4e-45
1e+18 5e+17 5e+17 5e+17 1e+18 -1e+18 0
1.0000000e+00 1.0000090e+00 0 0 1e-7 -2E+01 .5
Axis = 0 0 1

Axis = 1 0 0
2.5e-3 1e-3 -1e-3 2e-3 1.17549435e-38 -1.1754942e-38 7.
"""


@pytest.fixture(scope="module")
def edge_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cols = synthetic_columns(2500, seed=21)  # ~3.7 MB
    path = tmp_path_factory.mktemp("workers") / "bb.txt"
    write_columns([cols], path, "text")
    data = path.read_bytes()
    starts = [k for k in range(0, len(data), 150_000)]
    pieces = []
    for a, b in zip(starts, starts[1:] + [len(data)]):
        cut = data.find(b"\nAxis", b) + 1 if b < len(data) else len(data)
        pieces.append((a, cut))
    out, at = [], 0
    for _, cut in pieces:  # the edge block every ~150 kB, at an event boundary
        if cut <= at:
            continue
        out += [data[at:cut], EDGE]
        at = cut
    path.write_bytes(b"".join(out))
    return path


def _bits(events: ak.Array) -> list[np.ndarray]:
    arrays = [ak.to_numpy(ak.num(events.tracks)), ak.to_numpy(events.axis).view(np.uint32)]
    arrays += [ak.to_numpy(ak.flatten(events.tracks[name])).view(np.uint32) for name in events.tracks.fields]
    return arrays


@pytest.mark.parametrize("workers, piece_bytes", [(1, 2 * 1024**2), (2, 64 * 1024), (3, 20_000)])
def test_parallel_pieces_give_the_careful_bits(edge_text: Path, workers: int, piece_bytes: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    careful = parse_careful(edge_text.read_bytes(), 1, str(edge_text), 2, "raise", ReadReport(), last=True)
    expected = _bits(careful.to_awkward())
    monkeypatch.setattr(text, "PARSE_WORKERS", workers)
    monkeypatch.setattr(text, "PIECE_BYTES", piece_bytes)
    whole = read_events(edge_text)
    streamed = ak.concatenate(list(iter_events(edge_text, step_size="300 kB")))
    for events in (whole, streamed):
        got = _bits(events)
        assert len(got[0]) == len(careful) > 2500
        for x, y in zip(got, expected):
            np.testing.assert_array_equal(x, y)


def test_bad_row_among_pieces_in_flight(edge_text: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "PARSE_WORKERS", 3)
    monkeypatch.setattr(text, "PIECE_BYTES", 20_000)
    lines = edge_text.read_bytes().split(b"\n")
    at = len(lines) * 3 // 5
    while lines[at].startswith(b"Axis") or not lines[at].strip(b"-"):
        at += 1
    lines[at] += b" 1.0"  # 8 numbers
    broken = edge_text.parent / "broken_bb.txt"
    broken.write_bytes(b"\n".join(lines))
    with pytest.raises(EventFormatError) as info:
        read_events(broken)
    assert info.value.line == at + 1
    assert info.value.reason == "track row has 8 numbers, expected 7"
    report = ReadReport()
    kept = read_events(broken, on_error="skip", report=report)
    assert report.n_dropped_events == 1
    assert len(kept) == len(read_events(edge_text)) - 1
