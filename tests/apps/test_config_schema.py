"""Issue 15: every app's config is checked against its schema before anything runs.

Every option of every config group composes and passes the schema (so a key
added to a YAML file without its schema field fails here); a typo'd key, a key
appended with ``+`` and a bad value each stop ``flavortag <app>`` with one line
and exit status 2 before an MLflow store is even created.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from flavortag.apps import CONFIG_DIR
from flavortag.apps.schema import APPS, check_values
from flavortag.errors import UsageError


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def _values(app: str, overrides: list[str]) -> dict:
    extra = {"train": ["output_dir=out"], "evaluate": ["output_dir=out", "run_id=abc"],
             "compare": ["output_dir=out"], "robustness": ["output_dir=out"],
             "predict": ["inputs=[a.parquet]", "run_id=abc"]}.get(app, [])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=app, overrides=[*extra, *overrides])
    values = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(values, dict)
    return values


#: The apps' defaults, and every other option of each group once (train's default is
#: data=zpole_embedded, detector=ild, augment=none, model=mlp, trainer=default, ...).
_DEFAULTS = {"data": "zpole_embedded", "detector": "ild", "augment": "none", "model": "mlp",
             "trainer": "default", "tracking": "local", "features": "default"}
CASES = ([(app, []) for app in APPS]
         + [("train", [f"{group}={option}"]) for group, default in _DEFAULTS.items()
            for option in _options(group) if option != default]
         + [("train", [f"+experiment={e}"]) for e in _options("experiment")]
         + [("evaluate", [f"data={d}"]) for d in _options("data")])


@pytest.mark.parametrize(("app", "overrides"), CASES, ids=[f"{a}:{','.join(o)}" for a, o in CASES])
def test_every_config_option_passes_its_schema(app: str, overrides: list[str]) -> None:
    check_values(_values(app, overrides), app)


@pytest.mark.parametrize(("app", "overrides", "message"), [
    ("train", ["+trainer.max_epoch=1"], "unknown key trainer.max_epoch; did you mean trainer.max_epochs?"),
    ("train", ["+seeed=3"], "unknown key seeed; did you mean seed?"),
    ("train", ["model=deepsets", "+model.num_heads=4"],
     "unknown key model.num_heads; the keys of model (model=deepsets) are name, phi_dims, rho_dims, "),
    ("train", ["trainer.precision=fp16"], "trainer.precision must be one of auto, fp32, bf16, 32, not 'fp16'"),
    ("train", ["model=transformer", "model.num_heads=5"],
     "model.num_heads=5 must divide model.embed_dim=64 (e.g. num_heads=4)"),
    ("train", ["trainer.max_epochs=0"], "trainer.max_epochs must be an integer >= 1, not 0"),
    ("train", ["trainer.warmup_fraction=1.5"], "trainer.warmup_fraction must be a number in [0, 1), not 1.5"),
    ("train", ["trainer.lr=null"], "trainer.lr must be a number > 0, not None"),
    ("train", ["model=mlp", "model.dropout=1.5"], "model.dropout must be a number in [0, 1), not 1.5"),
    ("train", ["model=deepsets", "model.pooling=[sum,median]"],
     "model.pooling[1] must be one of sum, mean, max, attention, not 'median'"),
    ("train", ["data.split.train=0.5"], "data.split fractions must sum to 1, not 0.8"),
    ("train", ["features.track=[log_e_gv]"], "unknown track feature features.track[0]='log_e_gv'; "
                                             "did you mean log_e_gev?"),
    ("train", ["detector.track_efficiency=1.2"], "detector.track_efficiency must be in (0, 1]"),
    ("evaluate", ["split=train"], "split must be one of test, all, not 'train'"),
    ("predict", ["formats=[csv]"], "formats[0] must be one of parquet, root, not 'csv'"),
    ("generate", ["format=hdf5"], "format must be one of parquet, root, text, not 'hdf5'"),
    ("generate", ["flavours=[bb,tt]"], "flavours[1] must be one of uds, cc, bb, gg, ss, ud, not 'tt'"),
    ("calibrate", ["on_error=ignore"], "on_error must be one of raise, skip, not 'ignore'"),
    ("robustness", ["calibration=sometimes"], "calibration must be one of none, scale, function, auto, both, all, not 'sometimes'"),
    ("compare", ["+refrence=bdt"], "unknown key refrence; did you mean reference?"),
])
def test_bad_configs_are_refused_with_the_key_and_the_fix(app: str, overrides: list[str], message: str) -> None:
    with pytest.raises(UsageError) as err:
        check_values(_values(app, overrides), app)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(("args", "line"), [
    (["train", "trainer.max_epoch=1"], "unknown key trainer.max_epoch; did you mean trainer.max_epochs?"),
    (["train", "+trainer.max_epoch=1"], "unknown key trainer.max_epoch; did you mean trainer.max_epochs?"),
    (["train", "model=transformer", "model.num_head=2"], "unknown key model.num_head; did you mean model.num_heads?"),
    (["train", "model=transformer", "model.num_heads=5"], "model.num_heads=5 must divide model.embed_dim=64"),
    (["train", "trainer.precision=fp16"], "trainer.precision must be one of auto, fp32, bf16, 32, not 'fp16'"),
    (["evaluate", "run_id=abc", "+calibraton=auto"], "unknown key calibraton; did you mean calibration?"),
])
def test_the_command_stops_before_any_run_with_one_line(args: list[str], line: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from flavortag import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")  # the command sets it; restored afterwards
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main([*args, f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"flavortag {args[0]}: error: {line}"), err[0]
    assert "+trainer" not in err[0]
    assert not (tmp_path / "mlflow.db").exists()  # no store, so no FAILED run in it
    assert not (tmp_path / "mlruns").exists()


def test_data_paths_take_globs_from_the_working_directory_and_the_project(
        sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from flavortag.dataset import load_sample, resolve_paths

    monkeypatch.chdir(sample_dir)
    assert [p.name for p in resolve_paths(["*.parquet"])] == ["bb.parquet", "cc.parquet", "uds.parquet"]
    monkeypatch.chdir(tmp_path)  # the embedded sample, named relative to the project root
    found = resolve_paths("data/zpole_ild/*.parquet")
    assert [p.name for p in found] == ["bb.parquet", "cc.parquet", "uds.parquet"] and found[0].is_file()
    events = load_sample({"paths": [str(sample_dir / "[bc]*.parquet")], "max_events_per_class": 5})
    assert np.bincount(np.asarray(events["label"]), minlength=3).tolist() == [0, 5, 5]
    with pytest.raises(FileNotFoundError, match=r"\*\.root"):
        resolve_paths([str(sample_dir / "*.root")])


def test_detector_schema_follows_the_detector_model() -> None:
    """The detector schema is made from DetectorModel: same names, same defaults, no drift."""
    import dataclasses

    from flavortag.detector import DetectorModel
    from flavortag.schema.groups import DetectorSchema

    model = {f.name: f.default for f in dataclasses.fields(DetectorModel)}
    schema = {f.name: (f.default_factory() if f.default is dataclasses.MISSING  # type: ignore[misc]
                       else f.default) for f in dataclasses.fields(DetectorSchema)}
    assert set(schema) - set(model) == {"description", "source"}  # the YAML's own notes
    assert set(model) <= set(schema)
    for name, default in model.items():
        expected = list(default) if isinstance(default, tuple) else default
        assert schema[name] == expected, name
