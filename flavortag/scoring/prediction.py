"""Scoring new event files with a trained tagger: the library of the predict pipeline.

(:mod:`flavortag.pipelines.predict` runs it over the inputs of ``flavortag predict``.)

For each input file writes ``<stem>.flavortag.parquet`` (and ``.root``) next to
it (or into ``out_dir``): the input events, in their order, with
``prob_uds``, ``prob_cc``, ``prob_bb``, ``D_b`` and ``D_c`` added. No labels
are needed and no metrics are computed; see ``flavortag evaluate`` for those.

Inputs of any size stream: they are read ``step_size`` events at a time
(:func:`flavortag.io.iter_events`), each chunk is calibrated, turned into the
model's features, scored and appended to the output (a Parquet row group, a
ROOT basket), so memory stays that of one chunk whatever the file size. Each
output is written under a temporary name and renamed when complete (a killed
run leaves no partial file); the first format is written while reading, the
others are copied from it chunk by chunk. The model's features and the
calibration are per event, so chunking changes no number, with one exception:
``calibration=auto`` fits the resolution on the whole input, which takes a
first pass over the file, keeping at most ``calibration_events`` events (all
of any file up to that size: the same fit as reading it whole; for a larger
file, the fit uses its first ``calibration_events`` events; fit it once with
``flavortag calibrate`` to use all of them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flavortag.io.columns import EventColumns

if TYPE_CHECKING:
    from flavortag.scoring.tagger import Tagger

log = logging.getLogger("flavortag.predict")


def output_stem(input_path: Path, out_dir: str | None) -> Path:
    """``run.1.txt.gz`` -> ``run.1.flavortag`` beside the input (or in ``out_dir``): the whole stem."""
    name = input_path.name
    from flavortag.io.api import EVENT_SUFFIXES  # stripped from an input's name, longest first

    for suffix in EVENT_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return (Path(out_dir) if out_dir else input_path.parent) / f"{name}.flavortag"


def plan_outputs(inputs: list[Path], out_dir: str | None, formats: list[str]) -> list[Path]:
    """The output stem of each input; ``ValueError`` if two inputs would write the same file."""
    stems = [output_stem(path, out_dir) for path in inputs]
    seen: dict[Path, Path] = {}
    for path, stem in zip(inputs, stems):
        for fmt in formats:
            target = stem.with_name(f"{stem.name}.{fmt}").resolve()
            if target in seen:
                raise ValueError(
                    f"{path} and {seen[target]} would both be written to {target}: "
                    "predict them separately or with out_dir set apart; nothing written"
                )
            seen[target] = path
    return stems


#: Events per chunk read, scored and written at a time (``step_size=`` of predict).
DEFAULT_STEP_EVENTS: int = 50_000
#: At most this many events of an input are used by ``calibration=auto`` (``calibration_events=``).
DEFAULT_CALIBRATION_EVENTS: int = 2_000_000


def scored_columns(tagger: Tagger, events: Any, calibration: Any) -> EventColumns:
    """``events`` with the tagger's score columns added (:meth:`flavortag.Tagger.score`), ready to write."""
    import awkward as ak

    out = events
    for name, values in tagger.score_columns(tagger.predict(events, calibration).probs).items():
        out = ak.with_field(out, values, name)
    return EventColumns.from_awkward(out)


def input_calibration(spec: Any, path: Path, detector: Any, step: int, max_events: int, level: str = "event",
                      reference: Any = None) -> Any:
    """The calibration of one input; ``auto`` / ``function`` / ``scale``: fitted on (up to ``max_events`` of)
    its events, a first pass; ``reference``: the tagger's training resolution function."""
    from flavortag.calibration import FITTED_SPECS, resolve_calibration
    from flavortag.io import iter_events

    if spec is None or str(spec) not in FITTED_SPECS:
        return resolve_calibration(spec, None, detector, reference=reference)  # type: ignore[arg-type]
    import awkward as ak

    parts, n = [], 0
    for chunk in iter_events(str(path), step_size=min(step, max_events), label="unknown", level=level):
        parts.append(chunk[["axis", "tracks"]][: max_events - n])
        n += len(parts[-1])
        if n >= max_events:
            log.warning("%s: calibration=%s fitted on its first %d events only (calibration_events)",
                        path, spec, n)
            break
    events = ak.concatenate(parts) if len(parts) > 1 else parts[0] if parts else None
    return resolve_calibration(str(spec), events, detector, reference=reference)


def predict_file(tagger: Tagger, calibration: Any, path: Path, stem: Path, formats: list[str],
                 step: int) -> tuple[list[Path], int]:
    """Score one input chunk by chunk into ``<stem>.<format>`` (each atomic); returns the files and events.

    ``calibration``: the input's resolved calibration (:func:`input_calibration`) or None.
    """
    from flavortag.io import iter_events
    from flavortag.io.api import write_columns

    n_events = 0

    def scored() -> Iterator[EventColumns]:
        nonlocal n_events
        for chunk in iter_events(str(path), step_size=step, label="unknown", level=tagger.level):
            n_events += len(chunk)
            yield scored_columns(tagger, chunk, calibration)

    stem.parent.mkdir(parents=True, exist_ok=True)
    targets = [stem.with_name(stem.name + {"parquet": ".parquet", "root": ".root"}[fmt]) for fmt in formats]
    if not targets:
        return [], 0
    write_columns(scored(), targets[0], formats[0])
    for target, fmt in zip(targets[1:], formats[1:]):
        copied = (EventColumns.from_awkward(c) for c in iter_events(str(targets[0]), step_size=step))
        write_columns(copied, target, fmt)
    return targets, n_events
