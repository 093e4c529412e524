"""Atomic output files: write under a temporary name in the same directory, then rename.

A reader of the output therefore sees either the old file (or none) or the
complete new one, never a partial file, even if the writer fails or is killed
half-way (a killed writer leaves only a hidden ``.<name>.<random>.tmp``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``, else delete it.

    The parent directory is created if needed. The temporary file is created
    by the writer itself (so it gets the usual permissions from the umask).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer did not create the file")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
