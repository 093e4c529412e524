"""Issue 24: the resolution-function calibration (fit, refusals, relative to training), the
augmentation over kinds of detector variation, the generator's tails, and scale factors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.augment import ResolutionAugmentation, augment_events
from flavortag.calibration import CalibrationError, apply_calibration, resolve_calibration
from flavortag.calibration_function import (
    MAX_SHIFT_SIGMAS,
    FunctionCalibration,
    apply_function_calibration,
    fit_function_calibration,
    track_scales,
)
from flavortag.detector import DetectorModel
from flavortag.features.track import TrackQuantities
from flavortag.generate.detector_sim import FAKE_ORIGIN
from flavortag.io import read_events
from flavortag.resolution_function import (
    ResolutionFitError,
    ResolutionFunction,
    check_plausible,
    check_smeared,
    choose_mapping,
    fit_resolution_function,
    map_pulls,
    nominal_function,
)
from flavortag.scale_factors import scale_factors

ROOT = Path(__file__).resolve().parents[2]
NOMINAL = nominal_function(0.005, 0.010)  # the ILD model: 5 um (+) 10 um GeV / x


@pytest.fixture(scope="module")
def uds_events() -> ak.Array:
    return read_events([str(ROOT / "data" / "zpole_ild" / "uds.parquet")])[:700]


def _pulls(events: ak.Array, data: ResolutionFunction, detector: DetectorModel) -> np.ndarray:
    """|d0| of each track in units of the data's core width."""
    q = TrackQuantities(events, detector)
    x = q.p * q.sin_theta**1.5
    return np.abs(q.d0) / (q.sigma_d0 * data.sigma_mm(x) / nominal_function(detector.d0_a_mm,
                                                                           detector.d0_b_mm_gev).sigma_mm(x))


def _sample(a_mm: float, b_mm: float, tail_fraction: float, tail_scale: float, n: int, seed: int,
            measured: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|d0| of prompt tracks drawn from the core + tail model; the reference widths; x."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(np.log(0.2), np.log(20.0), n))  # log-uniform: both terms constrained
    ref = NOMINAL.sigma_mm(x)
    if measured:  # tracks with their own sigma: the truth is relative to them
        ref = ref * rng.uniform(0.7, 1.4, n)
    width = ref * np.hypot(a_mm, b_mm / x) / NOMINAL.sigma_mm(x)
    width = np.where(rng.random(n) < tail_fraction, tail_scale * width, width)
    return np.abs(rng.normal(0.0, width)), ref, x


@pytest.mark.parametrize("measured", [False, True], ids=["parametric", "measured_sigma"])
def test_function_fit_recovers_a_b_and_the_tail(measured: bool) -> None:
    # tolerances: a, b within 5%, tail fraction within 0.015, tail scale within 15%, all within 4 sigma
    abs_ip, ref, x = _sample(0.008, 0.015, 0.10, 4.0, 15_000, seed=1, measured=measured)
    fit = fit_resolution_function(abs_ip, ref, x, NOMINAL)
    assert fit.a_mm == pytest.approx(0.008, rel=0.05)
    assert fit.b_mm_gev == pytest.approx(0.015, rel=0.05)
    assert fit.tail_fraction == pytest.approx(0.10, abs=0.015)
    assert fit.tail_scale == pytest.approx(4.0, rel=0.15)
    for value, truth, error in ((fit.a_mm, 0.008, fit.a_mm_error), (fit.b_mm_gev, 0.015, fit.b_mm_gev_error),
                                (fit.tail_fraction, 0.10, fit.tail_fraction_error)):
        assert 0 < error < 0.1 * truth and abs(value - truth) < 4 * error


def test_auto_maps_the_tails_only_where_the_sample_has_more_of_them(uds_events: ak.Array) -> None:
    reference = ResolutionFunction(0.006, 0.012, tail_fraction=0.05, tail_scale=8.0)
    # a wider core, the same tail fraction (decay tracks: their millimetres do not scale): core only
    abs_ip, ref, x = _sample(1.5 * 0.006, 1.5 * 0.012, 0.05, 8.0 / 1.5, 15_000, seed=11)
    wider = choose_mapping(fit_resolution_function(abs_ip, ref, x, NOMINAL), reference)
    assert wider.mapping == "core" and abs(wider.tail_excess_sigmas) < 3
    # a detector tail on top (15% instead of 5%): core and tails
    abs_ip, ref, x = _sample(0.006, 0.012, 0.15, 6.0, 15_000, seed=12)
    tailed = choose_mapping(fit_resolution_function(abs_ip, ref, x, NOMINAL), reference)
    assert tailed.mapping == "function" and tailed.tail_excess_sigmas > 10
    # as many extra tracks but far out (fakes: 0.3 mm whatever the momentum): more tail, and wider: core only
    abs_ip, ref, x = _sample(0.006, 0.012, 0.05, 8.0, 15_000, seed=13)
    fakes = np.random.default_rng(14).random(len(abs_ip)) < 0.10
    abs_ip[fakes] = np.abs(np.random.default_rng(15).normal(0.0, 0.3, fakes.sum()))
    fake_fit = fit_resolution_function(abs_ip, ref, x, NOMINAL)
    assert fake_fit.tail_fraction > reference.tail_fraction and fake_fit.tail_scale > reference.tail_scale
    faked = choose_mapping(fake_fit, reference)
    assert faked.mapping == "core" and faked.tail_excess_sigmas > 10
    # applied per track: core only is the uniform core ratio (1.5), the tail mapping is not
    detector = DetectorModel()
    data = replace(wider, a_mm=1.5 * reference.a_mm, b_mm_gev=1.5 * reference.b_mm_gev)
    calib = FunctionCalibration(d0=data, z0=data, n_events=1, reference_d0=reference, reference_z0=reference)
    prompt = _pulls(uds_events[:50], data, detector) < MAX_SHIFT_SIGMAS * 0.999  # (displaced ones: the cap's test)
    np.testing.assert_allclose(track_scales(uds_events[:50], calib, detector)["d0_resolution_scale"][prompt], 1.5,
                               rtol=1e-9)
    mapped = track_scales(uds_events[:50], replace(calib, d0=replace(data, mapping="function")),
                          detector)["d0_resolution_scale"]
    assert np.ptp(mapped) > 0.3


def test_function_fit_refuses_a_small_sample_with_numbers() -> None:
    abs_ip, ref, x = _sample(0.005, 0.010, 0.0, 3.0, 1500, seed=2)
    with pytest.raises(ResolutionFitError, match=r"1500 negative-side .* 4 parameters .* at least 2000 "
                                                 r"\(500 per parameter\)"):
        fit_resolution_function(abs_ip, ref, x, NOMINAL)


def test_calibration_refuses_a_generator_level_sample(uds_events: ak.Array) -> None:
    # perfect tracking: every prompt track starts at the vertex, so the fitted width collapses
    tracks = uds_events["tracks"]
    for name in ("x", "y", "z"):
        tracks = ak.with_field(tracks, tracks[name] * 1e-3, name)
    perfect = ak.with_field(uds_events, tracks, "tracks")
    with pytest.raises(CalibrationError, match=r"calibration refused: [89]\d% of the \d+ d0 values are below 0.01 "
                                               r"of the resolution .*generator-level.*calibration=none"):
        resolve_calibration("auto", perfect, DetectorModel())
    # a fit far from the reference is refused too (a much wider sample)
    wide = ResolutionFunction(0.05, 0.10)
    with pytest.raises(ResolutionFitError, match=r"fitted z0 resolution is 10 times .* outside the plausible"):
        check_plausible(wide, NOMINAL, "z0")
    abs_ip, ref, _ = _sample(0.005, 0.010, 0.0, 3.0, 3000, seed=5)
    check_smeared(abs_ip, ref)  # a smeared sample passes
    with pytest.raises(CalibrationError, match="outside the plausible"):
        resolve_calibration("scale", perfect, DetectorModel())


def test_relative_calibration_is_one_on_the_training_sample(uds_events: ak.Array) -> None:
    detector = DetectorModel()
    training = fit_function_calibration(uds_events, detector).fitted_only()
    calib = resolve_calibration("auto", uds_events, detector, reference=training)
    assert isinstance(calib, FunctionCalibration)
    assert calib.d0.mapping == calib.z0.mapping == "core" and calib.d0.tail_excess_sigmas == 0.0
    assert calib.d0_scale == pytest.approx(1.0, abs=1e-9) and calib.z0_scale == pytest.approx(1.0, abs=1e-9)
    scales = track_scales(uds_events, calib, detector)
    for values in scales.values():
        assert np.max(np.abs(values - 1.0)) < 1e-9
    # ... so every significance is the uncalibrated one
    plain = TrackQuantities(uds_events, detector).signed_d0_sig
    calibrated = TrackQuantities(apply_calibration(uds_events, calib, detector), detector).signed_d0_sig
    np.testing.assert_allclose(calibrated, plain, rtol=2e-3)
    # and a sample 1.5x worse in d0 is mapped back by 1.5 at the core (a pure-Gaussian reference)
    worse = calib.relative_to(None, detector)
    wider = FunctionCalibration(
        d0=ResolutionFunction(1.5 * training.d0.a_mm, 1.5 * training.d0.b_mm_gev), z0=training.z0,
        n_events=1, reference_d0=ResolutionFunction(training.d0.a_mm, training.d0.b_mm_gev),
        reference_z0=worse.reference_z0)
    assert wider.d0_scale == pytest.approx(1.5)


def test_calibration_moves_a_track_at_most_three_width_differences(uds_events: ak.Array) -> None:
    # d0 1.5x worse than the reference, z0 as the reference: the core ratio maps prompt tracks, but a
    # decay track (far beyond the core) moves by at most MAX_SHIFT_SIGMAS x the widths' difference
    detector = DetectorModel()
    ref = nominal_function(detector.d0_a_mm, detector.d0_b_mm_gev)
    data = replace(ref, a_mm=1.5 * ref.a_mm, b_mm_gev=1.5 * ref.b_mm_gev, mapping="core")
    z0_ref = nominal_function(detector.z0_a_mm, detector.z0_b_mm_gev)
    calib = FunctionCalibration(d0=data, z0=replace(z0_ref, mapping="core"), n_events=1, reference_d0=ref,
                                reference_z0=z0_ref)
    q = TrackQuantities(uds_events, detector)
    scale = track_scales(uds_events, calib, detector)["d0_resolution_scale"]
    pulls = _pulls(uds_events, data, detector)
    prompt, decay = pulls < 0.999 * MAX_SHIFT_SIGMAS, pulls > 1.001 * MAX_SHIFT_SIGMAS
    assert prompt.mean() > 0.8 and decay.sum() > 100
    np.testing.assert_allclose(scale[prompt], 1.5, rtol=1e-9)
    moved_mm = np.abs(q.d0) - np.abs(q.d0) / scale
    cap_mm = MAX_SHIFT_SIGMAS * 0.5 * q.sigma_d0  # 3 x (1.5 - 1) reference widths
    np.testing.assert_allclose(moved_mm[decay], cap_mm[decay], rtol=1e-6)
    assert np.all((scale[decay] > 1.0) & (scale[decay] < 1.5))
    # applied to the positions: decay tracks keep all but the cap, z0 is untouched
    after = TrackQuantities(apply_function_calibration(uds_events, calib, detector), detector)
    np.testing.assert_allclose(np.abs(after.d0[decay]), np.abs(q.d0[decay]) - cap_mm[decay], rtol=1e-4)
    np.testing.assert_allclose(after.z0, q.z0, atol=1e-5)  # (float32 positions: 10 nm)


def test_tail_mapping_keeps_the_prompt_probability() -> None:
    data = ResolutionFunction(0.005, 0.010, tail_fraction=0.2, tail_scale=5.0)
    ref = ResolutionFunction(0.005, 0.010, tail_fraction=0.02, tail_scale=3.0)
    s = np.array([0.0, 0.5, 2.0, 6.0, 20.0, 200.0])
    ones = np.ones_like(s)
    scale = map_pulls(s, ones, ones, data, ref)
    mapped = s / scale
    np.testing.assert_allclose(ref.log_tail_probability(mapped)[1:], data.log_tail_probability(s)[1:], rtol=1e-3)
    assert np.all(np.diff(mapped) > 0) and np.all(scale[2:] > 1.0)  # more tails in the data: shrunk


def test_core_calibration_maps_only_the_core(uds_events: ak.Array) -> None:
    detector = DetectorModel()
    data = ResolutionFunction(0.0075, 0.015, tail_fraction=0.2, tail_scale=5.0)
    ref = ResolutionFunction(0.005, 0.010, tail_fraction=0.05, tail_scale=3.0)
    calib = FunctionCalibration(d0=data, z0=data, n_events=1, reference_d0=ref, reference_z0=ref)
    training = FunctionCalibration(d0=ref, z0=ref, n_events=1)
    core = track_scales(uds_events[:50], calib.relative_to(training, detector, mapping="core"), detector)
    prompt = _pulls(uds_events[:50], data, detector) < MAX_SHIFT_SIGMAS * 0.999
    np.testing.assert_allclose(core["d0_resolution_scale"][prompt], 1.5, rtol=1e-9)
    mapped = track_scales(uds_events[:50], calib, detector)["d0_resolution_scale"]
    assert mapped.max() > 2.0 and np.ptp(mapped) > 0.5  # the tail mapping depends on each significance


def test_detector_augmentation_is_reproducible_and_does_each_kind(uds_events: ak.Array) -> None:
    events = uds_events[:300]
    settings = ResolutionAugmentation(enabled=True, scale_max=1.6, shape_spread=0.4, tail_fraction_max=0.1,
                                      bias_um_max=3.0, drop_max=0.05, fakes_per_event_max=0.5, seed=7)
    a, b = augment_events(events, settings), augment_events(events, settings)
    c = augment_events(events, ResolutionAugmentation(**{**settings.to_dict(), "seed": 8}))
    for name in a["tracks"].fields:
        np.testing.assert_array_equal(ak.flatten(a["tracks"][name]), ak.flatten(b["tracks"][name]))
    assert not np.array_equal(ak.flatten(a["tracks"]["x"]), ak.flatten(c["tracks"]["x"]))
    n_fakes = int(ak.sum(a["tracks"]["origin"] == FAKE_ORIGIN))
    assert 30 <= n_fakes <= 120  # mean 0.25 per event
    n_lost = int(ak.sum(ak.num(events["tracks"]))) - (int(ak.sum(ak.num(a["tracks"]))) - n_fakes)
    assert 0.01 * ak.sum(ak.num(events["tracks"])) < n_lost < 0.045 * ak.sum(ak.num(events["tracks"]))
    # misalignment alone: one d0 shift per event, within +-3 um
    bias = ResolutionAugmentation(enabled=True, scale_max=1.0, bias_um_max=3.0, seed=1)
    moved = augment_events(events, bias)
    shift = (TrackQuantities(moved).d0 - TrackQuantities(events).d0).reshape(-1)
    per_event = ak.unflatten(shift, ak.num(events["tracks"]))
    spread = ak.to_numpy(ak.max(per_event, axis=1) - ak.min(per_event, axis=1))
    assert np.nanmax(spread) < 1e-5 and 1e-3 < np.nanmax(np.abs(shift)) <= 3.0001e-3


def test_scale_factors_at_the_nominal_cuts() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 4000)
    logits = rng.normal(0.0, 1.0, (len(labels), 3))
    logits[np.arange(len(labels)), labels] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    same = scale_factors(probs, labels, probs, labels)
    assert [sf.ratio(sf.tagger)[0] for sf in same] == pytest.approx([1.0, 1.0, 1.0])
    # a shifted sample whose b events lost half their b probability: fewer b tags at the same cut
    shifted = probs.copy()
    shifted[labels == 2, 2] *= 0.5
    shifted /= shifted.sum(1, keepdims=True)
    sf = scale_factors(probs, labels, shifted, labels)[0]
    assert sf.tagger == "b" and sf.nominal["b"].value == pytest.approx(0.7, abs=1e-3)
    ratio, error = sf.ratio("b")
    assert ratio < 0.95 and 0.005 < error < 0.03
    assert sf.ratio("c")[0] == pytest.approx(1.0) and sf.ratio("uds")[0] == pytest.approx(1.0)
