"""Issue 25: the particle flow of generated jets (PID of the tracks, calorimeter neutrals) and its files."""

from __future__ import annotations

import re
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from flavortag import pid
from flavortag.detector import DetectorModel
from flavortag.generate import record as rec
from flavortag.generate.events import ChunkGenerator, generate_events, plan_chunks
from flavortag.generate.particle_flow import measured_neutrals
from flavortag.io import read_events, write_events

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs/FORMAT.md"


@pytest.fixture(scope="module")
def jets() -> ak.Array:
    """60 ZH -> (nu nu)(ss) events at 250 GeV as 120 jets, with particle flow (kaon-rich)."""
    return generate_events("ss", 60, sqrt_s_gev=250.0, seed=5, process="zh", n_jets=2, particle_flow=True,
                           chunk_size=60)


def _tracks(jets: ak.Array) -> dict[str, np.ndarray]:
    flat = ak.flatten(jets["tracks"])
    return {f: ak.to_numpy(flat[f]).astype(np.float64) for f in ak.fields(flat)}


def test_particle_flow_leaves_the_tracks_and_adds_measured_fields(jets: ak.Array) -> None:
    plain = generate_events("ss", 60, sqrt_s_gev=250.0, seed=5, process="zh", n_jets=2, chunk_size=60)
    assert "neutrals" not in ak.fields(plain) and "dndx" not in ak.fields(plain["tracks"])
    for name in ak.fields(plain["tracks"]):
        assert ak.all(plain["tracks"][name] == jets["tracks"][name]), name
    assert set(ak.fields(jets["neutrals"])) == {"E", "px", "py", "pz", "pid_pdg"}
    codes = ak.to_numpy(ak.flatten(jets["neutrals"]["pid_pdg"]))
    assert set(np.unique(codes)) == {22, 130} and (codes == 22).mean() > 0.7  # mostly pi0 photons
    n = ak.flatten(jets["neutrals"])
    assert ak.all(abs(np.sqrt(n.px**2 + n.py**2 + n.pz**2) / n.E - 1) < 1e-5)  # massless
    assert ak.min(n.E[n.pid_pdg == 22]) > 0.2 and ak.min(n.E[n.pid_pdg == 130]) > 0.5


@pytest.mark.parametrize("species", [(211, 321), (321, 2212)], ids=["K/pi", "p/K"])
def test_dndx_and_tof_match_the_documented_resolution(jets: ak.Array, species: tuple[int, int]) -> None:
    t = _tracks(jets)
    p = np.sqrt(t["px"] ** 2 + t["py"] ** 2 + t["pz"] ** 2)
    code = np.abs(t["pdg"]).astype(int)
    light, heavy = species
    m_light, m_heavy = pid.MASS_GEV[light], pid.MASS_GEV[heavy]
    # pulls against the true species: the documented 3 % and 30 ps
    mass = pid.mass_of_pdg(t["pdg"])
    n_true = pid.expected_dndx_per_mm(p, mass, 1.25)
    pull = (t["dndx"] / n_true - 1) / 0.03
    tof_pull = (t["tof_ns"] - pid.expected_tof_ns(p, mass, t["track_length_mm"])) / 0.030
    assert abs(np.std(pull) - 1) < 0.1 and abs(np.mean(pull)) < 0.1
    assert abs(np.std(tof_pull) - 1) < 0.1 and abs(np.mean(tof_pull)) < 0.1
    # separation of the heavier species from the lighter one's hypothesis, 2-10 GeV, vs pid.separation
    sel = (code == heavy) & (p > 2) & (p < 10)
    assert sel.sum() >= 30
    n_l = pid.expected_dndx_per_mm(p[sel], m_light, 1.25)
    n_h = pid.expected_dndx_per_mm(p[sel], m_heavy, 1.25)
    measured = np.mean((n_l - t["dndx"][sel]) / (0.03 * 0.5 * (n_l + n_h)))
    documented = np.mean([pid.separation(x, m_light, m_heavy, 0.03, 30.0, 1800.0)[0] for x in p[sel]])
    assert abs(measured - documented) < 4 / np.sqrt(sel.sum())  # 4 sigma of the mean of unit pulls
    assert documented > (4.0 if heavy == 321 else 1.0)


def test_the_documented_separation_table_is_the_model() -> None:
    section = FORMAT_MD.read_text().split("| p (GeV) | K/pi dN/dx |")[1].split("\n\n")[0]
    rows = re.findall(r"^\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)
    assert len(rows) == 7
    for row in rows:
        p, *quoted = map(float, row)
        kpi = pid.separation(p, pid.PION_MASS_GEV, pid.KAON_MASS_GEV, 0.03, 30.0, 1800.0)
        pk = pid.separation(p, pid.KAON_MASS_GEV, pid.PROTON_MASS_GEV, 0.03, 30.0, 1800.0)
        assert np.allclose(quoted, [*kpi, *pk], atol=0.051), p


def test_calorimeter_resolution_of_the_neutrals() -> None:
    spec = plan_chunks("bb", 40, sqrt_s_gev=250.0, process="zh", n_jets=2, chunk_size=40)[0]
    make = ChunkGenerator()
    record = rec.record_from_batch(make.pythia_batch(spec))
    charges = make._instance(spec)[1]
    det = DetectorModel(photon_e_min_gev=0.0, neutral_hadron_e_min_gev=0.0)
    true = measured_neutrals(record, charges, DetectorModel(smear=False, photon_e_min_gev=0.0,
                                                            neutral_hadron_e_min_gev=0.0),
                             np.random.default_rng(1))
    smeared = measured_neutrals(record, charges, det, np.random.default_rng(1))
    both, i_true, i_smeared = np.intersect1d(true.row, smeared.row, return_indices=True)
    e_true = true.columns["E"][i_true].astype(float)
    e_meas = smeared.columns["E"][i_smeared].astype(float)
    photon = true.columns["pid_pdg"][i_true] == 22
    for mask, a, b in ((photon, 0.15, 0.01), (~photon, 0.50, 0.03)):
        pull = (e_meas[mask] / e_true[mask] - 1) / np.hypot(a / np.sqrt(e_true[mask]), b)
        assert mask.sum() > 40 and abs(np.std(pull) - 1) < 0.15


@pytest.mark.parametrize("fmt", ["parquet", "root"])
def test_neutrals_and_pid_round_trip(jets: ak.Array, fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"ss.{fmt}"
    write_events(jets, path)
    back = read_events(path)
    assert ak.fields(back)[:4] == ["axis", "tracks", "label", "neutrals"]
    for name in ("E", "px", "py", "pz", "pid_pdg"):
        assert ak.all(back["neutrals"][name] == jets["neutrals"][name]), name
    assert ak.to_numpy(ak.flatten(back["neutrals"]["pid_pdg"])).dtype == np.int32
    for name in ("dndx", "tof_ns", "track_length_mm"):
        assert ak.all(back["tracks"][name] == jets["tracks"][name]), name
    assert ak.all(back["n_constituents"] == jets["n_constituents"])


def test_text_drops_the_neutrals_and_reads_back(jets: ak.Array, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "ss.txt"
    write_events(ak.with_field(jets, jets["decay_class"], "label"), path)  # a text file holds one class
    assert "neutrals" in caplog.text
    back = read_events(path, label="ss")
    assert "neutrals" not in ak.fields(back) and len(back) == len(jets)
