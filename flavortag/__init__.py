"""flavortag: flavour tagging of e+e- -> Z/gamma* -> q qbar events (uds / cc / bb).

Importing the package (or :mod:`flavortag.io`) pulls in numpy and awkward only;
torch, Hydra and MLflow are imported by the training and evaluation layers.
:class:`flavortag.Tagger` (score events from analysis code, see
:mod:`flavortag.scoring.tagger`) is resolved on first use, so it costs nothing until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flavortag.classes import CLASS_NAMES, N_CLASSES

if TYPE_CHECKING:
    from flavortag.scoring.tagger import Tagger

__all__ = ["CLASS_NAMES", "N_CLASSES", "Tagger", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Lazy attributes: ``flavortag.Tagger`` imports :mod:`flavortag.scoring.tagger` on first use."""
    if name == "Tagger":
        from flavortag.scoring.tagger import Tagger

        return Tagger
    raise AttributeError(f"module 'flavortag' has no attribute {name!r}")
