"""The `zip2zip` command line: one small function per subcommand, each registered on its own subparser.

Add a subcommand by writing `_register_<name>(subparsers)` (it adds the parser and sets `func`) and listing it
in `_REGISTRARS`. Heavy imports (torch, transformers, TRL) happen inside the command functions, so
`zip2zip --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["build_parser", "main"]

logger = logging.getLogger("zip2zip")


# ============================================================================================ train


def _register_train(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="uptrain a base causal LM into a zip2zip model (LoRA + hyper-encoders, TRL SFT)",
        description=(
            "Convert a base causal LM into a zip2zip model and train it on LZW-compressed text. The output folder "
            "holds checkpoints (the run resumes from the last one when started again) and, at the end, a complete "
            "trust_remote_code repo: AutoModelForCausalLM.from_pretrained(OUTPUT, trust_remote_code=True)."
        ),
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--base",
        default=None,
        help="base model folder or zip2zip repo (default: the embedded SmolLM2-135M-Instruct)",
    )
    g.add_argument(
        "--max-codebook-size", type=int, default=2048, help="C: hypertokens per sequence (default 2048)"
    )
    g.add_argument("--max-subtokens", type=int, default=4, help="M: base tokens per hypertoken (default 4)")
    g.add_argument(
        "--encoder-layers", type=int, default=2, help="transformer layers of each hyper-encoder (default 2)"
    )
    g.add_argument(
        "--encoder-hidden-size", type=int, default=None, help="hyper-encoder width (default: the model's)"
    )
    g.add_argument("--position-mode", choices=("compressed", "base"), default="compressed")
    g.add_argument("--protect-digits", action="store_true", help="never merge digit tokens (zip2zip++)")
    g.add_argument(
        "--reconstruction-weight",
        type=float,
        default=0.0,
        help="auxiliary reconstruction loss weight (paper: 0.1)",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        nargs="+",
        default=None,
        metavar="PATH",
        help="text files or folders (one document per file), .jsonl files, or a `datasets` dataset saved "
        "with save_to_disk; default: the project's corpora (see --domains)",
    )
    g.add_argument(
        "--domains",
        nargs="+",
        default=["code", "prose", "math", "multilingual"],
        help="project corpora to train on when --data is not given",
    )
    g.add_argument(
        "--text-field", default="text", help="text column of JSONL / datasets data (default 'text')"
    )
    g.add_argument(
        "--max-length", type=int, default=1024, help="compressed tokens per example (default 1024)"
    )
    g = p.add_argument_group("LoRA")
    g.add_argument("--lora-r", type=int, default=16, help="LoRA rank; 0 trains the whole model (default 16)")
    g.add_argument("--lora-alpha", type=int, default=32)
    g.add_argument("--lora-dropout", type=float, default=0.0)
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=100, help="optimizer steps (default 100)")
    g.add_argument(
        "--batch-size", type=int, default=4, help="examples per device per micro-batch (default 4)"
    )
    g.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    g.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4, cosine)")
    g.add_argument("--warmup-ratio", type=float, default=0.05)
    g.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="default: on with CUDA, off on CPU (where memory is rarely the limit and speed is)",
    )
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("output")
    g.add_argument("--output", required=True, help="output folder (checkpoints, then the final repo)")
    g.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (default 50)")
    g.add_argument("--logging-steps", type=int, default=10)
    g.add_argument("--no-resume", action="store_true", help="start over even if OUTPUT has checkpoints")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _load_training_data(paths: Sequence[str] | None, domains: Sequence[str], text_field: str):
    """A `datasets.Dataset` with a text column from files, folders, JSONL, a saved dataset, or the corpora."""
    from datasets import Dataset, concatenate_datasets, load_from_disk

    if not paths:
        from .corpora import load_corpus

        texts = [text for domain in domains for text in load_corpus(domain, "train")]
        return Dataset.from_dict({"text": texts})
    parts = []
    texts: list[str] = []
    for path in paths:
        if os.path.isdir(path) and os.path.exists(os.path.join(path, "dataset_info.json")):
            loaded = load_from_disk(path)
            parts.append(loaded["train"] if hasattr(loaded, "keys") and "train" in loaded else loaded)
            continue
        from .trainer import iter_text_files

        for file in iter_text_files([path]):
            if file.endswith((".jsonl", ".json")):
                with open(file, encoding="utf-8") as handle:
                    for n, line in enumerate(handle, 1):
                        if not line.strip():
                            continue
                        record = json.loads(line)
                        if text_field not in record:
                            raise ValueError(
                                f"{file}:{n} has no {text_field!r} field (fields: {sorted(record)}); pass --text-field"
                            )
                        texts.append(record[text_field])
            else:
                with open(file, encoding="utf-8", errors="replace") as handle:
                    texts.append(handle.read())
    texts = [t for t in texts if t.strip()]
    if texts:
        parts.append(Dataset.from_dict({text_field: texts}))
    if not parts:
        raise ValueError(f"no training text found in {list(paths)}")
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _cmd_train(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoConfig
    from transformers.trainer_utils import get_last_checkpoint

    from .trainer import Zip2ZipSFTConfig, Zip2ZipSFTTrainer, default_lora_config, zip2zip_from_base

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible; use --device cpu")
    use_cpu = args.device == "cpu" or not torch.cuda.is_available()
    base = args.base
    if base is None:
        from .defaults import default_base_path

        base = default_base_path()

    settings = {
        "max_codebook_size": args.max_codebook_size,
        "max_subtokens": args.max_subtokens,
        "encoder_num_layers": args.encoder_layers,
        "position_mode": args.position_mode,
        "protect_digits": args.protect_digits,
        "reconstruction_loss_weight": args.reconstruction_weight,
    }
    if args.encoder_hidden_size:
        settings["encoder_hidden_size"] = args.encoder_hidden_size
    torch.manual_seed(
        args.seed
    )  # the hyper-encoders' initialisation: the same on every process and every resume
    if AutoConfig.from_pretrained(base, trust_remote_code=True).model_type == "zip2zip":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=True)
    else:
        model, tokenizer = zip2zip_from_base(base, **settings)

    dataset = _load_training_data(args.data, args.domains, args.text_field)
    resume = None
    if not args.no_resume and os.path.isdir(args.output):
        resume = get_last_checkpoint(args.output)
        if resume:
            print(f"resuming from {resume}", flush=True)
    checkpointing = args.gradient_checkpointing if args.gradient_checkpointing is not None else not use_cpu
    config = Zip2ZipSFTConfig(
        output_dir=args.output,
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=args.warmup_ratio,
        max_length=args.max_length,
        dataset_text_field=args.text_field,
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=2,
        gradient_checkpointing=checkpointing,
        use_cpu=use_cpu,
        bf16=(not use_cpu) and torch.cuda.is_bf16_supported(),
        seed=args.seed,
        report_to="none",
        disable_tqdm=args.no_progress,
        dataloader_pin_memory=not use_cpu,
    )
    peft_config = (
        default_lora_config(model, r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout)
        if args.lora_r > 0
        else None
    )
    trainer = Zip2ZipSFTTrainer(
        model=model, args=config, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config
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


# ============================================================================================ entry point

_REGISTRARS: list[Callable[[Any], None]] = [_register_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zip2zip",
        description="Inference-time adaptive tokenization (LZW hypertokens) for Hugging Face causal LMs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="info-level logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
