"""The release summary: the shipped model's measured results, written by the release benchmark beside the
shipped weights and read by the model card. One typed definition that both sides use.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TypedDict

from zip2zip.bundled.shipped import shipped_checkpoint_dir
from zip2zip.utils.cache import MARKER_FILENAME

logger = logging.getLogger(__name__)


RELEASE_SUMMARY_FILENAME = "release_results.json"
"""The release benchmark's summary of a model's weights (``benchmarks.release`` writes it into the shipped
checkpoint folder, package data); an export renders it into the card and copies it into the repo."""


RELEASE_SUMMARY_FORMAT = "zip2zip-release-summary/1"
"""The ``format`` a summary must carry to be rendered: another layout is skipped rather than misread."""


class ReleaseBar(TypedDict):
    """One bar of the release benchmark: what it asks, what was measured, whether it was met."""

    bar: str
    measured: str
    met: bool | None
    missed_by: str


class ReleaseSummary(TypedDict, total=False):
    """What ``release_results.json`` holds (format :data:`RELEASE_SUMMARY_FORMAT`).

    ``bits_per_byte``, ``generation``, ``multiple_choice``, ``long_context`` and ``training`` are the release
    benchmark's sections, keyed by domain or measurement; the model card reads the fields it renders and ignores
    the rest. ``long_context`` is absent from summaries written before that section existed, and None when the
    run did not measure it.
    """

    format: str
    date: str
    commit: str
    command: str
    model_digest: str | None
    quick: bool
    bars: list[ReleaseBar]
    bits_per_byte: dict[str, Any]
    generation: dict[str, Any]
    multiple_choice: dict[str, Any]
    long_context: dict[str, Any] | None
    training: dict[str, Any]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def load_release_summary(model_dir: str | os.PathLike) -> ReleaseSummary | None:
    """The release benchmark's summary of the weights in ``model_dir``, or None when there is none for them.

    Looked for in ``model_dir`` itself, and, for the shipped model (a folder assembled from the package's
    checkpoint, whose marker names the folder and the digest of the files it was assembled from), in that
    folder and in the package's checkpoint folder: the benchmark writes it there because the assembled folder
    is a cache. A summary is used only when its ``model_digest`` is the assembled weights' digest (or, found in
    ``model_dir`` itself, when either digest is unknown), so new weights never show old numbers; a smoke run's
    summary or another format is skipped. Skips are logged with what to run.
    """
    folder = Path(model_dir)
    marker = _read_json(folder / MARKER_FILENAME)
    expected = marker.get("source_digest") if isinstance(marker, dict) else None
    candidates = [folder]
    if expected:
        if marker.get("source"):
            candidates.append(Path(marker["source"]))
        candidates.append(shipped_checkpoint_dir())
    for candidate in dict.fromkeys(candidates):
        path = candidate / RELEASE_SUMMARY_FILENAME
        summary = _read_json(path)
        if summary is None:
            continue
        digest = summary.get("model_digest") if isinstance(summary, dict) else None
        if not isinstance(summary, dict) or summary.get("format") != RELEASE_SUMMARY_FORMAT:
            logger.warning(
                "%s is not a %s summary; skipped (rerun python -m benchmarks.release)",
                path,
                RELEASE_SUMMARY_FORMAT,
            )
        elif summary.get("quick"):
            logger.warning("%s is a smoke run's (--quick); skipped", path)
        elif digest != expected and (candidate != folder or (digest and expected)):
            logger.warning(
                "%s measured other weights (digest %s, this model's %s); skipped: rerun python -m benchmarks.release",
                path,
                digest,
                expected,
            )
        else:
            return summary
    return None
