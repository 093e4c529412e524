"""flavortag.io convert(), its command line, atomic output, and the import rule."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import pytest

from flavortag.apps.convert import main
from flavortag.io import EventFormatError, convert, read_events, write_events
from flavortag.io.synthetic import synthetic_events


@pytest.fixture()
def inputs(tmp_path):
    bb = write_events(synthetic_events(400, seed=1, label=2), tmp_path / "bb.txt")
    cc = write_events(synthetic_events(300, seed=2, label=1), tmp_path / "cc.txt.gz")
    return bb, cc


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".txt"])
def test_convert_streams_all_inputs(tmp_path, inputs, suffix):
    out = tmp_path / f"all{suffix}"
    if suffix == ".txt":
        with pytest.raises(ValueError, match="a text file holds one class"):
            convert(inputs, out, step_size="20 kB")
        assert not out.exists()
        return
    report = convert(inputs, out, step_size="20 kB")
    assert (report.n_events, report.n_files, report.n_dropped_events) == (700, 2, 0)
    back = read_events(out)
    assert back.label.tolist() == [2] * 400 + [1] * 300
    assert back.tolist() == ak.concatenate([read_events(p) for p in inputs]).tolist()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.ParquetFile(out).metadata.num_row_groups > 5  # written chunk by chunk


def test_progress_bar_on_request(tmp_path, inputs, capsys):
    convert(inputs, tmp_path / "all.root", progress=True)
    err = capsys.readouterr().err
    assert "all.root" in err and "100%" in err
    convert(inputs, tmp_path / "again.root")  # not a terminal: no bar
    assert capsys.readouterr().err == ""


def test_bars_only_on_a_terminal_unless_forced(capsys):
    from flavortag.progress import bar_wanted, progress_bar

    assert not bar_wanted(None) and not bar_wanted(True) and not bar_wanted(False)  # stderr is not a terminal
    assert bar_wanted(False, force=True)
    assert list(progress_bar(range(3), show=True, desc="hidden")) == [0, 1, 2]
    with progress_bar(total=5, force=True, desc="forced") as bar:
        bar.update(5)
    err = capsys.readouterr().err
    assert "hidden" not in err and "forced" in err and "100%" in err


def test_failed_convert_leaves_no_output(tmp_path, inputs):
    bad = tmp_path / "uds.txt"
    bad.write_text(inputs[0].read_text() + "Axis = 0 0 1\n1 2 3\n")
    out = tmp_path / "all.parquet"
    with pytest.raises(EventFormatError, match=r"uds\.txt:\d+: track row has 3 numbers"):
        convert([inputs[0], bad], out, step_size="20 kB")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bb.txt", "cc.txt.gz", "uds.txt"]
    # An existing output is left untouched by a failed conversion.
    out.write_bytes(b"old")
    with pytest.raises(EventFormatError):
        convert([inputs[0], bad], out)
    assert out.read_bytes() == b"old"
    report = convert([inputs[0], bad], out, on_error="skip")
    assert (report.n_events, report.n_dropped_events, report.n_dropped_lines) == (800, 1, 2)


def test_output_may_not_be_an_input(inputs):
    with pytest.raises(ValueError, match="the output is also an input"):
        convert(inputs, inputs[0], format="text", output_format="text")


def test_cli_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "flavortag convert bad_bb.txt bb.parquet --on-error skip" in text
    assert "--label" in text and "--on-error" in text


def test_cli_converts_and_reports(tmp_path, inputs, capsys):
    out = tmp_path / "bb.root"
    assert main([str(inputs[0]), str(out), "--step-size", "100"]) == 0
    assert "400 events read from 1 file(s)" in capsys.readouterr().err
    assert len(read_events(out)) == 400
    sample = tmp_path / "sample.txt"
    sample.write_text(inputs[0].read_text())
    assert main([str(sample), str(tmp_path / "s.parquet"), "--label", "cc", "-q"]) == 0
    assert set(read_events(tmp_path / "s.parquet").label.tolist()) == {1}
    assert main([str(sample), str(tmp_path / "r.parquet"), "--label-rule", "^sam=uds"]) == 0
    assert set(read_events(tmp_path / "r.parquet").label.tolist()) == {0}


def test_cli_bad_input(tmp_path, capsys):
    bad = tmp_path / "bb.txt"
    bad.write_text("Axis = 0 0 1\n1 0.5 0 0 0 0\nAxis = 0 0 1\n")
    out = tmp_path / "bb.parquet"
    assert main([str(bad), str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: track row has 6 numbers, expected 7" in err
    assert not out.exists()
    assert main([str(bad), str(out), "--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    assert "1 events read from 1 file(s); dropped 1 broken events (2 lines)" in err
    assert f"dropped: {bad}:2: track row has 6 numbers" in err
    with pytest.raises(SystemExit) as info:
        main([str(bad)])
    assert info.value.code == 2


def test_importing_io_stays_light():
    code = (
        "import sys, flavortag.io\n"
        "heavy = [m for m in ('torch', 'hydra', 'mlflow', 'uproot') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
