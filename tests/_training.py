"""Builders shared by the training tests: a tiny zip2zip model and a fast, deterministic SFT config."""

from __future__ import annotations

import torch
from _tiny_models import tiny_base_model, tiny_zip2zip
from _tiny_tokenizers import TRAINING_TEXT
from datasets import Dataset

from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config


def build(seed: int = 0, arch: str = "llama", **settings):
    """A tiny zip2zip model and tokenizer as conversion leaves them (encoders unperturbed, default width, one
    layer), identical for a given seed."""
    settings = {"encoder_num_layers": 1, **settings}
    return tiny_zip2zip(seed=seed, arch=arch, perturb=0.0, encoders={}, **settings)


def prompt_completion_dataset(texts) -> Dataset:
    """Conversational prompt/completion rows: each text's first 30 characters asked, the rest answered."""
    return Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": text[:30]}],
                "completion": [{"role": "assistant", "content": text[30:]}],
            }
            for text in texts
        ]
    )


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


def one_step_update(tmp_path, texts, batch: int, accumulation: int, lora: bool = False, **settings):
    """The parameter change of one SGD step (LR 1, no clipping) on ``texts`` in ``batch`` x ``accumulation``
    micro-batches: equal for 2 x 1 and 1 x 2 when every loss is normalised over the whole accumulated batch."""
    model, tok = build()
    args = config(
        tmp_path,
        max_steps=1,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        optim="sgd",
        learning_rate=1.0,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        output_dir=str(tmp_path / f"ga{batch}x{accumulation}"),
        **settings,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": list(texts)}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8) if lora else None,
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return {n: before[n] - p.detach() for n, p in trainer.model.named_parameters()}


def student_and_teacher(seed: int = 0, **settings):
    """A tiny zip2zip model, its tokenizer, and a separate copy of its base model (the reference teacher)."""
    model, tok = build(seed, **settings)
    return model, tok, tiny_base_model("llama", vocab_size=len(tok), seed=seed)


def teacher_trainer(tmp_path, model, tok, lora: bool = True, **overrides) -> Zip2ZipSFTTrainer:
    """A trainer for the teacher-signal tests; its adapters start off their identity (B ~ N(0, 0.5)), so that
    the teacher (the model with its adapters disabled) really differs from the student."""
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, **overrides),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 2}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8) if lora else None,
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    return trainer


def teacher_sums(trainer, rows: list[dict], collator=None) -> tuple[float | None, float | None]:
    """The trainer's batched teacher terms on `rows` (first-token KL sum, hidden-state distance sum)."""
    batch = dict((collator or trainer.data_collator)(rows))
    for name in ("num_base_tokens", "num_target_bytes"):
        batch.pop(name, None)
    base_inputs = {
        n: batch.pop(n) for n in ("base_input_ids", "base_attention_mask", "base_positions") if n in batch
    }
    with torch.no_grad():
        outputs = trainer.model(**batch, output_hidden_states=True)
        valid = batch["labels"][:, 1:] != -100
        kl, hidden = trainer._teacher_sums(trainer.model, batch, outputs, valid, base_inputs)
    return (None if kl is None else float(kl)), (None if hidden is None else float(hidden))
