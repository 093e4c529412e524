"""Careful path of the text reader: a validating line-by-line parser.

Used for the (small) blocks the fast path refused. It walks the lines in
Python, so it knows the exact line of every problem, then converts the
accepted number tokens with the same C++ float parser as the fast path (an
Arrow string-to-float32 cast) and applies the same vectorised checks
(:mod:`flavortag.io.checks`): both paths give identical numbers and verdicts.

Line rules (docs/FORMAT.md): blank lines and dash-only lines mean nothing; a line
starting with ``Axis`` starts an event and must read ``Axis = ax ay az``; any
other line is a track row of 7 numbers in C float syntax (``nan``/``inf`` are
refused). Lines split on ``\\n`` only; other ASCII whitespace (a stray ``\\r``
included) separates numbers. A file whose last line is not blank but lacks
its final newline counts as truncated: a row cut off mid-number looks
exactly like a complete one, and we refuse to guess.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from flavortag.io.checks import axis_ok_mask, describe_axis, describe_track, track_ok_mask
from flavortag.io.columns import TRACK_FIELDS, EventColumns, offsets_from_counts
from flavortag.io.errors import EventFormatError, OnError, ReadReport, format_location

_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = {b"nan", b"inf", b"infinity"}
_AXIS_LINE = re.compile(rb"Axis\s*=\s*(.*)", re.DOTALL)
_N_TRACK = len(TRACK_FIELDS)


class _Block:
    """One event (from its axis line) or the track rows before the first axis line."""

    __slots__ = ("line", "n_lines", "error")

    def __init__(self, line: int) -> None:
        self.line = line
        self.n_lines = 1
        self.error: tuple[int, str, str] | None = None

    def fail(self, line: int, kind: str, message: str) -> None:
        if self.error is None or line < self.error[0]:
            self.error = (line, kind, message)


def parse_careful(
    data: bytes,
    first_line: int,
    path: str,
    label: int,
    on_error: OnError,
    report: ReadReport,
    *,
    last: bool,
) -> EventColumns:
    """Parse ``data`` (whole lines; the first one is line ``first_line`` of ``path``).

    Raises :class:`EventFormatError` at the first problem, or with
    ``on_error="skip"`` drops broken events (and track rows before the first
    axis line), accounts for them in ``report`` and returns the rest.
    ``last``: ``data`` ends the file.
    """
    if not data.strip():  # blank lines only: no list of millions of empty lines to walk
        return EventColumns.empty()
    lines = data.split(b"\n")
    tail = lines.pop()  # text after the final newline: empty unless the file is cut off
    if last and tail.strip().strip(b"-"):
        lines.append(tail)
        truncated_at = len(lines) - 1
    else:
        truncated_at = -1
    events: list[_Block] = []
    orphans: _Block | None = None
    axis_tokens: list[bytes] = []
    axis_event: list[int] = []
    row_tokens: list[bytes] = []
    row_event: list[int] = []
    row_line: list[int] = []
    current: _Block | None = None
    for i, raw in enumerate(lines):
        text = raw.strip()
        if not text or not text.strip(b"-"):
            continue
        line = first_line + i
        if text.startswith(b"Axis"):
            current = _Block(line)
            events.append(current)
            if i == truncated_at:
                current.fail(line, *_TRUNCATED)
                continue
            match = _AXIS_LINE.fullmatch(text)
            tokens = match.group(1).split() if match else []
            problem = (
                ("malformed axis line", f"malformed axis line {_show(text)}, expected 'Axis = ax ay az'")
                if match is None
                else _token_problem(tokens, 3, "axis line")
            )
            if problem:
                current.fail(line, *problem)
            else:
                axis_tokens.extend(tokens)
                axis_event.append(len(events) - 1)
            continue
        if current is None:
            if orphans is None:
                orphans = _Block(line)
                orphans.fail(line, "track row before the first axis line",
                             "track row before the first axis line")
            else:
                orphans.n_lines += 1
            continue
        current.n_lines += 1
        if current.error is not None:
            continue
        if i == truncated_at:
            current.fail(line, *_TRUNCATED)
            continue
        tokens = text.split()
        problem = _token_problem(tokens, _N_TRACK, "track row")
        if problem:
            current.fail(line, *problem)
            continue
        row_tokens.extend(tokens)
        row_event.append(len(events) - 1)
        row_line.append(line)

    rows = _to_float32(row_tokens).reshape(-1, _N_TRACK)
    axes = _to_float32(axis_tokens).reshape(-1, 3)
    for r in np.flatnonzero(~track_ok_mask(*rows.T)):
        events[row_event[r]].fail(row_line[r], *describe_track(rows[r]))
    for a in np.flatnonzero(~axis_ok_mask(*axes.T)):
        event = events[axis_event[a]]
        event.fail(event.line, *describe_axis(axes[a]))

    broken = [(b, b.error) for b in ([orphans] if orphans else []) + events if b.error is not None]
    if broken and on_error == "raise":
        line, _, message = min(error for _, error in broken)
        raise EventFormatError(path, line, message)
    for block, (line, kind, message) in broken:
        report.drop(
            kind, format_location(path, line) + message,
            events=0 if block is orphans else 1, lines=block.n_lines,
        )

    good = np.array([event.error is None for event in events], bool)
    row_event_arr = np.asarray(row_event, np.int64)
    keep_rows = good[row_event_arr] if len(row_event_arr) else np.zeros(0, bool)
    counts = np.bincount(row_event_arr[keep_rows], minlength=len(events))[good]
    axis_keep = good[np.asarray(axis_event, np.int64)] if axis_event else np.zeros(0, bool)
    return EventColumns(
        axis=np.ascontiguousarray(axes[axis_keep]),
        offsets=offsets_from_counts(counts),
        tracks={name: np.ascontiguousarray(rows[keep_rows, k]) for k, name in enumerate(TRACK_FIELDS)},
        label=np.full(int(good.sum()), label, np.int32),
    )


_TRUNCATED = (
    "truncated file",
    "the file ends in this line without a final newline: cut off in the middle of a row?",
)


def _token_problem(tokens: list[bytes], expected: int, what: str) -> tuple[str, str] | None:
    """``(kind, message)`` for the first bad token or a wrong count, else None."""
    for token in tokens:
        if _NUMBER.fullmatch(token) is None:
            if token.lower().lstrip(b"+-") in _NON_FINITE:
                return "non-finite number", f"{_show(token)} is not a finite number"
            return "not a number", f"{_show(token)} is not a number"
    if len(tokens) != expected:
        plural = "" if len(tokens) == 1 else "s"
        return f"wrong count in {what}", f"{what} has {len(tokens)} number{plural}, expected {expected}"
    return None


def _to_float32(tokens: list[bytes]) -> np.ndarray:
    """Tokens (already checked against the number syntax) as float32, via Arrow's parser."""
    if not tokens:
        return np.zeros(0, np.float32)
    return pa.array(tokens, pa.binary()).cast(pa.float32()).to_numpy(zero_copy_only=False)


def _show(token: bytes, limit: int = 60) -> str:
    text = token.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
