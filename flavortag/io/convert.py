"""Streaming conversion between text, ROOT and Parquet (and from EDM4hep): :func:`convert`.

Events flow chunk by chunk from the inputs to the output writer (uproot's
``TTree.extend`` for ROOT, one Parquet row group per chunk, appended text), so
memory stays bounded whatever the file sizes. The output is written under a
temporary name and renamed only when every input has been read: a failure
(bad input, full disk, Ctrl-C) leaves no partial output behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flavortag.io.api import (
    DEFAULT_STEP_SIZE,
    PathsLike,
    detect_format,
    iter_source_columns,
    parse_step_size,
    plan_sources,
    write_columns,
)
from flavortag.io.errors import OnError, ReadReport, check_on_error
from flavortag.progress import progress_bar


def convert(
    inputs: PathsLike,
    output: str | os.PathLike,
    label: int | str | None = None,
    *,
    label_rules: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    format: str | None = None,
    output_format: str | None = None,
    tree: str = "events",
    step_size: int | str = DEFAULT_STEP_SIZE,
    progress: bool | None = None,
    report: ReadReport | None = None,
    level: str | None = None,
    edm4hep: Any = None,
) -> ReadReport:
    """Convert event files into one output file; returns the :class:`ReadReport`.

    ``inputs``: one or more files (any mix of formats holding the same
    fields); ``output``: its format from the suffix unless ``output_format``
    is given. ``label``/``label_rules``/``on_error``/``format``/``tree`` as in
    :func:`~flavortag.io.read_events`. ``step_size``: chunk size (see
    :func:`~flavortag.io.iter_events`). ``progress``: show a tqdm bar on
    stderr (None: only when stderr is a terminal). ``level`` / ``edm4hep``: how
    EDM4hep inputs are read (:func:`~flavortag.io.read_events`).
    """
    on_error = check_on_error(on_error)
    parse_step_size(step_size)
    sources = plan_sources(inputs, label, label_rules, format, level, edm4hep)
    out_format = detect_format(output, output_format, option="output_format")
    target = Path(output).resolve()
    if any(s.path.resolve() == target for s in sources):
        raise ValueError(f"{output}: the output is also an input")
    report = ReadReport() if report is None else report
    total = sum(os.path.getsize(s.path) for s in sources)
    with progress_bar(total=total, unit="B", unit_scale=True, unit_divisor=1024, show=progress,
                      force=progress is True, desc=f"-> {Path(output).name}") as bar:
        chunks = iter_source_columns(sources, on_error, tree, report, step_size, progress=bar.update)
        write_columns(chunks, output, out_format, tree)
    return report
