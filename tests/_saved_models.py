"""Tiny base and zip2zip models saved as folders, the way users hand them to the loader and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests._tiny_models import tiny_base_model, tiny_zip2zip
from tests._tiny_tokenizers import tiny_bpe_tokenizer

TINY_SETTINGS = {"max_codebook_size": 64, "encoder_num_layers": 1}


def save_model(folder: Path, model: Any, tokenizer: Any) -> Path:
    """``model`` and its tokenizer in one folder, the layout the loader, the CLI and the export read."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_base(root: Path) -> Path:
    """A tiny random Llama and its BPE tokenizer in ``root/base``."""
    tokenizer = tiny_bpe_tokenizer()
    return save_model(root / "base", tiny_base_model("llama", vocab_size=len(tokenizer)), tokenizer)


def save_tiny_zip2zip(root: Path, base: Path) -> Path:
    """An untrained zip2zip model of the tiny base in ``root/zip2zip`` (made from the base folder, so its
    config records where the base lives)."""
    from zip2zip.conversion import zip2zip_from_base

    return save_model(root / "zip2zip", *zip2zip_from_base(str(base), **TINY_SETTINGS))


def saved_tiny_zip2zip(folder: Path, **settings: Any) -> tuple[Path, Any, Any]:
    """The tiny zip2zip model of ``tiny_zip2zip(**settings)`` saved in ``folder``; the folder, the model and the
    tokenizer (tests compare what loads from the folder with the model in memory)."""
    model, tokenizer = tiny_zip2zip(**settings)
    return save_model(folder, model, tokenizer), model, tokenizer
