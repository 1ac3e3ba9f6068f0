"""Helpers of the zip2zip tokenizer: the saved base tokenizer, the input forms, and truncating and padding
compressed rows.

This file is copied into exported Hub repos with the tokenizer: it imports only the standard library,
transformers and its sibling files, with flat relative imports.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from transformers import TokenizersBackend
from transformers.tokenization_utils_base import TruncationStrategy
from transformers.utils import PaddingStrategy

from .configuration_zip2zip import CODEC_SETTINGS, vocab_fingerprint
from .lzw import LZWCodec
from .lzw_state import Codebook

__all__ = [
    "BASE_TOKENIZER_FILE",
    "base_tokenizer_settings",
    "codebook_tables",
    "compress_rows",
    "encode_texts",
    "foreign_tokenizer_message",
    "input_ids_of",
    "is_ids",
    "is_zip2zip_tokenizer_config",
    "load_base_tokenizer",
    "missing_tokenizer_config_message",
    "pad_rows",
    "saved_model_settings",
    "saved_tokenizer_settings",
    "split_batch",
    "truncate_codes",
    "write_base_tokenizer",
]

BASE_TOKENIZER_FILE = "base_tokenizer.json"
# Python-level settings of the base tokenizer that its tokenizer.json does not carry.
_BASE_CONFIG_KEYS = ("clean_up_tokenization_spaces", "split_special_tokens", "model_max_length")


def load_base_tokenizer(path: str | None, config: dict[str, Any] | None) -> TokenizersBackend:
    """Rebuild the saved base tokenizer from its tokenizers serialization and saved settings."""
    if path is None or not os.path.isfile(path):
        raise ValueError(
            f"no base tokenizer: base_tokenizer_file={path!r} is not a file. Build the tokenizer with "
            f"Zip2ZipTokenizer.from_base(base_tokenizer, config), or load a folder that holds {BASE_TOKENIZER_FILE}."
        )
    return TokenizersBackend(tokenizer_file=path, **(config or {}))


def _local_json(path: Any, subfolder: str | None, name: str) -> tuple[str | None, dict[str, Any] | None]:
    """``(folder, parsed name)`` when ``path`` (plus ``subfolder``) is a local folder holding ``name``."""
    if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
        return None, None  # a Hub id: its files are checked where it was saved
    folder = os.path.join(os.fspath(path), subfolder) if subfolder else os.fspath(path)
    file = os.path.join(folder, name)
    if not os.path.isfile(file):
        return folder, None
    try:
        with open(file, encoding="utf-8") as handle:
            data = json.load(handle)
    except ValueError:
        return folder, None  # loading that file reports it
    return folder, data if isinstance(data, dict) else None


def saved_model_settings(path: Any, subfolder: str | None = None) -> tuple[str | None, dict[str, Any] | None]:
    """The folder and its zip2zip ``config.json`` (None when absent or not a zip2zip model).

    A config counts as zip2zip's by its ``model_type`` or by the codec settings it carries: a folder whose
    ``model_type`` was edited is still checked."""
    folder, config = _local_json(path, subfolder, "config.json")
    if config is None:
        return folder, None
    carries_codec = all(name in config for name in ("max_codebook_size", "max_subtokens", "disabled_ids"))
    return folder, config if config.get("model_type") == "zip2zip" or carries_codec else None


def is_zip2zip_tokenizer_config(config: dict[str, Any]) -> bool:
    """Whether a parsed ``tokenizer_config.json`` is a Zip2ZipTokenizer's (its codec settings or its class)."""
    auto_map = config.get("auto_map") or {}
    names = [config.get("tokenizer_class"), *(auto_map.get("AutoTokenizer") or [])]
    return config.get("max_subtokens") is not None or any("Zip2ZipTokenizer" in str(n) for n in names if n)


def foreign_tokenizer_message(folder: Any, config: dict[str, Any]) -> str:
    """The ValueError text for a zip2zip model folder whose tokenizer files belong to another tokenizer."""
    return (
        f"{folder}: tokenizer_config.json is not a zip2zip tokenizer's (tokenizer_class="
        f"{config.get('tokenizer_class')!r}, no max_subtokens, no Zip2ZipTokenizer in auto_map): AutoTokenizer "
        "would load a plain tokenizer beside this zip2zip model, which feeds it base ids without the LZW codec "
        "(no compression, other outputs) and cannot decode its hypertokens. Restore the folder's tokenizer files, or "
        "save the model's tokenizer there: Zip2ZipTokenizer.from_base(base_tokenizer, model.config)"
        f".save_pretrained({str(folder)!r}) (it writes tokenizer_config.json and {BASE_TOKENIZER_FILE}; remove a "
        "stray tokenizer.json)."
    )


def saved_tokenizer_settings(
    path: Any, subfolder: str | None = None, fingerprint: bool = True
) -> tuple[str | None, dict[str, Any] | None]:
    """The folder and the codec settings of the Zip2ZipTokenizer saved there (None when there is none).

    The settings are tokenizer_config.json's, except ``base_vocab_fingerprint``: with ``fingerprint`` it is
    computed from the saved base tokenizer itself, so a replaced ``base_tokenizer.json`` shows.
    """
    folder, config = _local_json(path, subfolder, "tokenizer_config.json")
    if config is None or config.get("max_subtokens") is None:
        return folder, None  # no tokenizer, or not a zip2zip one
    settings = {name: config.get(name) for name in (*CODEC_SETTINGS, "base_vocab_fingerprint")}
    base_file = os.path.join(folder, BASE_TOKENIZER_FILE)
    if fingerprint and os.path.isfile(base_file):
        settings["base_vocab_fingerprint"] = vocab_fingerprint(
            load_base_tokenizer(base_file, config.get("base_tokenizer_config"))
        )
    return folder, settings


# The Rust backend's `encode_special_tokens` (and truncation and padding) are state shared by every call: setting
# them and encoding must be one step, or a thread asking for split_special_tokens=True encodes with another
# thread's False.
_BACKEND_LOCK = threading.Lock()


def encode_texts(
    base: Any,
    texts: list[Any],
    add_special_tokens: bool,
    is_split_into_words: bool,
    split_special_tokens: bool,
) -> list[list[int]]:
    """Base ids (special tokens included) of every text or pair, in one base-tokenizer call."""
    backend = getattr(base, "_tokenizer", None)
    if backend is None or not hasattr(base, "set_truncation_and_padding"):
        return base(
            texts,
            add_special_tokens=add_special_tokens,
            is_split_into_words=is_split_into_words,
            split_special_tokens=split_special_tokens,
            return_attention_mask=False,
        )["input_ids"]
    # The Rust backend directly: the same ids as base(...), without building offsets we drop.
    with _BACKEND_LOCK:
        base.set_truncation_and_padding(
            PaddingStrategy.DO_NOT_PAD, TruncationStrategy.DO_NOT_TRUNCATE, None, 0, None, None
        )
        if backend.encode_special_tokens != split_special_tokens:
            backend.encode_special_tokens = split_special_tokens
        encodings = backend.encode_batch_fast(
            texts, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
        )
    return [e.ids for e in encodings]


def write_base_tokenizer(base: Any, path: str) -> str:
    """Write the base tokenizer's ``tokenizers`` serialization (truncation and padding switched off)."""
    backend = getattr(base, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(
            f"cannot save a Zip2ZipTokenizer whose base tokenizer is a {type(base).__name__}: only "
            "tokenizers-backed base tokenizers can be saved; build it from AutoTokenizer.from_pretrained(...)"
        )
    state = json.loads(backend.to_str())
    state["truncation"] = None
    state["padding"] = None
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(state, handle, ensure_ascii=False)
    return path


def missing_tokenizer_config_message(path: Any) -> str:
    return (
        f"{path} has no tokenizer_config.json, which holds the zip2zip tokenizer's settings (codec, special "
        "tokens, chat template): the tokenizer was not saved there, or only in part. Save it with "
        f"tokenizer.save_pretrained(folder) (it writes tokenizer_config.json and {BASE_TOKENIZER_FILE}), or "
        "rebuild it with Zip2ZipTokenizer.from_base(base_tokenizer, model.config)."
    )


def base_tokenizer_settings(base: Any) -> dict[str, Any]:
    """The base tokenizer's special tokens and Python-level settings (JSON-safe), for saving."""
    config: dict[str, Any] = dict(base.special_tokens_map)
    if base.extra_special_tokens:
        config["extra_special_tokens"] = [str(t) for t in base.extra_special_tokens]
    for key in _BASE_CONFIG_KEYS:
        value = getattr(base, key, None)
        if isinstance(value, (bool, int, float, str)):
            config[key] = value
    return config


def input_ids_of(token_ids: Any) -> Any:
    """The ids inside what ``tok(...)`` returns (a BatchEncoding or dict); anything else as it is."""
    if isinstance(token_ids, Mapping):  # BatchEncoding is a UserDict
        if "input_ids" not in token_ids:
            raise ValueError(
                f"decode got a {type(token_ids).__name__} without 'input_ids' (keys: {sorted(token_ids.keys())}); "
                "pass the ids, e.g. tok.decode(encoding['input_ids'])"
            )
        return token_ids["input_ids"]
    return token_ids


def is_ids(value: Any) -> bool:
    """Whether ``value`` is one sequence of ids (not text, words or a batch): a list or tuple whose first element
    is neither text nor a sequence. Its elements then follow the codec's type rule (``lzw_inputs``), so
    ``[5, 2.7]`` is refused at position 1 instead of being read as ``[5, 2]``."""
    return isinstance(value, (list, tuple)) and (not value or not isinstance(value[0], (str, list, tuple)))


def split_batch(text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list[Any], list[Any], bool]:
    """Rows, their pairs (None where absent) and whether the input was a batch, as PythonBackend reads it."""
    if text is None:
        raise ValueError("text is None; pass a string, a list of strings, or base ids")
    single_words = (
        is_split_into_words and isinstance(text, (list, tuple)) and text and isinstance(text[0], str)
    )
    if isinstance(text, str) or single_words or (is_ids(text) and text):
        if text_pair is not None and not isinstance(text_pair, (str, list, tuple)):
            raise ValueError(f"text_pair must be a string or a list, got {type(text_pair).__name__}")
        return [text], [text_pair], False
    if not isinstance(text, (list, tuple)):
        raise ValueError(
            f"text must be a string, a list of strings or a list of base ids, got {type(text).__name__}"
        )
    rows = list(text)
    if text_pair is not None:
        if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(rows):
            raise ValueError(
                f"text is a batch of {len(rows)}, so text_pair must be a batch of the same length, got "
                f"{type(text_pair).__name__} of length {len(text_pair) if hasattr(text_pair, '__len__') else '?'}"
            )
        pairs = list(text_pair)
    else:
        pairs = [None] * len(rows)
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)) or is_ids(row):
                continue
            if is_split_into_words:  # a row is a list of words; a tuple of two word lists is a pair
                if isinstance(row, tuple) and len(row) == 2 and not isinstance(row[0], str):
                    rows[i], pairs[i] = row
            elif len(row) == 2:  # ("question", "context")
                rows[i], pairs[i] = row
            elif len(row) == 1:
                rows[i] = row[0]
            else:
                raise ValueError(f"batch element {i} holds {len(row)} texts; a pair holds 2")
    for i, row in enumerate(rows):
        if not isinstance(row, (str, list, tuple)):
            raise ValueError(f"batch element {i} is a {type(row).__name__}; expected a string or a list")
    return rows, pairs, True


def compress_rows(
    codec: LZWCodec,
    base_rows: list[list[int]],
    max_length: int | None,
    affixes: tuple[int, int],
    side: str,
    with_codebooks: bool,
) -> tuple[list[list[int]], list[Codebook]]:
    """Each row's codes (cut to ``max_length`` codes when given, see :func:`truncate_codes`) and, with
    ``with_codebooks``, its codebook; a cut row's entry in ``base_rows`` becomes the base ids that are left."""
    input_ids: list[list[int]] = []
    codebooks: list[Codebook] = []
    for row, base_ids in enumerate(base_rows):
        codes, cut = (
            (None, False)
            if max_length is None
            else truncate_codes(codec, base_ids, max_length, affixes, side)
        )
        if with_codebooks:
            if cut:  # the codebook and base ids of what is left
                base_rows[row], book = codec.decode_with_codebook(codes)
            else:
                codes, book = codec.encode_with_codebook(base_ids)
            codebooks.append(book)
        elif codes is None:
            codes = codec.encode(base_ids)
        input_ids.append(codes)
    return input_ids, codebooks


def truncate_codes(
    codec: LZWCodec, base_ids: list[int], max_length: int, affixes: tuple[int, int], side: str = "right"
) -> tuple[list[int], bool]:
    """Codes of ``base_ids`` cut to ``max_length`` codes, keeping the special tokens at both ends.

    Right truncation keeps a prefix of the code stream, which is always decodable (and is exactly the
    compression of a prefix of the base ids). Left truncation cannot drop leading codes, because later
    hypertokens are defined by them: it drops leading base ids instead, as few as needed, found by
    bisection. ``affixes`` counts the special tokens the base tokenizer put at the start and the end.
    Returns the codes and whether anything was cut.
    """
    n_pre, n_suf = affixes
    disabled = codec.disabled_ids
    if n_pre + n_suf > min(max_length, len(base_ids)) or not all(
        i in disabled for i in base_ids[:n_pre] + base_ids[len(base_ids) - n_suf :]
    ):
        n_pre = n_suf = 0  # affixes that merge with text or do not fit: treat them as text
    head, body, tail = (
        base_ids[:n_pre],
        base_ids[n_pre : len(base_ids) - n_suf],
        base_ids[len(base_ids) - n_suf :],
    )
    budget = max_length - n_pre - n_suf
    if side == "right":
        # The first k codes of a stream only depend on its first M*(k+1) base ids: compress no more.
        window = codec.max_subtokens * (budget + 1)
        codes = codec.encode(body[:window])
        if len(body) <= window and len(codes) <= budget:
            return head + codes + tail, False
        return head + codes[:budget] + tail, True
    codes = codec.encode(body)
    if len(codes) <= budget:
        return head + codes + tail, False
    low, high = 0, len(body)  # body[low:] is too long, body[high:] (empty) fits
    best = []
    while high - low > 1:
        middle = (low + high) // 2
        trial = codec.encode(body[middle:])
        if len(trial) <= budget:
            high, best = middle, trial
        else:
            low = middle
    return head + best + tail, True


def pad_rows(
    data: dict[str, Any],
    padding_strategy: PaddingStrategy,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    side: str,
    pad_id: int | None,
    return_attention_mask: bool,
) -> None:
    """Pad compressed rows in place (pad id is disabled, so a padded row decodes like the unpadded one)."""
    rows = data["input_ids"]
    if return_attention_mask:
        data["attention_mask"] = [[1] * len(row) for row in rows]
    if padding_strategy == PaddingStrategy.DO_NOT_PAD or not rows:
        return
    target = max(len(row) for row in rows) if padding_strategy == PaddingStrategy.LONGEST else max_length
    if target is None:
        return
    if pad_to_multiple_of and target % pad_to_multiple_of:
        target += pad_to_multiple_of - target % pad_to_multiple_of
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")
    fill = {
        "input_ids": pad_id,
        "attention_mask": 0,
        "token_type_ids": 0,
        "special_tokens_mask": 1,
    }
    for key, value in fill.items():
        if key not in data:
            continue
        padded = []
        for row in data[key]:
            missing = target - len(row)
            if missing <= 0:
                padded.append(row)
            elif side == "right":
                padded.append(row + [value] * missing)
            else:
                padded.append([value] * missing + row)
        data[key] = padded


def codebook_tables(codebooks: list[Codebook], width: int, return_tensors: Any, is_batched: bool) -> Any:
    """Each row's codebook as a ``(K, M)`` table padded with -1 (K = most entries in the batch)."""
    size = max((len(book) for book in codebooks), default=0)
    tables = [book.table(size, pad=-1) for book in codebooks]
    if return_tensors is None:
        return tables if is_batched else tables[0]
    if str(return_tensors) in ("pt", "TensorType.PYTORCH"):
        import torch

        return torch.tensor(tables, dtype=torch.long).reshape(len(tables), size, width)
    import numpy as np

    return np.asarray(tables, dtype=np.int64).reshape(len(tables), size, width)
