"""Issue 14: ``flavortag predict`` streams its inputs: chunks change no number, order is kept,
outputs are complete files (atomic), ``calibration=auto`` fits on the whole input."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.compose import compose_app

FIELDS = ["prob_uds", "prob_cc", "prob_bb", "D_b", "D_c"]


_cfg = compose_app


@pytest.fixture(scope="module")
def checkpoint(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flavortag.apps.train import train

    store = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    out = tmp_path_factory.mktemp("stream_deepsets")
    train(_cfg("train", [
        "model=deepsets", f"data.paths=[{paths}]", f"tracking.tracking_uri={store}",
        "tracking.experiment_name=stream-test", f"output_dir={out}", "trainer.max_epochs=1", "evaluate.plot_formats=[png]",
        "trainer.batch_size=64", "trainer.progress=false", "data.max_tracks=24",
        "model.phi_dims=[16,16]", "model.rho_dims=[16]", "evaluate.write_predictions=false"]))
    return out / "checkpoints" / "best.pt"


def _predict(checkpoint: Path, inputs: list[Path], out: Path, *extra: str) -> list[Path]:
    from flavortag.apps.predict import predict

    return predict(_cfg("predict", [f"checkpoint={checkpoint}", f"inputs=[{','.join(map(str, inputs))}]",
                                    f"out_dir={out}", *extra]))


def test_chunks_change_no_number_and_keep_the_order(checkpoint: Path, sample_dir: Path, tmp_path: Path) -> None:
    from flavortag.io import read_events

    source = sample_dir / "bb.parquet"
    whole = _predict(checkpoint, [source], tmp_path / "whole", "step_size=1000000")
    chunked = _predict(checkpoint, [source], tmp_path / "chunked", "step_size=37")
    assert [p.name for p in chunked] == ["bb.flavortag.parquet", "bb.flavortag.root"]
    assert pq.ParquetFile(chunked[0]).num_row_groups > 3  # really written chunk by chunk
    events = read_events(str(source))
    for a_path, b_path in zip(whole, chunked):
        a, b = read_events(str(a_path)), read_events(str(b_path))
        assert len(a) == len(b) == len(events)
        # order kept: the events come back as they were read
        np.testing.assert_array_equal(ak.to_numpy(ak.flatten(b.tracks.E)), ak.to_numpy(ak.flatten(events.tracks.E)))
        for name in FIELDS:
            np.testing.assert_allclose(np.asarray(b[name]), np.asarray(a[name]), atol=1e-6, err_msg=name)
        assert np.all((np.asarray(b.prob_bb) >= 0) & (np.asarray(b.prob_bb) <= 1))
    assert sorted(p.name for p in (tmp_path / "chunked").iterdir()) == ["bb.flavortag.parquet", "bb.flavortag.root"]


def test_calibration_auto_fits_on_the_whole_input(checkpoint: Path, sample_dir: Path, tmp_path: Path) -> None:
    from flavortag.calibration_function import fit_function_calibration
    from flavortag.detector import DetectorModel
    from flavortag.io import read_events
    from flavortag.scoring.prediction import input_calibration as _calibration

    source = sample_dir / "uds.parquet"
    fitted = _calibration("auto", source, DetectorModel(), 40, 10**9)
    whole = fit_function_calibration(read_events(str(source)), DetectorModel())
    assert fitted is not None
    assert fitted.d0 == whole.d0 and fitted.z0 == whole.z0
    a = _predict(checkpoint, [source], tmp_path / "a", "calibration=auto", "step_size=41", "formats=[parquet]")
    b = _predict(checkpoint, [source], tmp_path / "b", "calibration=auto", "step_size=100000", "formats=[parquet]")
    for name in FIELDS:
        np.testing.assert_allclose(np.asarray(ak.from_parquet(a[0])[name]),
                                   np.asarray(ak.from_parquet(b[0])[name]), atol=1e-6)
