"""Sample files from the generator: parallel driver, formats, Hydra app, embedded sample."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import yaml

from flavortag.detector import DetectorModel
from flavortag.generate import generate_events
from flavortag.generate.production import produce_samples
from flavortag.io import read_events

REPO = Path(__file__).resolve().parents[2]
EMBEDDED = REPO / "data" / "zpole_ild"
KINEMATICS = ("E", "px", "py", "pz", "x", "y", "z")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_parquet_bytes_independent_of_workers_and_equal_to_api(tmp_path):
    kwargs = dict(flavours=["cc", "bb"], seed=5, chunk_size=40, progress=False)
    one = produce_samples(tmp_path / "w1", 100, workers=1, **kwargs)
    two = produce_samples(tmp_path / "w2", 100, workers=2, **kwargs)
    assert one.n_events == two.n_events == {"cc": 100, "bb": 100}
    for name in ("cc", "bb"):
        assert one.paths[name].name == f"{name}.parquet"
        assert _digest(one.paths[name]) == _digest(two.paths[name])
        events = read_events(one.paths[name])
        expected = generate_events(name, 100, seed=5, chunk_size=40)
        assert ak.array_equal(events, expected)
    assert sorted(p.name for p in (tmp_path / "w2").iterdir()) == ["bb.parquet", "cc.parquet"]
    again = produce_samples(tmp_path / "w1b", 100, workers=1, **kwargs)
    assert _digest(again.paths["bb"]) == _digest(one.paths["bb"])
    other = produce_samples(tmp_path / "s6", 100, workers=1, **{**kwargs, "seed": 6})
    assert _digest(other.paths["bb"]) != _digest(one.paths["bb"])


def test_root_and_text_round_trip(tmp_path):
    expected = generate_events("bb", 60, seed=8, chunk_size=30)
    root = produce_samples(tmp_path / "r", 60, ["bb"], fmt="root", seed=8, chunk_size=30, workers=1, progress=False)
    text = produce_samples(tmp_path / "t", 60, ["bb"], fmt="text", seed=8, chunk_size=30, workers=1, progress=False)
    assert root.paths["bb"].suffix == ".root" and text.paths["bb"].suffix == ".txt"
    from_root = read_events(root.paths["bb"])
    assert ak.array_equal(from_root["tracks"], expected["tracks"])  # truth fields included
    assert ak.array_equal(from_root["label"], expected["label"])
    np.testing.assert_array_equal(from_root["axis"].to_numpy(), expected["axis"].to_numpy())
    # Same seed, same ROOT content (the file itself holds a UUID and timestamps).
    root2 = produce_samples(tmp_path / "r2", 60, ["bb"], fmt="root", seed=8, chunk_size=30, workers=1, progress=False)
    assert ak.array_equal(read_events(root2.paths["bb"]), from_root)
    # Text: 7 significant digits, label from the file name, no truth fields.
    from_text = read_events(text.paths["bb"])
    assert set(from_text["label"].to_numpy()) == {2}
    assert ak.all(ak.num(from_text["tracks"]) == ak.num(expected["tracks"]))
    for field in KINEMATICS:
        got = ak.to_numpy(ak.flatten(from_text["tracks"][field]))
        want = ak.to_numpy(ak.flatten(expected["tracks"][field]))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)
    text2 = produce_samples(tmp_path / "t2", 60, ["bb"], fmt="text", seed=8, chunk_size=30, workers=1, progress=False)
    assert _digest(text2.paths["bb"]) == _digest(text.paths["bb"])


def test_hydra_app_writes_only_its_outputs(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "flavortag.generate", "n_events=30", "flavours=[uds,bb]", "workers=1",
           "chunk_size=20", f"out={out}", "detector=perfect", "sqrt_s=250", "seed=3"]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # progress=true (the default) draws no bar into a pipe: the output is the result line only
    assert done.stderr == "" and done.stdout.startswith("wrote 60 events (uds: 30, bb: 30)"), done.stderr[-2000:]
    assert list(cwd.iterdir()) == []  # no outputs/, .hydra/ or log file in the working directory
    assert sorted(p.name for p in out.iterdir()) == ["bb.parquet", "generation.yaml", "uds.parquet"]
    meta = yaml.safe_load((out / "generation.yaml").read_text())
    assert meta["n_events"] == {"uds": 30, "bb": 30}
    assert meta["config"]["detector"]["name"] == "perfect" and meta["config"]["sqrt_s"] == 250
    perfect = DetectorModel.from_config(meta["config"]["detector"])
    expected = generate_events("bb", 30, sqrt_s_gev=250, seed=3, detector=perfect, chunk_size=20)
    assert ak.array_equal(read_events(out / "bb.parquet"), expected)


@pytest.mark.skipif(not EMBEDDED.exists(), reason="embedded sample not generated")
def test_embedded_sample():
    detector = DetectorModel()
    summary = {}
    for label, name in enumerate(("uds", "cc", "bb")):
        events = read_events(EMBEDDED / f"{name}.parquet")
        assert len(events) == 3000
        assert set(events["label"].to_numpy()) == {label}
        tracks = ak.flatten(events["tracks"])
        px, py, pz, x, y = (ak.to_numpy(tracks[f]).astype(np.float64) for f in ("px", "py", "pz", "x", "y"))
        pt = np.hypot(px, py)
        p = np.hypot(pt, pz)
        d0 = (x * py - y * px) / pt
        summary[name] = (
            float(ak.mean(ak.num(events["tracks"]))),
            float(np.mean(np.abs(d0) / detector.sigma_d0_mm(p, pt / p) > 3)),
            float(np.mean(ak.to_numpy(tracks["origin"]) == 2)),
        )
    mult = {k: v[0] for k, v in summary.items()}
    assert 17.5 < mult["uds"] < mult["cc"] < mult["bb"] < 23.0, summary
    assert summary["bb"][1] > summary["cc"][1] + 0.15 > summary["uds"][1] + 0.25, summary
    assert summary["bb"][2] > 0.4 and summary["uds"][2] < 0.01, summary
    total_mb = sum((EMBEDDED / f"{n}.parquet").stat().st_size for n in ("uds", "cc", "bb")) / 1e6
    assert total_mb < 15


def test_detector_configs_compose():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    models = {}
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        for path in sorted((REPO / "configs" / "detector").glob("*.yaml")):
            cfg = compose("generate", overrides=[f"detector={path.stem}"])
            models[path.stem] = DetectorModel.from_config(OmegaConf.to_container(cfg.detector))
    assert models["ild"].to_dict() == {**DetectorModel().to_dict(), "name": "ild"}
    assert models["perfect"].smear is False and models["perfect"].track_efficiency == 1.0
    assert models["ild_worse_ip"].ip_resolution_scale == 1.5
    assert models["ild_beamspot"].beam_spot_mm[2] == 0.3
    assert {m.d0_b_mm_gev for name, m in models.items() if name != "idea"} == {0.010}  # the ILD variants
    assert (models["idea"].d0_a_mm, models["idea"].d0_b_mm_gev) == (0.003, 0.015)  # FCC-ee IDEA
