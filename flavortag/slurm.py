"""SLURM's environment, read as pure functions: the job's key, node lists, DDP ranks of ``srun`` tasks.

No torch, Hydra or MLflow here (the apps' config resolvers and the training
runtime both use it). ``scontrol`` is not called: node lists are parsed here
(:func:`first_host`).

* :func:`job_key`: ``<array job>_<task>`` or ``<job id>``, the same when SLURM
  requeues the job; :func:`run_key` adds ``.<step>`` inside an ``srun`` step
  (steps are numbered again from 0 when the requeued script runs), so a run
  directory named after it (``hydra.run.dir`` of ``train``: ``.../slurm-<key>``)
  is found again by the requeued job, and two trainings run one after the
  other in one job (two ``srun`` steps) do not share one.
* :func:`ddp_environment`: the ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` /
  ``MASTER_ADDR`` / ``MASTER_PORT`` that ``torchrun`` would set, mapped from the
  task variables of a plain ``srun --ntasks=N`` (one process per GPU); or a
  :class:`SlurmEnvironmentError` (a usage error, one line) when the tasks
  cannot become one data-parallel training.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from flavortag.errors import UsageError

__all__ = ["SlurmEnvironmentError", "ddp_environment", "first_host", "in_srun_step", "job_key",
           "n_tasks", "run_key"]

#: Variables torchrun sets; any of them present means the launcher already did the mapping.
TORCHRUN_VARIABLES: tuple[str, ...] = ("RANK", "WORLD_SIZE")
#: MASTER_PORT of a SLURM job without one: ``PORT_BASE + job id % PORT_SPAN``.
PORT_BASE, PORT_SPAN = 20000, 20000


class SlurmEnvironmentError(UsageError):
    """SLURM tasks that cannot be mapped to one training (exit code 2)."""


def job_key(env: Mapping[str, str] | None = None) -> str | None:
    """``<SLURM_ARRAY_JOB_ID>_<SLURM_ARRAY_TASK_ID>`` in an array job, else ``SLURM_JOB_ID``; None outside SLURM."""
    env = os.environ if env is None else env
    array, task = env.get("SLURM_ARRAY_JOB_ID", "").strip(), env.get("SLURM_ARRAY_TASK_ID", "").strip()
    if array and task:
        return f"{array}_{task}"
    job = env.get("SLURM_JOB_ID", "").strip() or env.get("SLURM_JOBID", "").strip()
    return job or None


def run_key(env: Mapping[str, str] | None = None) -> str | None:
    """:func:`job_key`, plus ``.<SLURM_STEP_ID>`` inside a numbered ``srun`` step; None outside SLURM."""
    env = os.environ if env is None else env
    key = job_key(env)
    step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "")).strip()
    return f"{key}.{step}" if key and step.isdigit() else key


def first_host(nodelist: str) -> str:
    """The first host of a compact SLURM node list: ``node[01-04,07],gpu2`` -> ``node01``.

    Handles a prefix with a bracketed list of numbers and ranges (leading zeros
    kept) and comma-separated entries; ``ValueError`` for an empty or broken list.
    """
    text = nodelist.strip()
    match = re.match(r"^([^,\[\]]*)(?:\[([^\]]*)\])?([^,\[\]]*)(?:,|$)", text)
    if not text or match is None or not (match.group(1) or match.group(2)):
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges, suffix = match.group(1), match.group(2), match.group(3)
    if ranges is None:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0].strip()
    if not first.isdigit():
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    return f"{prefix}{first}{suffix}"


def in_srun_step(env: Mapping[str, str] | None = None) -> bool:
    """True inside the tasks of an ``srun`` step (not the batch script itself)."""
    env = os.environ if env is None else env
    step = env.get("SLURM_STEP_ID", env.get("SLURM_STEPID", "")).strip()
    return bool(step) and step.lower() not in ("batch", "extern") and "SLURM_PROCID" in env


def n_tasks(env: Mapping[str, str] | None = None) -> int:
    """Tasks of the current step (``SLURM_STEP_NUM_TASKS``, else ``SLURM_NTASKS``; 1 outside SLURM)."""
    env = os.environ if env is None else env
    raw = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    try:
        return int(raw.split("(")[0])
    except ValueError:
        raise SlurmEnvironmentError(f"SLURM_NTASKS={raw!r} is not a number of tasks") from None


def ddp_environment(env: Mapping[str, str], distributed: bool) -> dict[str, str]:
    """The torchrun variables to set for this SLURM task (empty: nothing to map).

    Nothing is mapped outside an ``srun`` step, for a single task, or when
    ``RANK`` / ``WORLD_SIZE`` are already set (torchrun, or by hand). For
    ``N > 1`` tasks with ``distributed`` true: ``RANK`` from ``SLURM_PROCID``,
    ``WORLD_SIZE`` from the task count, ``LOCAL_RANK`` from ``SLURM_LOCALID``,
    ``MASTER_ADDR`` (unless set) the first host of ``SLURM_STEP_NODELIST`` /
    ``SLURM_JOB_NODELIST`` (where task 0 runs), else ``SLURM_LAUNCH_NODE_IPADDR``,
    ``MASTER_PORT`` (unless set) ``20000 + job id % 20000``. With ``distributed``
    false, N tasks would be N copies of one training writing the same run:
    :class:`SlurmEnvironmentError`.
    """
    if any(k in env for k in TORCHRUN_VARIABLES) or not in_srun_step(env):
        return {}
    world = n_tasks(env)
    if world <= 1:
        return {}
    rank = env["SLURM_PROCID"]
    if not distributed:
        raise SlurmEnvironmentError(
            f"this is SLURM task {rank} of {world} (srun --ntasks={world}) but trainer.distributed is "
            f"false: the {world} tasks would each train the same model into the same run; run one "
            "task (srun --ntasks=1), or train data-parallel with trainer=ddp (one task per GPU), or "
            "one torchrun per node (scripts/slurm/train_ddp.sbatch)")
    local = env.get("SLURM_LOCALID", "").strip()
    if not local.isdigit() or not rank.strip().isdigit():
        raise SlurmEnvironmentError(
            f"SLURM task variables SLURM_PROCID={rank!r} SLURM_LOCALID={local!r} do not give this task's "
            f"rank among {world}; launch with torchrun instead (scripts/slurm/train_ddp.sbatch)")
    mapped = {"RANK": rank.strip(), "WORLD_SIZE": str(world), "LOCAL_RANK": local,
              "LOCAL_WORLD_SIZE": env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0] or ""}
    if not mapped["LOCAL_WORLD_SIZE"]:
        del mapped["LOCAL_WORLD_SIZE"]
    if "MASTER_ADDR" not in env:
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if nodelist:
            try:
                mapped["MASTER_ADDR"] = first_host(nodelist)
            except ValueError as err:
                raise SlurmEnvironmentError(f"{err}: set MASTER_ADDR to the host of task 0") from None
        elif env.get("SLURM_LAUNCH_NODE_IPADDR"):
            mapped["MASTER_ADDR"] = env["SLURM_LAUNCH_NODE_IPADDR"]
        else:
            raise SlurmEnvironmentError(
                f"SLURM task {rank} of {world}: no SLURM_JOB_NODELIST or SLURM_LAUNCH_NODE_IPADDR to find "
                "the host of task 0; set MASTER_ADDR (and MASTER_PORT), or launch with torchrun")
    if "MASTER_PORT" not in env:
        job = env.get("SLURM_JOB_ID", "").strip()
        mapped["MASTER_PORT"] = str(PORT_BASE + (int(job) % PORT_SPAN if job.isdigit() else 9500))
    return mapped
