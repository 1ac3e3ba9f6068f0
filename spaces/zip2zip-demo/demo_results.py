"""The Results tab: the shipped model's measurements (``benchmarks/RESULTS.md``), tables and plots.

RESULTS.md is split at its ``## `` headings; each section keeps its Markdown (tables, notes) and lists its
PNG plots separately, so the page shows them as images. Links to files beside RESULTS.md (raw JSON data)
become plain text: those files are not served by the page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
REPO_RESULTS = APP_DIR.parent.parent / "benchmarks" / "RESULTS.md"

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_RELATIVE_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?![a-z]+://|#)([^)\s]+)\)")


@dataclass
class ResultsSection:
    title: str
    markdown: str
    images: list[tuple[str, str]] = field(default_factory=list)
    """(caption, absolute path) of each plot; only files that exist."""


@dataclass
class ResultsPage:
    source: str
    intro: str
    sections: list[ResultsSection]


def find_results_file() -> Path | None:
    """``$ZIP2ZIP_DEMO_RESULTS``, else RESULTS.md beside the app (a Space), else the repository's."""
    for candidate in (os.environ.get("ZIP2ZIP_DEMO_RESULTS"), APP_DIR / "RESULTS.md", REPO_RESULTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def load_results(path: str | os.PathLike[str] | None = None) -> ResultsPage | None:
    """Parse RESULTS.md at ``path`` (default :func:`find_results_file`); None when there is none."""
    path = Path(path) if path is not None else find_results_file()
    if path is None or not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    intro = _clean(parts[0], path.parent, [])
    sections = []
    for part in parts[1:]:
        title, _, body = part.partition("\n")
        images: list[tuple[str, str]] = []
        sections.append(ResultsSection(title.strip(), _clean(body, path.parent, images), images))
    return ResultsPage(str(path), intro, sections)


def _clean(markdown: str, folder: Path, images: list[tuple[str, str]]) -> str:
    def take_image(match: re.Match[str]) -> str:
        image = (folder / match.group(2)).resolve()
        if image.is_file():
            images.append((match.group(1), str(image)))
        return ""

    markdown = _IMAGE.sub(take_image, markdown)
    markdown = _RELATIVE_LINK.sub(lambda m: f"{m.group(1)} (`{m.group(2)}`)", markdown)
    return markdown.strip()
