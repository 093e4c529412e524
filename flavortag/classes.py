"""The class convention, in one place: 0 = uds, 1 = cc, 2 = bb.

Every model, prediction file and metric uses this order. The mapping from a
file name to a class (``uds.txt`` -> uds) lives here too, so a reader and a
config agree on it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("uds", "cc", "bb")
N_CLASSES: int = len(CLASS_NAMES)
UDS, CC, BB = 0, 1, 2

#: Accepted spellings of each class (case-insensitive).
CLASS_ALIASES: dict[str, int] = {
    "uds": UDS, "light": UDS, "qq": UDS, "q": UDS, "l": UDS, "udsg": UDS,
    "cc": CC, "c": CC, "charm": CC,
    "bb": BB, "b": BB, "bottom": BB, "beauty": BB,
}

#: Default file-name rule: a regular expression on the file name (without
#: directory and extensions) -> class name. The first match wins.
DEFAULT_LABEL_RULES: dict[str, str] = {
    r"(^|[_\-.])(uds|light|qq)([_\-.]|$)": "uds",
    r"(^|[_\-.])(cc|charm)([_\-.]|$)": "cc",
    r"(^|[_\-.])(bb|bottom)([_\-.]|$)": "bb",
}


def class_index(label: int | str) -> int:
    """Return the class index (0 uds, 1 cc, 2 bb) of a class name or index.

    Raises ``ValueError`` naming the accepted values for anything else.
    """
    if isinstance(label, bool):
        raise ValueError(f"class label must be a name or an index, not {label!r}")
    if isinstance(label, int):
        if 0 <= label < N_CLASSES:
            return label
        raise ValueError(f"class index {label} out of range 0..{N_CLASSES - 1} ({CLASS_NAMES})")
    key = str(label).strip().lower()
    if key.isdigit():
        return class_index(int(key))
    if key in CLASS_ALIASES:
        return CLASS_ALIASES[key]
    raise ValueError(
        f"unknown class {label!r}; use one of {sorted(CLASS_ALIASES)} or an index 0..{N_CLASSES - 1}"
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
    names = ", ".join(f"{i} or {name!r}" for i, name in enumerate(CLASS_NAMES))
    return f"{names} ({N_CLASSES} classes; -1 or 'unknown' for an unknown class)"


def label_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored labels -> ``(int32 class indices, bool mask of valid entries)``.

    Integers (and whole floats) ``0..N_CLASSES-1`` or -1 (unknown) are kept;
    strings may be class names or aliases (``'bb'``, ``'charm'``), indices
    (``'2'``) or ``'unknown'``. Anything else is invalid: its code is
    :data:`INVALID_LABEL_CODE` and its mask entry False.
    """
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        ok = (values >= _UNKNOWN) & (values < N_CLASSES)
        codes = np.where(ok, values, INVALID_LABEL_CODE).astype(np.int32)
        return codes, ok
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = (values >= _UNKNOWN) & (values < N_CLASSES) & (np.floor(values) == values)
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
