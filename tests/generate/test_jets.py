"""Issue 13: Durham clustering, jet labels from hadron ancestry, jet files in every format."""

from __future__ import annotations

import itertools

import awkward as ak
import numpy as np
import pytest

from flavortag.classes import BB, GG, UDS
from flavortag.generate import record as rec
from flavortag.generate.events import ChunkGenerator, plan_chunks, true_charged_particles
from flavortag.generate.jets import cluster_exclusive, jets_of_chunk, visible_final_state


def _durham_by_hand(p4: np.ndarray, n_jets: int) -> tuple[list[set[int]], np.ndarray]:
    """Reference: merge the pair of smallest y_ij = 2 min(E_i, E_j)^2 (1 - cos theta_ij) (E-scheme)."""
    clusters = [{i} for i in range(len(p4))]
    momenta = [row.astype(float) for row in p4]
    while len(clusters) > n_jets:
        best = None
        for i, j in itertools.combinations(range(len(clusters)), 2):
            a, b = momenta[i][:3], momenta[j][:3]
            cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
            y = 2 * min(momenta[i][3], momenta[j][3]) ** 2 * (1 - cos)
            if best is None or y < best[0]:
                best = (y, i, j)
        _, i, j = best
        clusters[i] |= clusters.pop(j)
        momenta[i] = momenta[i] + momenta.pop(j)
    return clusters, np.array(momenta)


def test_durham_on_hand_made_events() -> None:
    # event 0: two back-to-back pairs and a soft particle at 80 degrees from +x (joins the +x jet:
    # 1 - cos(80 deg) < 1 - cos(100 deg)); event 1: 9 random particles against the hand-made reference
    e0 = np.array([[40, 0, 0, 40], [4.33, 2.5, 0, 5], [-30, 0, 0, 30], [-9, -1, 0, 9.06],
                   [0.1736, 0.9848, 0, 1.0]])
    rng = np.random.default_rng(3)
    p = rng.normal(size=(9, 3)) * 5
    e1 = np.column_stack([p, np.linalg.norm(p, axis=1) + 0.2])
    result = cluster_exclusive(np.vstack([e0, e1]), np.array([0, 5, 14]), 2)
    assert result.assignment[:5].tolist() == [0, 0, 1, 1, 0]  # jet 0: the more energetic (46 GeV)
    np.testing.assert_allclose(result.jets[0, 0], e0[[0, 1, 4]].sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.jets[0, 1], e0[[2, 3]].sum(axis=0), rtol=1e-12)
    assert result.n_constituents[0].tolist() == [3, 2]
    clusters, momenta = _durham_by_hand(e1, 2)
    got = [set(np.flatnonzero(result.assignment[5:] == j).tolist()) for j in range(2)]
    assert sorted(map(sorted, got)) == sorted(map(sorted, clusters))
    order = np.argsort(-momenta[:, 3])
    np.testing.assert_allclose(result.jets[1], momenta[order], rtol=1e-9)


def test_fewer_particles_than_jets_is_refused() -> None:
    with pytest.raises(ValueError, match="event 1 has 1 particles, fewer than n_jets=2"):
        cluster_exclusive(np.ones((3, 4)), np.array([0, 2, 3]), 2)


def _chunk(flavour: str, n_events: int, seed: int):
    spec = plan_chunks(flavour, n_events, chunk_size=n_events, seed=seed, sqrt_s_gev=250.0,
                       process="zh", n_jets=2)[0]
    make = ChunkGenerator()
    record = rec.record_from_batch(make.pythia_batch(spec))
    particles = true_charged_particles(record, make._instance(spec)[1])
    from flavortag.generate.detector_sim import simulate_tracks

    tracks = simulate_tracks(particles, spec.detector, spec.detector_rng())
    rows = np.where(tracks.particle >= 0, particles.row[np.maximum(tracks.particle, 0)], -1)
    return record, tracks, jets_of_chunk(record, tracks, rows, 2, {"bb": BB, "gg": GG}[flavour])


def test_labels_follow_the_b_hadrons_of_generated_events() -> None:
    record, tracks, jets = _chunk("bb", 6, seed=5)
    visible = visible_final_state(record)
    event = record.event_index()[visible]
    below_b = (rec.heavy_ancestor_bits(record)[visible] & rec.B_ANCESTOR_BIT) > 0
    # the known B hadrons: every H -> bb event holds at least two weakly decaying b hadrons
    b_hadrons = (rec.heavy_hadron_bits(record.pdg) & rec.B_ANCESTOR_BIT) > 0
    assert np.all(np.bincount(record.event_index()[b_hadrons], minlength=6) >= 2)
    p4 = np.stack([record.px, record.py, record.pz, record.e], axis=1)[visible]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=6))])
    clustering = cluster_exclusive(p4, offsets, 2)
    jet_of_b_descendant = set((event * 2 + clustering.assignment)[below_b].tolist())
    expected = np.array([BB if j in jet_of_b_descendant else -1 for j in range(12)])
    assert np.all(jets.labels[expected == BB] == BB)
    assert np.all(jets.labels[expected != BB] != BB)
    assert int((jets.labels == BB).sum()) >= 10  # H -> bb: (nearly) every jet holds a b hadron
    assert int(jets.counts.sum()) == int(tracks.offsets[-1])  # every track in exactly one jet
    assert jets.extras["event"].tolist() == np.repeat(np.arange(6), 2).tolist()
    np.testing.assert_allclose(np.linalg.norm(jets.axis, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(jets.extras["jet_E"].reshape(6, 2).sum(axis=1),
                               np.bincount(event, weights=record.e[visible], minlength=6), rtol=1e-5)


def test_gluon_jets_without_heavy_hadrons_are_g() -> None:
    record, _, jets = _chunk("gg", 8, seed=6)
    visible = visible_final_state(record)
    bits = rec.heavy_ancestor_bits(record)[visible]
    heavy_event = np.bincount(record.event_index()[visible], weights=bits > 0, minlength=8) > 0
    clean = np.repeat(~heavy_event, 2)
    assert clean.sum() >= 8
    assert np.all(jets.labels[clean] == GG)
    assert UDS not in jets.labels.tolist()  # a light jet of H -> gg is g


@pytest.mark.parametrize("fmt", ["parquet", "root", "text"])
def test_jet_file_round_trips(tmp_path, fmt: str) -> None:
    from flavortag.generate import generate_events
    from flavortag.generate.jets import JET_FIELDS
    from flavortag.generate.production import produce_samples
    from flavortag.io import read_events

    result = produce_samples(tmp_path, 20, ["bb"], fmt=fmt, seed=2, workers=1, chunk_size=10,
                             progress=False, n_jets=2)
    back = read_events(result.paths["bb"])
    made = generate_events("bb", 20, seed=2, chunk_size=10, n_jets=2)
    assert len(back) == len(made) == 40
    np.testing.assert_array_equal(np.asarray(back.axis), np.asarray(made.axis))
    for field in ("E", "px", "py", "pz", "x", "y", "z"):
        assert ak.all(back.tracks[field] == made.tracks[field])
    if fmt == "text":  # one class per text file: the forced decay
        assert back.label.tolist() == [BB] * 40
        return
    assert back.label.tolist() == made.label.tolist()
    for field in JET_FIELDS:
        np.testing.assert_array_equal(np.asarray(back[field]), np.asarray(made[field]))
    assert ak.all(back.tracks.origin == made.tracks.origin)


def test_info_reports_labels_against_the_forced_decay(tmp_path, capsys) -> None:
    from flavortag.apps.info import label_mismatch, main
    from flavortag.generate import generate_events
    from flavortag.io import write_events

    jets = generate_events("gg", 30, sqrt_s_gev=250.0, seed=4, process="zh", n_jets=2)
    write_events(jets, tmp_path / "gg.parquet")
    assert main([str(tmp_path / "gg.parquet")]) == 0
    out = capsys.readouterr().out
    (row,) = label_mismatch(jets)
    labels = np.asarray(jets.label)
    assert row["jets"] == 60 and row["fraction_differs"] == pytest.approx(np.mean(labels != GG))
    assert "60 jets in 1 file(s)" in out and f"{row['fraction_differs']:.4f}" in out
    assert sum(row["labels"].values()) == 60
