"""Tiny base and zip2zip models saved as folders, the way users hand them to the loader and the CLI."""

from __future__ import annotations

from pathlib import Path

from tests._tiny_models import tiny_base_model
from tests._tiny_tokenizers import tiny_bpe_tokenizer

TINY_SETTINGS = {"max_codebook_size": 64, "encoder_num_layers": 1}


def save_tiny_base(root: Path) -> Path:
    """A tiny random Llama and its BPE tokenizer in ``root/base``."""
    tokenizer = tiny_bpe_tokenizer()
    folder = root / "base"
    tiny_base_model("llama", vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_zip2zip(root: Path, base: Path) -> Path:
    """An untrained zip2zip model of the tiny base in ``root/zip2zip`` (made from the base folder, so its
    config records where the base lives)."""
    from zip2zip.conversion import zip2zip_from_base

    model, tokenizer = zip2zip_from_base(str(base), **TINY_SETTINGS)
    folder = root / "zip2zip"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
