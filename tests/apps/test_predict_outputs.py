"""Issue 16: predict output names keep the whole stem; two inputs for one output are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from flavortag.apps import CONFIG_DIR
from flavortag.scoring.prediction import output_stem, plan_outputs


def test_output_stem_keeps_the_whole_stem():
    assert output_stem(Path("d/run.1.root"), None) == Path("d/run.1.flavortag")
    assert output_stem(Path("d/run.2.txt.gz"), "out") == Path("out/run.2.flavortag")
    assert output_stem(Path("bb.parquet"), None) == Path("bb.flavortag")
    assert output_stem(Path("a.b.c.PQ"), None) == Path("a.b.c.flavortag")


def test_two_inputs_for_one_output_are_refused_before_anything_is_read(tmp_path):
    from flavortag.apps.predict import predict

    for name in ("run.1.root", "run.1.parquet"):
        (tmp_path / name).write_bytes(b"not read")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="predict", overrides=[
            f"checkpoint={tmp_path / 'missing.pt'}",
            f"inputs=[{tmp_path / 'run.1.root'},{tmp_path / 'run.1.parquet'}]"])
    with pytest.raises(ValueError) as err:
        predict(cfg)
    target = (tmp_path / "run.1.flavortag.parquet").resolve()
    assert str(err.value) == (
        f"{tmp_path / 'run.1.parquet'} and {tmp_path / 'run.1.root'} would both be written to "
        f"{target}: predict them separately or with out_dir set apart; nothing written"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.1.parquet", "run.1.root"]


def test_distinct_inputs_plan_distinct_outputs(tmp_path):
    stems = plan_outputs([Path("x/run.1.root"), Path("x/run.2.root")], None, ["parquet", "root"])
    assert [s.name for s in stems] == ["run.1.flavortag", "run.2.flavortag"]
