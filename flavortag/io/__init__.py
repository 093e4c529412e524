"""Event files in, awkward Arrays out: text (docs/FORMAT.md, plain or gzip), ROOT and Parquet.

Example::

    from flavortag.io import convert, iter_events, read_events, write_events

    events = read_events(["bb.txt.gz", "cc.txt.gz"])         # class from the file names
    events.tracks.E, events.axis, events.label                # GeV, unit vector, 0 uds 1 cc 2 bb
    for chunk in iter_events("big.root", step_size="64 MB"):  # bounded memory
        ...
    write_events(events, "sample.parquet")                    # atomic: temp name, then rename
    report = convert(["bb.txt"], "bb.root", on_error="skip")  # streaming; says what it dropped

Bad input stops with :class:`EventFormatError` naming the file, the line and
what was wrong (``bb.txt:1234: track row has 6 numbers, expected 7``); with
``on_error="skip"`` broken events are dropped and counted in a
:class:`ReadReport`. Importing this package pulls in numpy, awkward and
pyarrow only (uproot when a ROOT file is touched; never torch, Hydra or MLflow).
"""

from flavortag.io.api import (
    DEFAULT_STEP_SIZE,
    FORMATS,
    UnknownFormatError,
    detect_format,
    iter_events,
    read_events,
    write_events,
)
from flavortag.io.checks import AXIS_NORM_TOLERANCE, ENERGY_TOLERANCE_ABS_GEV, ENERGY_TOLERANCE_REL
from flavortag.io.columns import EVENT_FIELDS, TRACK_FIELDS, UNKNOWN_LABEL
from flavortag.io.convert import convert
from flavortag.io.count import count_events
from flavortag.io.errors import EventFormatError, ReadReport
from flavortag.io.vectors import momenta

__all__ = [
    "AXIS_NORM_TOLERANCE",
    "DEFAULT_STEP_SIZE",
    "ENERGY_TOLERANCE_ABS_GEV",
    "ENERGY_TOLERANCE_REL",
    "EVENT_FIELDS",
    "FORMATS",
    "TRACK_FIELDS",
    "UNKNOWN_LABEL",
    "EventFormatError",
    "ReadReport",
    "convert",
    "count_events",
    "UnknownFormatError",
    "detect_format",
    "iter_events",
    "momenta",
    "read_events",
    "write_events",
]
