"""Benchmarks of zip2zip, each run from the repository root as ``python -m benchmarks.NAME``."""
