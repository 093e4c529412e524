"""A set of shards as one thing: its manifest, how it is committed, and the readers' check.

``flavortag shard`` (:mod:`flavortag.io.shard`) writes ``shard-<i>-of-<N>.parquet``
and ``shards.json`` into one directory. A set appears whole or not at all:

1. every shard is written under a hidden staging directory
   (``.spill-<pid>/``, which no ``*.parquet`` glob of the output matches);
2. ``shards.json`` is written with ``"complete": false`` (the set is being
   replaced: from here on readers refuse the directory's shards);
3. shard files of an earlier set that the new one does not replace are removed,
   and the new shards are renamed into place;
4. ``shards.json`` is rewritten with ``"complete": true``.

A writer killed before step 2 leaves the directory as it was (the earlier set,
or no shards); one killed in steps 2-4 leaves a manifest that says
``complete: false``, and :func:`check_shard_files` (run by every reader on the
files it is given) refuses such a set, and any shard file that its
directory's ``shards.json`` does not list. Shard files without a
``shards.json`` beside them (copied elsewhere) are read as they are. The
staging directories of writers that are no longer running are removed by the
next ``flavortag shard`` into the same directory (:func:`remove_stale_spills`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from flavortag.io.atomic import atomic_output, leftovers_of_dead_writers
from flavortag.io.errors import log

#: Manifest written beside the shards.
MANIFEST = "shards.json"
#: Staging directory of one writer, ``.spill-<pid>``, under the output directory.
SPILL_PREFIX = ".spill-"
SHARD_NAME = re.compile(r"^shard-(\d{5,})-of-(\d{5,})\.parquet$")
_SPILL_NAME = re.compile(rf"^{re.escape(SPILL_PREFIX)}(\d+)$")


class IncompleteShardSetError(ValueError):
    """Shard files that are not part of a complete set (a ``flavortag shard`` that was stopped)."""


def shard_path(out_dir: str | os.PathLike, shard: int, n_shards: int) -> Path:
    """``out_dir/shard-<shard>-of-<n_shards>.parquet`` (5 digits each)."""
    return Path(out_dir) / f"shard-{shard:05d}-of-{n_shards:05d}.parquet"


def spill_dir(out_dir: str | os.PathLike) -> Path:
    """This process's staging directory under ``out_dir``."""
    return Path(out_dir) / f"{SPILL_PREFIX}{os.getpid()}"


def remove_stale_spills(out_dir: str | os.PathLike) -> list[Path]:
    """Remove the staging directories under ``out_dir`` of writers that no longer run; each is logged."""
    removed: list[Path] = []
    for name, pid in leftovers_of_dead_writers(out_dir, _SPILL_NAME):
        path = Path(out_dir) / name
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            log.warning("%s: removed %s, the staging directory of a killed `flavortag shard` (process %s)",
                        out_dir, name, pid)
            removed.append(path)
    return removed


def write_manifest(out_dir: Path, manifest: Mapping[str, Any], *, complete: bool) -> None:
    """Write ``shards.json`` (atomically: a temporary name, then a rename) with ``complete`` set."""
    with atomic_output(out_dir / MANIFEST) as tmp:
        tmp.write_text(json.dumps({**manifest, "complete": complete}, indent=1) + "\n")


def commit(out_dir: Path, staged: list[Path], manifest: Mapping[str, Any]) -> list[Path]:
    """Move the staged shards into ``out_dir`` as one set (steps 2-4 of the module doc); their final paths."""
    write_manifest(out_dir, manifest, complete=False)
    names = {p.name for p in staged}
    for name in sorted(os.listdir(out_dir)):
        if SHARD_NAME.match(name) and name not in names:
            (out_dir / name).unlink(missing_ok=True)
            log.warning("%s: removed %s, a shard of the set that this one replaces", out_dir, name)
    final = []
    for path in staged:
        target = out_dir / path.name
        os.replace(path, target)
        final.append(target)
    write_manifest(out_dir, manifest, complete=True)
    return final


def check_shard_files(paths: Iterable[Path]) -> None:
    """Refuse shard files of an incomplete set, or not listed by their directory's ``shards.json``.

    Raises :class:`IncompleteShardSetError` naming the directory (or file) and
    what to do. Files not named ``shard-<i>-of-<N>.parquet``, and shard files
    without a ``shards.json`` beside them, pass.
    """
    listed: dict[Path, set[str] | None] = {}
    for path in paths:
        if not SHARD_NAME.match(path.name):
            continue
        directory = path.parent
        if directory not in listed:
            listed[directory] = _complete_set(directory)
        names = listed[directory]
        if names is not None and path.name not in names:
            raise IncompleteShardSetError(
                f"{path}: not one of the {len(names)} shards that {directory / MANIFEST} lists (a leftover "
                "of an earlier `flavortag shard`?): read the files the manifest lists, or run it again")


def _complete_set(directory: Path) -> set[str] | None:
    """The shard names of the complete set that ``directory/shards.json`` lists; None without manifest."""
    manifest_path = directory / MANIFEST
    try:
        text = manifest_path.read_text()
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(text)
        names = {str(entry["file"]) for entry in manifest["shards"]}
    except (ValueError, KeyError, TypeError) as err:
        raise IncompleteShardSetError(f"{manifest_path}: not a readable shard manifest ({err})") from None
    if manifest.get("complete", True) is not True:
        raise IncompleteShardSetError(
            f"{directory}: an incomplete set of shards: the `flavortag shard` that wrote it was stopped before "
            f"it finished ({MANIFEST} says complete: false); run it again")
    return names
