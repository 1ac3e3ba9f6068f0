"""Run a Python script in a fresh process where the zip2zip package cannot be imported, as on a user's machine
that only has torch and transformers: the one harness every "loads without the package" test uses.

``python -I`` keeps PYTHONPATH, the user site and the working directory off ``sys.path``; the editable
install's import hooks (registered from a ``.pth`` file in site-packages) are removed before the script runs;
the environment holds only PATH, a fresh HOME and HF cache, offline mode and one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_DROP_EDITABLE = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in getattr(h, '__module__', '')]\n"
    "sys.path[:] = [p for p in sys.path if '__editable__' not in p]\n"
    "sys.path_importer_cache.clear()\n"
)


def run_without_package(
    script: str, *args: str, workdir: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``script`` (source text) with ``args`` in ``workdir``; fails the test with its stderr if it fails."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_MODULES_CACHE": str(workdir / "modules"),
        "HF_HOME": str(workdir / "hf"),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-c", _DROP_EDITABLE + script, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_json_line(result: subprocess.CompletedProcess):
    """The JSON a script printed on its last line of output."""
    return json.loads(result.stdout.strip().splitlines()[-1])
