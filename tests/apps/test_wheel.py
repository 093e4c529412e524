"""A plain (non-editable) wheel carries the configs: its apps run from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding only the built wheel; the dependencies come from this venv's site-packages."""
    tmp = tmp_path_factory.mktemp("wheel")
    # build from a copy, so that setuptools' build/ and egg-info never land in the checkout
    source = tmp / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "outputs", "multirun",
        "mlruns", "mlartifacts", "mlflow.db", "samples"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((tmp / "dist").glob("flavortag-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    # the licence as an SPDX expression (PEP 639): no setuptools deprecation warning at install
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    for config in ("train.yaml", "evaluate.yaml", "hydra/default.yaml", "model/transformer.yaml",
                   "experiment/transformer_zpole.yaml"):
        assert f"flavortag/configs/{config}" in names
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies (torch, hydra, mlflow, ...) from this venv, after the wheel's own files
    (Path(site) / "zz_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def _run(venv: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([str(venv / "bin" / "flavortag"), *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.mark.slow
def test_wheel_apps_run_outside_the_checkout(installed: Path, sample_dir: Path, tmp_path: Path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import flavortag, sys; print(flavortag.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(installed) in where  # the wheel's copy, not the checkout

    job = _run(installed, ["train", "--cfg", "job"], tmp_path)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "model:" in job.stdout and "trainer:" in job.stdout and "paths:" in job.stdout

    paths = ",".join(str(sample_dir / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    run = _run(installed, ["train", f"data.paths=[{paths}]", "trainer.max_epochs=1", "trainer.batch_size=64",
                           "trainer.progress=false", "data.max_tracks=16", "evaluate_after_training=false",
                           "tracking.experiment_name=wheel-test"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "mlflow.db").exists()
    assert list((tmp_path / "outputs" / "train" / "mlp").glob("*/checkpoints/best.pt"))
