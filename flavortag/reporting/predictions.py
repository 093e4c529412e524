"""Per-event predictions as files: probabilities and discriminants, beside the events or alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import awkward as ak
import numpy as np

from flavortag.classes import EVENT_SCHEME, ClassScheme
from flavortag.metrics import score_columns


def write_predictions(
    probs: np.ndarray,
    events: ak.Array | None,
    labels: np.ndarray | None,
    path_stem: str | Path,
    f_c: float,
    f_b: float,
    formats: Sequence[str] = ("parquet", "root"),
    scheme: ClassScheme = EVENT_SCHEME,
) -> list[Path]:
    """Write per-event predictions, in input order, as ``<stem>.parquet`` / ``<stem>.root``.

    With ``events`` the original events are written with the prediction
    fields added (readable by :func:`flavortag.io.read_events`); without,
    a flat table of the predictions and ``label``.
    """
    from flavortag.io import write_events

    columns = score_columns(probs, f_c, f_b, scheme)
    if events is not None:
        out = events
        for name, values in columns.items():
            out = ak.with_field(out, values, name)
    else:
        fields = dict(columns)
        if labels is not None:
            fields["label"] = np.asarray(labels, dtype=np.int32)
        out = ak.zip(fields, depth_limit=1)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        suffix = {"parquet": ".parquet", "root": ".root"}[fmt]
        target = stem.with_name(stem.name + suffix)
        if events is not None:
            write_events(out, target, format=fmt)
        else:
            _write_table(out, target, fmt)
        written.append(target)
    return written


def _write_table(table: ak.Array, path: Path, fmt: str) -> None:
    from flavortag.io.atomic import atomic_output

    with atomic_output(path) as tmp:
        if fmt == "parquet":
            ak.to_parquet(table, tmp)
        else:
            import uproot

            columns = {name: ak.to_numpy(table[name]) for name in table.fields}
            with uproot.recreate(tmp) as fh:
                # mktree: a TTree (plain assignment would write an RNTuple in uproot >= 5.7)
                fh.mktree("predictions", {name: col.dtype for name, col in columns.items()})
                fh["predictions"].extend(columns)
