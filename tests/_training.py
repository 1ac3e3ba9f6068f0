"""Builders shared by the training tests: a tiny zip2zip model and a fast, deterministic SFT config."""

from __future__ import annotations

import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import tiny_bpe_tokenizer

from zip2zip.trainer import Zip2ZipSFTConfig, zip2zip_from_base


def build(seed: int = 0, arch: str = "llama", **settings):
    """A tiny zip2zip model and tokenizer, identical for a given seed."""
    base_tok = tiny_bpe_tokenizer()
    base = tiny_base_model(arch, vocab_size=len(base_tok), seed=seed)
    settings = {"max_codebook_size": 64, "max_subtokens": 4, "encoder_num_layers": 1, **settings}
    torch.manual_seed(seed)
    return zip2zip_from_base(base, tokenizer=base_tok, **settings)


def config(tmp_path, **overrides) -> Zip2ZipSFTConfig:
    """Three quick CPU steps, no saving, no reporting; ``overrides`` win."""
    values = {
        "output_dir": str(tmp_path / "run"),
        "max_steps": 3,
        "per_device_train_batch_size": 2,
        "learning_rate": 3e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "gradient_checkpointing": False,
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
        "seed": 0,
        # float32, so that exactness tests compare like with like (bf16 autocast is tested on its own).
        "bf16": False,
    }
    values.update(overrides)
    return Zip2ZipSFTConfig(**values)
