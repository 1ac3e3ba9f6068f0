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


# ============================================================================================ compress


def _register_compress(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compress",
        help="show how LZW compresses files into hypertokens (counts, ratio, coloured view)",
        description=(
            "Tokenize each FILE with the base tokenizer, cut its tokens into windows of --context base tokens "
            "(one model context each), LZW-compress every window and print base tokens, codes, compression "
            "ratio, hypertoken share and a coloured view of where hypertokens fall."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text files ('-' reads standard input)")
    p.add_argument(
        "--tokenizer",
        default=None,
        help="base tokenizer folder or zip2zip repo (default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument("--max-codebook-size", type=int, default=2048, help="C (default 2048)")
    p.add_argument("--max-subtokens", type=int, default=4, help="M (default 4)")
    p.add_argument("--context", type=int, default=2048, help="base tokens per window (default 2048)")
    p.add_argument("--protect-digits", action="store_true", help="never merge digit tokens")
    p.add_argument(
        "--show", type=int, default=1200, help="characters of the coloured view per file (0: none)"
    )
    p.add_argument("--html", default=None, metavar="OUT", help="also write the coloured view as an HTML file")
    p.add_argument("--no-color", action="store_true", help="bracket hypertokens instead of colouring them")
    p.set_defaults(func=_cmd_compress)


def _load_zip2zip_tokenizer(path: str | None, **settings: Any):
    """A Zip2ZipTokenizer: a saved zip2zip repo as is, or a base tokenizer wrapped with ``settings``."""
    from transformers import AutoTokenizer

    from .tokenization_zip2zip import Zip2ZipTokenizer

    if path is None:
        from .defaults import default_base_path

        path = default_base_path()
    base = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    if isinstance(base, Zip2ZipTokenizer) or hasattr(base, "codec"):
        return base
    return Zip2ZipTokenizer.from_base(base, settings)


def compression_stats(tokenizer: Any, text: str, context: int) -> dict[str, Any]:
    """Compress ``text`` window by window (``context`` base tokens each); return counts and the codes."""
    base = tokenizer.base(text, add_special_tokens=False)["input_ids"]
    windows = [base[i : i + context] for i in range(0, len(base), context)] or [[]]
    codes = [tokenizer.codec.encode(window) for window in windows]
    n_codes = sum(map(len, codes))
    n_hyper = sum(c >= tokenizer.base_vocab_size for row in codes for c in row)
    return {
        "bytes": len(text.encode("utf-8")),
        "base_tokens": len(base),
        "codes": n_codes,
        "hypertokens": n_hyper,
        "ratio": len(base) / n_codes if n_codes else 1.0,
        "hypertoken_share": n_hyper / n_codes if n_codes else 0.0,
        "windows": codes,
    }


def _print_stats_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    header = f"{'':<28} {'bytes':>9} {'base tokens':>12} {'codes':>9} {'ratio':>7} {'hypertokens':>12}"
    print(header)
    print("-" * len(header))
    for name, st in rows:
        print(
            f"{name[-28:]:<28} {st['bytes']:>9,} {st['base_tokens']:>12,} {st['codes']:>9,} "
            f"{st['ratio']:>7.3f} {st['hypertoken_share']:>11.1%}"
        )


def _cmd_compress(args: argparse.Namespace) -> int:
    tokenizer = _load_zip2zip_tokenizer(
        args.tokenizer,
        max_codebook_size=args.max_codebook_size,
        max_subtokens=args.max_subtokens,
        protect_digits=args.protect_digits,
    )
    if args.context < 1:
        raise SystemExit(f"--context must be >= 1 base token, got {args.context}")
    rows = []
    html_parts = []
    for name in args.files:
        if name == "-":
            text = sys.stdin.read()
        else:
            try:
                with open(name, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as error:
                raise SystemExit(f"cannot read {name!r} as UTF-8 text: {error}") from None
        stats = compression_stats(tokenizer, text, args.context)
        rows.append((name, stats))
        if args.show:
            view = _first_chars(stats["windows"][0], tokenizer, args.show)
            print(f"\n== {name} (first window, {len(view)} codes shown)")
            print(tokenizer.visualize(view, format="plain" if args.no_color else "ansi"))
        if args.html:
            html_parts.append(f"<h3>{name}</h3>" + tokenizer.visualize(stats["windows"][0], format="html"))
    print()
    print(
        f"LZW with max_codebook_size={tokenizer.max_codebook_size}, max_subtokens={tokenizer.max_subtokens}, "
        f"windows of {args.context} base tokens"
    )
    _print_stats_table(rows)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write("<html><meta charset='utf-8'><body>" + "".join(html_parts) + "</body></html>")
        print(f"wrote {args.html}")
    return 0


def _first_chars(codes: list[int], tokenizer: Any, chars: int) -> list[int]:
    """The shortest prefix of ``codes`` whose text reaches ``chars`` characters (hypertokens stay valid)."""
    text_length = 0
    trace = tokenizer.codec.trace(codes)
    for i, span in enumerate(trace.spans):
        text_length += span * 4  # about 4 characters per base token; precise enough to cut a preview
        if text_length >= chars:
            return codes[: i + 1]
    return codes


# ============================================================================================ demo

_DEMO_DOMAINS = ("code", "prose", "math", "multilingual")


def _register_demo(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the main job: zip2zip on the embedded SmolLM2, domain by domain",
        description=(
            "Load the embedded SmolLM2-135M-Instruct tokenizer, compress held-out samples of several domains "
            "(code, prose, math, several languages) and show where hypertokens fall, with a table of "
            "positions saved per domain."
        ),
    )
    p.add_argument("--max-codebook-size", type=int, default=2048)
    p.add_argument("--max-subtokens", type=int, default=4)
    p.add_argument("--context", type=int, default=1024, help="base tokens per sample (default 1024)")
    p.add_argument("--samples", type=int, default=8, help="held-out samples per domain (default 8)")
    p.add_argument("--no-color", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .corpora import CorpusUnavailableError, load_files

    print("zip2zip demo: loading the embedded SmolLM2-135M-Instruct (converted once, then cached)...")
    tokenizer = _load_zip2zip_tokenizer(
        None, max_codebook_size=args.max_codebook_size, max_subtokens=args.max_subtokens
    )
    rows = []
    for domain in _DEMO_DOMAINS:
        try:
            texts = load_files(domain, split="heldout", max_files=args.samples)
        except CorpusUnavailableError as error:
            print(f"[{domain}] skipped: {error}")
            continue
        merged = {"bytes": 0, "base_tokens": 0, "codes": 0, "hypertokens": 0}
        first = None
        for text in texts:
            stats = compression_stats(tokenizer, text, args.context)
            stats["windows"] = stats["windows"][:1]  # one context per sample
            window = stats["windows"][0]
            trace = tokenizer.codec.trace(window)
            n_base = sum(trace.spans)
            n_hyper = sum(c >= tokenizer.base_vocab_size for c in window)
            merged["bytes"] += len(tokenizer.base.decode(trace.base_ids).encode("utf-8"))
            merged["base_tokens"] += n_base
            merged["codes"] += len(window)
            merged["hypertokens"] += n_hyper
            first = first or window
        merged["ratio"] = merged["base_tokens"] / max(merged["codes"], 1)
        merged["hypertoken_share"] = merged["hypertokens"] / max(merged["codes"], 1)
        rows.append((domain, merged))
        if first:
            print(f"\n== {domain}: the start of a held-out sample, hypertokens highlighted")
            print(
                tokenizer.visualize(
                    _first_chars(first, tokenizer, 600), format="plain" if args.no_color else "ansi"
                )
            )
    print(
        f"\nPositions a model needs per domain ({args.samples} held-out samples of up to {args.context} base "
        f"tokens; M={tokenizer.max_subtokens}, C={tokenizer.max_codebook_size}):"
    )
    _print_stats_table(rows)
    return 0


# ============================================================================================ entry point

_REGISTRARS: list[Callable[[Any], None]] = [_register_train, _register_compress, _register_demo]


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
