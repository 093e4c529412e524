"""``python -m flavortag`` is the ``flavortag`` command."""

import sys

from flavortag.cli import main

sys.exit(main())
