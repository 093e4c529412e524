"""Issue 24: the shifted validation copy behind tune's robustness term (augment.shifted_validation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from flavortag.apps import CONFIG_DIR, plain
from flavortag.training.data import prepare_data
from flavortag.training.settings import TrainJob


def _job(sample_dir: Path, tmp_path: Path, *overrides: str) -> TrainJob:
    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[
            "model=mlp", f"data.paths=[{paths}]", f"output_dir={tmp_path}", *overrides])
    return TrainJob.from_config(plain(cfg))


def test_the_validation_events_are_scored_again_re_smeared(sample_dir: Path, tmp_path: Path) -> None:
    nominal = prepare_data(_job(sample_dir, tmp_path))
    data = prepare_data(_job(sample_dir, tmp_path, "augment=detector", "augment.fraction=0",
                             "augment.shifted_validation=true"))
    assert set(data.tensors) == {"train", "val", "test", "val_shifted"}
    # fraction 0: training events as simulated; the validation split itself stays as simulated
    for split in ("train", "val", "test"):
        assert np.array_equal(data.tensors[split].event_features, nominal.tensors[split].event_features), split
    val, shifted = data.tensors["val"], data.tensors["val_shifted"]
    assert np.array_equal(shifted.labels, val.labels)  # the same events...
    changed = ~np.isclose(shifted.event_features, val.event_features).all(axis=1)
    assert changed.mean() > 0.9  # ...every one re-smeared (a few with no displaced track may not move)
    assert data.n_events()["val_shifted"] == len(val.labels)
    assert set(data.records) == {"train", "val", "test"}  # the sample records name the file splits only


def test_shifted_validation_needs_an_augmentation(sample_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augment.shifted_validation re-smears the validation split"):
        _job(sample_dir, tmp_path, "augment.shifted_validation=true")
