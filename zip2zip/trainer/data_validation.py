"""Checks of training rows: a wrong value fails at preparation with the row that holds it, and rows with nothing
to train on are dropped and counted (not trained at loss 0 or failing deep inside TRL or the codec).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)


_SEQUENCE = (list, tuple)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({type(value).__name__})"


def _check_text(value: Any, field: str) -> bool:
    """True if the text is missing (None or ""); TypeError if it is not a string."""
    if value is None or (isinstance(value, str) and not value):
        return True
    if not isinstance(value, str):
        raise TypeError(f"field {field!r} must be a string, got {_describe(value)}; fix the row or drop it")
    return False


def _check_messages(value: Any, field: str) -> bool:
    """True if the conversation is missing (None or []); TypeError if it is not a list of message dicts."""
    if value is None or (isinstance(value, _SEQUENCE) and not value):
        return True
    if not isinstance(value, _SEQUENCE):
        raise TypeError(
            f"field {field!r} must be a list of messages ({{'role': ..., 'content': ...}}), got {_describe(value)}"
        )
    for position, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise TypeError(
                f"field {field!r}: message {position} must be a dict with a string 'role' and a 'content', got "
                f"{_describe(message)}"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise TypeError(
                f"field {field!r}: the 'content' of message {position} must be a string, got {_describe(content)}"
            )
    return False


def _check_ids(value: Any, field: str) -> list[int] | None:
    """The ids as a list (None when missing); TypeError if they are not a flat sequence of integer ids."""
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays and torch tensors
        value = value.tolist()
    if value is None:
        return None
    if not isinstance(value, _SEQUENCE):
        raise TypeError(f"field {field!r} must be a list of integer ids, got {_describe(value)}")
    for position, x in enumerate(value):
        if type(x) is not int:  # bools are not ids
            raise TypeError(
                f"field {field!r}: element {position} must be an integer id, got {_describe(x)}; tokenize text "
                "first, or give a text column instead of input_ids"
            )
    return list(value)


def _raw_empty_field(example: dict[str, Any], text_field: str) -> str | None:
    if "prompt" in example and "completion" in example:
        prompt, completion = example["prompt"], example["completion"]
        for field, value in (("prompt", prompt), ("completion", completion)):
            if value is None:
                return field
            if not isinstance(value, (str, *_SEQUENCE)):
                raise TypeError(
                    f"field {field!r} must be a string or a list of messages, got {_describe(value)}"
                )
        if isinstance(prompt, str) and isinstance(completion, str):
            return "completion" if _check_text(completion, "completion") else None
        if isinstance(prompt, _SEQUENCE) and isinstance(completion, _SEQUENCE):
            _check_messages(prompt, "prompt")  # an empty prompt is fine: the completion is what is trained
            return "completion" if _check_messages(completion, "completion") else None
        raise TypeError(
            "'prompt' and 'completion' must both be strings or both be lists of messages, got "
            f"{_describe(prompt)} and {_describe(completion)}"
        )
    if "messages" in example:
        return "messages" if _check_messages(example["messages"], "messages") else None
    if text_field not in example:
        raise ValueError(
            f"the example has no {text_field!r} field (fields: {sorted(example)}); set dataset_text_field, or give "
            "'prompt'/'completion' or 'messages' columns"
        )
    return text_field if _check_text(example[text_field], text_field) else None


def check_example(example: dict[str, Any], dataset_text_field: str = "text") -> str | None:
    """Check that one training row holds the types training needs; return the field that leaves it empty, if any.

    Rows are pre-tokenised (`input_ids`, optional `labels`: flat lists of integer ids of the same length),
    prompt/completion (both strings, or both lists of messages), conversational (`messages`: a list of dicts
    with a string `role`) or plain text (`dataset_text_field`: a string). Returns None for a usable row and the
    name of the field for a row with nothing to train on (None, `""` or an empty list where the trained text
    goes; an empty prompt is fine). Raises TypeError naming the field and the value for a wrong type, and
    ValueError for a row with no field to read or labels that do not align with the ids.
    """
    if "input_ids" in example:
        ids = _check_ids(example["input_ids"], "input_ids")
        if not ids:
            return "input_ids"
        labels = _check_ids(example.get("labels"), "labels")
        if labels is not None and len(labels) != len(ids):
            raise ValueError(
                f"field 'labels' has {len(labels)} entries but 'input_ids' has {len(ids)}; they must align one to one"
            )
        return None
    return _raw_empty_field(example, dataset_text_field)


def _checked_columns(columns: Sequence[str], text_field: str) -> list[str]:
    """The columns :func:`check_example` reads in a dataset with these columns."""
    if "input_ids" in columns:
        return [name for name in ("input_ids", "labels") if name in columns]
    if "prompt" in columns and "completion" in columns:
        return ["prompt", "completion"]
    if "messages" in columns:
        return ["messages"]
    if text_field in columns:
        return [text_field]
    raise ValueError(
        f"the dataset has no {text_field!r} column (columns: {sorted(columns)}); set dataset_text_field, or give "
        "'prompt'/'completion', 'messages' or 'input_ids' columns"
    )


def _check_row(example: dict[str, Any], index: int, text_field: str, dataset_name: str) -> str | None:
    try:
        return check_example(example, text_field)
    except (TypeError, ValueError) as error:
        raise type(error)(f"row {index} of the {dataset_name} dataset: {error}") from None


class _StreamedRowCheck:
    """`IterableDataset.filter` function: checks each row as it streams, warns once about skipped rows."""

    def __init__(self, text_field: str, dataset_name: str) -> None:
        self.text_field, self.dataset_name, self.warned = text_field, dataset_name, False

    def __call__(self, example: dict[str, Any], index: int) -> bool:
        field = _check_row(example, index, self.text_field, self.dataset_name)
        if field is not None and not self.warned:
            self.warned = True
            logger.warning(
                "skipping rows of the streamed %s dataset with nothing to train on (the first is row %d, empty %r); "
                "a stream is not counted in advance",
                self.dataset_name,
                index,
                field,
            )
        return field is None


def drop_empty_rows(dataset: Any, dataset_text_field: str = "text", dataset_name: str = "train") -> Any:
    """`dataset` without its rows that have nothing to train on, every row checked with :func:`check_example`.

    A row of the wrong type raises (TypeError or ValueError) with its index, field and value. Empty rows are
    dropped and counted in one warning per dataset; a dataset with no usable row is refused with ValueError.
    A map-style `Dataset` is checked in full here; an `IterableDataset` row by row as it streams (its first
    usable row is looked for here, so an all-empty stream is refused before training too).
    """
    if not hasattr(dataset, "num_rows"):
        dataset = dataset.filter(_StreamedRowCheck(dataset_text_field, dataset_name), with_indices=True)
        reject_empty_dataset(dataset, dataset_name, " with anything to train on")
        return dataset
    reject_empty_dataset(dataset, dataset_name)
    columns = _checked_columns(dataset.column_names, dataset_text_field)
    empty: Counter[str] = Counter()
    keep: list[int] = []
    for index, example in enumerate(dataset.select_columns(columns)):
        field = _check_row(example, index, dataset_text_field, dataset_name)
        if field is None:
            keep.append(index)
        else:
            empty[field] += 1
    detail = ", ".join(f"{count} with an empty {field!r}" for field, count in sorted(empty.items()))
    if not keep:
        raise ValueError(
            f"the {dataset_name} dataset has no row with anything to train on: all {dataset.num_rows} rows are "
            f"empty ({detail}: None, '' or [])"
        )
    if empty:
        logger.warning(
            "skipping %d of the %d rows of the %s dataset: nothing to train on (%s)",
            sum(empty.values()),
            dataset.num_rows,
            dataset_name,
            detail,
        )
        dataset = dataset.select(keep)
    return dataset


def reject_empty_dataset(dataset: Any, dataset_name: str = "train", what: str = "") -> None:
    """Raise ValueError if `dataset` yields no row (TRL and the sampler would fail later with bare errors)."""
    if dataset is None:
        return
    none = dataset.num_rows == 0 if hasattr(dataset, "num_rows") else next(iter(dataset), None) is None
    if none:
        raise ValueError(
            f"the {dataset_name} dataset has no rows{what}; give it examples to train on (text, prompt/completion, "
            "messages or input_ids rows)"
        )
