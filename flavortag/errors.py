"""How the ``flavortag`` command's errors travel: usage errors, and app errors carried past Hydra.

Raise :class:`UsageError` for a wrong or missing option, whatever the layer;
``flavortag.cli`` prints its message as one line and exits with 2. Config
errors found by Hydra and OmegaConf (a mistyped key, a missing ``???`` value,
a value of the wrong type) count as usage errors too.

The Hydra apps' task functions are wrapped in :func:`reported`: Hydra catches
a task's exception itself and prints a trimmed traceback (or, with
``HYDRA_FULL_ERROR=1``, re-raises it after a line "Error executing job with
overrides"); :func:`reported` turns the exception into a :class:`CarriedError`,
a ``SystemExit`` that Hydra lets through untouched, so that ``flavortag.cli``
prints it as one line. Run outside the command (``python -m
flavortag.apps.train``), a ``CarriedError`` exits with status 1 after printing
its message, and ``HYDRA_FULL_ERROR=1`` gives Hydra's own handling. An
exception with an int ``exit_code`` (a training stopped by SIGTERM / SIGUSR1
after its checkpoint: 75) exits with that status, from the command and from
``python -m`` / torchrun alike.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Set by ``flavortag.cli`` while it runs an app: errors are always carried to it.
carry_to_cli: bool = False


class UsageError(ValueError):
    """A command used wrongly (an option missing, unknown, or conflicting): exit code 2."""


class CarriedError(SystemExit):
    """An app's exception (``error``) on its way past Hydra's handler to ``flavortag.cli``."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"error: {error}")
        self.error = error


def reported(task: F) -> F:
    """Wrap a Hydra task function so that its errors reach ``flavortag.cli`` (see the module doc)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as exc:
            code = getattr(exc, "exit_code", None)  # e.g. a training stopped by a signal: 75
            if isinstance(code, int) and not carry_to_cli:
                print(f"error: {exc}", file=sys.stderr)
                raise SystemExit(code) from exc
            full = os.environ.get("HYDRA_FULL_ERROR", "").strip().lower() not in ("", "0", "false", "no")
            if full and not carry_to_cli:
                raise
            raise CarriedError(exc) from exc

    return wrapper  # type: ignore[return-value]
