"""The run-directory resolvers survive the trip to a submitit job: one sweep directory for all jobs."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

import flavortag.apps  # noqa: F401 - registers the resolvers

CHILD = """
import pickle, sys
from omegaconf import OmegaConf
import flavortag.apps
master = pickle.loads(open(sys.argv[1], "rb").read())
job = OmegaConf.create({"sweep": "${flavortag.run_suffix:}", "run": "${flavortag.job_dirname:T}"})
if sys.argv[2] == "copy":
    OmegaConf.copy_cache(from_config=master, to_config=job)   # what Hydra's load_sweep_config does
print(job.sweep, job.run)
"""


def test_a_job_in_another_process_resolves_the_launchers_directories(tmp_path: Path) -> None:
    master = OmegaConf.create({"sweep": "${flavortag.run_suffix:}", "run": "${flavortag.job_dirname:T}"})
    expected = f"{master.sweep} {master.run}"  # resolved (and cached) by the launching process
    blob = tmp_path / "master.pkl"
    blob.write_bytes(pickle.dumps(master))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    runs = {mode: subprocess.run([sys.executable, "-c", CHILD, str(blob), mode], capture_output=True,
                                 text=True, timeout=60, env=env) for mode in ("copy", "fresh")}
    assert runs["copy"].returncode == 0, runs["copy"].stderr
    assert runs["copy"].stdout.split() == expected.split()
    assert runs["fresh"].stdout.split()[0] != master.sweep  # without the cache: another process, another suffix
