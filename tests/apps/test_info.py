"""``flavortag info``: the per-class summary on a hand-made file, and a clear error on broken input."""

from __future__ import annotations

from pathlib import Path

import pytest

from flavortag.apps.info import main

# two bb events: 2 tracks (one with d0 = 0.2 mm, one prompt) and 1 track (d0 = 0.05 mm)
GOOD = """Axis = 0 0 1
10 0 6 8 0.2 0 0
5 3 0 4 0 0 0
Axis = 0 0 1
2 0 2 0 0.05 0 0.1
"""


def test_info_summarises_a_text_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bb.txt"
    path.write_text(GOOD)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "2 events in 1 file(s)" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("bb"))
    # events, mean tracks 1.5, mean sum E (15 + 2) / 2 = 8.5 GeV, |d0| > 0.1 mm in 1 of 3 tracks
    assert row[1:] == ["2", "1.50", "8.50", "0.3333"]


def test_info_reports_file_and_line_of_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cc.txt"
    path.write_text(GOOD.replace("5 3 0 4 0 0 0", "5 3 0 4 0 0"))
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:3" in err and "6" in err


def _event(n_tracks: int, energy: float = 2.0) -> str:
    return "Axis = 0 0 1\n" + f"{energy} 0 1 0 0 0 0\n" * n_tracks


def test_info_flags_merged_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 20 events of 10 tracks; event 7 is two events merged by a missing Axis line (40 tracks, 80 GeV)
    events = [_event(10) for _ in range(20)]
    events[7] = _event(40)
    path = tmp_path / "bb.txt"
    path.write_text("".join(events))
    assert main([str(path)]) == 0
    err = capsys.readouterr().err
    assert (f"flavortag info: warning: {path}: event 7: 40 tracks, more than 3 x the median "
            "multiplicity 10 of the file: two events merged (a missing Axis line)?") in err
    assert f"{path}: 1 implausible event(s) (sqrt(s) = 91.188 GeV from default)" in err
    # visible energy: 40 x 2 GeV = 80 GeV is above sqrt(s) = 50 GeV (--sqrt-s), and from generation.yaml
    assert main([str(path), "--sqrt-s", "50"]) == 0
    assert "event 7: 40 tracks, more than 3 x the median multiplicity 10 of the file; visible energy " \
        "80.0 GeV above sqrt(s) = 50 GeV" in capsys.readouterr().err
    (tmp_path / "generation.yaml").write_text("config:\n  sqrt_s: 60.0\n")
    assert main([str(path)]) == 0
    assert "(sqrt(s) = 60 GeV from generation.yaml)" in capsys.readouterr().err


def test_info_is_quiet_on_the_embedded_sample(capsys: pytest.CaptureFixture[str]) -> None:
    from flavortag.dataset import PROJECT_ROOT

    paths = [str(PROJECT_ROOT / "data" / "zpole_ild" / f"{c}.parquet") for c in ("uds", "cc", "bb")]
    assert main(paths) == 0
    assert "warning" not in capsys.readouterr().err


def test_info_on_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 1
    assert f"flavortag info: {tmp_path}: is a directory" in capsys.readouterr().err


def test_info_counts_the_files_of_a_quoted_glob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # issue 21: `flavortag info 'dir/*.txt'` (3 files) printed "in 1 file(s)"
    for name in ("bb.txt", "cc.txt", "uds.txt"):
        (tmp_path / name).write_text(GOOD)
    assert main([str(tmp_path / "*.txt")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "6 events in 3 file(s)"
    assert main([str(tmp_path / "bb.txt"), str(tmp_path / "c*.txt")]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "4 events in 2 file(s)"
