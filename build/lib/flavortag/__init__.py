"""flavortag: flavour tagging of e+e- -> Z/gamma* -> q qbar events (uds / cc / bb).

Importing the package (or :mod:`flavortag.io`) pulls in numpy and awkward only;
torch, Hydra and MLflow are imported by the training and evaluation layers.
"""

from flavortag.classes import CLASS_NAMES, N_CLASSES

__all__ = ["CLASS_NAMES", "N_CLASSES", "__version__"]
__version__ = "0.1.0"
