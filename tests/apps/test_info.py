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
