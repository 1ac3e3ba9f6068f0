"""The package's floors hold: import-linter's contracts (pyproject.toml) pass, and an upward import breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
            "--config",
            str(root / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root), "PATH": ""},
    )


def test_the_layer_contracts_are_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in done.stdout


@pytest.mark.parametrize(
    "module, upward",
    [
        (
            "model/lzw_inputs.py",
            "import zip2zip.loading",
        ),  # the remote code may import nothing of the package
        ("utils/cache.py", "from zip2zip import recipe"),
        ("hub/model_card.py", "import zip2zip.evaluation.scoring"),  # siblings stay apart
    ],
)
def test_an_upward_import_breaks_them(tmp_path, module, upward):
    copy = tmp_path / "checkout"
    copy.mkdir()
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    shutil.copytree(
        ROOT / "zip2zip", copy / "zip2zip", ignore=shutil.ignore_patterns("checkpoints", "__pycache__")
    )
    target = copy / "zip2zip" / module
    target.write_text(target.read_text() + f"\n{upward}  # deliberately wrong\n")
    done = lint_imports(copy)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout and "Contracts: 0 kept, 1 broken." in done.stdout
