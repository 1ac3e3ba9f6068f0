"""Documents of the corpora: chunks of source files, their split (train or held out) and how text is chunked."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SPLITS: tuple[str, ...] = ("train", "heldout", "all")


HELDOUT_PERCENT = 10


TARGET_CHARS = 4000  # a chunk closes at the first blank line past this many characters


MAX_CHARS = 8000  # and is cut harder (at lines, then anywhere) past this many


MIN_CHARS = 64  # shorter chunks (empty __init__.py files, lone headings) are dropped


@dataclass(frozen=True)
class Document:
    """One chunk of a source file: ``id`` is unique, ``group`` decides the split, ``index`` is its
    position in the domain's natural (reading) order."""

    id: str
    group: str
    lang: str
    index: int
    text: str

    @property
    def split(self) -> str:
        return split_of(self.group)


def split_of(group: str) -> str:
    """Return ``"heldout"`` or ``"train"`` for a split group, a pure function of the group name."""
    digest = hashlib.sha256(f"zip2zip-split:{group}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT else "train"


def _finish(records: Iterable[tuple[str, str, str, str]]) -> list[Document]:
    """Turn ``(id, group, lang, text)`` records into documents: drop tiny and duplicate texts, number them."""
    docs: list[Document] = []
    seen: set[str] = set()
    for doc_id, group, lang, text in records:
        if len(text.strip()) < MIN_CHARS or text in seen:
            continue
        seen.add(text)
        docs.append(Document(doc_id, group, lang, len(docs), text))
    return docs


def chunk_text(text: str, target: int = TARGET_CHARS, limit: int = MAX_CHARS) -> list[str]:
    """Cut ``text`` into chunks of about ``target`` characters at blank lines, none longer than ``limit``.

    Joining the chunks gives back ``text`` exactly.
    """
    pieces = re.split(r"(?<=\n\n)", text)  # keep the blank line with the paragraph it ends
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        for part in _hard_split(piece, limit):
            if current and len(current) + len(part) > limit:
                chunks.append(current)
                current = ""
            current += part
            if len(current) >= target:
                chunks.append(current)
                current = ""
    if current:
        chunks.append(current)
    return chunks


def _hard_split(piece: str, limit: int) -> Iterator[str]:
    """Split a paragraph longer than ``limit`` at line ends, and a line longer than that anywhere."""
    if len(piece) <= limit:
        yield piece
        return
    buffer = ""
    for line in piece.splitlines(keepends=True):
        while len(line) > limit:
            if buffer:
                yield buffer
                buffer = ""
            yield line[:limit]
            line = line[limit:]
        if len(buffer) + len(line) > limit:
            yield buffer
            buffer = ""
        buffer += line
    if buffer:
        yield buffer
