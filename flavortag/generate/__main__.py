"""``python -m flavortag.generate key=value ...``: same as ``flavortag generate``."""

from flavortag.generate.app import main

if __name__ == "__main__":
    main()
