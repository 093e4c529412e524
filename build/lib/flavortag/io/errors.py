"""What the readers say about bad input: :class:`EventFormatError` and :class:`ReadReport`.

By default a reader stops at the first problem with an :class:`EventFormatError`
that names the file, the 1-based line (text) or the 0-based entry (ROOT,
Parquet) and what was wrong, in the style ``bb.txt:1234: track row has 6
numbers, expected 7``. With ``on_error="skip"`` it drops the broken events
instead and accounts for every dropped event and line in a :class:`ReadReport`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

log = logging.getLogger("flavortag.io")

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "skip")


def check_on_error(on_error: str) -> OnError:
    """Return ``on_error`` if it is "raise" or "skip"; raise ``ValueError`` otherwise."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, not {on_error!r}")
    return on_error  # type: ignore[return-value]


class EventFormatError(ValueError):
    """Bad input in an event file.

    Attributes: ``path`` (the file, as given), ``line`` (1-based line number in
    a text file, or None), ``entry`` (0-based event entry in a ROOT/Parquet
    file, or None), ``reason`` (what was wrong, without the location).
    """

    def __init__(
        self, path: str | Path, line: int | None, reason: str, *, entry: int | None = None
    ) -> None:
        self.path = str(path)
        self.line = line
        self.entry = entry
        self.reason = reason
        super().__init__(format_location(self.path, line, entry) + reason)

    def __reduce__(self) -> tuple:
        # Keep the attributes when the error crosses a process boundary
        # (DataLoader workers, multiprocessing).
        return (_rebuild_error, (self.path, self.line, self.reason, self.entry))


def _rebuild_error(path: str, line: int | None, reason: str, entry: int | None) -> EventFormatError:
    return EventFormatError(path, line, reason, entry=entry)


def format_location(path: str | Path, line: int | None = None, entry: int | None = None) -> str:
    """``"bb.txt:12: "`` / ``"bb.root: entry 7: "`` / ``"bb.txt: "``: the prefix of a message."""
    if line is not None:
        return f"{path}:{line}: "
    if entry is not None:
        return f"{path}: entry {entry}: "
    return f"{path}: "


@dataclass
class ReadReport:
    """What a read kept and what it dropped (filled in by the readers).

    * ``n_events``: events returned to the caller;
    * ``n_dropped_events``: broken events dropped (``on_error="skip"``);
    * ``n_dropped_lines``: non-blank text lines dropped with them (an event's
      axis line and its track rows, and track rows before the first axis line;
      blank and dash-only lines are never counted);
    * ``reasons``: for each dropped event (or block of track rows before the
      first axis line) the kind of the first problem found in it, counted;
    * ``examples``: the first ``max_examples`` full messages
      (``file:line: what``), for the log and for the user;
    * ``n_files``: files read.
    """

    n_events: int = 0
    n_dropped_events: int = 0
    n_dropped_lines: int = 0
    reasons: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    n_files: int = 0
    max_examples: int = field(default=20, repr=False)

    def drop(self, kind: str, message: str, *, events: int = 1, lines: int = 0) -> None:
        """Account for one dropped event (or block of lines) whose first problem is ``kind``."""
        self.n_dropped_events += events
        self.n_dropped_lines += lines
        self.reasons[kind] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(message)

    def merge(self, other: ReadReport) -> None:
        """Add the counts of ``other`` to this report."""
        self.n_events += other.n_events
        self.n_dropped_events += other.n_dropped_events
        self.n_dropped_lines += other.n_dropped_lines
        self.reasons.update(other.reasons)
        self.n_files += other.n_files
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    @property
    def ok(self) -> bool:
        """True when nothing was dropped."""
        return self.n_dropped_events == 0 and self.n_dropped_lines == 0

    def summary(self) -> str:
        """One line: kept and dropped counts with the reasons."""
        text = f"{self.n_events} events read from {self.n_files} file(s)"
        if self.ok:
            return text
        why = ", ".join(f"{n} x {kind}" for kind, n in self.reasons.most_common())
        return (
            f"{text}; dropped {self.n_dropped_events} broken events "
            f"({self.n_dropped_lines} lines): {why}"
        )


def log_file_report(path: str | Path, report: ReadReport) -> None:
    """Log at WARNING what was dropped from one file (nothing when nothing was)."""
    if report.ok:
        return
    why = ", ".join(f"{n} x {kind}" for kind, n in report.reasons.most_common())
    first = f"; first: {report.examples[0]}" if report.examples else ""
    log.warning(
        "%s: dropped %d broken events (%d lines): %s%s",
        path, report.n_dropped_events, report.n_dropped_lines, why, first,
    )
