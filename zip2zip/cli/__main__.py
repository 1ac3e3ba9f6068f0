"""``python -m zip2zip.cli``: the same as the ``zip2zip`` command."""

import sys

from zip2zip.cli import main

sys.exit(main())
