"""Progress bars, made in one place: drawn where someone watches, never into a log file or a pipe.

Every progress bar of flavortag comes from :func:`progress_bar`, which decides
whether it is drawn (:func:`bar_wanted`):

* ``show=None`` or ``True`` (a config's ``progress: true``, the default): only
  when stderr is a terminal, or in a notebook (tqdm's widget);
* ``show=False``: never;
* ``force=True``: always (an explicit ``progress=True`` of a library call).

A command whose output goes to a file or a pipe then holds its results and
log lines only, not hundreds of bar frames.
"""

from __future__ import annotations

import sys
from typing import Any


def _in_notebook() -> bool:
    """True when tqdm draws notebook widgets (an IPython kernel), which a terminal check cannot see."""
    import warnings

    from tqdm.std import tqdm as plain

    with warnings.catch_warnings():  # tqdm.autonotebook warns that it is experimental
        warnings.simplefilter("ignore")
        from tqdm.autonotebook import tqdm as chosen
    return chosen is not plain


def bar_wanted(show: bool | None = None, force: bool = False) -> bool:
    """Whether a bar is drawn: ``force``, else not when ``show`` is False, else on a terminal or in a notebook."""
    if force:
        return True
    if show is False:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty()) or _in_notebook()


def progress_bar(iterable: Any = None, *, show: bool | None = None, force: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar on stderr over ``iterable`` (or ``total=``), disabled unless :func:`bar_wanted`.

    ``kwargs`` go to tqdm (``total``, ``desc``, ``unit``, ...). A disabled bar
    still takes ``update`` and ``set_postfix`` calls and iterates as its iterable.
    """
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, disable=not bar_wanted(show, force), **kwargs)
