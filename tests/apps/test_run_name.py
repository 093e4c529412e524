"""Issue 21: ``run_name`` names one directory under ``outputs/train/``; a name that leaves it is refused.

Before, ``flavortag train run_name=../../x`` made its run directory (Hydra's
``.hydra/``, the log, the owner lock) at ``./x/<time>``, outside ``outputs/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flavortag.apps import dir_name
from flavortag.errors import UsageError


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("HYDRA_FULL_ERROR", "FLAVORTAG_SAMPLES", "MLFLOW_TRACKING_URI")}
    return subprocess.run([sys.executable, "-m", "flavortag", "train", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_a_run_name_that_leaves_the_output_folder_is_refused_before_any_directory(tmp_path: Path) -> None:
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    proc = _train(["run_name=../../x", "data.paths=[nope.parquet]"], cwd)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "flavortag train: error: run_name='../../x': a run name is one directory name under the output "
        "folder (no '/', '\\', '..' or empty name); e.g. run_name=transformer-lr3e-4 "
        "(see `flavortag train --help`)"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/b"]  # nothing made


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", " ", "/tmp/x", "a\\..\\b", "x\0y"])
def test_the_run_directory_resolver_refuses_names_with_separators_or_dots(name: str) -> None:
    with pytest.raises(UsageError, match=r"^run_name=.*: a run name is one directory name"):
        dir_name(name)


@pytest.mark.parametrize("name", ["mlp", "transformer-tuned", "t..x", ".hidden", "lr=3e-4"])
def test_the_run_directory_resolver_keeps_plain_names(name: str) -> None:
    assert dir_name(name) == name
