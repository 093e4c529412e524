"""Tests of flavortag.features on hand-built events with hand-computed answers."""

from __future__ import annotations

import math
import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.detector import PION_MASS_GEV, DetectorModel
from flavortag.features import (
    EVENT_FEATURE_GROUPS,
    EVENT_FEATURE_SPECS,
    EVENT_FEATURES,
    FEATURE_GROUPS,
    TRACK_FEATURE_GROUPS,
    TRACK_FEATURE_SPECS,
    TRACK_FEATURES,
    compute_features,
    event_features,
    expand_feature_names,
    log10_joint_probability,
    log_prompt_probability,
    select_features,
    track_features,
)
from flavortag.features.probability import log_erfc

FIELDS = ("E", "px", "py", "pz", "x", "y", "z")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"


def pion(px, py, pz, x=0.0, y=0.0, z=0.0):
    """A track row with the pion-mass energy."""
    e = math.sqrt(px * px + py * py + pz * pz + PION_MASS_GEV**2)
    return (e, px, py, pz, x, y, z)


def make_events(axes, track_lists, labels=None):
    """Events in the contract layout from axes and lists of (E, px, py, pz, x, y, z) rows."""
    counts = np.array([len(t) for t in track_lists], dtype=np.int64)
    rows = np.array([r for t in track_lists for r in t], dtype=np.float64).reshape(-1, 7)
    tracks = ak.zip({f: rows[:, i].astype(np.float32) for i, f in enumerate(FIELDS)})
    axis = ak.to_regular(ak.Array(np.asarray(axes, dtype=np.float32)), axis=1)
    if labels is None:
        labels = np.zeros(len(counts), dtype=np.int32)
    return ak.zip(
        {"axis": axis, "tracks": ak.unflatten(tracks, counts), "label": np.asarray(labels, np.int32)},
        depth_limit=1,
    )


def flat(array, name):
    return ak.to_numpy(ak.flatten(array[name], axis=1)).astype(np.float64)


def random_events(n, seed, mean_tracks=12, displaced_fraction=0.2):
    """Random events; a fraction of tracks displaced along the axis (b-like), the rest prompt."""
    rng = np.random.default_rng(seed)
    det = DetectorModel()
    counts = rng.poisson(mean_tracks, n)
    total = counts.sum()
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    track_axis = np.repeat(axis, counts, axis=0)
    p = rng.normal(size=(total, 3)) * 0.4 + track_axis * rng.choice([-1, 1], total)[:, None] * 3
    p_abs = np.linalg.norm(p, axis=1)
    pt = np.hypot(p[:, 0], p[:, 1])
    sigma = det.sigma_d0_mm(p_abs, pt / p_abs)
    d0 = rng.normal(size=total) * sigma
    perp = np.stack([p[:, 1], -p[:, 0], np.zeros(total)], axis=1) / pt[:, None]
    pos = perp * d0[:, None]
    pos[:, 2] = rng.normal(size=total) * det.sigma_z0_mm(p_abs, pt / p_abs)
    displaced = rng.random(total) < displaced_fraction
    pos[displaced] += np.sign(np.sum(p * track_axis, 1))[displaced, None] * track_axis[displaced] * 2.0
    e = np.sqrt(p_abs**2 + PION_MASS_GEV**2)
    rows = np.column_stack([e, p, pos])
    tracks, start = [], 0
    for c in counts:
        tracks.append([tuple(r) for r in rows[start:start + c]])
        start += c
    return make_events(axis, tracks)


# ---- impact parameters, signs and significances --------------------------------------------
def test_d0_z0_and_lifetime_sign_hand_computed():
    # PCA (0.1, 0) mm, p along +y: d0 = x py / pT = 0.1 mm; z0 = z = 0.2 mm.
    track = (2.0, 0.0, 2.0, 0.0, 0.1, 0.0, 0.2)
    events = make_events([[1, 0, 0], [-1, 0, 0]], [[track], [track]])
    tf = track_features(events, names=["d0_mm", "z0_mm", "signed_d0_mm", "hemisphere"])
    np.testing.assert_allclose(flat(tf, "d0_mm"), [0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "z0_mm"), [0.2, 0.2], rtol=1e-6)
    # p.axis = 0 counts as the + hemisphere: axis +x gives a positive sign, -x a negative one
    np.testing.assert_allclose(flat(tf, "signed_d0_mm"), [0.1, -0.1], rtol=1e-6)
    np.testing.assert_array_equal(flat(tf, "hemisphere"), [1, 1])


def test_straight_line_extrapolation_from_reference_point():
    # reference point (0.1, 0.3, 0.5), p = (0, 2, 1): d0 = (0.1*2 - 0.3*0)/2 = 0.1,
    # z0 = 0.5 - (0.1*0 + 0.3*2) * 1 / 4 = 0.35
    events = make_events([[1, 0, 0]], [[(3.0, 0.0, 2.0, 1.0, 0.1, 0.3, 0.5)]])
    tf = track_features(events, names=["d0_mm", "z0_mm"])
    np.testing.assert_allclose(flat(tf, "d0_mm"), [0.1], rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "z0_mm"), [0.35], rtol=1e-6)


@pytest.mark.parametrize(
    ("axis", "d0_sign", "z0_sign", "hemisphere"),
    [
        ((1, 0, 1), 1, 1, 1),     # axis into the track's side in x and z
        ((-1, 0, 1), -1, 1, 1),   # PCA behind the axis in xy
        ((1, 0, -1), -1, 1, -1),  # p.axis < 0: oriented axis is (-1, 0, 1)
        ((-1, 0, -1), 1, 1, -1),  # p.axis < 0: oriented axis is (1, 0, 1)
        ((1, 1, -1), 1, -1, 1),   # oriented axis points to -z: z0 > 0 is lifetime-negative
    ],
)
def test_lifetime_signs_with_oriented_axis(axis, d0_sign, z0_sign, hemisphere):
    a = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    # PCA (0.1, 0, 0.2), p = (0, 2, 1)
    events = make_events([a], [[(3.0, 0.0, 2.0, 1.0, 0.1, 0.0, 0.2)]])
    tf = track_features(events, names=["signed_d0_mm", "signed_z0_mm", "hemisphere"])
    assert flat(tf, "hemisphere")[0] == hemisphere
    np.testing.assert_allclose(flat(tf, "signed_d0_mm"), [0.1 * d0_sign], rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "signed_z0_mm"), [0.2 * z0_sign], rtol=1e-6)


def test_track_on_other_side_of_beam_gets_negative_sign():
    # PCA (-0.1, 0): d0 = -0.1 (geometric), behind the +x axis -> lifetime sign negative
    events = make_events([[1, 0, 0]], [[(2.0, 0.0, 2.0, 0.0, -0.1, 0.0, 0.0)]])
    tf = track_features(events, names=["d0_mm", "signed_d0_mm"])
    np.testing.assert_allclose(flat(tf, "d0_mm"), [-0.1], rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "signed_d0_mm"), [-0.1], rtol=1e-6)


def test_significances_use_detector_formula():
    # p = (0, 2, 1): |p| = sqrt 5, sin theta = 2 / sqrt 5
    events = make_events([[1, 0, 1]], [[(3.0, 0.0, 2.0, 1.0, 0.1, 0.0, 0.2)]])
    p, s = math.sqrt(5.0), 2.0 / math.sqrt(5.0)
    sigma_ild = math.hypot(0.005, 0.010 / (p * s**1.5))
    names = ["signed_d0_sig", "signed_z0_sig", "ip3d_sig", "signed_ip3d_sig", "sigma_d0_mm",
             "signed_d0_sig_log", "signed_d0_log1p_um"]
    tf = track_features(events, names=names)
    np.testing.assert_allclose(flat(tf, "sigma_d0_mm"), [sigma_ild], rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "signed_d0_sig"), [0.1 / sigma_ild], rtol=1e-5)
    np.testing.assert_allclose(flat(tf, "signed_z0_sig"), [0.2 / sigma_ild], rtol=1e-5)
    np.testing.assert_allclose(flat(tf, "ip3d_sig"), [math.hypot(0.1, 0.2) / sigma_ild], rtol=1e-5)
    np.testing.assert_allclose(flat(tf, "signed_ip3d_sig"), flat(tf, "ip3d_sig"), rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "signed_d0_sig_log"), [math.log1p(0.1 / sigma_ild)], rtol=1e-5)
    np.testing.assert_allclose(flat(tf, "signed_d0_log1p_um"), [math.log1p(100.0)], rtol=1e-5)

    # another detector: its constants are used; the smearing scale is not
    det = DetectorModel(d0_a_mm=0.02, d0_b_mm_gev=0.03, ip_resolution_scale=3.0)
    sigma_other = math.hypot(0.02, 0.03 / (p * s**1.5))
    tf2 = track_features(events, det, names=["signed_d0_sig"])
    np.testing.assert_allclose(flat(tf2, "signed_d0_sig"), [0.1 / sigma_other], rtol=1e-5)


# ---- kinematics relative to the axis -------------------------------------------------------
def test_kinematics_relative_to_axis():
    tracks = [
        (1.0, 1.0, 1.0, 0.0, 0, 0, 0),    # + hemisphere, 45 deg
        (3.0, 3.0, 0.0, 0.0, 0, 0, 0),    # + hemisphere, along the axis
        (2.0, -1.0, 1.0, 0.0, 0, 0, 0),   # - hemisphere, 45 deg from -x
    ]
    events = make_events([[1, 0, 0]], [tracks])
    names = ["log_e_gev", "log_pt_gev", "log_e_frac_hemi", "log_p_frac_hemi", "angle_axis_rad",
             "hemisphere", "ptrel_gev", "dphi_axis_rad", "dtheta_axis_rad", "cos_theta"]
    tf = track_features(events, names=names)
    np.testing.assert_allclose(flat(tf, "log_e_gev"), np.log([1, 3, 2]), rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "log_pt_gev"), np.log([math.sqrt(2), 3, math.sqrt(2)]),
                               rtol=1e-6)
    np.testing.assert_allclose(flat(tf, "log_e_frac_hemi"), np.log([0.25, 0.75, 1.0]), atol=1e-6)
    p_sum = math.sqrt(2) + 3
    np.testing.assert_allclose(flat(tf, "log_p_frac_hemi"),
                               np.log([math.sqrt(2) / p_sum, 3 / p_sum, 1.0]), atol=1e-6)
    np.testing.assert_allclose(flat(tf, "angle_axis_rad"), [math.pi / 4, 0, math.pi / 4], atol=1e-6)
    np.testing.assert_array_equal(flat(tf, "hemisphere"), [1, 1, -1])
    np.testing.assert_allclose(flat(tf, "ptrel_gev"), [1, 0, 1], atol=1e-6)
    # phi(p) - phi(oriented axis): pi/4 - 0, 0, 3pi/4 - pi
    np.testing.assert_allclose(flat(tf, "dphi_axis_rad"), [math.pi / 4, 0, -math.pi / 4], atol=1e-6)
    np.testing.assert_allclose(flat(tf, "dtheta_axis_rad"), [0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(flat(tf, "cos_theta"), [0, 0, 0], atol=1e-6)


def test_output_structure_and_dtype_follow_events():
    events = random_events(40, seed=1)
    tf = track_features(events)
    assert tf.fields == list(TRACK_FEATURES)
    assert ak.all(ak.num(tf, axis=1) == ak.num(events.tracks, axis=1))
    for name in TRACK_FEATURES:
        assert ak.flatten(tf[name]).to_numpy().dtype == np.float32


def test_subset_of_names_gives_same_values_as_full_list():
    events = random_events(30, seed=2)
    full = track_features(events)
    part = track_features(events, names=["signed_z0_sig_log", "log_e_gev"])
    for name in part.fields:
        np.testing.assert_array_equal(flat(part, name), flat(full, name))
    ef_full = event_features(events)
    ef_part = event_features(events, names=["thrust", "hem2_d0sig1_log"])
    idx = [EVENT_FEATURES.index("thrust"), EVENT_FEATURES.index("hem2_d0sig1_log")]
    np.testing.assert_array_equal(ef_part, ef_full[:, idx])
    columns, offsets, matrix = compute_features(events, TRACK_FEATURES, EVENT_FEATURES)
    np.testing.assert_array_equal(matrix, ef_full)
    np.testing.assert_array_equal(columns[:, 0], flat(full, TRACK_FEATURES[0]))


def test_var_length_axis_is_accepted():
    events = random_events(10, seed=3)
    as_var = ak.with_field(events, ak.from_regular(events.axis, axis=1), "axis")
    np.testing.assert_array_equal(event_features(as_var), event_features(events))


# ---- event features ------------------------------------------------------------------------
def test_thrust():
    back_to_back = [pion(0, 0, 10), pion(0, 0, -10)]
    t_shape = [pion(3, 0, 0), pion(0, 4, 0)]
    events = make_events([[0, 0, 1], [1, 0, 0], [0, 0, 1]], [back_to_back, t_shape, []])
    np.testing.assert_allclose(event_features(events, names=["thrust"])[:, 0], [1.0, 3 / 7, 0.0],
                               rtol=1e-6)


def test_displaced_mass_and_hemisphere_features():
    axis = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    tracks = [
        pion(1, 0, 0, y=0.5),      # PCA (0, 0.5): lifetime-positive, |d0| = 0.5 mm
        pion(0, 1, 0, x=0.5),      # PCA (0.5, 0): lifetime-positive
        pion(2, 2, 0),             # prompt, d0 = 0
    ]
    events = make_events([axis], [tracks])
    names = ["n_tracks", "n_tracks_d0sig_gt3", "hem1_n_displaced", "hem1_displaced_mass_gev",
             "hem1_displaced_mass_corr_gev", "hem1_displaced_e_frac", "hem1_d0sig1", "hem1_d0sig2",
             "hem1_d0sig3", "hem2_d0sig1", "hem2_d0sig1_log", "hem2_displaced_mass_gev",
             "hem2_n_tracks", "hem2_log10_jprob_d0", "max_displaced_mass_gev"]
    f = dict(zip(names, event_features(events, names=names)[0].astype(np.float64)))
    m2 = PION_MASS_GEV**2
    mass = math.sqrt(2 + 4 * m2)          # (2 E)^2 - |(1, 1, 0)|^2 with E^2 = 1 + m^2
    e_pair = 2 * math.sqrt(1 + m2)
    sigma = math.hypot(0.005, 0.010 / 1.0)  # p = 1, sin theta = 1
    assert f["n_tracks"] == 3
    assert f["n_tracks_d0sig_gt3"] == 2
    assert f["hem1_n_displaced"] == 2
    assert f["hem1_displaced_mass_gev"] == pytest.approx(mass, rel=1e-5)
    assert f["max_displaced_mass_gev"] == pytest.approx(mass, rel=1e-5)
    # the pair's momentum (1, 1, 0) lies along the axis: no pT correction
    assert f["hem1_displaced_mass_corr_gev"] == pytest.approx(mass, rel=1e-4)
    assert f["hem1_displaced_e_frac"] == pytest.approx(e_pair / (e_pair + math.sqrt(8 + m2)),
                                                       rel=1e-5)
    assert f["hem1_d0sig1"] == pytest.approx(0.5 / sigma, rel=1e-4)
    assert f["hem1_d0sig2"] == pytest.approx(0.5 / sigma, rel=1e-4)
    assert f["hem1_d0sig3"] == pytest.approx(0.0, abs=1e-6)
    # empty second hemisphere: documented defaults
    assert f["hem2_n_tracks"] == 0
    assert f["hem2_d0sig1"] == -5.0
    assert f["hem2_d0sig1_log"] == pytest.approx(-math.log(6.0), rel=1e-6)
    assert f["hem2_displaced_mass_gev"] == 0.0
    assert f["hem2_log10_jprob_d0"] == 0.0


def test_far_tracks_fail_the_lifetime_selection():
    # all lifetime-positive (PCA along +y, axis (1, 1, 0)): |d0| = 0.5 mm passes, |d0| = 5 mm
    # (a K0S-like daughter) and |z0| = 20 mm fail and enter no significance-based feature
    axis = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    tracks = [pion(1, 0, 0, y=0.5), pion(1, 0, 0, y=5.0), pion(1, 0, 0.2, y=0.5, z=20.0)]
    slight = [pion(1, 0, 0, y=0.02), pion(1, 0, 0, y=5.0)]  # one lifetime track at 1.8 sigma
    events = make_events([axis, axis], [tracks, slight])
    names = ["n_tracks", "n_tracks_far", "n_tracks_d0sig_gt3", "n_tracks_ip3dsig_gt3",
             "hem1_n_displaced", "hem1_d0sig1", "hem1_d0sig2", "hem1_displaced_mass_gev",
             "log10_jprob_d0"]
    values = event_features(events, names=names).astype(np.float64)
    f, g = dict(zip(names, values[0])), dict(zip(names, values[1]))
    sigma = math.hypot(0.005, 0.010)
    assert (f["n_tracks"], f["n_tracks_far"]) == (3, 2)
    assert f["n_tracks_d0sig_gt3"] == f["n_tracks_ip3dsig_gt3"] == f["hem1_n_displaced"] == 1
    assert f["hem1_d0sig1"] == pytest.approx(0.5 / sigma, rel=1e-4)
    assert f["hem1_d0sig2"] == -5.0
    assert f["hem1_displaced_mass_gev"] == pytest.approx(PION_MASS_GEV, rel=1e-5)
    assert (g["n_tracks_far"], g["n_tracks_d0sig_gt3"], g["hem1_d0sig2"]) == (1, 0, -5.0)
    expected = math.log10(math.erfc(0.02 / sigma / math.sqrt(2)))
    assert g["log10_jprob_d0"] == pytest.approx(expected, rel=1e-4)


def test_corrected_mass_adds_transverse_momentum():
    # one displaced track p = (1, 1, 0) at 45 deg to the x axis: pT to the axis = 1
    events = make_events([[1, 0, 0]], [[pion(1, 1, 0, x=0.5, y=-0.5)]])
    f = event_features(events, names=["hem1_displaced_mass_gev", "hem1_displaced_mass_corr_gev"])
    m = PION_MASS_GEV
    np.testing.assert_allclose(f[0], [m, math.sqrt(m * m + 1) + 1], rtol=1e-5)


def test_hemispheres_ordered_by_leading_significance():
    # - hemisphere (axis +x): one track p = (-1, 1, 0) with PCA (-0.3, -0.3), lifetime-positive
    # (PCA . (-1, 0) > 0), |d0| = 0.3 sqrt 2; + hemisphere: two prompt tracks
    displaced_minus = pion(-1, 1, 0, x=-0.3, y=-0.3)
    prompt_plus = [pion(2, 0.5, 0), pion(3, -0.5, 0)]
    sigma = math.hypot(0.005, 0.010 / math.sqrt(2))
    events = make_events([[1, 0, 0], [-1, 0, 0], [1, 0, 0]],
                         [[displaced_minus, *prompt_plus], [displaced_minus, *prompt_plus],
                          [*prompt_plus, displaced_minus]])
    names = ["hem1_d0sig1", "hem2_d0sig1", "hem1_n_tracks", "hem2_n_tracks", "hem2_d0sig3"]
    f = event_features(events, names=names).astype(np.float64)
    expected = [0.3 * math.sqrt(2) / sigma, 0.0, 1, 2, -5]
    for row in f:
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6)


def test_event_features_symmetric_under_axis_flip():
    events = random_events(300, seed=4)
    flipped = ak.with_field(events, -events.axis, "axis")
    names = list(EVENT_FEATURE_SPECS)
    np.testing.assert_allclose(event_features(flipped, names=names),
                               event_features(events, names=names), rtol=1e-6, atol=1e-6)
    lead = event_features(events, names=["hem1_d0sig1", "hem2_d0sig1"])
    assert np.all(lead[:, 0] >= lead[:, 1])


def test_displaced_tracks_are_lifetime_positive_and_raise_counts():
    events = random_events(400, seed=5, displaced_fraction=0.3)
    prompt = random_events(400, seed=5, displaced_fraction=0.0)
    names = ["n_tracks_d0sig_gt3", "hem1_log10_jprob_d0", "max_displaced_mass_gev"]
    disp, prom = event_features(events, names=names), event_features(prompt, names=names)
    assert disp[:, 0].mean() > 5 * prom[:, 0].mean()
    assert disp[:, 1].mean() < prom[:, 1].mean() - 3
    tf = track_features(prompt, names=["signed_d0_sig"])
    sig = flat(tf, "signed_d0_sig")
    # prompt tracks: unit-Gaussian significances, either sign equally often
    assert abs(np.mean(sig > 0) - 0.5) < 0.03
    assert np.std(sig) == pytest.approx(1.0, abs=0.05)


# ---- joint probability ---------------------------------------------------------------------
def test_log_erfc_matches_math_erfc():
    z = np.linspace(0, 8, 81)
    expected = np.log([math.erfc(v) for v in z])
    np.testing.assert_allclose(log_erfc(z), expected, rtol=2e-6, atol=2e-7)
    assert np.isfinite(log_erfc(np.array([50.0, 1e4]))).all()
    assert log_erfc(np.array([1e4]))[0] < -1e7


def test_joint_probability_hand_computed():
    r1, r2 = math.erfc(1 / math.sqrt(2)), math.erfc(2 / math.sqrt(2))
    pi = r1 * r2
    expected = [math.log10(r2), math.log10(pi * (1 - math.log(pi))), 0.0]
    log_r = log_prompt_probability(np.array([2.0, 1.0, 2.0]))
    got = log10_joint_probability(log_r, np.array([0, 1, 1]), 3)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # a hemisphere of very displaced tracks stays finite (clipped at the floor)
    huge = log10_joint_probability(log_prompt_probability(np.array([300.0, 400.0])),
                                   np.array([0, 0]), 1)
    assert huge[0] == -30.0


def test_joint_probability_of_prompt_tracks_is_uniform():
    rng = np.random.default_rng(7)
    n_groups = 20000
    n_per = rng.integers(1, 9, n_groups)
    group = np.repeat(np.arange(n_groups), n_per)
    sig = np.abs(rng.normal(size=group.size))
    prob = 10 ** log10_joint_probability(log_prompt_probability(sig), group, n_groups)
    quantiles = np.quantile(prob, [0.1, 0.25, 0.5, 0.75, 0.9])
    np.testing.assert_allclose(quantiles, [0.1, 0.25, 0.5, 0.75, 0.9], atol=0.015)
    # and with many tracks in a group (the sum runs to k = N - 1)
    group40 = np.repeat(np.arange(2000), 40)
    prob40 = 10 ** log10_joint_probability(
        log_prompt_probability(np.abs(rng.normal(size=group40.size))), group40, 2000)
    assert abs(prob40.mean() - 0.5) < 0.03


def test_event_joint_probability_uniform_for_prompt_events():
    events = random_events(3000, seed=8, mean_tracks=8, displaced_fraction=0.0)
    f = event_features(events, names=["log10_jprob_d0", "n_tracks"])
    has_tracks = f[:, 1] > 0
    prob = 10 ** f[has_tracks, 0].astype(np.float64)
    # events whose tracks are all lifetime-negative get P = 1 (few at 8 tracks)
    prob = prob[prob < 1]
    np.testing.assert_allclose(np.quantile(prob, [0.25, 0.5, 0.75]), [0.25, 0.5, 0.75], atol=0.04)


# ---- empty events, names, documentation ---------------------------------------------------
def test_empty_events_and_degenerate_tracks_are_finite():
    tracks = [
        [],
        [pion(0, 0, 5, z=0.1)],                      # along the beam: pT = 0
        [(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)],       # zero momentum
        [pion(1, 0, 0)],
    ]
    events = make_events([[0, 0, 1], [0, 0, 1], [1, 0, 0], [0, 0, 0]], tracks)
    ef = event_features(events, names=list(EVENT_FEATURE_SPECS))
    assert ef.dtype == np.float32 and ef.shape == (4, len(EVENT_FEATURE_SPECS))
    assert np.isfinite(ef).all()
    tf = track_features(events, names=list(TRACK_FEATURE_SPECS))
    for name in TRACK_FEATURE_SPECS:
        assert np.isfinite(flat(tf, name)).all(), name
    empty = dict(zip(EVENT_FEATURE_SPECS, ef[0]))
    assert empty["n_tracks"] == 0 and empty["thrust"] == 0
    assert empty["hem1_d0sig1"] == -5 and empty["hem2_d0sig3"] == -5
    assert empty["hem1_log10_jprob_d0"] == 0 and empty["max_displaced_mass_gev"] == 0
    none = make_events(np.zeros((0, 3)), [])
    assert event_features(none).shape == (0, len(EVENT_FEATURES))
    assert len(track_features(none)) == 0


def test_unknown_names_list_known_ones():
    events = random_events(3, seed=9)
    with pytest.raises(ValueError, match=r"unknown track features \['nope'\].*log_e_gev"):
        track_features(events, names=["log_e_gev", "nope"])
    with pytest.raises(ValueError, match=r"unknown event features \['bad'\].*thrust"):
        event_features(events, names=["bad"])


def test_groups_and_select_features():
    grouped = [n for names in FEATURE_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(list(TRACK_FEATURE_SPECS) + list(EVENT_FEATURE_SPECS))
    assert set(FEATURE_GROUPS) == set(TRACK_FEATURE_GROUPS) | set(EVENT_FEATURE_GROUPS)
    assert 14 <= len(TRACK_FEATURES) <= 18
    no_ip = select_features("track", drop_groups=["impact_parameters", "ip_significances"])
    assert no_ip == tuple(n for n in TRACK_FEATURES if "d0" not in n and "z0" not in n and "ip3d" not in n)
    only_jp = select_features("event", groups=["joint_probability"], add=["min_log10_jprob_d0"])
    assert only_jp == tuple(n for n in EVENT_FEATURES if "jprob" in n) + ("min_log10_jprob_d0",)
    assert "thrust" not in select_features("event", drop=["thrust"])
    assert set(EVENT_FEATURE_GROUPS) >= {"multiplicity", "joint_probability", "displaced_tracks"}
    with pytest.raises(ValueError, match="unknown track feature groups"):
        select_features("track", groups=["nonsense"])


def test_expand_feature_names_from_config_entries():
    assert expand_feature_names("track", None) == TRACK_FEATURES
    names = expand_feature_names("track", ["log_e_gev", "ip_significances", "signed_d0_sig"])
    assert names == ("log_e_gev",) + TRACK_FEATURE_GROUPS["ip_significances"]
    assert expand_feature_names("event", ["event_shape"]) == ("thrust", "e_visible_gev")
    with pytest.raises(ValueError, match="unknown event feature or group 'kinematics'"):
        expand_feature_names("event", ["kinematics"])


def test_every_feature_documented():
    text = DOCS.read_text()
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| ([a-z_]+) \|", text, flags=re.MULTILINE)
    specs = {**TRACK_FEATURE_SPECS, **EVENT_FEATURE_SPECS}
    assert sorted(name for name, _ in rows) == sorted(specs)
    for name, group in rows:
        assert specs[name].group == group, name
