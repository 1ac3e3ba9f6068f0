"""A recipe preset turned into what TRL and PEFT take: the `Zip2ZipSFTConfig`, the `LoraConfig`, the training data."""

from __future__ import annotations

from typing import Any

from zip2zip.corpora.mixing import training_mix
from zip2zip.recipe import TrainingPreset
from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
from zip2zip.utils.peft import default_lora_config


def training_config(preset: TrainingPreset, output_dir: str, **overrides: Any):
    """The `Zip2ZipSFTConfig` of `preset`: cosine schedule over exactly `preset.steps`, checkpoints, precision.

    `overrides` are further `Zip2ZipSFTConfig` fields (`save_steps`, `logging_steps`, `seed`, ...).
    """
    import torch

    on_gpu = torch.cuda.is_available()
    values: dict[str, Any] = {
        "output_dir": output_dir,
        "max_steps": preset.steps,
        "per_device_train_batch_size": preset.batch_size,
        "gradient_accumulation_steps": preset.grad_accum,
        "max_length": preset.max_length,
        "learning_rate": preset.lr,
        "encoder_learning_rate": preset.encoder_lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": preset.warmup,
        "gradient_checkpointing": preset.gradient_checkpointing,
        "bf16": preset.bf16_enabled,
        "distillation_weight": preset.distillation_weight,
        "line_cut_share": preset.line_cut_share,
        "line_cuts_per_text": preset.line_cuts_per_text,
        "logging_steps": 10,
        "save_steps": 50,
        "save_total_limit": 2,
        "report_to": "none",
        "dataloader_pin_memory": on_gpu,
        # No padding beyond the batch's longest row: in the trainer, bf16 steps on rows of changing length were
        # as fast as padded ones or faster (2 x ~800 codes, SmolLM2 LoRA: 4.45 s unpadded, 4.73 s padded to a
        # multiple of 64; benchmarks/README.md, "Training throughput").
        "pad_to_multiple_of": None,
    }
    values.update(overrides)
    return Zip2ZipSFTConfig(**values)


def lora_config(model: Any, preset: TrainingPreset):
    """The preset's `LoraConfig` for `model` (adapters on the base projections, hyper-encoders in full);
    `None` when the preset fine-tunes the whole model (`lora_r=0`)."""
    if preset.lora_r == 0:
        return None

    return default_lora_config(model, r=preset.lora_r, alpha=preset.lora_alpha, dropout=preset.lora_dropout)


def training_data(preset: TrainingPreset, seed: int = 0, domains: tuple[str, ...] | None = None):
    """The preset's training mix of the project's corpora (:func:`zip2zip.corpora.mixing.training_mix`)."""
    return training_mix(preset.docs_per_domain, seed, domains, mix=preset.mix, max_passes=preset.max_passes)
