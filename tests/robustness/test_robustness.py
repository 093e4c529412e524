"""Robustness: detector variations, the label-free resolution calibration, the augmentation,
the robustness report end to end, and a generator-level (perfect detector) sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import mlflow
import numpy as np
import pytest

from flavortag.apps import CONFIG_DIR
from flavortag.augment import ResolutionAugmentation, augment_events, smear_impact_parameters
from flavortag.calibration import (
    MIN_TRACKS,
    CalibrationError,
    ResolutionCalibration,
    apply_calibration,
    calibrate_resolution,
    fit_core_width,
)
from flavortag.detector import DetectorModel
from flavortag.features import track_features
from flavortag.features.track import TrackQuantities
from flavortag.generate.detector_sim import FAKE_ORIGIN, TrueParticles, simulate_tracks
from flavortag.io import read_events
from tests.compose import compose_app

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = [ROOT / "data" / "zpole_ild" / f"{c}.parquet" for c in ("uds", "cc", "bb")]



@pytest.fixture(scope="module")
def embedded() -> ak.Array:
    return read_events([str(p) for p in EMBEDDED])


def _particles(n_events: int = 400, per_event: int = 20, seed: int = 3) -> TrueParticles:
    rng = np.random.default_rng(seed)
    n = n_events * per_event
    p = rng.uniform(0.5, 20.0, n)
    cos_t = rng.uniform(-0.9, 0.9, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    zeros = np.zeros(n)
    return TrueParticles(
        n_events=n_events, event=np.repeat(np.arange(n_events), per_event),
        px=p * sin_t * np.cos(phi), py=p * sin_t * np.sin(phi), pz=p * cos_t,
        vx=zeros, vy=zeros, vz=zeros, charge=np.ones(n, dtype=np.int8),
        pdg=np.full(n, 211), origin=np.zeros(n, dtype=np.int8))


def _d0_z0(tracks) -> tuple[np.ndarray, np.ndarray]:
    c = tracks.columns
    x, y, z = (c[k].astype(np.float64) for k in ("x", "y", "z"))
    px, py, pz = (c[k].astype(np.float64) for k in ("px", "py", "pz"))
    pt2 = px**2 + py**2
    return (x * py - y * px) / np.sqrt(pt2), z - (x * px + y * py) * pz / pt2


# ---- detector variations -------------------------------------------------------------------


def test_ip_bias_shifts_every_d0_and_z0_by_the_bias() -> None:
    particles = _particles()
    nominal = simulate_tracks(particles, DetectorModel(), np.random.default_rng(1))
    biased = simulate_tracks(particles, DetectorModel(d0_bias_um=7.0, z0_bias_um=-4.0),
                             np.random.default_rng(1))
    d0_n, z0_n = _d0_z0(nominal)
    d0_b, z0_b = _d0_z0(biased)
    np.testing.assert_allclose(d0_b - d0_n, 0.007, atol=2e-6)  # float32 reference points
    np.testing.assert_allclose(z0_b - z0_n, -0.004, atol=2e-6)


def test_momentum_resolution_scale_scales_the_inverse_pt_smearing() -> None:
    particles = _particles()
    true_inv_pt = 1.0 / np.hypot(particles.px, particles.py)
    spreads = []
    for scale in (1.0, 3.0):
        det = DetectorModel(momentum_resolution_scale=scale, track_efficiency=1.0)
        t = simulate_tracks(particles, det, np.random.default_rng(1))
        assert len(t.columns["px"]) == len(true_inv_pt)  # every track accepted
        inv_pt = 1.0 / np.hypot(t.columns["px"].astype(np.float64), t.columns["py"].astype(np.float64))
        spreads.append(np.std(inv_pt - true_inv_pt))
    assert spreads[1] / spreads[0] == pytest.approx(3.0, rel=0.02)


def test_fake_tracks_are_added_with_the_configured_rate_and_width() -> None:
    particles = _particles(n_events=2000, per_event=5)
    det = DetectorModel(fake_tracks_per_event=1.5, fake_track_ip_mm=0.3, track_efficiency=1.0)
    t = simulate_tracks(particles, det, np.random.default_rng(2))
    fake = t.columns["origin"] == FAKE_ORIGIN
    assert fake.sum() / 2000 == pytest.approx(1.5, rel=0.05)
    assert len(t.columns["origin"]) == 2000 * 5 + fake.sum()  # no real track lost
    d0, z0 = _d0_z0(t)
    assert np.std(d0[fake]) == pytest.approx(0.3, rel=0.05)
    assert np.std(z0[fake]) == pytest.approx(0.3, rel=0.05)
    pt = np.hypot(t.columns["px"][fake], t.columns["py"][fake])
    assert pt.min() >= det.pt_min_gev - 1e-6
    # each event: its real tracks first, then its fakes
    counts = np.diff(t.offsets)
    assert counts.sum() == len(fake) and (counts >= 5).all()


def test_without_variations_the_simulation_is_unchanged_by_the_new_knobs() -> None:
    particles = _particles()
    a = simulate_tracks(particles, DetectorModel(), np.random.default_rng(5))
    b = simulate_tracks(particles, DetectorModel(fake_track_ip_mm=2.0, fake_track_pt_gev=3.0),
                        np.random.default_rng(5))
    for k in a.columns:
        np.testing.assert_array_equal(a.columns[k], b.columns[k])


@pytest.mark.parametrize("bad", [{"ip_resolution_scale": 0.0}, {"track_efficiency": 1.5},
                                 {"fake_tracks_per_event": -1.0}, {"momentum_resolution_scale": -2}])
def test_impossible_detector_settings_are_refused_by_name(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        DetectorModel.from_config(bad)


def test_every_detector_knob_is_documented_in_the_yaml() -> None:
    text = (Path(CONFIG_DIR) / "detector" / "ild.yaml").read_text()
    from dataclasses import fields

    for f in fields(DetectorModel):
        assert f"{f.name}:" in text, f.name


# ---- calibration ---------------------------------------------------------------------------


def test_core_width_fit_recovers_a_gaussian_under_tails() -> None:
    rng = np.random.default_rng(0)
    core = np.abs(rng.normal(0, 1.7, 40_000))
    tails = rng.exponential(8.0, 4_000)
    width, err, n = fit_core_width(np.concatenate([core, tails]))
    assert width == pytest.approx(1.7, rel=0.02)
    assert 0 < err < 0.02 and n > 30_000


def test_calibration_finds_one_on_a_nominal_sample(embedded: ak.Array) -> None:
    calib = calibrate_resolution(embedded)
    assert calib.d0_scale == pytest.approx(1.0, abs=0.05)
    assert calib.z0_scale == pytest.approx(1.0, abs=0.05)
    assert calib.d0_scale_error < 0.01


def test_calibration_recovers_a_known_scale_on_a_generated_sample() -> None:
    from flavortag.generate import generate_events

    det = DetectorModel(ip_resolution_scale=1.3)
    events = ak.concatenate([generate_events(f, 400, seed=31 + k, detector=det)
                             for k, f in enumerate(("uds", "cc", "bb"))])
    calib = calibrate_resolution(events)
    assert calib.d0_scale == pytest.approx(1.3, rel=0.05)
    assert calib.z0_scale == pytest.approx(1.3, rel=0.05)


def test_calibration_never_reads_the_labels(embedded: ak.Array) -> None:
    shuffled = ak.with_field(embedded, np.random.default_rng(1).permutation(
        np.asarray(embedded["label"])), "label")
    unlabelled = embedded[["tracks", "axis"]]
    a, b, c = (calibrate_resolution(e) for e in (embedded, shuffled, unlabelled))
    assert a.d0_scale == b.d0_scale == c.d0_scale
    assert a.z0_scale == b.z0_scale == c.z0_scale


def test_calibration_refuses_a_sample_too_small_and_says_what_it_needs(embedded: ak.Array) -> None:
    with pytest.raises(CalibrationError, match=rf"needs at least {MIN_TRACKS}.*about \d+ events"):
        calibrate_resolution(embedded[:50])


def test_calibrated_significances_divide_by_the_calibrated_resolution(embedded: ak.Array,
                                                                      tmp_path: Path) -> None:
    calib = calibrate_resolution(embedded)
    calib = ResolutionCalibration(**{**calib.__dict__, "d0_scale": 1.5, "z0_scale": 2.0})
    path = calib.save(tmp_path / "c.json")
    loaded = ResolutionCalibration.load(path)
    assert loaded == calib
    q0 = TrackQuantities(embedded)
    q1 = TrackQuantities(apply_calibration(embedded, loaded))
    np.testing.assert_allclose(q1.d0_sig, q0.d0_sig / 1.5, rtol=1e-6)
    np.testing.assert_allclose(q1.z0_sig, q0.z0_sig / 2.0, rtol=1e-6)
    np.testing.assert_array_equal(q1.d0, q0.d0)  # lengths untouched
    feats = track_features(apply_calibration(embedded, loaded), names=["log_d0_resolution_scale"])
    assert np.allclose(ak.flatten(feats["log_d0_resolution_scale"]), math.log(1.5))


# ---- augmentation --------------------------------------------------------------------------


def test_augmentation_is_reproducible_for_a_seed(embedded: ak.Array) -> None:
    settings = ResolutionAugmentation(enabled=True, scale_min=1.2, scale_max=1.8, seed=7)
    a = augment_events(embedded[:500], settings)
    b = augment_events(embedded[:500], settings)
    c = augment_events(embedded[:500], ResolutionAugmentation(**{**settings.to_dict(), "seed": 8}))
    xa, xb, xc = (ak.to_numpy(ak.flatten(e.tracks.x)) for e in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(a.tracks.px)),
                                  ak.to_numpy(ak.flatten(embedded[:500].tracks.px)))


def test_re_smearing_makes_the_resolution_the_asked_scale(embedded: ak.Array) -> None:
    base = calibrate_resolution(embedded).d0_scale
    smeared = smear_impact_parameters(embedded, np.full(len(embedded), 1.6),
                                      rng=np.random.default_rng(3))
    assert calibrate_resolution(smeared).d0_scale / base == pytest.approx(1.6, rel=0.03)
    assert calibrate_resolution(smeared).z0_scale == pytest.approx(1.6 * base, rel=0.04)
    known = smear_impact_parameters(embedded, np.full(len(embedded), 1.6),
                                    rng=np.random.default_rng(3), known_scale=True)
    # with the scale known, the significances are back to the nominal width
    assert calibrate_resolution(apply_calibration(known, None)).d0_scale == pytest.approx(1.6 * base, rel=0.03)
    q = TrackQuantities(known)
    assert np.allclose(q.d0_resolution_scale, 1.6)


@pytest.mark.parametrize("bad", [{"scale_min": 0.8}, {"scale_min": 2.0, "scale_max": 1.5},
                                 {"fraction": 1.5}, {"typo_key": 1}])
def test_bad_augmentation_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        ResolutionAugmentation.from_config({"enabled": True, **bad})


# ---- end to end ----------------------------------------------------------------------------


_compose = compose_app


@pytest.fixture(scope="module")
def shifted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flavortag.generate import generate_events
    from flavortag.io import write_events

    out = tmp_path_factory.mktemp("worse_ip")
    det = DetectorModel(ip_resolution_scale=1.5)
    for k, flavour in enumerate(("uds", "cc", "bb")):
        write_events(generate_events(flavour, 250, seed=300 + k, detector=det), out / f"{flavour}.parquet")
    return out


def test_robustness_report_end_to_end(sample_dir: Path, shifted_dir: Path, tmp_path: Path) -> None:
    from flavortag.apps.robustness import robustness
    from flavortag.apps.train import train

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    cfg = _compose("train", [
        "model=mlp", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
        "tracking.experiment_name=robust-test", f"output_dir={tmp_path / 'train'}",
        "trainer.max_epochs=2", "evaluate.plot_formats=[png]", "trainer.progress=false", "evaluate.write_predictions=false",
        "augment=resolution_aware", "features=resolution_aware"])
    run_id = train(cfg)["run_id"]
    rcfg = _compose("robustness", [
        f"runs=[{run_id}]", f"samples=[{shifted_dir}]", "calibration=both",
        "ablations=[impact_parameters]", "ablation_epochs=1", "calibration_min_tracks=500", f"tracking.tracking_uri={store}",
        # the run itself as the sample's ceiling: scored there without calibration, as its [calib none] row
        f"ceilings=[{shifted_dir.name}:{run_id}]",
        "tracking.experiment_name=robust-test", f"output_dir={tmp_path / 'report'}"])
    result = robustness(rcfg)
    tables = result["tables"]
    assert set(tables) == {"acc", "rej_c_at_b70", "rej_c_at_b80", "rej_uds_at_b80",
                           "rej_uds_at_c50", "rej_b_at_c50"}
    # 2 taggers (the run and its ablation) x 2 calibration modes x 1 sample
    assert len(tables["acc"]) == 4
    scored = result["scored"]
    for tagger, by_sample in scored.items():
        nominal, shifted = by_sample["nominal"], by_sample[shifted_dir.name]
        assert nominal.result.n_events == 135  # the 15% test split of 3 x 300 events
        assert shifted.result.n_events == 750
        if "auto" in tagger:
            assert shifted.calibration.d0_scale == pytest.approx(1.5, rel=0.08)
            # 135 events only (~1000 tracks): a few per cent statistical, plus the b-fraction bias
            assert nominal.calibration.d0_scale == pytest.approx(1.0, abs=0.15)
            assert shifted.calibration.d0_scale > nominal.calibration.d0_scale + 0.25
    row = tables["acc"][0]
    nominal_acc = scored[row["tagger"]]["nominal"].result.accuracy
    shifted_acc = scored[row["tagger"]][shifted_dir.name].result.accuracy
    assert row["nominal"].startswith(f"{nominal_acc:.3f}")
    assert row["kept"].startswith(f"{shifted_acc / nominal_acc:.3f}")
    ablated = [t for t in scored if "-impact_parameters" in t]
    assert ablated
    # against the ceiling: one row per (tagger, sample); the run uncalibrated is its own ceiling
    ceiling = {r["tagger"]: r for r in result["ceiling_tables"]["acc"]}
    assert len(ceiling) == 4
    none_key = next(t for t in ceiling if t.endswith("[calib none]") and t not in ablated)
    none = scored[none_key]
    assert ceiling[none_key]["of ceiling"].startswith("1.000 ")
    assert ceiling[none_key]["ceiling"] == ceiling[none_key]["shifted"]
    kept = {r["tagger"]: r["kept"] for r in tables["acc"]}
    assert ceiling[none_key]["kept at most"] == kept[none_key]
    auto_key = none_key.replace("[calib none]", "[calib auto]")
    auto_acc = scored[auto_key][shifted_dir.name].result.accuracy
    assert ceiling[auto_key]["of ceiling"].startswith(
        f"{auto_acc / none[shifted_dir.name].result.accuracy:.3f}")
    assert "accuracy against the ceiling" in result["markdown"]
    # the MLflow record: one parent, a child per (tagger, sample)
    mlflow.set_tracking_uri(store)
    parent = mlflow.get_run(result["parent_run_id"])
    children = mlflow.search_runs(experiment_ids=[parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  output_format="list")
    assert len(children) == 4
    assert {"kept/acc", "nominal/rej_uds_at_c50", "shifted/rej_uds_at_c50_err", "ceiling/acc",
            "of_ceiling/rej_uds_at_c50"} <= set(children[0].data.metrics)
    of_ceiling = sorted(c.data.metrics["of_ceiling/acc"] for c in children)
    assert 1.0 in of_ceiling and len(set(of_ceiling)) > 1  # the run uncalibrated is its own ceiling
    artifacts = {a.path for a in mlflow.artifacts.list_artifacts(run_id=parent.info.run_id)}
    assert {"robustness.md", "robustness.csv", "calibrations.json", "plots"} <= artifacts
    calibs = json.loads((tmp_path / "report" / "calibrations.json").read_text())
    assert any(k.endswith(shifted_dir.name) for k in calibs)


def test_calibrate_app_writes_a_file_evaluate_accepts(shifted_dir: Path, tmp_path: Path) -> None:
    from flavortag.apps.calibrate import calibrate

    out = tmp_path / "calib.json"
    cfg = _compose("calibrate", [f"inputs=[{shifted_dir}/*.parquet]", f"out={out}",
                                 "log_to_mlflow=false"])
    calib = calibrate(cfg)  # mode=function: the resolution function, the file without a reference
    from flavortag.calibration import load_calibration

    assert load_calibration(out).relative_to(None, DetectorModel()).d0_scale == calib.d0_scale
    assert calib.d0_scale == pytest.approx(1.5, rel=0.08)
    assert len(calib.inputs) == 3
    scale = calibrate(_compose("calibrate", [f"inputs=[{shifted_dir}/*.parquet]", f"out={out}",
                                             "log_to_mlflow=false", "mode=scale"]))
    assert ResolutionCalibration.load(out).d0_scale == scale.d0_scale == pytest.approx(1.5, rel=0.08)


def test_generator_level_sample_trains_and_evaluates(tmp_path: Path) -> None:
    from flavortag.apps.train import train
    from flavortag.generate import generate_events
    from flavortag.io import write_events

    det = DetectorModel.from_config(_compose("generate", ["detector=perfect"]).detector)
    for k, flavour in enumerate(("uds", "cc", "bb")):
        write_events(generate_events(flavour, 150, seed=500 + k, detector=det),
                     tmp_path / f"{flavour}.parquet")
    events = read_events([str(tmp_path / f"{f}.parquet") for f in ("uds", "cc", "bb")])
    assert (np.asarray(ak.flatten(events.tracks.x)) == 0).mean() > 0.5  # prompt: exactly 0
    from flavortag.features import event_features

    assert np.isfinite(event_features(events)).all()
    paths = ",".join(str(tmp_path / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    result = train(_compose("train", [
        "model=mlp", f"data.paths=[{paths}]", f"tracking.tracking_uri=sqlite:///{tmp_path / 'm.db'}",
        f"output_dir={tmp_path / 'out'}", "trainer.max_epochs=2", "evaluate.plot_formats=[png]", "trainer.progress=false",
        "evaluate.write_predictions=false"]))
    assert math.isfinite(result["metrics"]["test/loss"])
    assert result["metrics"]["test/acc"] > 0.4


def test_the_app_schema_takes_exactly_the_calibration_modes_of_the_report() -> None:
    """The schema restates the modes as a Literal (it stays free of numpy): this keeps the two equal."""
    import typing

    from flavortag import robustness as rb
    from flavortag.apps.schema.apps import RobustnessApp

    allowed = typing.get_args(typing.get_type_hints(RobustnessApp)["calibration"])
    assert set(allowed) == set(rb.CALIBRATION_MODES) | set(rb.CALIBRATION_GROUPS)
    assert rb.CALIBRATION_GROUPS["all"] == rb.CALIBRATION_MODES


def test_ceilings_are_parsed_and_a_bad_one_is_refused_before_any_work(shifted_dir: Path, tmp_path: Path) -> None:
    from flavortag.pipelines.robustness import RobustnessSettings, ceiling_pairs, robustness
    from flavortag.schema.groups import TrackingSettings

    assert ceiling_pairs(["combined:0a1b", "shape:9f:x"]) == (("combined", "0a1b"), ("shape", "9f:x"))
    assert ceiling_pairs({"tails": "77"}) == (("tails", "77"),)
    with pytest.raises(ValueError, match="<sample name>:<run id>"):
        ceiling_pairs(["combined"])
    settings = RobustnessSettings(runs=("0a1b",), samples=(str(shifted_dir),), output_dir=tmp_path / "out",
                                  tracking=TrackingSettings(tracking_uri=f"sqlite:///{tmp_path / 'x.db'}"),
                                  ceilings=(("combinde", "0a1b"),))
    with pytest.raises(ValueError, match=f"combinde; the samples are {shifted_dir.name}"):
        robustness(settings)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.db").exists()
