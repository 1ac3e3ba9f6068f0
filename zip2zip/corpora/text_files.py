"""Reading the user's own texts: text files, folders of them, JSON Lines files and saved `datasets` datasets.

The command line trains and evaluates on these (``--data PATH ...``); the project's own corpora are in
:mod:`zip2zip.corpora`. Files are read as UTF-8 and an unreadable one is an error that names it: nothing is
skipped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["JSON_LINES_SUFFIXES", "iter_text_files", "load_text_dataset", "read_texts"]

JSON_LINES_SUFFIXES = (".jsonl", ".json")
"""Files read as JSON Lines (one JSON object per line); every other file is one text."""


def iter_text_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Every file under `paths` (files are taken as they are, folders walked in sorted order)."""
    files: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"text path {path!r} does not exist")
    return files


def read_texts(path: str | os.PathLike, text_field: str = "text") -> list[str]:
    """The texts of one file: the ``text_field`` of every line of a JSON Lines file, or a text file whole.

    Raises ``ValueError`` naming the file (and line) when it is not UTF-8, a line is not JSON, or a record
    lacks ``text_field``; ``FileNotFoundError`` when it does not exist.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            if not path.endswith(JSON_LINES_SUFFIXES):
                return [handle.read()]
            return [
                _text_of(line, text_field, f"{path}:{n}") for n, line in enumerate(handle, 1) if line.strip()
            ]
    except UnicodeDecodeError as error:
        raise ValueError(f"cannot read {path!r} as UTF-8 text: {error}") from None


def load_text_dataset(paths: Sequence[str | os.PathLike], text_field: str = "text") -> Any:
    """A `datasets.Dataset` with a ``text_field`` column: every text of ``paths`` (files and folders as
    :func:`read_texts` reads them; a folder saved with ``Dataset.save_to_disk`` as it is). Blank texts are
    dropped; ``ValueError`` when nothing is left."""
    from datasets import Dataset, concatenate_datasets, load_from_disk

    parts = []
    texts: list[str] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_info.json")):
            loaded = load_from_disk(path)
            parts.append(loaded["train"] if hasattr(loaded, "keys") and "train" in loaded else loaded)
            continue
        for file in iter_text_files([path]):
            texts.extend(read_texts(file, text_field))
    texts = [text for text in texts if text.strip()]
    if texts:
        parts.append(Dataset.from_dict({text_field: texts}))
    if not parts:
        raise ValueError(f"no text found in {[os.fspath(p) for p in paths]}")
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _text_of(line: str, text_field: str, where: str) -> str:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise ValueError(
            f"{where} is not a JSON object ({error}); JSON Lines files hold one per line"
        ) from None
    if not isinstance(record, dict) or text_field not in record:
        fields = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{where} has no {text_field!r} field (fields: {fields}); pass --text-field")
    return record[text_field]
