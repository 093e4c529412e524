"""EDM4hep reading on real FCC-ee / key4hep files (tests/data/edm4hep): physics, layouts, bad input, integration.

``test_FCC_Winter2023.root``: 100 ZH events (Z -> mu mu, H -> bb) at 240 GeV,
Delphes IDEA, Bz = 2 T. ``p8_ee_WW_ecm240_edm4hep.root``: 10 WW events.
``edm4hep.root``: the EDM4hep 1.0 example with placeholder values.
"""

from __future__ import annotations

import math
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from flavortag.features.track import TrackQuantities
from flavortag.io import (
    EventFormatError,
    ReadReport,
    count_events,
    iter_events,
    read_events,
    write_events,
)
from flavortag.io.api import input_format
from flavortag.io.edm4hep import EDM4hepOptions, leaves_to_read, read_edm4hep
from flavortag.io.edm4hep_layout import detect_layout

DATA = Path(__file__).resolve().parents[1] / "data" / "edm4hep"
ZH = DATA / "test_FCC_Winter2023.root"
WW = DATA / "p8_ee_WW_ecm240_edm4hep.root"
EXAMPLE = DATA / "edm4hep.root"
#: pT [GeV] = C * Bz [T] / |omega| [1/mm]
C_GEV_PER_T_MM = 0.299792458e-3


@pytest.fixture(scope="module")
def zh_jets() -> ak.Array:
    return read_edm4hep(ZH, options={"level": "jet", "neutrals": True, "track_truth": True})


@pytest.fixture(scope="module")
def zh_events() -> ak.Array:
    return read_events(ZH)


def _flat(values: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(values)), dtype=np.float64)


def test_the_three_layouts_are_told_apart_and_a_flavortag_root_file_stays_root(tmp_path: Path) -> None:
    names = {}
    for path in (ZH, WW, EXAMPLE):
        assert input_format(path) == "edm4hep"
        with uproot.open(path) as file:
            names[path.name] = detect_layout(file, file["events"], str(path)).name
    assert names == {ZH.name: "fcc-winter2023", WW.name: "fcc-delphes", EXAMPLE.name: "edm4hep-1.0"}
    own = write_events(read_events(WW), tmp_path / "own.root")
    assert input_format(own) == "root"
    assert (DATA / "LICENSE.coffea").is_file()


@pytest.mark.parametrize("path", [ZH, WW], ids=["winter2023", "delphes"])
def test_each_track_momentum_agrees_with_its_curvature_and_the_field(path: Path, zh_events: ak.Array) -> None:
    events = zh_events if path == ZH else read_events(path)
    tracks = events.tracks
    assert np.all(np.asarray(events.bz_tesla) == 2.0)  # magFieldBz of the IDEA files
    pt = np.hypot(_flat(tracks.px), _flat(tracks.py))
    bz = np.repeat(np.asarray(events.bz_tesla, np.float64), np.asarray(ak.num(tracks)))
    pt_from_curvature = C_GEV_PER_T_MM * bz / np.abs(_flat(tracks.omega))
    assert len(pt) > 200
    relative = np.abs(pt / pt_from_curvature - 1)
    if path == ZH:
        assert relative.max() < 1e-4
    else:  # this production's particles differ from their track's curvature by 0.1-3% for 8% of the tracks
        assert np.mean(relative < 1e-4) > 0.9 and relative.max() < 0.05
    assert np.array_equal(np.sign(_flat(tracks.omega)), _flat(tracks.charge))  # LCIO: sign(omega) = charge, Bz > 0


def test_the_reference_point_is_the_point_of_closest_approach_with_lcio_signs() -> None:
    """Against the raw branches, followed by hand: x = -D0 sin(phi), y = D0 cos(phi), z = Z0 (reference at 0)."""
    events = read_events(WW)
    tree = uproot.open(WW)["events"]
    raw = tree.arrays(filter_name=lambda n: n.startswith(("ReconstructedParticles.", "_ReconstructedParticles_tracks.",
                                                          "EFlowTrack.", "_EFlowTrack_trackStates.")))
    n_checked = 0
    for k in range(len(events)):
        r = raw[k]
        rows = [i for i in range(len(r["ReconstructedParticles.charge"]))
                if r["ReconstructedParticles.charge"][i] != 0
                and r["ReconstructedParticles.tracks_end"][i] > r["ReconstructedParticles.tracks_begin"][i]]
        assert len(rows) == len(events.tracks[k])
        for t, i in enumerate(rows):
            track = r["_ReconstructedParticles_tracks.index"][r["ReconstructedParticles.tracks_begin"][i]]
            state = r["EFlowTrack.trackStates_begin"][track]
            d0 = float(r["_EFlowTrack_trackStates.D0"][state])
            phi = float(r["_EFlowTrack_trackStates.phi"][state])
            z0 = float(r["_EFlowTrack_trackStates.Z0"][state])
            got = events.tracks[k][t]
            assert got.x == pytest.approx(-d0 * math.sin(phi), abs=1e-6)
            assert got.y == pytest.approx(d0 * math.cos(phi), abs=1e-6)
            assert got.z == pytest.approx(z0, abs=1e-6)
            n_checked += 1
    assert n_checked > 250
    # flavortag's straight-line d0 (docs/FORMAT.md) is then -D0 of the track state
    d0_flavortag = TrackQuantities(events).d0
    D0 = np.asarray(ak.flatten(tree["_EFlowTrack_trackStates.D0"].array()), np.float64)
    np.testing.assert_allclose(d0_flavortag, -D0, atol=2e-5)


def test_lifetime_signed_impact_parameters_of_the_higgs_jets_lean_positive(zh_jets: ak.Array) -> None:
    quantities = TrackQuantities(zh_jets)
    signed = quantities.signed_d0
    significance = signed / _flat(zh_jets.tracks.sigma_d0)
    origin = _flat(zh_jets.tracks.origin)
    assert np.mean(signed > 0) > 0.54  # a mirrored reference point gives ~0.43
    assert np.sum(significance > 3) > 1.5 * np.sum(significance < -3)
    assert np.mean(signed[origin == 2] > 0) > 0.6  # b-decay tracks lean most
    assert np.mean(signed[origin == 2] > 0) > np.mean(signed[origin == 0] > 0) + 0.08


def test_each_jet_s_constituents_sum_to_its_four_momentum(zh_jets: ak.Array) -> None:
    raw = uproot.open(ZH)["events"].arrays(filter_name=lambda n: n.startswith("Jet.") and "[" not in n)
    for field, leaf in (("E", "Jet.energy"), ("px", "Jet.momentum.x"), ("py", "Jet.momentum.y"),
                        ("pz", "Jet.momentum.z")):
        total = np.asarray(ak.sum(zh_jets.tracks[field], axis=1) + ak.sum(zh_jets.neutrals[field], axis=1))
        expected = _flat(raw[leaf])
        np.testing.assert_allclose(total, expected, atol=1e-5 * 125)
        sums = np.asarray(ak.sum(zh_jets.tracks[field], axis=1)) + np.asarray(zh_jets[f"neutral_{field}"])
        np.testing.assert_allclose(sums, expected, atol=1e-5 * 125)
    n = np.asarray(ak.num(zh_jets.tracks) + ak.num(zh_jets.neutrals))
    assert np.array_equal(n, np.asarray(zh_jets.n_constituents))
    direction = np.stack([_flat(raw[f"Jet.momentum.{c}"]) for c in "xyz"], axis=1)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    np.testing.assert_allclose(ak.to_numpy(zh_jets.axis), direction, atol=1e-6)


def test_truth_labels_from_the_mc_record(zh_jets: ak.Array, zh_events: ak.Array) -> None:
    events = zh_events
    assert np.all(np.asarray(events.label) == 2)  # every event: H -> bb, the heaviest primary quark
    higgs = np.asarray(zh_jets.n_constituents) >= 5  # the muons of Z -> mu mu make the small jets
    labels = np.asarray(zh_jets.label)
    assert higgs.sum() >= 200
    assert np.mean(labels[higgs] == 2) > 0.85
    assert np.mean(labels[~higgs] == 0) > 0.8
    assert np.bincount(np.asarray(read_events(WW).label), minlength=3)[2] == 0  # WW: no b quark


def test_sigma_d0_and_z0_from_the_covariance_are_positive_plausible_and_layout_independent(tmp_path: Path) -> None:
    events = read_events(WW)
    q = TrackQuantities(events)
    sigma_d0_um = _flat(events.tracks.sigma_d0) * 1e3
    sigma_z0_um = _flat(events.tracks.sigma_z0) * 1e3
    assert np.all(sigma_d0_um > 0) and np.all(sigma_z0_um > 0)
    high, low = q.p > 10, (q.p > 0.5) & (q.p < 1.5)
    assert 1.5 < np.median(sigma_d0_um[high]) < 6  # IDEA: ~3 um at high momentum
    assert np.median(sigma_d0_um[low]) > 3 * np.median(sigma_d0_um[high])
    cov = ak.to_numpy(ak.flatten(uproot.open(WW)["events"]["_EFlowTrack_trackStates.covMatrix.values[21]"].array()))
    np.testing.assert_allclose(sigma_d0_um, np.sqrt(cov[:, 0]) * 1e3, rtol=1e-6)
    np.testing.assert_allclose(sigma_z0_um, np.sqrt(cov[:, 9]) * 1e3, rtol=1e-6)
    # the 15-element layout (EDM4hep < 0.10: no time row) gives the same
    path = _copy(WW, tmp_path / "cov15.root", cov_size=15)
    again = read_events(path)
    assert np.array_equal(_flat(again.tracks.sigma_d0), _flat(events.tracks.sigma_d0))
    assert np.array_equal(_flat(again.tracks.sigma_z0), _flat(events.tracks.sigma_z0))


# ------------------------------------------------------------------ bad input
def _copy(src: Path, dst: Path, edit: dict[tuple[str, int, int], float] | None = None, cov_size: int | None = None,
          level: str = "jet") -> Path:
    """Copy what the reader reads of ``src`` to ``dst`` with uproot, setting ``edit[(leaf, entry, i)] = value``."""
    with uproot.open(src) as file:
        tree = file["events"]
        leaves = leaves_to_read(detect_layout(file, tree, str(src)), EDM4hepOptions(level=level))
        arrays = tree.arrays(filter_name=set(leaves).__contains__)
    data = {name: arrays[name] for name in arrays.fields}
    for (leaf, entry, index), value in (edit or {}).items():
        values = ak.to_list(data[leaf])
        values[entry][index] = value
        data[leaf] = ak.values_astype(ak.Array(values), ak.type(data[leaf]).content.content.primitive)
    copy = {}
    for name, values in data.items():
        if "[" in name:  # uproot cannot read back a leaf named covMatrix[N] nor write var * N: flatten it
            values = ak.flatten(values[:, :, :cov_size] if cov_size else values, axis=2)
        copy[name.split("[")[0]] = values
    with uproot.recreate(dst) as out:
        out.mktree("events", {k: v.type for k, v in copy.items()}).extend(copy)
    return dst


@pytest.mark.parametrize(("edit", "level", "entry", "words"), [
    (("ReconstructedParticles#1.index", 7, 0, 999), "event", 7,
     ["ReconstructedParticles#1", "index 999 out of range", "EFlowTrack"]),
    (("EFlowTrack.trackStates_end", 3, 0, 0), "event", 3, ["EFlowTrack", "track 0 has no track state"]),
    (("EFlowTrack_1.D0", 5, 0, float("nan")), "event", 5, ["EFlowTrack_1", "non-finite", "D0=nan"]),
    (("Jet#2.index", 9, 1, 5000), "jet", 9, ["Jet#2", "index 5000 out of range", "ReconstructedParticles"]),
    (("Particle#0.index", 2, 2, 999), "jet", 2, ["Particle#0", "index 999 out of range", "Particle"]),
], ids=["relation-index", "missing-state", "nan-parameter", "jet-constituent", "mc-parent"])
def test_malformed_files_name_file_entry_and_collection_and_skip_counts_them(
    tmp_path: Path, edit: tuple, level: str, entry: int, words: list[str], zh_jets: ak.Array, zh_events: ak.Array,
) -> None:
    leaf, event, index, value = edit
    path = _copy(ZH, tmp_path / "bad.root", {(leaf, event, index): value})
    with pytest.raises(EventFormatError) as info:
        read_events(path, level=level)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: entry {entry}: ")
    for word in words:
        assert word in message
    report = ReadReport()
    good = read_events(path, level=level, on_error="skip", report=report)
    assert report.n_dropped_events == 1 and len(report.reasons) == 1
    full = zh_jets if level == "jet" else zh_events
    kept = np.asarray(full.event) != entry if level == "jet" else np.arange(len(full)) != entry
    assert len(good) == int(kept.sum())
    assert ak.all(ak.flatten(good.tracks.x == full.tracks.x[kept]))


def test_a_file_in_no_known_layout_gets_one_line_naming_found_and_expected(tmp_path: Path) -> None:
    own = write_events(read_events(WW), tmp_path / "own.root")
    with pytest.raises(EventFormatError) as info:
        read_events(own, format="edm4hep")
    message = str(info.value)
    assert "\n" not in message
    assert "found collections" in message and "axis_x" in message
    assert "expected a ReconstructedParticle collection" in message and "trackStates" in message
    stripped = _copy(ZH, tmp_path / "no_states.root")
    with uproot.open(stripped) as f:
        keep = {k: f["events"][k].array() for k in f["events"].keys() if not k.startswith(("EFlowTrack_1", "n"))}
    with uproot.recreate(tmp_path / "no_states2.root") as out:
        out.mktree("events", {k: v.type for k, v in keep.items()}).extend(keep)
    with pytest.raises(EventFormatError, match="no Track collection with track states"):
        read_events(tmp_path / "no_states2.root")


def test_the_placeholder_example_is_refused_for_its_values_not_its_layout() -> None:
    with pytest.raises(EventFormatError, match=r"edm4hep.root: entry 0: .*energy below momentum"):
        read_events(EXAMPLE)
    report = ReadReport()
    assert len(read_events(EXAMPLE, on_error="skip", report=report, edm4hep={"bz_tesla": 3.5})) == 0
    assert report.n_dropped_events == 3


# ------------------------------------------------------------------ integration
def test_chunks_counts_convert_and_the_data_config_read_the_same_records(tmp_path: Path, zh_jets: ak.Array) -> None:
    from flavortag.dataset import load_sample
    from flavortag.io import convert

    whole = zh_jets[[f for f in zh_jets.fields if not f.startswith(("neutral", "n_neutrals"))]]
    chunks = list(iter_events(ZH, step_size=7, level="jet"))
    assert sum(len(c) for c in chunks) == len(whole)
    assert ak.all(ak.flatten(ak.concatenate(chunks).tracks.sigma_d0 == whole.tracks.sigma_d0))
    assert list(count_events([ZH])[1]) == [0, 0, 100]
    out = tmp_path / "zh_jets.parquet"
    convert([ZH], out, level="jet", progress=False)
    back = read_events(out)
    assert ak.all(back.label == whole.label) and ak.all(ak.flatten(back.tracks.x == whole.tracks.x))
    sample = load_sample({"paths": [str(ZH)], "level": "jet", "classes": ["light", "c", "b"],
                          "edm4hep": {"neutrals_in_axis": True}})
    assert len(sample) == len(whole) and ak.all(sample.label == whole.label)


def test_neutrals_in_the_axis_change_it_and_the_axis_is_the_thrust_axis_of_the_tracks(zh_events: ak.Array) -> None:
    from flavortag.generate.thrust import thrust_axis

    tracks_only = zh_events
    p = np.stack([_flat(tracks_only.tracks[c]) for c in ("px", "py", "pz")], axis=1)
    offsets = np.concatenate([[0], np.cumsum(ak.num(tracks_only.tracks))])
    np.testing.assert_allclose(ak.to_numpy(tracks_only.axis), thrust_axis(p, offsets)[0], atol=1e-6)
    with_neutrals = read_events(ZH, edm4hep={"neutrals_in_axis": True})
    change = np.abs(np.sum(ak.to_numpy(with_neutrals.axis) * ak.to_numpy(tracks_only.axis), axis=1))
    assert np.all(change > 0.5) and np.any(change < 0.999)


def test_info_and_convert_commands_on_the_three_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from flavortag.apps import convert as convert_app
    from flavortag.apps import info

    assert info.main([str(ZH)]) == 0
    out = capsys.readouterr().out
    assert "fcc-winter2023 layout, 100 events" in out and "bb      100" in out
    assert info.main([str(WW), "--level", "jet"]) == 0
    assert "fcc-delphes layout" in capsys.readouterr().out
    assert info.main([str(EXAMPLE)]) == 1
    assert "energy below momentum" in capsys.readouterr().err
    assert convert_app.main([str(ZH), str(tmp_path / "zh.root"), "--level", "jet", "--no-progress"]) == 0
    assert len(read_events(tmp_path / "zh.root")) == 268
    assert convert_app.main([str(WW), str(tmp_path / "ww.txt"), "-q"]) == 1  # W -> cs, ud: two classes
    assert "holds one class" in capsys.readouterr().err
    assert convert_app.main([str(EXAMPLE), str(tmp_path / "ex.parquet"), "--on-error", "skip", "--bz", "3.5"]) == 0
    assert "dropped 3 broken events" in capsys.readouterr().err


@pytest.mark.slow
def test_a_jet_tagger_trains_on_edm4hep_jets_and_predict_and_score_read_them(tmp_path: Path) -> None:
    """data.paths, predict and Tagger.score on the EDM4hep file: the jet tagger gets the file's jets."""
    from hydra import compose, initialize_config_dir

    from flavortag.apps import CONFIG_DIR
    from flavortag.apps.predict import predict
    from flavortag.apps.train import train
    from flavortag.scoring.tagger import Tagger

    def cfg(app: str, overrides: list[str]):  # noqa: ANN202 -- a Hydra config
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            return compose(config_name=app, overrides=overrides)

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train(cfg("train", ["model=transformer", "data=zh_jets", f"data.paths=[{ZH}]", "data.classes=[light,c,b]",
                        "detector=idea", f"tracking.tracking_uri={store}", f"output_dir={tmp_path / 'train'}",
                        "trainer.max_epochs=1", "evaluate.plot_formats=[png]", "trainer.batch_size=64", "trainer.progress=false",
                        "model.embed_dim=16", "model.depth=1", "model.class_depth=1", "model.embed_hidden=[16]",
                        "model.pair_hidden=[8]"]))
    checkpoint = next((tmp_path / "train").rglob("best.pt"))
    written = predict(cfg("predict", [f"checkpoint={checkpoint}", f"inputs=[{ZH}]", f"out_dir={tmp_path / 'pred'}",
                                      "formats=[parquet]"]))
    scored = read_events(written[0])
    assert len(scored) == 268 and {"prob_b", "D_b", "jet_E"} <= set(scored.fields)
    direct = Tagger.load(str(checkpoint)).score(read_events(ZH, level="jet"))
    np.testing.assert_allclose(np.asarray(direct.prob_b), np.asarray(scored.prob_b), rtol=1e-5, atol=1e-6)


def test_pipeline_chunks_end_on_shared_baskets(tmp_path: Path) -> None:
    """The whole-file read's chunks: whole baskets of the branches read together, about ``step`` entries each."""
    from flavortag.io.edm4hep import basket_ranges

    path = tmp_path / "baskets.root"
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {"a": np.float32, "b": np.int32})
        for _ in range(10):  # one basket per extend: boundaries every 1000 entries
            tree.extend({"a": np.zeros(1000, np.float32), "b": np.zeros(1000, np.int32)})
        tree.extend({"a": np.zeros(500, np.float32), "b": np.zeros(500, np.int32)})
    with uproot.open(path) as file:
        branches = {name: file["events"][name] for name in ("a", "b")}
        ranges = basket_ranges(branches, 10_500, 2000)
        single = basket_ranges(branches, 10_500, 20_000)
    assert ranges == [(0, 2000), (2000, 4000), (4000, 6000), (6000, 8000), (8000, 10_000), (10_000, 10_500)]
    assert single == [(0, 10_500)]
