"""Issue 15: every ``flavortag <command>`` reports an error as one line with its fix; exit 2 for usage, 1 else.

Each case runs the real command in a subprocess (``python -m flavortag``) in an
empty working directory and checks the whole of stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _flavortag(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("HYDRA_FULL_ERROR", "FLAVORTAG_SAMPLES", "MLFLOW_TRACKING_URI")}
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "flavortag", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("data", "recipe"), [
    ("zpole_30k", "flavortag generate n_events=30000 format=parquet out=samples/zpole_ild_30k"),
    # issue 26: the hint comes from the data config's own recipe (it was the nominal detector's)
    ("zpole_worse_ip", "flavortag generate n_events=10000 detector=ild_worse_ip seed=777 format=parquet "
                       "out=samples/zpole_ild_worse_ip_10k"),
])
def test_missing_sample_names_the_generate_command(data: str, recipe: str, tmp_path: Path) -> None:
    proc = _flavortag(["train", f"data={data}", "trainer.progress=false"], tmp_path)
    assert proc.returncode == 1
    sample = recipe.rpartition("out=")[2]
    assert _one_line(proc) == f"flavortag train: error: no sample at {sample}: make it with `{recipe}`"


def test_the_recipe_is_not_said_for_other_files(tmp_path: Path) -> None:
    proc = _flavortag(["train", "data=zpole_worse_ip", "data.paths=[mine/uds.parquet]"], tmp_path)
    assert proc.returncode == 1
    assert _one_line(proc) == ("flavortag train: error: no sample at mine: make it with "
                               "`flavortag generate out=mine`")


def test_unknown_run_id_says_so_and_how_to_list_runs(tmp_path: Path, sample_dir: Path) -> None:
    from flavortag.tracking import ensure_sqlite_store

    ensure_sqlite_store(tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _flavortag(["predict", "run_id=0123456789abcdef", f"inputs=[{sample_dir / 'cc.parquet'}]",
                       f"out_dir={tmp_path / 'out'}", f"tracking.tracking_uri={store}"], tmp_path)
    assert proc.returncode == 1
    line = _one_line(proc)
    assert line.startswith(f"flavortag predict: error: no MLflow run 0123456789abcdef in the store {store}: ")
    assert f"mlflow ui --backend-store-uri {store}" in line


def test_missing_store_is_not_created(tmp_path: Path) -> None:
    proc = _flavortag(["evaluate", "run_id=0123456789abcdef"], tmp_path)
    assert proc.returncode == 1
    assert _one_line(proc).startswith("flavortag evaluate: error: no MLflow store at mlflow.db")
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["train", "trainer.max_epoch=1"],
     "flavortag train: error: unknown key trainer.max_epoch; did you mean trainer.max_epochs?"),
    (["train", "model=nope"],
     "flavortag train: error: In 'train': Could not find 'model/nope'; "
     "Available options in 'model': bdt, deepsets, mlp, transformer"),
    (["predict", "checkpoint=best.pt"],
     "flavortag predict: error: Missing mandatory value: inputs: give it on the command line, "
     "`flavortag predict inputs=...`"),
    (["predict", "inputs=[a.parquet]"],
     "flavortag predict: error: give exactly one of run_id=<mlflow run id> or checkpoint=<path>"),
    # issue 26: a --flag given to a Hydra command gets its key=value spelling (was Hydra's usage)
    (["evaluate", "--run-id", "0123abc"],
     "flavortag evaluate: error: unknown option --run-id: flavortag evaluate takes key=value overrides: "
     "run_id=0123abc"),
    (["train", "--max-epochs=3"],
     "flavortag train: error: unknown option --max-epochs: flavortag train takes key=value overrides; "
     "did you mean trainer.max_epochs=3?"),
    (["evaluate", "--epochs", "3"],
     "flavortag evaluate: error: unknown option --epochs: flavortag evaluate takes key=value overrides, "
     "and epochs is not a key: the keys of the config are calibration, checkpoint, "),
    (["train", "model=transfomer"],
     "flavortag train: error: In 'train': Could not find 'model/transfomer'; "
     "Available options in 'model': bdt, deepsets, mlp, transformer; did you mean transformer?"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    proc = _flavortag(args, tmp_path)
    assert proc.returncode == 2
    assert _one_line(proc).startswith(expected)
    assert "+trainer" not in proc.stderr  # no advice to append a mistyped key


def test_traceback_only_when_asked(tmp_path: Path) -> None:
    args = ["predict", "checkpoint=best.pt", "inputs=[missing.parquet]"]
    plain = _flavortag(args, tmp_path)
    assert plain.returncode == 1
    assert _one_line(plain) == (f"flavortag predict: error: no such file: missing.parquet "
                                f"(working directory {tmp_path})")
    for proc in (_flavortag([*args, "-v"], tmp_path), _flavortag(args, tmp_path, HYDRA_FULL_ERROR="1")):
        assert proc.returncode == 1
        assert "Traceback (most recent call last)" in proc.stderr
        assert proc.stderr.strip().endswith("FileNotFoundError: no such file: missing.parquet "
                                            f"(working directory {tmp_path})")


def test_convert_names_the_options_typed(tmp_path: Path, sample_dir: Path) -> None:
    (tmp_path / "events.xyz").write_text("")
    proc = _flavortag(["convert", "events.xyz", "out.parquet"], tmp_path)
    assert proc.returncode == 2
    line = _one_line(proc)
    assert line.startswith("flavortag convert: error: events.xyz: cannot tell the format from the file name")
    assert "give --from text, root or parquet; nothing written" in line and "format=" not in line

    proc = _flavortag(["convert", str(sample_dir / "cc.parquet"), "out.xyz"], tmp_path)
    assert proc.returncode == 2
    assert "give --to text, root or parquet" in _one_line(proc)

    (tmp_path / "events.txt").write_text("Axis = 0 0 1\n")
    proc = _flavortag(["convert", "events.txt", "out.parquet"], tmp_path)
    assert proc.returncode == 2
    assert "pass --label CLASS or --label-rule REGEX=CLASS" in _one_line(proc)
    assert not (tmp_path / "out.parquet").exists()


def test_generate_help_has_its_own_header(tmp_path: Path) -> None:
    proc = _flavortag(["generate", "--help"], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.startswith("Generate e+e- -> Z/gamma* -> q qbar samples")
    assert "flavortag generate n_events=30000 out=samples/zpole_ild_30k" in proc.stdout
    assert "generate is powered by Hydra" not in proc.stdout  # Hydra's stock header


@pytest.mark.parametrize(("app", "own", "foreign"), [
    ("predict", ["tracking: local, server"], ["model:", "trainer:", "augment:"]),
    ("generate", ["detector: idea, ild"], ["model:", "tracking:", "data:"]),
    ("train", ["model: bdt, deepsets, mlp, transformer   (default: mlp)", "trainer:"], []),
])
def test_help_lists_only_the_apps_own_groups(app: str, own: list[str], foreign: list[str],
                                             tmp_path: Path) -> None:
    proc = _flavortag([app, "--help"], tmp_path)
    assert proc.returncode == 0
    groups = proc.stdout.split("== Config groups (group=option) ==", 1)[1].split("== Options", 1)[0]
    for line in own:
        assert line in groups
    for line in foreign:
        assert f"\n{line}" not in groups


def test_hints_are_spelt_as_the_commands_options(tmp_path: Path, sample_dir: Path) -> None:
    """issue 26: export takes --tracking-uri and info takes --label; their hints say so."""
    proc = _flavortag(["export", "0123456789abcdef", "out"], tmp_path)
    assert proc.returncode == 1
    assert _one_line(proc) == (f"flavortag export: error: no MLflow store at mlflow.db (working directory "
                               f"{tmp_path}): run where you trained, or give --tracking-uri "
                               "sqlite:///<path of the store of the run>")
    assert not (tmp_path / "mlflow.db").exists()  # reading a run makes no empty store
    from flavortag.io import read_events, write_events

    write_events(read_events(sample_dir / "bb.parquet")[:5], tmp_path / "events.txt")
    proc = _flavortag(["info", "events.txt"], tmp_path)
    assert proc.returncode == 1
    assert _one_line(proc).startswith("flavortag info: events.txt: cannot tell the class from the file name "
                                      "'events.txt'; pass --label ... or a file-name rule")
