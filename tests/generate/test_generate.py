"""Physics and numerics of the Pythia 8 generator + detector model (flavortag.generate)."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag.detector import PION_MASS_GEV, DetectorModel
from flavortag.generate import generate_events, plan_chunks, thrust_axis
from flavortag.generate.events import ChunkGenerator
from flavortag.generate.pythia_setup import CHUNKS_PER_STREAM, MAX_PYTHIA_SEED, pythia_seed
from flavortag.generate.record import heavy_ancestor_bits, heavy_hadron_bits, record_from_batch
from flavortag.generate.thrust import thrust_exact

N_EVENTS = 400
PERFECT = DetectorModel(name="perfect", smear=False, cos_theta_max=1.0, pt_min_gev=0.0, track_efficiency=1.0)
# Z -> hadrons branching fractions by class (PDG: R_b = 0.2163, R_c = 0.1721).
Z_FRACTIONS = {"uds": 1 - 0.2163 - 0.1721, "cc": 0.1721, "bb": 0.2163}


@pytest.fixture(scope="module")
def ild_events():
    return {f: generate_events(f, N_EVENTS, seed=11) for f in ("uds", "cc", "bb")}


@pytest.fixture(scope="module")
def truth_events():
    return {f: generate_events(f, N_EVENTS, seed=12, detector=PERFECT) for f in ("uds", "cc", "bb")}


def _flat(events, field):
    return ak.to_numpy(ak.flatten(events["tracks"][field])).astype(np.float64)


def _impact_parameters(events):
    px, py, pz, x, y, z = (_flat(events, f) for f in ("px", "py", "pz", "x", "y", "z"))
    pt2 = px**2 + py**2
    d0 = (x * py - y * px) / np.sqrt(pt2)
    z0 = z - (x * px + y * py) * pz / pt2
    p = np.sqrt(pt2 + pz**2)
    return d0, z0, p, np.sqrt(pt2) / p


# --- seeds, codes, ancestry -------------------------------------------------------------


def test_pythia_seeds_distinct_and_in_range():
    seeds = [pythia_seed(7, f, k) for f in ("uds", "cc", "bb") for k in range(-1, 2000)]
    assert len(set(seeds)) == len(seeds)
    assert min(seeds) >= 1 and max(seeds) < MAX_PYTHIA_SEED
    big = [pythia_seed(10**9, f, k) for f in ("uds", "bb") for k in (-1, CHUNKS_PER_STREAM - 2)]
    assert len(set(big)) == 4 and max(big) < MAX_PYTHIA_SEED
    with pytest.raises(ValueError):
        pythia_seed(1, "bb", CHUNKS_PER_STREAM)


def test_heavy_hadron_codes():
    codes = np.array([511, -521, 531, 5122, -5332, 541, 553, 100553, 10513,  # b
                      421, -411, 4122, 443, 10413, 4332,                     # c
                      211, -321, 310, 3122, 5, -4, 21, 5101, 4303, 22, 11, 2212, 90])
    bits = heavy_hadron_bits(codes)
    assert list(bits) == [2] * 9 + [1] * 6 + [0] * 13


def test_ancestry_by_pointer_jumping_matches_full_mother_walk():
    """mother1-only pointer jumping == recursive walk over all mothers (Pythia's motherList rules)."""
    spec = plan_chunks("bb", 25, seed=3)[0]
    batch = ChunkGenerator().pythia_batch(spec)
    record = record_from_batch(batch)
    bits = heavy_ancestor_bits(record)
    checked = 0
    for k in range(len(batch)):
        prt = batch["prt"][k]
        m1, m2 = ak.to_numpy(prt["mother1"]), ak.to_numpy(prt["mother2"])
        own = heavy_hadron_bits(ak.to_numpy(prt["id"]))
        status = ak.to_numpy(prt["status"])
        memo: dict[int, int] = {}

        def mothers(i, m1=m1, m2=m2):
            a, b = int(m1[i]), int(m2[i])
            if a == 0 and b == 0:
                return []
            if b == 0 or b == a:
                return [a]
            return list(range(a, b + 1)) if b > a else [a, b]

        def ancestors(i, own=own, memo=memo, mothers=mothers):
            if i not in memo:
                memo[i] = 0
                memo[i] = int(np.bitwise_or.reduce([own[m] | ancestors(m) for m in mothers(i)] or [0]))
            return memo[i]

        for i in np.flatnonzero(status > 0):
            assert ancestors(int(i)) == bits[record.offsets[k] + i], (k, i)
            checked += 1
    assert checked > 25 * 30
    # b events: most final particles have a b-hadron ancestor somewhere.
    assert np.mean(bits[record.status > 0] & 2 > 0) > 0.3


def test_charge_table_from_pythia_particle_data():
    from flavortag.generate.pythia_setup import make_pythia
    from flavortag.generate.record import ChargeTable

    table = ChargeTable(make_pythia("uds").particleData)
    codes = np.array([211, -211, 22, 2212, -11, 111, 321, -3312, 5])
    np.testing.assert_array_equal(table(codes), [1, -1, 0, 1, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(table(codes[::-1]), [0, 1, 1, 0, 1, 1, 0, -1, 1])  # cached path


# --- thrust -------------------------------------------------------------------------------


def test_thrust_matches_exact_enumeration_on_real_events(ild_events):
    events = ild_events["bb"][:150]
    momenta, offsets = [], [0]
    for ev in ak.to_list(events["tracks"]):
        hardest = sorted(ev, key=lambda t: -(t["px"] ** 2 + t["py"] ** 2 + t["pz"] ** 2))[:12]
        momenta += [(t["px"], t["py"], t["pz"]) for t in hardest]
        offsets.append(len(momenta))
    momenta, offsets = np.array(momenta), np.array(offsets)
    axis, thrust = thrust_axis(momenta, offsets)
    for k in range(len(offsets) - 1):
        exact_axis, exact_t = thrust_exact(momenta[offsets[k] : offsets[k + 1]])
        assert thrust[k] == pytest.approx(exact_t, abs=1e-9)
        assert abs(np.dot(axis[k], exact_axis)) == pytest.approx(1.0, abs=1e-9)


def _hardest(momenta: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` hardest tracks of each event (for exact enumeration)."""
    kept = [sorted(momenta[a:b], key=lambda t: -float(t @ t))[:n] for a, b in zip(offsets[:-1], offsets[1:])]
    return np.array([t for ev in kept for t in ev]), np.concatenate([[0], np.cumsum([len(ev) for ev in kept])])


def test_thrust_equals_exact_enumeration_on_the_real_edm4hep_file():
    """The quick search (float32 climbing, float64 finish) finds the exact thrust axis (up to sign, 1e-9)
    of the FCC Delphes ZH events, and the reader's axis is that search on all of an event's tracks."""
    from flavortag.io import read_events

    events = read_events(Path(__file__).resolve().parents[1] / "data/edm4hep/test_FCC_Winter2023.root")
    momenta = np.stack([_flat(events, c) for c in ("px", "py", "pz")], axis=1)
    offsets = np.concatenate([[0], np.cumsum(ak.num(events["tracks"]))])
    np.testing.assert_allclose(events["axis"].to_numpy(), thrust_axis(momenta, offsets)[0], atol=1e-6)
    momenta, offsets = _hardest(momenta, offsets, 12)  # 2**11 sign patterns per event
    axis, thrust = thrust_axis(momenta, offsets)
    for k in range(len(offsets) - 1):
        exact_axis, exact_t = thrust_exact(momenta[offsets[k] : offsets[k + 1]])
        assert thrust[k] == pytest.approx(exact_t, abs=1e-9)
        assert abs(np.dot(axis[k], exact_axis)) == pytest.approx(1.0, abs=1e-9)


def test_thrust_random_events_never_exceed_exact_and_mostly_equal():
    rng = np.random.default_rng(5)
    counts = rng.integers(2, 11, size=300)
    momenta = rng.normal(size=(counts.sum(), 3)) * rng.exponential(3.0, size=(counts.sum(), 1))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    axis, thrust = thrust_axis(momenta, offsets)
    exact = np.array([thrust_exact(momenta[a:b])[1] for a, b in zip(offsets[:-1], offsets[1:])])
    assert np.all(thrust <= exact + 1e-9)
    assert np.mean(np.isclose(thrust, exact, atol=1e-9)) > 0.97  # isotropic: the hardest case
    np.testing.assert_allclose(np.linalg.norm(axis, axis=1), 1.0, atol=1e-12)


def test_thrust_small_events():
    momenta = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]])
    axis, thrust = thrust_axis(momenta, np.array([0, 0, 1, 3]))
    np.testing.assert_allclose(axis[0], [0, 0, 1])  # no tracks: beam axis, T = 0
    assert thrust[0] == 0.0
    np.testing.assert_allclose(axis[1], [0.6, 0.8, 0.0])  # one track: its direction, T = 1
    assert thrust[1] == pytest.approx(1.0)
    np.testing.assert_allclose(axis[2], np.array([-1.0, 0.0, 1.0]) / np.sqrt(2))  # axis_z >= 0
    assert thrust[2] == pytest.approx(1.0)


# --- event content ------------------------------------------------------------------------


def test_event_layout_and_kinematics(ild_events):
    for label, (flavour, events) in enumerate(ild_events.items()):
        assert len(events) == N_EVENTS
        assert str(ak.type(events)).startswith(f"{N_EVENTS} * {{axis: 3 * float32, tracks: var * {{E: float32")
        assert set(events["label"].to_numpy()) == {label}, flavour
        tracks = events["tracks"]
        assert tracks.fields == ["E", "px", "py", "pz", "x", "y", "z", "charge", "vx", "vy", "vz", "pdg", "origin"]
        assert {f: str(ak.type(tracks[f]).content.content) for f in ("charge", "pdg", "origin")} == {
            "charge": "int8", "pdg": "int32", "origin": "int8"}
        px, py, pz, energy = (_flat(events, f) for f in ("px", "py", "pz", "E"))
        p2 = px**2 + py**2 + pz**2
        assert np.all(energy >= np.sqrt(p2))
        np.testing.assert_allclose(energy**2 - p2, PION_MASS_GEV**2, rtol=0, atol=2e-3 * energy.max())
        axis = events["axis"].to_numpy()
        np.testing.assert_allclose(np.linalg.norm(axis, axis=1), 1.0, atol=1e-6)
        assert np.all(axis[:, 2] >= 0)
        charge = ak.to_numpy(ak.flatten(tracks["charge"]))
        assert set(np.unique(charge)) <= {-1, 1}
        assert set(np.unique(np.abs(ak.to_numpy(ak.flatten(tracks["pdg"]))))) <= {11, 13, 211, 321, 2212}
        # Acceptance of the ILD model.
        pt = np.hypot(px, py)
        assert pt.min() > 0.099 and np.max(np.abs(pz) / np.sqrt(p2)) < 0.9801


def test_reference_point_encodes_smeared_impact_parameters(ild_events):
    """x, y is the PCA to the z axis; (measured - true) / sigma has unit width in d0 and z0."""
    events = ild_events["bb"]
    d0, z0, p, sin_theta = _impact_parameters(events)
    px, py, pz = (_flat(events, f) for f in ("px", "py", "pz"))
    x, y, vx, vy, vz = (_flat(events, f) for f in ("x", "y", "vx", "vy", "vz"))
    # PCA: r_T . p_T = 0 (up to float32 rounding of x, y and p).
    assert np.all(np.abs(x * px + y * py) / np.hypot(px, py) <= 1e-6 * np.hypot(x, y) + 1e-12)
    pt2 = px**2 + py**2
    d0_true = (vx * py - vy * px) / np.sqrt(pt2)
    z0_true = vz - (vx * px + vy * py) * pz / pt2
    detector = DetectorModel()
    d0_pull = (d0 - d0_true) / detector.sigma_d0_mm(p, sin_theta)
    z0_pull = (z0 - z0_true) / detector.sigma_z0_mm(p, sin_theta)
    near = np.hypot(vx, vy) < 5.0  # float32 rounding of far vertices blurs the pull
    for pull in (d0_pull[near], z0_pull[near]):
        assert abs(np.mean(pull)) < 0.05
        assert 0.95 < np.std(pull) < 1.05


def test_worse_ip_detector_widens_impact_parameters():
    worse = DetectorModel(name="ild_worse_ip", ip_resolution_scale=1.5)
    events = generate_events("uds", 200, seed=4, detector=worse)
    d0, _, p, sin_theta = _impact_parameters(events)
    prompt = np.hypot(_flat(events, "vx"), _flat(events, "vy")) < 1e-6
    width = np.std(d0[prompt] / DetectorModel().sigma_d0_mm(p[prompt], sin_theta[prompt]))
    assert 1.4 < width < 1.6


def test_beam_spot_moves_whole_events():
    spot = DetectorModel(beam_spot_mm=(0.0, 0.0, 0.3))
    events = generate_events("uds", 150, seed=4, detector=spot)
    z0 = _impact_parameters(events)[1]
    prompt = np.hypot(_flat(events, "vx"), _flat(events, "vy")) < 1e-6
    event_of = np.repeat(np.arange(len(events)), ak.to_numpy(ak.num(events["tracks"])))
    per_event = np.bincount(event_of[prompt], weights=z0[prompt]) / np.maximum(np.bincount(event_of[prompt]), 1)
    assert 0.25 < np.std(per_event) < 0.35  # sigma_z = 0.3 mm, common to the event
    assert np.std(z0[prompt] - per_event[event_of[prompt]]) < 0.1


# --- physics validation -------------------------------------------------------------------


def test_charged_multiplicity_at_z_pole(truth_events, ild_events):
    """All charged final-state particles: about 20.7 per hadronic Z decay (LEP); ILD sees fewer."""
    truth = {f: float(ak.mean(ak.num(ev["tracks"]))) for f, ev in truth_events.items()}
    ild = {f: float(ak.mean(ak.num(ev["tracks"]))) for f, ev in ild_events.items()}
    z_mix = sum(Z_FRACTIONS[f] * truth[f] for f in truth)
    assert 19.8 < z_mix < 21.6, truth
    assert truth["bb"] > truth["uds"] + 1.5  # b-hadron decays add ~2-3 tracks
    for f in truth:
        assert 0.85 * truth[f] < ild[f] < truth[f], (f, ild, truth)
    # Generator-level tracks sit at the true production vertex.
    events = truth_events["cc"]
    for ref, true in (("x", "vx"), ("y", "vy"), ("z", "vz")):
        np.testing.assert_array_equal(_flat(events, ref), _flat(events, true))


def test_displaced_track_fractions_order_bb_cc_uds(ild_events):
    detector = DetectorModel()
    fractions = {}
    for flavour, events in ild_events.items():
        d0, _, p, sin_theta = _impact_parameters(events)
        fractions[flavour] = np.mean(np.abs(d0) / detector.sigma_d0_mm(p, sin_theta) > 3.0)
    assert fractions["bb"] > fractions["cc"] + 0.10, fractions
    assert fractions["cc"] > fractions["uds"] + 0.05, fractions
    assert fractions["uds"] > 0.05  # K0S and Lambda daughters


def test_origin_fractions_and_b_flight(ild_events):
    origin = {f: ak.to_numpy(ak.flatten(ev["tracks"]["origin"])) for f, ev in ild_events.items()}
    assert np.mean(origin["bb"] == 2) > 0.35
    assert np.mean(origin["cc"] == 1) > 0.15 and np.mean(origin["cc"] == 2) < 0.02
    assert np.mean(origin["uds"] > 0) < 0.03
    events = ild_events["bb"]
    radius = np.hypot(_flat(events, "vx"), _flat(events, "vy"))
    from_b = origin["bb"] == 2
    assert np.median(radius[from_b]) > 0.5  # B flight ~ 3 mm at the Z pole
    assert np.median(radius[origin["bb"] == 0]) == 0.0  # light tracks: mostly prompt


def test_higher_energy_gives_more_tracks(ild_events):
    events = generate_events("uds", 100, sqrt_s_gev=250.0, seed=5)
    assert float(ak.mean(ak.num(events["tracks"]))) > float(ak.mean(ak.num(ild_events["uds"]["tracks"]))) + 4


# --- reproducibility ----------------------------------------------------------------------


def test_same_seed_same_events_and_chunks_are_independent():
    a = generate_events("cc", 60, seed=21, chunk_size=25)
    b = generate_events("cc", 60, seed=21, chunk_size=25)
    assert ak.array_equal(a, b)
    c = generate_events("cc", 60, seed=22, chunk_size=25)
    assert not ak.array_equal(a, c)
    # Chunk 2 alone in a fresh process state == chunk 2 made after chunks 0 and 1.
    alone = ChunkGenerator()(plan_chunks("cc", 60, chunk_size=25, seed=21)[2])
    assert ak.array_equal(alone, a[50:])
    with pytest.raises(ValueError):
        generate_events("cc", 10, seed=-1)


def test_chunks_independent_with_isr():
    """With ISR the phase space is sampled; a chunk still does not depend on the chunks before it."""
    both = generate_events("bb", 40, seed=23, chunk_size=20, isr=True)
    alone = ChunkGenerator()(plan_chunks("bb", 40, chunk_size=20, seed=23, isr=True)[1])
    assert ak.array_equal(alone, both[20:])
    assert not ak.array_equal(both, generate_events("bb", 40, seed=23, chunk_size=20))


def test_zero_events_and_unknown_flavour():
    empty = generate_events("bb", 0)
    assert len(empty) == 0 and empty.fields == ["axis", "tracks", "label"]
    with pytest.raises(ValueError, match="unknown class"):
        generate_events("tt", 10)
