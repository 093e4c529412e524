"""The command-line apps, one module each: parse the command line, call one pipeline.

Each app turns its Hydra config (or argparse arguments) into the typed
settings of its pipeline (:mod:`flavortag.pipelines`) and calls it; only
the apps import Hydra and OmegaConf (:func:`plain` turns a composed config
into the plain data the settings are built from).

Hydra apps (``train``, ``evaluate``, ``predict``, ``compare``, ``generate``)
read their primary config from :data:`CONFIG_DIR` (``flavortag/configs``,
shipped inside the package, also reachable as the top-level ``configs/`` of
a checkout); ``export``, ``convert``, ``info`` and ``shard`` are argparse commands.
Every module has ``main``; ``flavortag <app>`` (:mod:`flavortag.cli`) and
``python -m flavortag.apps.<app>`` run it. Importing this package registers the
config resolvers ``${flavortag.run_suffix:}`` (:func:`run_suffix`),
``${flavortag.job_dirname:<time>}`` (:func:`job_dirname`) and
``${flavortag.dir_name:<name>}`` (:func:`dir_name`). The first two are cached in
the config (``use_cache``), so the jobs of a sweep that Hydra's submitit
launcher runs in other processes get the sweep directory the launcher made.
"""

import hashlib
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# train.yaml searches the user's config folder for tune's presets (~/.config/flavortag or
# $FLAVORTAG_CONFIG_DIR); a folder not made yet is no news
warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=.* is not available")

#: Directory of the Hydra configs (package data).
CONFIG_DIR: str = str(Path(__file__).resolve().parents[1] / "configs")
#: Config groups that are not a user's choice (hydra settings, path defaults).
_HIDDEN_GROUPS: frozenset[str] = frozenset({"hydra", "paths"})


_SUFFIX: dict[int, str] = {}


def run_suffix() -> str:
    """``<pid>-<4 hex digits>``: the same all through one job, different in every other.

    The config resolver ``${flavortag.run_suffix:}`` (in ``hydra.run.dir`` of
    ``train``): jobs started in the same second get their own run directories.
    A plain process uses its pid and 4 random digits. The local ranks of one
    ``torchrun`` job (``LOCAL_RANK`` set) must share their run directory, so
    they use the pid of their torchrun agent (their parent) and digits derived
    from it and the rendezvous (``TORCHELASTIC_RUN_ID``, ``MASTER_PORT``).
    """
    pid = os.getpid()
    if pid not in _SUFFIX:
        if "LOCAL_RANK" in os.environ:
            agent = os.getppid()
            key = f"{agent}:{os.environ.get('TORCHELASTIC_RUN_ID', '')}:{os.environ.get('MASTER_PORT', '')}"
            _SUFFIX[pid] = f"{agent}-{hashlib.sha256(key.encode()).hexdigest()[:4]}"
        else:
            _SUFFIX[pid] = f"{pid}-{secrets.token_hex(2)}"
    return _SUFFIX[pid]


OmegaConf.register_new_resolver("flavortag.run_suffix", run_suffix, replace=True, use_cache=True)


def job_dirname(time_text: str) -> str:
    """A run directory's name: ``slurm-<job key>[.<step>]`` inside a SLURM job, else ``<time_text>_<run_suffix>``.

    The resolver ``${flavortag.job_dirname:${now:...}}`` of ``train``'s
    ``hydra.run.dir``. SLURM's job key (:func:`flavortag.slurm.run_key`: the job
    id, or ``<array job>_<task>``, and ``.<step>`` inside an ``srun`` step) stays the same when the job is requeued, so
    the requeued job finds its own directory and checkpoints again and resumes
    (:func:`flavortag.pipelines.train.train`); every task of the job (``srun``,
    torchrun on each node) shares it.
    """
    from flavortag.slurm import run_key

    key = run_key()
    return f"slurm-{key}" if key else f"{time_text}_{run_suffix()}"


OmegaConf.register_new_resolver("flavortag.job_dirname", job_dirname, replace=True, use_cache=True)


def dir_name(name: object) -> str:
    """``name`` as one directory name under the output folder; a name that would leave it is refused.

    The resolver ``${flavortag.dir_name:${run_name}}`` of ``train``'s run and
    sweep directories: ``run_name=../../x`` (or ``a/b``, an absolute path, an
    empty name) would put the run outside ``outputs/train/``, so it raises
    :class:`~flavortag.errors.UsageError` before Hydra makes any directory.
    """
    from flavortag.errors import UsageError

    text = str(name)
    bad = "/" in text or "\\" in text or text.strip() in ("", ".", "..") or "\0" in text
    if bad:
        raise UsageError(
            f"run_name={text!r}: a run name is one directory name under the output folder "
            "(no '/', '\\', '..' or empty name); e.g. run_name=transformer-lr3e-4"
        )
    return text


OmegaConf.register_new_resolver("flavortag.dir_name", dir_name, replace=True)


def plain(cfg: DictConfig) -> dict[str, Any]:
    """A composed config as plain, resolved data (what the settings below the apps are built from).

    A mandatory value not given (``???``) raises OmegaConf's ``MissingMandatoryValue``
    here, which the command line reports as a usage error naming the key.
    """
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def app_config_groups() -> str:
    """The ``--help`` list of the running app's own config groups: each group's options, the chosen one.

    Hydra's ``$APP_CONFIG_GROUPS`` lists every group of the config directory,
    whichever app asks; this reads the groups of this app's defaults list
    (``hydra.runtime.choices``), so ``predict --help`` does not offer ``model=``.
    Used by the help template of ``configs/hydra/default.yaml`` as ``${flavortag_groups:}``.
    """
    from hydra.core.hydra_config import HydraConfig

    choices = HydraConfig.get().runtime.choices
    lines = []
    for group, chosen in choices.items():
        if group.split("/", 1)[0] in _HIDDEN_GROUPS:
            continue
        options = sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))
        lines.append(f"{group}: {', '.join(options)}   (default: {chosen if chosen else 'none'})")
    return "\n".join(lines) if lines else "(none)"


OmegaConf.register_new_resolver("flavortag_groups", app_config_groups, replace=True)


__all__ = ["CONFIG_DIR", "app_config_groups", "dir_name", "job_dirname", "plain", "run_suffix"]
