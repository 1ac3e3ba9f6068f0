"""What a report records about how it was made: command, versions, machine and the weights it measured."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.release.settings import ROOT
from zip2zip.utils.hardware import describe_cpu


def describe_run(
    args: argparse.Namespace, folder: str, settings: dict[str, Any], models: dict[str, Any]
) -> dict:
    """What a reader needs to reproduce or trust the numbers: command, date, versions, machine, model (and
    for the shipped model the digest of the weights it was assembled from, so a card never shows numbers of
    other weights), the control."""
    import lm_eval
    import torch
    import transformers

    def git(*words: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *words], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        commit += (
            " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    config = models["zip"].config
    marker = assembled_marker(folder) if args.model is None else {}
    return {
        "command": shlex.join(["python", "-m", "benchmarks.release", *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "model": folder,
        "shipped": args.model is None,
        "model_digest": marker.get("source_digest"),
        "delta_scale": marker.get("delta_scale"),
        "model_settings": model_settings(config),
        "control": (
            {"folder": args.control, "model_settings": model_settings(models["control"].config)}
            if models.get("control") is not None
            else models.get("carried_control", {}).get("run")
        ),
        "base": f"SmolLM2-135M-Instruct (embedded), {models['base_path']}",
        "threads": torch.get_num_threads(),
        "cpu": describe_cpu(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": getattr(lm_eval, "__version__", "?"),
        },
        "settings": settings,
    }


def model_settings(config: Any) -> dict[str, Any]:
    """The zip2zip settings a reader needs to tell two models apart (M above all: the control has M = 1)."""
    names = ("max_codebook_size", "max_subtokens", "encoder_num_layers", "position_mode", "encoder_init")
    return {name: getattr(config, name) for name in names if getattr(config, name, None) is not None}


def assembled_marker(folder: str) -> dict[str, Any]:
    """The marker of an assembled shipped model (what it was built from), or {} for any other folder."""
    from zip2zip.utils.cache import MARKER_FILENAME

    try:
        marker = json.loads((Path(folder) / MARKER_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def assembled_digest(folder: str) -> str | None:
    """The digest of the shipped files an assembled shipped model was built from (its marker), or None."""
    return assembled_marker(folder).get("source_digest")


def backfill_delta_scale(run: dict[str, Any]) -> bool:
    """A report written before ``delta_scale`` was recorded: read it from the measured assembly's marker, if
    that folder is still the one measured (same digest). True when it filled it in."""
    if "delta_scale" in run or not run.get("model_digest"):
        return False
    marker = assembled_marker(run["model"])
    if marker.get("source_digest") != run["model_digest"] or "delta_scale" not in marker:
        return False
    run["delta_scale"] = marker["delta_scale"]
    return True
