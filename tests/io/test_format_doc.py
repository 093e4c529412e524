"""Issue 15: the format spec lives in docs/FORMAT.md, every citation points there, and help() names the fields."""

from __future__ import annotations

import pydoc
import re
from pathlib import Path

from flavortag.generate.detector_sim import TRUTH_FIELDS
from flavortag.io import read_events
from flavortag.io.columns import TRACK_FIELDS

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "docs/FORMAT.md"


def test_spec_describes_every_field_with_units() -> None:
    text = SPEC.read_text()
    for name in (*TRACK_FIELDS, *TRUTH_FIELDS, "axis", "label"):
        assert re.search(rf"`{name}`", text), name
    assert "-1: a fake track" in text and "GeV" in text and "mm" in text
    assert "Axis = " in text and "d0 = (x*py - y*px) / pT" in text


def test_every_citation_points_at_docs_format_md() -> None:
    cited = 0
    for path in [*ROOT.glob("flavortag/**/*.py"), *ROOT.glob("flavortag/**/*.yaml"),
                 *ROOT.glob("scripts/*.py"), *ROOT.glob("tests/**/*.py")]:
        for line in path.read_text().splitlines():
            for hit in re.finditer(r"(\S*)FORMAT\.md", line):
                cited += 1
                assert hit.group(1).endswith("docs/"), f"{path}: {line.strip()}"
    assert cited >= 10


def test_help_of_read_events_names_the_fields() -> None:
    text = pydoc.render_doc(read_events, renderer=pydoc.plaintext)
    for name in (*TRACK_FIELDS, *TRUTH_FIELDS, "axis", "tracks", "label"):
        assert re.search(rf"\b{name}\b", text), name
    assert "docs/FORMAT.md" in text
