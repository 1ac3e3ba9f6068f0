"""Loader of the local next-line tasks: the items ``python -m benchmarks.release`` writes, read without any download.

lm-eval resolves ``dataset_kwargs.data_files`` against the working directory and downloads nothing for
``custom_dataset`` tasks, so the tasks read their items through :func:`load_next_line`. The items file is the
``items`` metadata of the task manager (``TaskManager(include_path=..., metadata={"items": PATH})``, or
``--metadata '{"items": "PATH"}'`` on lm-eval's command line); without it, the file the release benchmark
writes by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

DEFAULT_ITEMS = Path(__file__).resolve().parents[1] / "results" / "release" / "next_line.jsonl"


def load_next_line(items: str | None = None, domain: str | None = None, **_: Any) -> datasets.DatasetDict:
    """The items of one domain (``dataset_kwargs.domain`` in the task's YAML) as a ``test`` split."""
    path = Path(items) if items else DEFAULT_ITEMS
    if not path.is_file():
        raise FileNotFoundError(
            f"next-line items {path} do not exist; build them with `python -m benchmarks.release` (they land "
            "in its results folder) or pass the file as task metadata {'items': PATH}"
        )
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if domain is not None:
        rows = [row for row in rows if row["domain"] == domain]
    if not rows:
        raise ValueError(f"{path} holds no items for domain {domain!r}")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
