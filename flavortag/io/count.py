"""Counting the events (in total and per class) of event files without reading them whole.

Parquet and ROOT: the number of rows / entries from the file metadata and the
classes from the ``label`` column alone (or the file's class when it has none).
Text and EDM4hep: one streaming pass through :func:`flavortag.io.iter_events`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flavortag.classes import N_CLASSES, describe_label, label_codes
from flavortag.io.api import input_format, iter_events, resolve_label
from flavortag.io.errors import EventFormatError, OnError, ReadReport


def count_events(
    paths: Sequence[str | os.PathLike],
    label: int | str | None = None,
    *,
    label_rules: Mapping[str, str] | None = None,
    on_error: OnError = "raise",
    tree: str = "events",
    report: ReadReport | None = None,
    level: str | None = None,
    edm4hep: Any = None,
    n_codes: int = N_CLASSES,
) -> tuple[int, np.ndarray]:
    """Events in total and per class ``[n_codes]`` in ``paths``, in bounded memory.

    ``n_codes``: the label codes counted (default the event classes 0..2; jets:
    :data:`flavortag.classes.N_LABELS`); other codes count in the total only.

    ``label`` / ``label_rules`` give the class of files without a label column,
    as for :func:`flavortag.io.read_events`. Events of unknown class (label -1)
    count in the total only. With ``on_error="skip"`` the broken events of a
    Parquet or ROOT file are still counted (its metadata does not know them);
    the events dropped from text files are counted in ``report`` if one is given.
    EDM4hep files (their labels come from the MC record) are read like text,
    with ``level`` / ``edm4hep`` as :func:`flavortag.io.read_events`.
    """
    counts = np.zeros(n_codes, dtype=np.int64)
    n_total = 0
    text_paths: list[str | os.PathLike] = []

    def add(labels: np.ndarray, path: str | os.PathLike | None = None) -> None:
        codes, ok = label_codes(np.asarray(labels))
        if path is not None and on_error == "raise" and not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            raise EventFormatError(str(path), None, describe_label(np.asarray(labels)[bad]), entry=bad)
        counts[:] += np.bincount(codes[(codes >= 0) & (codes < n_codes)], minlength=n_codes)

    for path in paths:
        fmt = input_format(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            n = int(parquet.metadata.num_rows)
            if "label" in parquet.schema_arrow.names:
                add(parquet.read(columns=["label"]).column("label").to_numpy(zero_copy_only=False), path)
            else:
                add(np.full(n, resolve_label(label, path, label_rules)))
        elif fmt == "root":
            import uproot

            with uproot.open(path) as file:
                ttree = file[tree]
                n = int(ttree.num_entries)
                if "label" in ttree.keys():
                    add(ttree["label"].array(library="np"), path)
                else:
                    add(np.full(n, resolve_label(label, path, label_rules)))
        else:
            text_paths.append(path)
            continue
        n_total += n
    if text_paths:
        for chunk in iter_events(text_paths, label=label, label_rules=label_rules, on_error=on_error,
                                 report=report, level=level, edm4hep=edm4hep):
            n_total += len(chunk)
            add(np.asarray(chunk["label"]))
    return n_total, counts
