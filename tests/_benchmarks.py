"""Import a module of this checkout's ``benchmarks`` package, from whichever folder the tests run."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks.<name>`` (``"generation"``, ``"release.report"``, ...).

    pytest puts ``tests/`` on the import path, not necessarily the repository root, so the package is
    registered from its folder before its modules are imported.
    """
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location("benchmarks", BENCHMARKS / "__init__.py")
        package = importlib.util.module_from_spec(spec)
        sys.modules["benchmarks"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{name}")
