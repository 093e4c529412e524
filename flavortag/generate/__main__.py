"""``python -m flavortag.generate key=value ...``: same as ``flavortag generate``.

An entry point, not part of the generate library: it runs the app module
(:mod:`flavortag.apps.generate`) by name, so nothing in ``flavortag.generate``
imports the apps.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("flavortag.apps.generate", run_name="__main__", alter_sys=True)
