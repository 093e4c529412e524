"""Every number the EDM4hep reader gives on the real files is the one it gave before its speed-up.

The digests below were taken with the reader of commit e2f8482 (before issue 23's
speed work: per-row relation checks, pointer-jumping ancestry, thrust groups by
mask). The quick paths (relations and links checked per event in aggregate,
ancestry passed down generation by generation, the thrust's block layout) must
give the very same bytes, and so must the careful paths they fall back to on
bad input, forced here on good files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.io import ReadReport, edm4hep_relations, edm4hep_truth
from flavortag.io.edm4hep import read_edm4hep

DATA = Path(__file__).resolve().parents[1] / "data" / "edm4hep"
ZH = DATA / "test_FCC_Winter2023.root"
WW = DATA / "p8_ee_WW_ecm240_edm4hep.root"

#: (file, options) -> sha256 (first 16 hex digits) of every field, as :func:`_digest` takes it.
BEFORE: list[tuple[Path, dict, str]] = [
    (ZH, {"level": "event"}, "38fd16471c9482b0"),
    (ZH, {"level": "event", "track_truth": True, "neutrals": True}, "7d66e499feb879fc"),
    (ZH, {"level": "jet", "track_truth": True, "neutrals": True}, "780c5d5b48554e37"),
    (WW, {"level": "event", "track_truth": True, "neutrals": True}, "50e32ab9874eb2d7"),
    (WW, {"level": "event", "neutrals_in_axis": True}, "613e8d9e1ffd95dc"),
    (WW, {"level": "jet", "track_truth": True, "neutrals": True}, "f2ea6f009e450392"),
]


def _digest(records: ak.Array) -> tuple[str, dict[str, str]]:
    """sha256 of all fields (name, dtype and bytes, in field order), and each field's own."""
    whole, each = hashlib.sha256(), {}
    for field in records.fields:
        nested = field in ("tracks", "neutrals")
        for name in ([f"{field}.{f}" for f in records[field].fields] if nested else [field]):
            values = records[field][name.split(".")[1]] if nested else records[field]
            array = np.ascontiguousarray(ak.to_numpy(ak.flatten(values, axis=None)))
            own = hashlib.sha256()
            for h in (whole, own):
                h.update(name.encode())
                h.update(array.dtype.str.encode())
                h.update(array.tobytes())
            each[name] = own.hexdigest()[:12]
    return whole.hexdigest()[:16], each


@pytest.mark.parametrize("careful", [False, True], ids=["quick", "careful"])
@pytest.mark.parametrize(("path", "options", "expected"), BEFORE,
                         ids=[f"{p.stem[:6]}-{'-'.join(o)}" for p, o, _ in BEFORE])
def test_records_are_byte_for_byte_those_before_the_speed_up(
    path: Path, options: dict, expected: str, careful: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if careful:  # what bad input gets: the per-row checks, on files where nothing is wrong
        monkeypatch.setattr(edm4hep_relations, "_resolve_clean", lambda *args: None)
        monkeypatch.setattr(edm4hep_truth, "clean_links", lambda *args: None)
    report = ReadReport(n_files=1)
    records = read_edm4hep(path, options=options, report=report)
    digest, fields = _digest(records)
    assert len(records) > 0 and report.n_events == len(records)
    assert digest == expected, f"{path.name} {options}: the records differ from those before; fields: {fields}"
