"""``python -m benchmarks.release``: see :mod:`benchmarks.release`."""

from benchmarks.release.cli import main

main()
