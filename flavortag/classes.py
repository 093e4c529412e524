"""The class convention, in one place: 0 = uds, 1 = cc, 2 = bb (events); 3 = g, 4 = s (jets).

Stored labels are these codes everywhere: event files use 0..2, jet files
0..4 (0 light, 1 c, 2 b, 3 g, 4 s: a jet's light / c / b label shares the code of
the event class uds / cc / bb, 3 is a gluon jet and 4 a light jet of an
``H -> s sbar`` event, issue 25). A scheme without ``s`` counts an s jet as
light; a scheme with it calls code 0 ``ud``. Which classes a model
tells apart, and what it calls them, is a :class:`ClassScheme`: the event
default ``("uds", "cc", "bb")``, jet schemes ``("light", "c", "b")`` and
``("light", "c", "b", "g")``. A scheme's classes are always in code order, so
the model output index of a class equals its code for these schemes. The
mapping from a file name to a class (``uds.txt`` -> uds) lives here too, so a
reader and a config agree on it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("uds", "cc", "bb")
N_CLASSES: int = len(CLASS_NAMES)
UDS, CC, BB = 0, 1, 2
#: Code of a gluon jet (jet files only; forced decay H -> gg) and of a strange jet (H -> s sbar).
GG: int = 3
SS: int = 4
#: Every stored label code's canonical name (the event classes, then gg, ss).
LABEL_NAMES: tuple[str, ...] = (*CLASS_NAMES, "gg", "ss")
N_LABELS: int = len(LABEL_NAMES)

#: Accepted spellings of each class (case-insensitive).
CLASS_ALIASES: dict[str, int] = {
    "uds": UDS, "light": UDS, "qq": UDS, "q": UDS, "l": UDS, "udsg": UDS,
    "cc": CC, "c": CC, "charm": CC,
    "bb": BB, "b": BB, "bottom": BB, "beauty": BB,
    "gg": GG, "g": GG, "gluon": GG,
    "ss": SS, "s": SS, "strange": SS, "ud": UDS,
}

#: Default file-name rule: a regular expression on the file name (without
#: directory and extensions) -> class name. The first match wins.
DEFAULT_LABEL_RULES: dict[str, str] = {
    r"(^|[_\-.])(uds|ud|light|qq)([_\-.]|$)": "uds",
    r"(^|[_\-.])(cc|charm)([_\-.]|$)": "cc",
    r"(^|[_\-.])(bb|bottom)([_\-.]|$)": "bb",
    r"(^|[_\-.])(gg|gluon)([_\-.]|$)": "gg",
    r"(^|[_\-.])(ss|strange)([_\-.]|$)": "ss",
}


def class_index(label: int | str) -> int:
    """Return the label code (0 uds, 1 cc, 2 bb, 3 gg, 4 ss) of a class name or index.

    Raises ``ValueError`` naming the accepted values for anything else.
    """
    if isinstance(label, bool):
        raise ValueError(f"class label must be a name or an index, not {label!r}")
    if isinstance(label, int):
        if 0 <= label < N_LABELS:
            return label
        raise ValueError(f"class index {label} out of range 0..{N_LABELS - 1} ({LABEL_NAMES})")
    key = str(label).strip().lower()
    if key.isdigit():
        return class_index(int(key))
    if key in CLASS_ALIASES:
        return CLASS_ALIASES[key]
    raise ValueError(
        f"unknown class {label!r}; use one of {sorted(CLASS_ALIASES)} or an index 0..{N_LABELS - 1}"
    )


def label_from_path(path: str | os.PathLike[str], rules: Mapping[str, str] | None = None) -> int:
    """Return the class index of a file from its name using ``rules``.

    ``rules`` maps a regular expression (searched case-insensitively in the
    file name stripped of directory and all extensions) to a class name.
    Raises ``ValueError`` naming the file when no rule matches.
    """
    rules = DEFAULT_LABEL_RULES if rules is None else rules
    name = Path(path).name
    stem = name.split(".")[0]
    for pattern, cls in rules.items():
        if re.search(pattern, stem, flags=re.IGNORECASE):
            return class_index(cls)
    raise UnknownClassError(path, list(rules))


class UnknownClassError(ValueError):
    """A file whose class its name does not tell; :meth:`describe` spells the fix for a caller."""

    def __init__(self, path: str | os.PathLike[str], patterns: list[str]) -> None:
        self.path, self.patterns = path, patterns
        super().__init__(self.describe("label=...", "a file-name rule"))

    def describe(self, label: str, rule: str) -> str:
        """The message with the two fixes spelt as the caller's options (``"--label CLASS"``, ...)."""
        return (f"{self.path}: cannot tell the class from the file name {Path(self.path).name!r}; "
                f"pass {label} or {rule} (patterns tried: {self.patterns})")


#: Stored label of an event of unknown class (``flavortag.io.UNKNOWN_LABEL``).
_UNKNOWN = -1
#: Code given to an invalid stored label (never a valid class, never -1).
INVALID_LABEL_CODE: int = -(2**31)


def valid_labels_text() -> str:
    """The accepted stored labels, in words (for messages)."""
    names = ", ".join(f"{i} or {name!r}" for i, name in enumerate(LABEL_NAMES))
    return f"{names} ({N_LABELS} classes; -1 or 'unknown' for an unknown class)"


def label_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored labels -> ``(int32 class indices, bool mask of valid entries)``.

    Integers (and whole floats) ``0..N_LABELS-1`` or -1 (unknown) are kept;
    strings may be class names or aliases (``'bb'``, ``'charm'``), indices
    (``'2'``) or ``'unknown'``. Anything else is invalid: its code is
    :data:`INVALID_LABEL_CODE` and its mask entry False.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        ok = (values >= _UNKNOWN) & (values < N_LABELS)
        codes = np.where(ok, values, INVALID_LABEL_CODE).astype(np.int32)
        return codes, ok
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = (values >= _UNKNOWN) & (values < N_LABELS) & (np.floor(values) == values)
        codes = np.where(ok, values, INVALID_LABEL_CODE).astype(np.int32)
        return codes, ok
    uniques, inverse = np.unique(values.astype(str), return_inverse=True)
    table = np.empty(len(uniques), np.int32)
    for k, text in enumerate(uniques):
        key = str(text).strip().lower()
        try:
            table[k] = _UNKNOWN if key == "unknown" or key == "-1" else class_index(key)
        except ValueError:
            table[k] = INVALID_LABEL_CODE
    codes = table[inverse.reshape(-1)]
    return codes, codes != INVALID_LABEL_CODE


def describe_label(value: object) -> str:
    """Why a stored label is refused, naming the valid ones."""
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return f"label {value!r} is not a class: valid labels are {valid_labels_text()}"


# --------------------------------------------------------------------------- class schemes

#: Short flavour name of each label code, used in metric names (rej_c_at_b80, ...).
_EVENT_FLAVOURS: tuple[str, ...] = ("uds", "c", "b", "g", "s")
#: Names a jet scheme gives each label code (code 0 is ``ud`` in a scheme with ``s``).
JET_CLASS_NAMES: tuple[str, ...] = ("light", "c", "b", "g", "s")


@dataclass(frozen=True)
class ClassScheme:
    """The classes a model tells apart: their names (model output order) and label codes.

    ``names`` in model-output order, ``codes`` the stored label code of each
    (ascending). :data:`EVENT_SCHEME` = ``("uds", "cc", "bb")`` is the default of
    every model and file that carries no scheme; jet schemes are
    ``("light", "c", "b")`` and ``("light", "c", "b", "g")``.
    """

    names: tuple[str, ...]
    codes: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.codes) or len(self.names) < 2:
            raise ValueError(f"a class scheme needs at least two classes, got {self.names}")
        if list(self.codes) != sorted(set(self.codes)):
            raise ValueError(f"classes {self.names} repeated or not in the order "
                             f"{LABEL_NAMES} (0 uds/light, 1 cc/c, 2 bb/b, 3 gg/g)")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def flavours(self) -> tuple[str, ...]:
        """Short flavour names (metric names): ``uds``/``light``, ``c``, ``b``, ``g``."""
        light = self.names[0] if self.names[0] in ("uds", "ud") else "light"
        return tuple(light if c == UDS else _EVENT_FLAVOURS[c] for c in self.codes)

    def index(self, code: int) -> int | None:
        """Model-output index of label ``code`` (None when the scheme has no such class)."""
        return self.codes.index(code) if code in self.codes else None

    def indices_of(self, codes: np.ndarray) -> np.ndarray:
        """Label codes -> model-output indices (int64; -1 for codes outside the scheme).

        An s jet (code 4) is light in a scheme that has light (code 0) but no s.
        """
        table = np.full(N_LABELS + 1, -1, np.int64)  # last entry: unknown (-1) and anything else
        for k, code in enumerate(self.codes):
            table[code] = k
        if SS not in self.codes and UDS in self.codes:
            table[SS] = table[UDS]
        c = np.asarray(codes, dtype=np.int64)
        return table[np.where((c >= 0) & (c < N_LABELS), c, N_LABELS)]

    @property
    def is_event_scheme(self) -> bool:
        """True for the default ``("uds", "cc", "bb")``."""
        return self.names == CLASS_NAMES


EVENT_SCHEME = ClassScheme(CLASS_NAMES, (UDS, CC, BB))


def class_scheme(names: Sequence[str] | ClassScheme | None) -> ClassScheme:
    """The :class:`ClassScheme` of class names (``[b, c, light]`` in any order; None: events).

    Each name is a class name or alias (``light``, ``c``, ``b``, ``g``, ``uds``,
    ``bb``, ...); the scheme orders them by code. Names that are the event
    classes ``uds, cc, bb`` give :data:`EVENT_SCHEME`; other names are spelt
    as the jet classes ``light, c, b, g``.
    """
    if names is None:
        return EVENT_SCHEME
    if isinstance(names, ClassScheme):
        return names
    given = [str(n) for n in names]
    codes = sorted({class_index(n) for n in given})
    if len(codes) != len(given):
        raise ValueError(f"classes {given} name the same class twice")
    if tuple(n.lower() for n in given) == CLASS_NAMES or sorted(n.lower() for n in given) == sorted(CLASS_NAMES):
        return EVENT_SCHEME
    return ClassScheme(tuple("ud" if c == UDS and SS in codes else JET_CLASS_NAMES[c] for c in codes),
                       tuple(codes))
