"""Issue 14: the compiled fill kernel of the text fast path gives bit-identical events and refuses
exactly what the numpy path refuses (the careful parser then names the line)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.io import EventFormatError, read_events, text_kernel
from flavortag.io.api import write_columns
from flavortag.io.synthetic import synthetic_columns

pytestmark = pytest.mark.skipif(not text_kernel.available(), reason="numba not importable")


def _read(path: Path, kernel: bool, monkeypatch: pytest.MonkeyPatch) -> ak.Array:
    monkeypatch.setenv(text_kernel.ENV_SWITCH, "1" if kernel else "0")
    return read_events(str(path), label="bb")


def _same_bits(a: ak.Array, b: ak.Array) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(ak.to_numpy(ak.num(a.tracks)), ak.to_numpy(ak.num(b.tracks)))
    for name in a.tracks.fields:
        x, y = ak.to_numpy(ak.flatten(a.tracks[name])), ak.to_numpy(ak.flatten(b.tracks[name]))
        assert x.dtype == y.dtype == np.float32
        np.testing.assert_array_equal(x.view(np.uint32), y.view(np.uint32))
    np.testing.assert_array_equal(ak.to_numpy(a.axis).view(np.uint32), ak.to_numpy(b.axis).view(np.uint32))
    np.testing.assert_array_equal(ak.to_numpy(a.label), ak.to_numpy(b.label))


def test_kernel_reads_the_same_bits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cols = synthetic_columns(9000, seed=11)  # ~13 MB: several pieces and record batches
    cols.offsets[:] = np.concatenate([[0], np.cumsum(np.diff(cols.offsets))])
    path = tmp_path / "bb.txt"
    write_columns([cols], path, "text")
    text = path.read_bytes()
    # events without tracks and separator lines on the way
    path.write_bytes(text.replace(b"\nAxis", b"\nAxis = 0 0 1\n-----\n\nAxis", 50))
    with_kernel, without = _read(path, True, monkeypatch), _read(path, False, monkeypatch)
    _same_bits(with_kernel, without)
    assert len(without) == 9050
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(with_kernel.tracks.E))[:1000],
                                  cols.tracks["E"][:1000])


@pytest.mark.parametrize("bad, message", [
    (b"1.0 3.0 0 0 0 0 0\n", "E < |p|"),
    (b"-1.0 0 0 0 0 0 0\n", "negative energy"),
    (b"1.0 0 0 0 1e39 0 0\n", "finite"),
])
def test_kernel_refuses_what_numpy_refuses(bad: bytes, message: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    cols = synthetic_columns(3000, seed=12)
    path = tmp_path / "bb.txt"
    write_columns([cols], path, "text")
    lines = path.read_bytes().split(b"\n")
    at = len(lines) // 2
    while lines[at].startswith(b"Axis"):
        at += 1
    path.write_bytes(b"\n".join(lines[:at] + [bad.rstrip(b"\n")] + lines[at:]))
    errors = []
    for kernel in (True, False):
        with pytest.raises(EventFormatError) as err:
            _read(path, kernel, monkeypatch)
        errors.append(str(err.value))
    assert errors[0] == errors[1]
    assert f":{at + 1}:" in errors[0]


def test_small_files_stay_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(text_kernel.ENV_SWITCH, raising=False)
    assert not text_kernel.wanted(text_kernel.MIN_FILE_BYTES - 1)
    assert text_kernel.wanted(text_kernel.MIN_FILE_BYTES)
    monkeypatch.setenv(text_kernel.ENV_SWITCH, "0")
    assert not text_kernel.wanted(10**12)
