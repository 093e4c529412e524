"""Issue 16: what the readers say about a directory, a truncated ROOT file, gzip garbage, CR / UTF-16 text."""

from __future__ import annotations

import gzip

import pytest

from flavortag.io import EventFormatError, iter_events, read_events, write_events
from flavortag.io.synthetic import synthetic_events

TEXT = "Axis = 0 0 1\n1.0 0.6 0.0 0.0 1e-3 -2e-3 0.5\n"


def test_a_directory_is_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError) as err:
        read_events(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: is a directory, not an event file (name the files in it, e.g. {tmp_path / '*.parquet'})"
    )


def test_truncated_root_file_says_so(tmp_path):
    full = tmp_path / "full.root"
    write_events(synthetic_events(3000, seed=1, label=2), full)
    data = full.read_bytes()
    for keep in (len(data) // 100, len(data) // 2, len(data) - 1000):
        cut = tmp_path / "cut.root"
        cut.write_bytes(data[:keep])
        message = (f"{cut}: the file is truncated: it has {keep} bytes but its ROOT header says "
                   f"{len(data)} ({len(data) - keep} bytes missing; an interrupted copy or write?)")
        with pytest.raises(EventFormatError) as err:
            read_events(cut)
        assert str(err.value) == message
        with pytest.raises(EventFormatError) as err:
            list(iter_events(cut, step_size=100))
        assert str(err.value) == message


def test_trailing_garbage_after_gzip_gives_the_offset(tmp_path):
    good = gzip.compress(TEXT.encode())
    path = tmp_path / "g_bb.txt.gz"
    path.write_bytes(good + b"GARBAGE here")
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == (
        f"{path}: 12 bytes of trailing garbage after the gzip stream, from byte offset {len(good)} "
        "(the data before it is complete)"
    )
    path.write_bytes(good + good)  # two members: fine
    assert len(read_events(path)) == 2


def test_lone_cr_text(tmp_path):
    path = tmp_path / "cr_bb.txt"
    path.write_bytes(TEXT.replace("\n", "\r").encode())
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == (
        f"{path}:1: the lines end in a lone CR (old Mac line breaks) and no LF: the whole file reads "
        "as one line; convert it first, e.g. tr '\\r' '\\n' < in > out"
    )
    path.write_bytes(TEXT.replace("\n", "\r\n").encode())  # CRLF: fine
    assert len(read_events(path)) == 1


@pytest.mark.parametrize("encoding, what", [
    ("utf-16", "UTF-16 text (little-endian byte-order mark)"),
    ("utf-16-be", "UTF-16 text without byte-order mark (every other byte is zero)"),
])
def test_utf16_text(tmp_path, encoding, what):
    path = tmp_path / "u_bb.txt"
    path.write_bytes(TEXT.encode(encoding))
    with pytest.raises(EventFormatError) as err:
        read_events(path)
    assert str(err.value) == (
        f"{path}:1: this looks like {what}: the event format is plain ASCII / UTF-8; "
        "convert it first, e.g. iconv -f UTF-16 -t UTF-8"
    )


def _root_with(path, replace):
    """A 20-event ROOT tree as the writer makes it, with the branches in ``replace`` swapped in."""
    import awkward as ak
    import numpy as np
    import uproot

    events = synthetic_events(20, seed=3, label=2)
    tracks = events["tracks"]
    data = {f"axis_{c}": np.asarray(events["axis"][:, k], np.float32) for k, c in enumerate("xyz")}
    data["label"] = np.full(20, 2, np.int32)
    data["track"] = ak.zip({k: tracks[k] for k in ("E", "px", "py", "pz", "x", "y", "z")
                            if f"track_{k}" not in replace})
    data.update(replace)
    with uproot.recreate(path) as file:
        file.mktree("events", {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in data.items()})
        file["events"].extend(data)
    return path


def test_a_root_branch_of_the_wrong_type_is_named_with_found_and_expected_types(tmp_path):
    # issue 21: one float per event where per-track lists are expected read as "no branch track_px"
    import awkward as ak
    import numpy as np

    flat = _root_with(tmp_path / "flat.root", {"track_px": np.ones(20, np.float32)})
    with pytest.raises(EventFormatError) as err:
        read_events(flat)
    assert str(err.value) == (
        f"{flat}: branch track_px has the wrong type: float (one value per event), expected a list of "
        "numbers per event, one per track (e.g. float[] counted by ntrack, or std::vector<float>)")
    jagged_axis = _root_with(tmp_path / "axis.root", {"axis_z": ak.Array([[1.0]] * 20)})
    with pytest.raises(EventFormatError) as err:
        read_events(jagged_axis)
    assert str(err.value) == (
        f"{jagged_axis}: branch axis_z has the wrong type: double[] (a list per event), expected a number "
        "per event (e.g. float)")
    assert len(read_events(_root_with(tmp_path / "good.root", {}))) == 20  # the same tree, right types
