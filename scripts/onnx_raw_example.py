"""Score one hand-made event with a raw-input ONNX tagger, using only numpy and onnxruntime.

    python scripts/onnx_raw_example.py exported/transformer/tagger_raw.onnx

What a C++ framework does with the same file (docs/ONNX.md): fill the axis,
the tracks' (E, px, py, pz, x, y, z) in GeV / mm, a validity mask and, where
the model asks for it, the tracks' own sigma(d0), sigma(z0) (0 = use the
detector model of the tagger); leave ``resolution_scale`` out for 1. A
particle-flow tagger (an input ``particle``) also takes the neutral particles,
as slots of ``tracks`` with their type, and the tracks' charge and measured PID.
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


def neutral(px: float, py: float, pz: float) -> list[float]:
    """One neutral particle's row of ``tracks``: massless, E = |p| (GeV); no reference point."""
    return [math.sqrt(px * px + py * py + pz * pz), px, py, pz, 0.0, 0.0, 0.0]


def main(path: str) -> None:
    """Print the tagger's classes, its inputs and the probabilities of one event."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # resolution_scale has a default: onnxruntime would warn about it
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    print("classes:", json.loads(meta["flavortag.class_names"]))
    print("inputs:", [i.name for i in session.get_inputs()], "max_tracks:", meta["flavortag.max_tracks"])

    names = [i.name for i in session.get_inputs()]
    # one event: two displaced tracks along the axis, one prompt track, then (for a particle-flow
    # tagger) a photon and a neutral hadron, then one padded slot
    rows = [track(10.0, 2.0, 3.0, x=0.02, y=-0.09, z=0.03), track(8.0, 1.0, 2.5, x=0.01, y=-0.07, z=0.02),
            track(-5.0, -1.0, -2.0)]
    # per slot: type (0 charged, 1 photon, 2 neutral hadron), charge, dN/dx [1/mm], TOF [ns],
    # track length [mm]; NaN = not measured (the third track never reached the TOF layer)
    particle_rows = [[0, 1, 1.62, 6.35, 1903.0], [0, -1, 1.60, 6.41, 1921.0], [0, 1, 1.55, math.nan, math.nan]]
    if "particle" in names:
        rows += [neutral(4.0, 1.0, 1.2), neutral(3.0, 0.5, 1.0)]
        particle_rows += [[1, 0, math.nan, math.nan, math.nan], [2, 0, math.nan, math.nan, math.nan]]
    n_slots = len(rows) + 1
    tracks = np.zeros((1, n_slots, 7), np.float32)
    tracks[0, :len(rows)] = rows
    particle = np.zeros((1, n_slots, 5), np.float32)
    particle[0, :len(rows)] = particle_rows
    valid = np.arange(n_slots)[None, :] < len(rows)
    axis = np.array([[0.95, 0.2, 0.25]], np.float32)
    feeds = {"axis": axis, "tracks": tracks, "valid": valid, "particle": particle,
             "track_sigma": np.zeros((1, n_slots, 2), np.float32)}  # 0: the tagger's detector model
    feeds = {name: feeds[name] for name in names}
    (probabilities,) = session.run(["probabilities"], feeds)
    print("probabilities", " ".join(f"{p:.6f}" for p in probabilities[0]))


if __name__ == "__main__":
    main(sys.argv[1])
