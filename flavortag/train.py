"""``python -m flavortag.train`` (and ``torchrun -m flavortag.train``): the training app.

Kept so the documented module path works; the app is :mod:`flavortag.apps.train`.
"""

from flavortag.apps.train import main

if __name__ == "__main__":
    main()
