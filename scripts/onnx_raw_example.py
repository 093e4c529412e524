"""Score one hand-made event with a raw-input ONNX tagger, using only numpy and onnxruntime.

    python scripts/onnx_raw_example.py exported/transformer/tagger_raw.onnx

What a C++ framework does with the same file (docs/ONNX.md): fill the axis,
the tracks' (E, px, py, pz, x, y, z) in GeV / mm, a validity mask and, where
the model asks for it, the tracks' own sigma(d0), sigma(z0) (0 = use the
detector model of the tagger); leave ``resolution_scale`` out for 1.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import onnxruntime as ort

PION_MASS_GEV = 0.13957039


def track(px: float, py: float, pz: float, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> list[float]:
    """One track row (E from the pion mass), momenta in GeV, reference point in mm."""
    energy = math.sqrt(px * px + py * py + pz * pz + PION_MASS_GEV**2)
    return [energy, px, py, pz, x, y, z]


def main(path: str) -> None:
    """Print the tagger's classes, its inputs and the probabilities of one event."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # resolution_scale has a default: onnxruntime would warn about it
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    print("classes:", json.loads(meta["flavortag.class_names"]))
    print("inputs:", [i.name for i in session.get_inputs()], "max_tracks:", meta["flavortag.max_tracks"])

    # one event: two displaced tracks along the axis, one prompt track, one padded slot
    rows = [track(10.0, 2.0, 3.0, x=0.02, y=-0.09, z=0.03), track(8.0, 1.0, 2.5, x=0.01, y=-0.07, z=0.02),
            track(-5.0, -1.0, -2.0)]
    tracks = np.zeros((1, 4, 7), np.float32)
    tracks[0, :3] = rows
    valid = np.array([[True, True, True, False]])
    axis = np.array([[0.95, 0.2, 0.25]], np.float32)
    feeds = {"axis": axis, "tracks": tracks, "valid": valid,
             "track_sigma": np.zeros((1, 4, 2), np.float32)}  # 0: the tagger's detector model
    feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
    (probabilities,) = session.run(["probabilities"], feeds)
    print("probabilities", " ".join(f"{p:.6f}" for p in probabilities[0]))


if __name__ == "__main__":
    main(sys.argv[1])
