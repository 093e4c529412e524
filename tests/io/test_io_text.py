"""flavortag.io text reader: values, layout variations, every kind of bad input, streaming."""

from __future__ import annotations

import gzip
import logging

import awkward as ak
import numpy as np
import pytest

from flavortag.io import EventFormatError, ReadReport, iter_events, read_events, write_events
from flavortag.io.synthetic import synthetic_events

# The example of docs/FORMAT.md; as first circulated its last row had E = 1.271398 GeV
# while |p| = 1.383 GeV, which the reader rightly refuses (see test_format_example_as_published).
EXAMPLE = """\
Axis = 1.336348e-01 1.270638e-01 9.828512e-01
3.600150e-01 2.364259e-02 2.897407e-01 1.600439e-01 1.355132e-04 -1.105776e-05 7.225226e-04
1.173989e+00 9.484937e-01 4.421300e-01 5.134615e-01 4.317461e-04 -9.262173e-04 -8.300396e-05
1.497720e+01 -2.482940e-01 -2.815872e+00 -1.470736e+01 6.750966e-04 -5.952772e-05 2.457871e-01

Axis = 5.468222e-01 8.021681e-01 -2.398164e-01
4.201890e+01 -2.260286e+01 -3.380862e+01 1.056676e+01 4.285707e-04 -2.865222e-04 -5.206644e-04
1.390600e+00 -9.386227e-01 -9.705339e-01 -3.016746e-01 -4.916799e-05 5.837850e-05 -1.463579e-04
"""
ROW = "1.0 0.6 0.0 0.0 1e-3 -2e-3 0.5"  # a valid track row
AXIS = "Axis = 0 0 1"


def write(tmp_path, text, name="bb.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def lines(*rows):
    return "".join(r + "\n" for r in rows)


def test_example_values_and_types(tmp_path):
    events = read_events(write(tmp_path, EXAMPLE))
    assert str(events.type) == (
        "2 * {axis: 3 * float32, tracks: var * {E: float32, px: float32, py: float32, "
        "pz: float32, x: float32, y: float32, z: float32}, label: int32}"
    )
    assert ak.num(events.tracks).tolist() == [3, 2]
    assert events.label.tolist() == [2, 2]  # bb from the file name
    np.testing.assert_array_equal(events.axis[1], np.float32([5.468222e-01, 8.021681e-01, -2.398164e-01]))
    np.testing.assert_array_equal(
        ak.to_numpy(events.tracks.z[0]), np.float32([7.225226e-04, -8.300396e-05, 2.457871e-01])
    )
    assert events.tracks.px[1, 0] == np.float32(-2.260286e01)


def test_format_example_as_published(tmp_path):
    published = EXAMPLE.replace("1.390600e+00 -9.386227e-01", "1.271398e+00 -9.386227e-01")
    with pytest.raises(EventFormatError) as info:
        read_events(write(tmp_path, published))
    assert info.value.line == 8
    assert "energy below momentum: E = 1.271398 GeV < |p| = 1.383" in str(info.value)


def test_layout_variations_read_the_same(tmp_path):
    plain = read_events(write(tmp_path, EXAMPLE, "plain_bb.txt"))
    variants = {
        "crlf": EXAMPLE.replace("\n", "\r\n"),
        "tabs_and_spaces": EXAMPLE.replace(" ", " \t  ").replace("Axis \t  = \t  ", "Axis\t= "),
        "indented": "\n".join("   " + line + "  " for line in EXAMPLE.split("\n")),
        "dashes": "-----\n" + EXAMPLE.replace("\n\n", "\n--------\n\n----\n") + "---\n",
        "axis_no_spaces": EXAMPLE.replace("Axis = ", "Axis="),
        "trailing_blank_no_newline": EXAMPLE + "\n   ",
    }
    for name, text in variants.items():
        events = read_events(write(tmp_path, text, f"{name}_bb.txt"))
        assert events.tolist() == plain.tolist(), name


def test_zero_track_events_and_blank_lines(tmp_path):
    text = lines("", AXIS, AXIS, ROW, "", "", AXIS, "---", AXIS)
    events = read_events(write(tmp_path, text))
    assert ak.num(events.tracks).tolist() == [0, 1, 0, 0]
    assert read_events(write(tmp_path, "\n\n-----\n", "empty_cc.txt")).tolist() == []


def test_byte_order_mark_is_ignored(tmp_path):
    events = read_events(write(tmp_path, "\ufeff" + EXAMPLE))
    assert events.tolist() == read_events(write(tmp_path, EXAMPLE, "plain_bb.txt")).tolist()


def test_gzip_is_recognised_by_content(tmp_path):
    path = tmp_path / "bb.txt.gz"
    path.write_bytes(gzip.compress(EXAMPLE.encode()))
    disguised = tmp_path / "bb.dat"  # gzip data under a plain name
    disguised.write_bytes(gzip.compress(EXAMPLE.encode()))
    plain = read_events(write(tmp_path, EXAMPLE)).tolist()
    assert read_events(path).tolist() == plain
    assert read_events(disguised).tolist() == plain


def test_labels(tmp_path):
    path = write(tmp_path, EXAMPLE, "sample_3.txt")
    with pytest.raises(ValueError, match="cannot tell the class"):
        read_events(path)
    assert read_events(path, label="cc").label.tolist() == [1, 1]
    assert read_events(path, label=0).label.tolist() == [0, 0]
    assert read_events(path, label="unknown").label.tolist() == [-1, -1]
    assert read_events(path, label_rules={r"^sample": "uds"}).label.tolist() == [0, 0]
    with pytest.raises(ValueError, match="unknown class"):
        read_events(path, label="top")


# ---- bad input: every case of docs/FORMAT.md, with the exact line --------------------------------

BAD_CASES = {
    "six_numbers": (lines(AXIS, ROW, "1 0.5 0 0 0 0"), 3, "track row has 6 numbers, expected 7"),
    "eight_numbers": (lines(AXIS, ROW, ROW + " 7"), 3, "track row has 8 numbers, expected 7"),
    "two_dots": (lines(AXIS, "1.2.3e-01 0 0 0 0 0 0"), 2, "'1.2.3e-01' is not a number"),
    "nan": (lines(AXIS, ROW, "1 nan 0 0 0 0 0"), 3, "'nan' is not a finite number"),
    "inf": (lines(AXIS, "inf 0 0 0 0 0 0"), 2, "'inf' is not a finite number"),
    "stray_word": (lines(AXIS, ROW, "1 0 0 0 0 0 oops"), 3, "'oops' is not a number"),
    "word_line": (lines(AXIS, ROW, "hello"), 3, "'hello' is not a number"),
    "overflow": (lines(AXIS, "1e39 0 0 0 0 0 0"), 2, "track E = inf is not a finite float32 number"),
    "rows_before_axis": (lines("", ROW, ROW, AXIS, ROW), 2, "track row before the first axis line"),
    "axis_two_numbers": (lines(AXIS, ROW, "Axis = 0 1", ROW), 3, "axis line has 2 numbers, expected 3"),
    "axis_four_numbers": (lines("Axis = 0 0 1 0", ROW), 1, "axis line has 4 numbers, expected 3"),
    "axis_not_unit": (lines(AXIS, ROW, "Axis = 0.6 0.6 0.6", ROW), 3, "axis is not a unit vector: |axis| = 1.03923"),
    "axis_malformed": (lines(AXIS, "Axis 0 0 1"), 2, "malformed axis line 'Axis 0 0 1'"),
    "e_below_p": (lines(AXIS, ROW, "1.0 0.8 0.6 0.1 0 0 0"), 3, "energy below momentum: E = 1 GeV < |p| = 1.004988"),
    "negative_e": (lines(AXIS, "-0.5 0 0 0 0 0 0"), 2, "negative energy E = -0.5 GeV"),
    # issue 21: 1e30 momenta overflowed |p| in float32 and read as "energy below momentum"
    "momenta_1e30": (lines(AXIS, ROW, "1e30 1e30 0 0 0 0 0"), 3,
                     "track E = 1e+30 GeV is out of range: |E| <= 1e+18 GeV (larger values overflow"),
    "px_1e30": (lines(AXIS, "2 -1e30 0 0 0 0 0"), 2, "track px = -1e+30 GeV is out of range: |px| <= 1e+18 GeV"),
    "z_1e30": (lines(AXIS, ROW, "1 0.5 0 0 0 0 1e30"), 3, "track z = 1e+30 mm is out of range: |z| <= 1e+18 mm"),
    "cut_mid_row": (lines(AXIS, ROW, ROW) + "1.0 0.6 0.0 0.", 4, "without a final newline"),
    "no_final_newline": (lines(AXIS, ROW) + ROW, 3, "without a final newline"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_line_and_reason(tmp_path, case):
    text, line, reason = BAD_CASES[case]
    path = write(tmp_path, text)
    with pytest.raises(EventFormatError) as info:
        read_events(path)
    err = info.value
    assert (err.path, err.line) == (str(path), line)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:{line}: ")


def test_out_of_range_values_are_refused_by_every_reader_and_the_limit_is_not(tmp_path):
    path = write(tmp_path, lines(AXIS, "1e18 -1e18 0 0 1e18 -1e18 1e18"))  # at the limit: accepted
    assert read_events(path).tracks.px.tolist() == [[float(np.float32(-1e18))]]
    events = synthetic_events(40, seed=2, label=2)
    counts = ak.num(events["tracks"])
    assert counts[17] > 0
    px = ak.to_numpy(ak.flatten(events["tracks", "px"])).copy()
    px[int(np.sum(counts[:17]))] = 1e30  # the first track of entry 17
    bad = ak.with_field(events, ak.unflatten(px, counts), ["tracks", "px"])
    for suffix in (".parquet", ".root"):
        out = tmp_path / f"bb{suffix}"
        write_events(bad, out)
        with pytest.raises(EventFormatError) as info:
            read_events(out)
        assert str(info.value) == (f"{out}: entry 17: track 0: track px = 1e+30 GeV is out of range: |px| <= "
                                   "1e+18 GeV (larger values overflow float32 products such as px*px in |p| "
                                   "or x*py in d0)")


def test_rounding_is_not_an_error(tmp_path):
    # E = |p| exactly, and E below |p| by 1e-6 relative (7-digit text rounding): both accepted.
    text = lines(AXIS, "5 3 4 0 0 0 0", "5.000000 3.000002 4.000002 0 0 0 0", "Axis = 0.6000003 0.7999998 0")
    assert ak.num(read_events(write(tmp_path, text)).tracks).tolist() == [2, 0]


def test_skip_mode_counts_and_keeps_the_rest(tmp_path, caplog):
    text = lines(
        ROW, ROW,                        # 2 orphan lines
        AXIS, ROW,                       # event 1: kept
        AXIS, ROW, "1 0.5 0 0 0 0",      # event 2: dropped (3 lines)
        "Axis = 1 1 1", ROW, ROW, ROW,   # event 3: dropped (4 lines)
        "", AXIS,                        # event 4: kept (no tracks)
        AXIS, "2 1 0 0 0 0 0", "-1 0 0 0 0 0 0",  # event 5: dropped (3 lines)
        AXIS, ROW, ROW,                  # event 6: kept
    )
    report = ReadReport()
    with caplog.at_level(logging.WARNING, logger="flavortag.io"):
        events = read_events(write(tmp_path, text), on_error="skip", report=report)
    assert ak.num(events.tracks).tolist() == [1, 0, 2]
    assert report.n_events == 3
    assert report.n_dropped_events == 3
    assert report.n_dropped_lines == 2 + 3 + 4 + 3
    assert report.reasons == {
        "track row before the first axis line": 1, "wrong count in track row": 1,
        "axis not a unit vector": 1, "negative energy": 1,
    }
    assert report.examples[1].endswith("bb.txt:7: track row has 6 numbers, expected 7")
    assert "dropped 3 broken events (12 lines)" in caplog.text


def test_skip_mode_truncated_last_event(tmp_path):
    report = ReadReport()
    text = lines(AXIS, ROW, AXIS, ROW) + "0.5 0.1"
    events = read_events(write(tmp_path, text), on_error="skip", report=report)
    assert len(events) == 1
    assert (report.n_dropped_events, report.n_dropped_lines) == (1, 3)
    assert report.reasons == {"truncated file": 1}


def test_truncated_gzip_is_an_error_in_both_modes(tmp_path):
    body = "".join(lines(AXIS, *[ROW] * 20) for _ in range(500)).encode()
    data = gzip.compress(body)
    path = tmp_path / "bb.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    for mode in ("raise", "skip"):
        with pytest.raises(EventFormatError, match="gzip stream ends before") as info:
            read_events(path, on_error=mode)
        assert info.value.path == str(path)
        # The decompressed data stop inside this line (half of the compressed bytes ~ half the lines).
        assert 0.3 * body.count(b"\n") < info.value.line < 0.7 * body.count(b"\n")


def test_corrupt_gzip(tmp_path):
    data = bytearray(gzip.compress(EXAMPLE.encode() * 50))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "bb.txt.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(EventFormatError, match=r"bb\.txt\.gz: .*gzip"):
        read_events(path)


# ---- streaming ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    """A ~0.6 MB text file of toy events (several fast-path blocks at small step sizes)."""
    path = tmp_path_factory.mktemp("text") / "big_bb.txt"
    write_events(synthetic_events(400, seed=3), path)
    return path


def test_streaming_equals_full_read(big_text):
    full = read_events(big_text)
    assert len(full) == 400
    for step in ("300 B", "64 kB", "256 kB", 7, 150):
        chunks = list(iter_events(big_text, step_size=step))
        assert len(chunks) > 1, step
        if isinstance(step, int):
            assert [len(c) for c in chunks[:-1]] == [step] * (len(chunks) - 1)
        assert ak.concatenate(chunks).tolist() == full.tolist()


@pytest.mark.parametrize("step", ["200 B", "4 kB", "16 MB"])
@pytest.mark.parametrize("where", [0.001, 0.5, 0.999])
def test_line_numbers_exact_across_blocks(big_text, tmp_path, step, where):
    text = big_text.read_bytes().split(b"\n")
    row = int(where * len(text))
    while text[row].startswith(b"Axis"):
        row += 1
    text[row] = text[row] + b" 1.5"  # 8 numbers
    path = tmp_path / "big_bb.txt"
    path.write_bytes(b"\n".join(text))
    with pytest.raises(EventFormatError) as info:
        for _ in iter_events(path, step_size=step):
            pass
    assert info.value.line == row + 1
    assert info.value.reason == "track row has 8 numbers, expected 7"
    report = ReadReport()
    kept = sum(len(c) for c in iter_events(path, step_size=step, on_error="skip", report=report))
    assert (kept, report.n_dropped_events) == (399, 1)
    assert report.examples == [f"{path}:{row + 1}: track row has 8 numbers, expected 7"]


def test_fast_path_pieces(big_text, monkeypatch):
    from flavortag.io import text

    whole = read_events(big_text)
    monkeypatch.setattr(text, "PIECE_BYTES", 5000)  # many pieces per chunk
    assert read_events(big_text).tolist() == whole.tolist()
    chunks = list(iter_events(big_text, step_size="100 kB"))
    assert 5 <= len(chunks) <= 7
    assert ak.concatenate(chunks).tolist() == whole.tolist()


def test_common_layouts_stay_on_the_fast_path(big_text, tmp_path, monkeypatch):
    from flavortag.io import text

    whole = read_events(big_text).tolist()
    data = big_text.read_bytes()
    variants = {
        "dashes": data.replace(b"\nAxis", b"\n------\nAxis"),
        "dash_then_blank": b"---\n" + data.replace(b"\nAxis", b"\n-----------\n\nAxis") + b"--\n",
        "blank": data.replace(b"\nAxis", b"\n\nAxis"),
        "crlf": data.replace(b"\n", b"\r\n"),
    }

    def no_fallback(data: bytes) -> bytes:
        raise AssertionError("the fast path refused plain text")

    monkeypatch.setattr(text, "normalise_text", no_fallback)
    for name, variant in variants.items():
        path = tmp_path / f"{name}_bb.txt"
        path.write_bytes(variant)
        assert read_events(path).tolist() == whole, name


def test_careful_path_gives_the_fast_path_numbers(big_text, tmp_path):
    fast = read_events(big_text)
    broken = tmp_path / "broken_bb.txt"
    broken.write_bytes(big_text.read_bytes() + b"Axis = 0 0 1\n1 2 3\n")
    careful = read_events(broken, on_error="skip")  # the whole block goes through the fallback
    assert careful.tolist() == fast.tolist()


def test_gzip_streaming_and_line_numbers(big_text, tmp_path):
    data = big_text.read_bytes()
    good = tmp_path / "big_bb.txt.gz"
    good.write_bytes(gzip.compress(data))
    assert ak.concatenate(list(iter_events(good, step_size="50 kB"))).tolist() == read_events(big_text).tolist()
    text = data.split(b"\n")
    row = len(text) * 2 // 3
    while text[row].startswith(b"Axis"):
        row += 1
    text[row] = b"1.2.3 " + text[row]
    bad = tmp_path / "bad_bb.txt.gz"
    bad.write_bytes(gzip.compress(b"\n".join(text)))
    with pytest.raises(EventFormatError) as info:
        read_events(bad)
    assert (info.value.line, info.value.reason) == (row + 1, "'1.2.3' is not a number")


def test_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(EventFormatError("bb.txt", 12, "track row has 6 numbers, expected 7")))
    assert (err.path, err.line, err.entry, str(err)) == (
        "bb.txt", 12, None, "bb.txt:12: track row has 6 numbers, expected 7"
    )


def test_iter_events_checks_arguments_at_once(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_bb.txt"):
        iter_events(tmp_path / "missing_bb.txt")
    with pytest.raises(ValueError, match="step_size"):
        iter_events(write(tmp_path, EXAMPLE), step_size="lots")
    with pytest.raises(ValueError, match="on_error"):
        read_events(write(tmp_path, EXAMPLE), on_error="ignore")
