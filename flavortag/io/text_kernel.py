"""Compiled (numba) kernels of the text reader's fast path, for large files.

Turning the parsed ``pyarrow`` table into events with numpy (axis rows apart,
offsets, the checks of :mod:`flavortag.io.checks`, then a copy into the chunk)
takes several passes over the rows and a fifth of the reading time.
:func:`fill_events` does it in one pass and writes straight into the chunk's
storage. (Finding the ``Axis = `` lines stays in :mod:`flavortag.io.text_fast`:
``bytes.find`` is memchr, quicker than a compiled byte loop.)

The checks are the same float32 arithmetic, in the same order, as
:func:`flavortag.io.checks.energy_ok_mask` and
:func:`~flavortag.io.checks.axis_ok_mask` (numba keeps float32 operations in
float32 and, without ``fastmath``, neither reorders nor fuses them), so a row
is accepted here exactly when numpy accepts it; values are copied, never
recomputed, so numbers are bit-identical to the numpy path. A piece the kernel
refuses goes to the careful parser as before.

numba is imported only when :func:`available` is first called for a large
file (:data:`MIN_FILE_BYTES`); compiled code is cached on disk
(``cache=True``), so only the first use on a machine compiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from flavortag.io.checks import AXIS_NORM_TOLERANCE, ENERGY_TOLERANCE_ABS_GEV, ENERGY_TOLERANCE_REL

#: Files (on disk) at least this large use the kernel; smaller ones stay on numpy. The
#: kernel saves about 7% of the CPU time of reading (some 0.05 s per 100 MB); importing
#: numba costs about 0.3 s (and some 60 MB resident) once per process, a first
#: compile a few seconds once per machine: worth it from about 1 GB on.
MIN_FILE_BYTES: int = 1024**3
#: Set to ``0`` to never use the kernels (``1`` to use them whatever the file size).
ENV_SWITCH = "FLAVORTAG_TEXT_KERNEL"

_kernels: dict[str, Callable[..., Any]] | None = None
_failed = False


def wanted(file_bytes: int) -> bool:
    """Whether a file of ``file_bytes`` should be read with the kernels (and they can be had)."""
    switch = os.environ.get(ENV_SWITCH, "")
    if switch == "0" or (switch != "1" and file_bytes < MIN_FILE_BYTES):
        return False
    return available()


def available() -> bool:
    """True when numba imports and the kernels compile (or load from the cache)."""
    global _kernels, _failed
    if _kernels is None and not _failed:
        try:
            _kernels = _compile()
        except Exception:  # noqa: BLE001 -- any numba trouble: the numpy path still works
            _failed = True
    return _kernels is not None


def _compile() -> dict[str, Callable[..., Any]]:
    from flavortag.io import _text_numba

    constants = (
        np.float32(ENERGY_TOLERANCE_ABS_GEV), np.float32(1.0 - ENERGY_TOLERANCE_REL),
        np.float32(AXIS_NORM_TOLERANCE), np.float32(1.0),
    )

    def fill_checked(*args: Any) -> tuple[int, int]:
        return _text_numba.fill(*args, *constants)  # type: ignore[call-arg, no-any-return]

    return {"fill": fill_checked}


def fill_events(
    chunks: list[list[Any]], out_tracks: tuple[np.ndarray, ...], out_axis: np.ndarray, out_offsets: np.ndarray,
    t0: int, e0: int,
) -> tuple[int, int]:
    """Write the events of parsed row chunks into storage from track ``t0``, event ``e0`` on.

    ``chunks``: per record batch, the 7 float32 ``pyarrow`` arrays ``E .. z``
    (E null on axis rows, the others without nulls). ``out_tracks``: the chunk's 7 float32 track
    columns (room for all the rows), ``out_axis`` ``[capacity, 3]``, ``out_offsets``. Returns the
    new ``(n_tracks, n_events)``, or ``(-1, -1)`` when a row fails a check or a
    track row comes first (nothing is then taken: the caller has not moved its
    counts).
    """
    assert _kernels is not None
    fill = _kernels["fill"]
    t, e = t0, e0
    for arrays in chunks:
        n = len(arrays[0])
        if not n:
            continue
        values = [np.frombuffer(a.buffers()[1], np.float32, n, a.offset * 4) for a in arrays]
        validity = arrays[0].buffers()[0]
        if validity is None:  # no axis row in this batch
            if e == e0:
                return -1, -1
            bitmap, bit_offset = np.full(n // 8 + 2, 0xFF, np.uint8), 0
        else:
            bitmap, bit_offset = np.frombuffer(validity, np.uint8), arrays[0].offset
        t, e = fill(*values, bitmap, bit_offset, out_tracks, out_axis, out_offsets, t, e, e0)
        if t < 0:
            return -1, -1
    return t, e
