"""Walk a training job (the train config) through the code: which flavortag files it enters, in order.

    PYTHONPATH=$PWD python scripts/walk_train.py [--model mlp] [--show]

Runs one tiny training job (the embedded Z-pole sample, 60 events per class,
one epoch, a throw-away MLflow store) under ``sys.setprofile`` and records
each *first* call of a flavortag function made from another flavortag file
(loops over epochs and batches add nothing: a function counts once; what a
module body runs while it is imported, lazily by the apps, is not a stop). Each
such call is a stop in the callee's file; a stop in a file the walk has
stopped in before is a *return*. Files of the floors below the pipeline
(io, features, batching, models, metrics, reporting, schema, tracking, scoring: the
libraries a pipeline uses) are counted as their package (``io/``, ``features/``, ...),
and calls made inside a library or a ground-floor module (classes.py,
ragged.py, detector.py, ...) are not walked: one call into a library is one
stop, whatever that library does inside. Prints the stops, the files, the returns and (``--show``)
the walk.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "flavortag"
#: Packages walked as one room each: the libraries below the train pipeline.
LIBRARIES = ("io", "features", "batching", "models", "metrics", "reporting", "generate", "schema", "tracking",
             "scoring")
#: Ground-floor modules: a room each, but what they call is their own business (as a library's).
GROUND = ("classes.py", "ragged.py", "detector.py", "array_ops.py", "errors.py", "slurm.py")


def room(filename: str) -> str | None:
    """The walk's name of a source file: ``training/data.py``, a library package (``io/``), or None."""
    try:
        rel = Path(filename).resolve().relative_to(PACKAGE)
    except ValueError:
        return None
    if rel.parts and rel.parts[0] in LIBRARIES:
        return f"{rel.parts[0]}/"
    if rel.as_posix() in ("tracking.py", "tracking_pyfunc.py"):  # tracking before it was a package
        return "tracking/"
    return rel.as_posix()


def walk(run: Callable[[], Any]) -> list[str]:
    """The stops of ``run()``: the room of each first cross-room call, in order."""
    seen: set[Any] = set()
    stops: list[str] = []
    rooms: dict[str, str | None] = {}

    def room_of(filename: str) -> str | None:
        if filename not in rooms:
            rooms[filename] = room(filename)
        return rooms[filename]

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code in seen:
            return
        seen.add(code)
        if _importing(frame):  # a module body run by a lazy import: loading code, not the job's path
            return
        callee = room_of(code.co_filename)
        caller_frame = frame.f_back
        caller = room_of(caller_frame.f_code.co_filename) if caller_frame is not None else None
        if callee is None or callee == caller or (caller is not None and is_library(caller)):
            return
        if not stops or stops[-1] != callee:
            stops.append(callee)

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return stops


def _importing(frame: Any) -> bool:
    """True while a flavortag module body runs (the frame or a caller is its ``<module>``)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>" and room(frame.f_code.co_filename) is not None:
            return True
        frame = frame.f_back
    return False


def is_library(name: str) -> bool:
    """True for a library package or a ground-floor module: calls made inside it are not walked."""
    return name.endswith("/") or name in GROUND


def summary(stops: list[str]) -> tuple[int, int, int]:
    """(stops, distinct files, returns to a file already stopped in)."""
    return len(stops), len(set(stops)), len(stops) - len(set(stops))


def train_job(model: str, workdir: Path) -> Callable[[], Any]:
    """The train app's work on tiny data, composed as ``flavortag train`` composes it."""
    from hydra import compose, initialize_config_dir

    from flavortag.apps import CONFIG_DIR

    paths = ",".join(str(ROOT / "data" / "zpole_ild" / f"{f}.parquet") for f in ("uds", "cc", "bb"))
    overrides = [f"model={model}", f"data.paths=[{paths}]", "data.max_events_per_class=60",
                 f"tracking.tracking_uri=sqlite:///{workdir / 'mlflow.db'}", f"output_dir={workdir / 'run'}",
                 "trainer.max_epochs=1", "trainer.batch_size=16", "trainer.progress=false",
                 "data.max_tracks=16"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    try:
        from flavortag.apps.train import train  # the app's parse-and-run
    except ImportError:
        from flavortag.training import train  # type: ignore[no-redef]
    return lambda: train(cfg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--show", action="store_true", help="print the walk")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        stops = walk(train_job(args.model, Path(tmp)))
    n_stops, n_files, n_returns = summary(stops)
    if args.show:
        print(" -> ".join(stops))
    print(f"train walk (model={args.model}): {n_stops} stops in {n_files} files, {n_returns} returns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
