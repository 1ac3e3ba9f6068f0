"""Loaders for the local lm-eval tasks: JSONL files next to this file, read without any download.

lm-eval resolves `dataset_kwargs.data_files` against the working directory, so the tasks load their data
through `custom_dataset` functions that find the files relative to this module instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets

HERE = Path(__file__).resolve().parent


def _load(name: str) -> datasets.DatasetDict:
    path = HERE / name
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no records")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_mc(**_: Any) -> datasets.DatasetDict:
    return _load("mc.jsonl")


def load_rolling(**_: Any) -> datasets.DatasetDict:
    return _load("rolling.jsonl")


def load_gen(**_: Any) -> datasets.DatasetDict:
    return _load("gen.jsonl")


def rolling_texts() -> list[str]:
    """The texts of the rolling-likelihood task, exactly as lm-eval scores them (doc_to_target is the text)."""
    return list(load_rolling()["test"]["text"])
