"""``python -m flavortag.generate key=value ...``: same as ``flavortag generate``."""

from flavortag.apps.generate import main

if __name__ == "__main__":
    main()
