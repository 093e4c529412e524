"""Issue 15: the track momenta as ``vector`` records (flavortag.io.momenta), files untouched."""

from __future__ import annotations

import subprocess
import sys

import awkward as ak
import numpy as np

from flavortag.io import momenta


def _events() -> ak.Array:
    tracks = [[{"E": 5.0, "px": 3.0, "py": 0.0, "pz": 4.0, "x": 0.1, "y": 0.2, "z": 0.3},
               {"E": 2.0, "px": 0.0, "py": -1.0, "pz": 0.0, "x": 0.0, "y": 0.0, "z": 0.0}],
              []]
    return ak.Array({"axis": [[0.0, 0.0, 1.0]] * 2, "tracks": tracks, "label": [2, 0]})


def test_momenta_are_vector_records_with_the_momentum_fields_only() -> None:
    events = _events()
    p4 = momenta(events)
    assert ak.fields(p4) == ["px", "py", "pz", "E"]
    assert ak.to_list(ak.num(p4)) == [2, 0]
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(p4.pt)), [3.0, 1.0])
    np.testing.assert_allclose(ak.to_numpy(ak.flatten(p4.mass)), [0.0, np.sqrt(3.0)], atol=1e-12)
    total = ak.sum(momenta(events["tracks"]), axis=1)  # the track list works as well
    np.testing.assert_allclose(total.mass[0], np.sqrt(7.0**2 - 3.0**2 - 1.0 - 4.0**2))
    assert ak.fields(events["tracks"]) == ["E", "px", "py", "pz", "x", "y", "z"]  # input untouched


def test_importing_flavortag_io_does_not_import_vector() -> None:
    code = "import sys, flavortag.io; print('vector' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
