"""flavortag.io ROOT and Parquet: layout, round trips with extra fields, streaming, bad values."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from flavortag.io import EventFormatError, ReadReport, iter_events, read_events, write_events
from flavortag.io.synthetic import synthetic_events


@pytest.fixture(scope="module")
def events():
    """Toy events with the generator's extra per-track fields and a per-event extra."""
    base = synthetic_events(300, seed=7)
    n_tracks = int(ak.sum(ak.num(base.tracks)))
    rng = np.random.default_rng(1)
    flat = {
        "charge": rng.choice(np.int8([-1, 1]), n_tracks),
        "pdg": rng.choice(np.int32([211, -321, 2212]), n_tracks),
        "origin": rng.integers(0, 3, n_tracks).astype(np.int8),
        "vx": rng.normal(size=n_tracks).astype(np.float32),
    }
    tracks = base.tracks
    for name, values in flat.items():
        tracks = ak.with_field(tracks, ak.unflatten(values, ak.num(base.tracks)), name)
    out = ak.with_field(base, tracks, "tracks")
    out = ak.with_field(out, rng.integers(0, 3, len(base)).astype(np.int32), "label")
    return ak.with_field(out, rng.random(len(base)).astype(np.float32), "prob_bb")


def test_root_layout_is_the_contract(tmp_path, events):
    path = write_events(events, tmp_path / "sample.root")
    with uproot.open(path) as f:
        tree = f["events"]
        assert isinstance(tree, uproot.TTree)
        names = set(tree.keys())
        assert {"axis_x", "axis_y", "axis_z", "label", "ntrack", "prob_bb"} <= names
        assert {f"track_{n}" for n in ("E", "px", "py", "pz", "x", "y", "z", "charge", "pdg", "origin", "vx")} <= names
        assert tree["track_charge"].interpretation.content.to_dtype == np.dtype("int8")
        np.testing.assert_array_equal(tree["ntrack"].array(library="np"), ak.num(events.tracks))
        np.testing.assert_array_equal(tree["axis_y"].array(library="np"), ak.to_numpy(events.axis[:, 1]))


@pytest.mark.parametrize("suffix", [".root", ".parquet"])
def test_binary_round_trip_keeps_everything(tmp_path, events, suffix):
    path = write_events(events, tmp_path / f"sample{suffix}")
    back = read_events(path)
    assert str(back.type) == str(events.type)
    assert back.tolist() == events.tolist()
    assert back.tracks.charge.type.content.content == ak.types.NumpyType("int8")


def test_text_root_parquet_text_round_trip(tmp_path):
    text = tmp_path / "cc.txt"
    original_text = (
        "Axis = 1.336348e-01 1.270638e-01 9.828512e-01\n"
        "3.600150e-01 2.364259e-02 2.897407e-01 1.600439e-01 1.355132e-04 -1.105776e-05 7.225226e-04\n"
        "\nAxis = 0 0 -1\n"
        "Axis = 5.468222e-01 8.021681e-01 -2.398164e-01\n"
        "4.201890e+01 -2.260286e+01 -3.380862e+01 1.056676e+01 4.285707e-04 -2.865222e-04 -5.206644e-04\n"
    )
    text.write_text(original_text)
    first = read_events(text)
    write_events(read_events(text), tmp_path / "cc.root")
    write_events(read_events(tmp_path / "cc.root"), tmp_path / "cc.parquet")
    write_events(read_events(tmp_path / "cc.parquet"), tmp_path / "cc_again.txt.gz")
    last = read_events(tmp_path / "cc_again.txt.gz")
    assert last.tolist() == first.tolist()  # float32 values written in a form that reads back exactly
    assert last.label.tolist() == [1, 1, 1]


def test_big_round_trip_through_all_formats(tmp_path):
    events = synthetic_events(800, seed=11, label=0)
    write_events(events, tmp_path / "uds.txt")
    for suffix in (".root", ".parquet", ".txt.gz"):
        write_events(read_events(tmp_path / "uds.txt"), tmp_path / f"uds_copy{suffix}")
        assert read_events(tmp_path / f"uds_copy{suffix}").tolist() == events.tolist(), suffix


@pytest.mark.parametrize("suffix", [".root", ".parquet"])
def test_binary_streaming_equals_full_read(tmp_path, events, suffix):
    from flavortag.io.api import write_columns
    from flavortag.io.columns import EventColumns

    cols = EventColumns.from_awkward(events)
    path = tmp_path / f"chunked{suffix}"
    write_columns([cols.slice(i, min(i + 40, len(cols))) for i in range(0, len(cols), 40)], path, suffix[1:])
    full = read_events(path)
    for step in (25, 100, "2 kB"):
        chunks = list(iter_events(path, step_size=step))
        assert len(chunks) > 1
        assert ak.concatenate(chunks).tolist() == full.tolist()


def test_binary_without_label_takes_it_from_the_name(tmp_path, events):
    path = tmp_path / "charm_sample.parquet"
    ak.to_parquet(ak.without_field(events, "label"), path)
    assert set(read_events(path).label.tolist()) == {1}
    assert set(read_events(path, label="bb").label.tolist()) == {2}
    stored = write_events(events, tmp_path / "bb_stored.parquet")
    assert read_events(stored, label="uds").label.tolist() == events.label.tolist()  # stored label wins


@pytest.mark.parametrize("suffix", [".root", ".parquet"])
def test_bad_values_in_binary_files(tmp_path, events, suffix):
    E = ak.to_numpy(ak.flatten(events.tracks.E)).copy()
    counts = ak.num(events.tracks)
    first_of_event_7 = int(np.sum(counts[:7]))
    E[first_of_event_7 + 1] = np.nan
    tracks = ak.with_field(events.tracks, ak.unflatten(E, counts), "E")
    axis = ak.to_numpy(events.axis).copy()
    axis[12] = [1.0, 1.0, 0.0]
    bad = ak.with_field(ak.with_field(events, tracks, "tracks"), axis, "axis")
    path = write_events(bad, tmp_path / f"bad{suffix}")
    with pytest.raises(EventFormatError) as info:
        read_events(path)
    assert (info.value.entry, info.value.line) == (7, None)
    assert str(info.value) == f"{path}: entry 7: track 1: track E = nan is not a finite float32 number"
    report = ReadReport()
    kept = read_events(path, on_error="skip", report=report)
    assert len(kept) == len(events) - 2
    assert report.reasons == {"non-finite number": 1, "axis not a unit vector": 1}
    assert kept.tolist() == events[np.setdiff1d(np.arange(len(events)), [7, 12])].tolist()


def test_not_an_event_file(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"pt": np.float32})
        f["events"].extend({"pt": np.ones(3, np.float32)})
    with pytest.raises(EventFormatError, match=r"other\.root: the tree has no branch\(es\) \['axis_x'"):
        read_events(path)
    with pytest.raises(EventFormatError, match="no tree 'tracks'"):
        read_events(path, tree="tracks")
    garbage = tmp_path / "garbage_bb.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(EventFormatError, match="not a readable Parquet file"):
        read_events(garbage)


def test_files_with_different_fields_are_not_mixed(tmp_path, events):
    write_events(events, tmp_path / "with_extras_bb.parquet")
    write_events(synthetic_events(5), tmp_path / "plain_bb.txt")
    with pytest.raises(ValueError, match="files read together must hold the same fields"):
        read_events([tmp_path / "with_extras_bb.parquet", tmp_path / "plain_bb.txt"])


def test_text_holds_one_class_and_no_extras(tmp_path, events, caplog):
    with pytest.raises(ValueError, match="a text file holds one class"):
        write_events(events, tmp_path / "mixed.txt")
    assert not list(tmp_path.iterdir())
    one_class = events[events.label == 2]
    with pytest.raises(ValueError, match="the file name says cc but the events are labelled bb"):
        write_events(one_class, tmp_path / "cc.txt")
    write_events(one_class, tmp_path / "bb.txt")
    assert "no place for ['tracks.charge'" in caplog.text
    assert read_events(tmp_path / "bb.txt").tracks.fields == ["E", "px", "py", "pz", "x", "y", "z"]


def test_format_from_name_or_argument(tmp_path, events):
    with pytest.raises(ValueError, match="cannot tell the format"):
        write_events(events, tmp_path / "sample.h5")
    path = write_events(events, tmp_path / "sample.h5", format="parquet")
    assert len(read_events(path, format="parquet")) == len(events)


def test_columns_builder_grows_and_checks_fields():
    from flavortag.io.columns import ColumnsBuilder, EventColumns
    from flavortag.io.synthetic import synthetic_columns

    parts = [synthetic_columns(n, seed=n) for n in (3, 0, 50, 7, 200)]
    builder = ColumnsBuilder()
    builder.reserve(10, 10)  # too small: it has to grow
    for part in parts:
        builder.append(part)
    assert builder.build().to_awkward().tolist() == EventColumns.concat(parts).to_awkward().tolist()
    other = synthetic_columns(2)
    other.extras["weight"] = np.ones(2, np.float32)
    with pytest.raises(ValueError, match="different fields"):
        builder.append(other)
