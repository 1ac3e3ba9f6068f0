"""``python -m zip2zip.cli``: the same as the ``zip2zip`` command."""

import sys

from . import main

sys.exit(main())
