"""``zip2zip train``: uptrain a base causal LM into a zip2zip model with the recipe (:mod:`zip2zip.recipe`)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from zip2zip.cli.options import add_codec_arguments, codec_settings
from zip2zip.cli.output import note
from zip2zip.recipe import PRESETS, ZIP2ZIP_SETTINGS

__all__ = ["load_training_data", "preset_of", "register", "run", "settings_of"]


def _preset_default(field: str) -> str:
    """Help text naming ``field``'s value in every preset (once when they agree)."""
    values = {
        name: "all" if value is None else value
        for name, value in ((n, getattr(p, field)) for n, p in PRESETS.items())
    }
    if len(set(values.values())) == 1:
        return f"default {next(iter(values.values()))}, the presets'"
    return "the preset's: " + ", ".join(f"{name} {value}" for name, value in values.items())


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="uptrain a base causal LM into a zip2zip model (LoRA + hyper-encoders, TRL SFT), with the recipe",
        description=(
            "Convert a base causal LM into a zip2zip model with the recipe's settings (zip2zip.recipe) and train "
            "it on LZW-compressed text with the recipe's training preset for this machine (--preset). Every flag "
            "left unset keeps the recipe's value. The output folder holds checkpoints (the run resumes from the "
            "last one when started again) and, at the end, a complete trust_remote_code repo: "
            "AutoModelForCausalLM.from_pretrained(OUTPUT, trust_remote_code=True)."
        ),
    )
    g = p.add_argument_group("zip2zip model (the recipe's values unless given)")
    add_codec_arguments(g)
    g.add_argument(
        "--base",
        default=None,
        metavar="PATH_OR_ID",
        help="base model folder or Hub id, or a zip2zip repo to train further (default: the embedded "
        "SmolLM2-135M-Instruct)",
    )
    g.add_argument(
        "--encoder-layers",
        type=int,
        default=None,
        help=f"transformer layers of each hyper-encoder (default {ZIP2ZIP_SETTINGS['encoder_num_layers']})",
    )
    g.add_argument(
        "--encoder-hidden-size",
        type=int,
        default=None,
        help="hyper-encoder width (default: half the model's)",
    )
    g.add_argument(
        "--position-mode",
        choices=("compressed", "base"),
        default=None,
        help=f"position ids (default {ZIP2ZIP_SETTINGS['position_mode']})",
    )
    g.add_argument(
        "--reconstruction-weight",
        type=float,
        default=None,
        help=f"auxiliary reconstruction loss weight (default {ZIP2ZIP_SETTINGS['reconstruction_loss_weight']}; "
        "paper: 0.1)",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        nargs="+",
        default=None,
        metavar="PATH",
        help="text files or folders (one document per file), .jsonl files, or a `datasets` dataset saved "
        "with save_to_disk; default: the recipe's mix of the project corpora (see --domains)",
    )
    g.add_argument(
        "--domains",
        nargs="+",
        default=None,
        help="project corpora mixed in the recipe's proportions when --data is not given (default: every "
        "domain of the preset's mix)",
    )
    g.add_argument(
        "--docs-per-domain",
        type=int,
        default=None,
        help=f"corpus documents per domain ({_preset_default('docs_per_domain')})",
    )
    g.add_argument(
        "--text-field", default="text", help="text column of JSONL / datasets data (default 'text')"
    )
    g.add_argument(
        "--max-length",
        type=int,
        default=None,
        help=f"compressed tokens per example ({_preset_default('max_length')})",
    )
    g = p.add_argument_group("training (the preset's values unless given)")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="the recipe's training preset (default: gpu where CUDA is visible, else cpu)",
    )
    g.add_argument("--steps", type=int, default=None, help=f"optimizer steps ({_preset_default('steps')})")
    g.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help=f"rows per device per micro-batch ({_preset_default('batch_size')})",
    )
    g.add_argument(
        "--grad-accum",
        type=int,
        default=None,
        help=f"gradient accumulation steps ({_preset_default('grad_accum')})",
    )
    g.add_argument(
        "--lr", type=float, default=None, help=f"peak learning rate, cosine ({_preset_default('lr')})"
    )
    g.add_argument(
        "--warmup-ratio",
        type=float,
        default=None,
        help=f"warm-up share of the steps ({_preset_default('warmup')})",
    )
    g.add_argument(
        "--lora-r",
        type=int,
        default=None,
        help=f"LoRA rank; 0 trains the whole model ({_preset_default('lora_r')})",
    )
    g.add_argument("--lora-alpha", type=int, default=None, help=f"({_preset_default('lora_alpha')})")
    g.add_argument("--lora-dropout", type=float, default=None, help=f"({_preset_default('lora_dropout')})")
    g.add_argument(
        "--distillation-weight",
        type=float,
        default=None,
        help=f"self-distillation from the frozen base ({_preset_default('distillation_weight')})",
    )
    g.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute activations, memory for speed (default: the preset's, off)",
    )
    g.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: wherever the hardware computes bf16 natively)",
    )
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("output")
    g.add_argument("--output", required=True, help="output folder (checkpoints, then the final repo)")
    g.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (default 50)")
    g.add_argument("--logging-steps", type=int, default=10)
    g.add_argument("--no-resume", action="store_true", help="start over even if OUTPUT has checkpoints")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def preset_of(args: argparse.Namespace) -> Any:
    """The recipe's preset named by ``--preset`` (or picked for this machine) with the given flags applied."""
    from zip2zip.recipe import get_preset

    return get_preset(args.preset).replace(
        steps=args.steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        lr=args.lr,
        warmup=args.warmup_ratio,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        docs_per_domain=args.docs_per_domain,
        gradient_checkpointing=args.gradient_checkpointing,
        bf16=args.bf16,
        distillation_weight=args.distillation_weight,
    )


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """``recipe.ZIP2ZIP_SETTINGS`` with the given model flags applied."""
    from zip2zip.loading import zip2zip_settings

    return zip2zip_settings(
        **codec_settings(args),
        encoder_num_layers=args.encoder_layers,
        encoder_hidden_size=args.encoder_hidden_size,
        position_mode=args.position_mode,
        reconstruction_loss_weight=args.reconstruction_weight,
    )


def load_training_data(
    paths: Sequence[str] | None,
    domains: Sequence[str] | None = None,
    text_field: str = "text",
    docs_per_domain: int | None = None,
    seed: int = 0,
    preset: Any = None,
) -> Any:
    """``paths`` read by `zip2zip.corpora.text_files.load_text_dataset`, or the recipe's training mix of ``domains``
    (with the mix, passes and document pieces of ``preset`` when given)."""
    if paths:
        from zip2zip.corpora.text_files import load_text_dataset

        return load_text_dataset(paths, text_field)
    from zip2zip.corpora.mixing import training_mix

    extra = {}
    if preset is not None:
        extra = {"mix": preset.mix, "max_passes": preset.max_passes}
    return training_mix(
        docs_per_domain=docs_per_domain, seed=seed, domains=tuple(domains) if domains else None, **extra
    )


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoConfig

    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.trainer.callbacks import last_complete_checkpoint
    from zip2zip.trainer.data import describe_rows
    from zip2zip.trainer.presets import lora_config, training_config
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
    from zip2zip.utils.hardware import cpu_supports_bf16

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("zip2zip train: --device cuda, but no CUDA device is visible; use --device cpu")
    use_cpu = args.device == "cpu" or not torch.cuda.is_available()
    preset = preset_of(args)
    settings = settings_of(args)
    base = args.base
    if base is None:
        from zip2zip.bundled.base import default_base_path

        base = default_base_path()
    # The hyper-encoders' initialisation: the same on every process and every resume.
    torch.manual_seed(args.seed)
    if AutoConfig.from_pretrained(base, trust_remote_code=True).model_type == "zip2zip":
        from zip2zip.loading import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(base)
        model.train()
    else:
        model, tokenizer = zip2zip_from_base(base, **settings)

    text_field = args.text_field if args.data else "text"
    try:
        dataset = load_training_data(
            args.data, args.domains, text_field, preset.docs_per_domain, args.seed, preset=preset
        )
    except (ValueError, OSError) as error:
        raise SystemExit(f"zip2zip train: {error}") from None
    resume = None
    if not args.no_resume and os.path.isdir(args.output):
        resume = last_complete_checkpoint(args.output)
        if resume:
            print(f"resuming from {resume}", flush=True)
    overrides: dict[str, Any] = {
        "dataset_text_field": text_field,
        "logging_steps": args.logging_steps,
        "save_steps": args.save_steps,
        "seed": args.seed,
        "disable_tqdm": args.no_progress,
    }
    if use_cpu:
        bf16 = preset.bf16 if preset.bf16 is not None else cpu_supports_bf16()
        overrides.update(use_cpu=True, dataloader_pin_memory=False, bf16=bf16)
    config = training_config(preset, args.output, **overrides)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(model, preset),
    )
    rows = describe_rows(trainer.train_dataset, preset.batch_size * preset.grad_accum, preset.steps)
    note(
        f"training {preset.steps} steps of {preset.batch_size}x{preset.grad_accum} rows of up to "
        f"{preset.max_length} codes on {len(dataset)} texts: {rows} ({'bf16' if config.bf16 else 'float32'}, "
        f"{'LoRA r=' + str(preset.lora_r) if preset.lora_r else 'full fine-tuning'})"
    )
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output)
    if trainer.is_world_process_zero():
        summary = {
            "global_step": result.global_step,
            "train_loss": result.training_loss,
            "output": args.output,
        }
        print(json.dumps(summary), flush=True)
    return 0
