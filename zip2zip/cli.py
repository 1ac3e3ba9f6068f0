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
        from .corpora import iter_text_files

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
        help="the main job: zip2zip on the embedded SmolLM2, domain by domain, side by side with the base model",
        description=(
            "Load the embedded SmolLM2-135M-Instruct and the best zip2zip model the project ships (an untrained "
            "one until a trained checkpoint ships, and it says so); compress held-out samples of several domains "
            "(code, prose, math, several languages) and show where hypertokens fall; then continue a held-out "
            "prompt of each domain with both models and print a side-by-side table (prompt positions, decoding "
            "steps, time per generated byte)."
        ),
    )
    p.add_argument("--max-codebook-size", type=int, default=2048)
    p.add_argument("--max-subtokens", type=int, default=4)
    p.add_argument("--context", type=int, default=1024, help="base tokens per sample (default 1024)")
    p.add_argument("--samples", type=int, default=8, help="held-out samples per domain (default 8)")
    p.add_argument(
        "--prompt-tokens", type=int, default=256, help="base tokens per generation prompt (default 256)"
    )
    p.add_argument("--new-tokens", type=int, default=48, help="new base tokens per generation (default 48)")
    p.add_argument("--no-generate", action="store_true", help="compression only (no model is loaded)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)")
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
    if not args.no_generate:
        _demo_generation(args)
    return 0


def _set_threads(threads: int | None) -> int:
    """Set torch's CPU threads: ``threads``, or by default as many as the cores other processes leave idle.

    On a shared machine torch's default (one thread per core) oversubscribes busy cores, and a small model
    then decodes several times slower than on one thread (measured: 15 s vs 3 s for 24 SmolLM2 tokens).
    """
    import torch

    if threads is None:
        cores = os.cpu_count() or 1
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = max(1, min(torch.get_num_threads(), cores - round(busy)))
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


def _demo_generation(args: argparse.Namespace) -> None:
    """Continue one held-out prompt per domain with the base model and the zip2zip model; print a table."""
    import time

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM

    from .corpora import CorpusUnavailableError, load_files
    from .defaults import default_base_path

    threads = _set_threads(args.threads)
    print(f"\nLoading the base model and the zip2zip model ({threads} CPU thread(s))...", flush=True)
    model, tok, trained = _demo_model(args.max_codebook_size, args.max_subtokens)
    base = AutoModelForCausalLM.from_pretrained(default_base_path()).eval()
    if trained:
        print("zip2zip model: the trained checkpoint shipped with the project")
    else:
        print(
            "NOTE: no trained zip2zip checkpoint ships yet, so this zip2zip model is UNTRAINED: SmolLM2 with freshly "
            "initialised hyper-encoders. Compression and decoding steps are real; its text quality is not that of "
            "a trained model (train one with `zip2zip train`)."
        )
    prompts = []
    for domain in _DEMO_DOMAINS:
        try:
            texts = load_files(domain, split="heldout", max_files=1)
        except CorpusUnavailableError:
            continue
        if texts:
            ids = tok.base(texts[0], add_special_tokens=False)["input_ids"][: args.prompt_tokens]
            prompts.append((domain, tok.base.decode(ids)))
    fmt = "plain" if args.no_color else "ansi"
    rows = []
    for domain, prompt in tqdm(prompts, desc="generating (base, then zip2zip)", unit="prompt"):
        base_ids = tok.base(prompt, return_tensors="pt", add_special_tokens=False)
        start = time.perf_counter()
        with torch.no_grad():
            base_out = base.generate(
                **base_ids, max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
        base_seconds = time.perf_counter() - start
        base_new = base_out[0][base_ids["input_ids"].shape[1] :]
        base_text = tok.base.decode(base_new, skip_special_tokens=True)

        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        start = time.perf_counter()
        out = model.generate(
            **enc,
            max_new_base_tokens=args.new_tokens,
            do_sample=False,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
        )
        seconds = time.perf_counter() - start
        prompt_len = enc["input_ids"].shape[1]
        text = tok.decode(out.sequences[0][prompt_len:], skip_special_tokens=True)
        stats = out.generation_stats
        codes = out.codes[0].tolist()
        whole = tok.visualize(codes, format=fmt, skip_special_tokens=True)
        head = tok.visualize(codes[:prompt_len], format=fmt, skip_special_tokens=True)
        shown = whole[len(head) :] if whole.startswith(head) else whole
        tqdm.write(f"\n== {domain}: ...{prompt[-160:]}")
        tqdm.write(f"-- zip2zip continues (hypertokens highlighted):\n{shown}")
        tqdm.write(f"-- base model continues:\n{base_text}")
        rows.append(
            {
                "domain": domain,
                "prompt_base": int(base_ids["input_ids"].shape[1]),
                "prompt_codes": int(prompt_len),
                "steps_base": len(base_new),
                "steps_zip2zip": stats.steps,
                "bytes_base": max(1, len(base_text.encode("utf-8"))),
                "bytes_zip2zip": max(1, len(text.encode("utf-8"))),
                "seconds_base": base_seconds,
                "seconds_zip2zip": seconds,
            }
        )
    if not rows:
        print("no held-out prompts available; nothing to generate")
        return
    print(
        f"\nBase SmolLM2 vs zip2zip ({'trained' if trained else 'UNTRAINED'}), greedy, {args.new_tokens} new base "
        f"tokens from a {args.prompt_tokens}-token held-out prompt, measured side by side in this run:"
    )
    header = (
        f"{'domain':<13} {'prompt positions':>17} {'decoding steps':>15} {'ms per byte':>15} {'speed':>7}\n"
        f"{'':<13} {'base':>8} {'zip2zip':>8} {'base':>7} {'zip2zip':>7} {'base':>7} {'zip2zip':>7} {'ratio':>7}"
    )
    print(header)
    print("-" * 75)
    for r in rows:
        per_byte_base = 1000 * r["seconds_base"] / r["bytes_base"]
        per_byte = 1000 * r["seconds_zip2zip"] / r["bytes_zip2zip"]
        print(
            f"{r['domain']:<13} {r['prompt_base']:>8} {r['prompt_codes']:>8} {r['steps_base']:>7} "
            f"{r['steps_zip2zip']:>7} {per_byte_base:>7.2f} {per_byte:>7.2f} {per_byte_base / per_byte:>6.2f}x"
        )
    print(
        "prompt positions: base tokens vs codes; decoding steps: forward passes (prefill included); "
        "ms per byte: wall time / generated UTF-8 bytes (speed ratio > 1: zip2zip faster)."
    )


# ============================================================================================ export / push


def _register_export(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a complete Hub repo folder (trust_remote_code) with a model card",
        description=(
            "Build a Hub repo folder from a saved zip2zip model (the output of `zip2zip train` or any "
            "save_pretrained folder): config.json with auto_map, the model code, safetensors weights, the "
            "tokenizer files with auto_map, generation_config.json and a README.md model card with the measured "
            "compression and bits per byte. It loads with from_pretrained(OUT_DIR, trust_remote_code=True) "
            "in a process without this package."
        ),
    )
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="saved zip2zip model and tokenizer, or 'shipped' for the trained model that ships with the package",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="the repo folder to write (new or empty)")
    p.add_argument("--repo-id", default=None, help="Hub id the card's examples use (default: OUT_DIR's name)")
    p.add_argument("--base-model", default=None, help="the base model's Hub id for the card")
    p.add_argument("--license", default=None, help="license id (the base model's; known for SmolLM2)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--measurements",
        default=None,
        metavar="EVAL_JSON",
        help="a `zip2zip eval --json` result for the card",
    )
    g.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="N",
        help="measure now on N held-out texts per domain (quick; default: no measurements)",
    )
    p.add_argument("--domains", nargs="+", default=list(_DEMO_DOMAINS), help="domains for --measure")
    p.add_argument(
        "--base-model-path", default=None, help="base model folder to compare against with --measure"
    )
    p.add_argument(
        "--trained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the hyper-encoders were trained (default: detected from the run's files)",
    )
    p.add_argument("--card-template", default=None, help="another jinja model card template")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .hub import ExportError, export_repo

    measurements = None
    if args.measurements:
        try:
            with open(args.measurements, encoding="utf-8") as handle:
                measurements = json.load(handle)
        except (OSError, ValueError) as error:
            raise SystemExit(
                f"--measurements {args.measurements}: cannot read it as JSON ({error})"
            ) from None
    texts = _heldout_texts(args.domains, args.measure) if args.measure else None
    model_dir = args.model_dir
    if model_dir == "shipped":
        from . import shipped

        model_dir = shipped.shipped_zip2zip_path()
        if model_dir is None:
            raise SystemExit(
                f"zip2zip export: no trained checkpoint ships in {shipped.shipped_checkpoint_dir()}; pass the "
                "folder of a trained zip2zip model instead"
            )
    try:
        out = export_repo(
            model_dir,
            args.out_dir,
            repo_id=args.repo_id,
            base_model=args.base_model,
            license=args.license,
            trained=args.trained,
            measurements=measurements,
            measure_texts=texts,
            base_model_path=args.base_model_path,
            template_path=args.card_template,
            overwrite=args.overwrite,
            progress=True,
        )
    except ExportError as error:
        raise SystemExit(f"zip2zip export: {error}") from None
    print(f"wrote {out}: " + ", ".join(sorted(os.listdir(out))))
    return 0


def _register_push(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "push",
        help="upload an exported repo folder to the Hugging Face Hub",
        description=(
            "Upload OUT_DIR (written by `zip2zip export`) to REPO_ID with huggingface_hub (create_repo, then "
            "upload_folder). The token comes from HF_TOKEN or the login stored by `hf auth login`; it is never "
            "read from the command line."
        ),
    )
    p.add_argument("folder", metavar="OUT_DIR")
    p.add_argument("repo_id", metavar="REPO_ID", help="user-or-org/name")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--revision", default=None, help="branch to upload to")
    p.add_argument("--commit-message", default=None)
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.set_defaults(func=_cmd_push)


def _cmd_push(args: argparse.Namespace) -> int:
    from .hub import ExportError, push_repo

    try:
        info = push_repo(
            args.folder,
            args.repo_id,
            private=args.private or None,
            revision=args.revision,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
        )
    except (ExportError, PermissionError) as error:
        raise SystemExit(f"zip2zip push: {error}") from None
    print(f"uploaded {args.folder} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0


# ============================================================================================ eval


def _heldout_texts(domains: Sequence[str], samples: int) -> dict[str, list[str]]:
    """``samples`` held-out chunks per project domain (skipping domains whose source is unavailable)."""
    from .corpora import CorpusUnavailableError, load_corpus

    texts = {}
    for domain in domains:
        try:
            texts[domain] = load_corpus(domain, "heldout", max_docs=samples)
        except CorpusUnavailableError as error:
            print(f"[{domain}] skipped: {error}", file=sys.stderr)
    if not texts:
        raise SystemExit("no held-out texts available for any domain; pass --data FILE instead")
    return texts


def _read_texts(path: str, text_field: str) -> list[str]:
    """A .jsonl file's ``text_field`` values, or a text file as one text."""
    try:
        with open(path, encoding="utf-8") as handle:
            if not path.endswith(".jsonl"):
                return [handle.read()]
            texts = []
            for n, line in enumerate(handle, 1):
                if line.strip():
                    record = json.loads(line)
                    if text_field not in record:
                        raise SystemExit(f"{path}:{n} has no {text_field!r} field; pass --text-field")
                    texts.append(record[text_field])
            return texts
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SystemExit(f"cannot read {path!r} as UTF-8 text / JSONL: {error}") from None


def _register_eval(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        help="bits per byte and compression per domain, base vs zip2zip, in one table",
        description=(
            "Score a zip2zip model and its base model on the same texts: strict bits per byte (the canonical "
            "code stream's likelihood, windows of --max-length positions each started by the bos token) and "
            "LZW compression, per domain. lm-eval's bits_per_byte with the `zip2zip` model class gives the "
            "same numbers on the same texts."
        ),
    )
    p.add_argument("--model", default=None, help="zip2zip model folder (default: the demo's model)")
    p.add_argument(
        "--base", default=None, help="base model folder (default: the embedded SmolLM2 when it is the base)"
    )
    p.add_argument("--no-base", action="store_true", help="score the zip2zip model only")
    p.add_argument("--domains", nargs="+", default=list(_DEMO_DOMAINS), help="project corpora domains")
    p.add_argument("--samples", type=int, default=4, help="held-out texts per domain (default 4)")
    p.add_argument(
        "--data", nargs="+", default=None, metavar="FILE", help=".jsonl or text files, one domain per file"
    )
    p.add_argument("--text-field", default="text", help="text field of .jsonl files (default 'text')")
    p.add_argument("--max-length", type=int, default=None, help="positions per scored window (default 1024)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--max-codebook-size", type=int, default=2048, help="C of the default (untrained) model")
    p.add_argument("--max-subtokens", type=int, default=4, help="M of the default (untrained) model")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the result as JSON (for export)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import compare_on_domains, load_model_and_tokenizer

    if args.data:
        texts = {
            os.path.splitext(os.path.basename(path))[0]: _read_texts(path, args.text_field)
            for path in args.data
        }
        description = "the texts of " + ", ".join(os.path.basename(p) for p in args.data)
    else:
        texts = _heldout_texts(args.domains, args.samples)
        description = f"{args.samples} held-out texts per domain of the project corpora"
    _set_threads(args.threads)
    model, tokenizer, trained = _zip2zip_model(args.model, args.max_codebook_size, args.max_subtokens)
    if args.device:
        model.to(args.device)
    base_model = base_tokenizer = None
    if not args.no_base:
        base_path = args.base or _default_base_for(model)
        if base_path:
            base_model, base_tokenizer = load_model_and_tokenizer(base_path, device=args.device)
        else:
            print("no --base given and the base is not the embedded default: scoring the zip2zip model only")
    if not trained:
        print("note: the zip2zip model is UNTRAINED (freshly initialised hyper-encoders)")
    result = compare_on_domains(
        texts,
        model,
        tokenizer,
        base_model,
        base_tokenizer,
        max_length=args.max_length,
        batch_size=args.batch_size,
        progress=True,
        description=description,
    )
    result["trained"] = trained
    _print_eval_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        print(f"wrote {args.json}")
    return 0


def _print_eval_table(result: dict[str, Any]) -> None:
    has_base = all("base" in entry for entry in result["domains"].values())
    header = f"{'domain':<16} {'bytes':>9} {'compression':>12} {'bpb zip2zip':>12}"
    if has_base:
        header += f" {'bpb base':>9} {'delta':>8}"
    print(f"\nStrict bits per byte, windows of {result['max_length']} positions ({result['description']}):")
    print(header)
    print("-" * len(header))
    for name, entry in [*result["domains"].items(), ("all", result["overall"])]:
        z = entry["zip2zip"]
        line = f"{name[-16:]:<16} {z['bytes']:>9,} {z['compression']:>12.3f} {z['bits_per_byte']:>12.4f}"
        if has_base:
            b = entry["base"]["bits_per_byte"]
            line += f" {b:>9.4f} {z['bits_per_byte'] - b:>+8.4f}"
        print(line)


def _zip2zip_model(path: str | None, max_codebook_size: int, max_subtokens: int) -> tuple[Any, Any, bool]:
    """A zip2zip model and tokenizer from ``path``, or the demo's model; and whether it was trained."""
    if path is None:
        return _demo_model(max_codebook_size, max_subtokens)
    from .evaluation import is_zip2zip_model, load_model_and_tokenizer
    from .hub import _detect_trained

    model, tokenizer = load_model_and_tokenizer(path)
    if not is_zip2zip_model(model):
        raise SystemExit(
            f"--model {path}: model_type {model.config.model_type!r} is not a zip2zip model; pass it as --base, "
            "and a zip2zip model (zip2zip train / Zip2ZipForCausalLM.from_base) as --model"
        )
    from pathlib import Path

    return model, tokenizer, _detect_trained(Path(path))


def _demo_model(max_codebook_size: int = 2048, max_subtokens: int = 4) -> tuple[Any, Any, bool]:
    """The best zip2zip model the project ships, else an untrained one on the embedded SmolLM2.

    Asks ``zip2zip.defaults.shipped_zip2zip_path()`` (a folder, or None while no trained checkpoint ships).
    """
    from . import defaults
    from .evaluation import load_model_and_tokenizer

    shipped = defaults.shipped_zip2zip_path()
    if shipped:
        model, tokenizer = load_model_and_tokenizer(shipped)
        return model, tokenizer, True
    from .conversion import zip2zip_from_base

    model, tokenizer = zip2zip_from_base(
        defaults.default_base_path(), max_codebook_size=max_codebook_size, max_subtokens=max_subtokens
    )
    return model.eval(), tokenizer, False


def _default_base_for(model: Any) -> str | None:
    from .defaults import HUB_MODEL_ID, default_base_path
    from .hub import _base_model_id

    return default_base_path() if _base_model_id(model.config) == HUB_MODEL_ID else None


# ============================================================================================ generate


def _register_generate(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate from a prompt or a chat message, streaming, hypertokens optionally shown",
        description=(
            "Generate with a zip2zip model (default: the demo's model on the embedded SmolLM2). The text streams "
            "as it is decoded; --show-hypertokens prints the prompt and the answer with every hypertoken "
            "highlighted, then the decoding statistics."
        ),
    )
    p.add_argument("prompt", nargs="?", default=None, help="the prompt ('-' or nothing reads standard input)")
    p.add_argument("--model", default=None, help="zip2zip model folder (default: the demo's model)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user message (chat template)")
    p.add_argument("--system", default=None, help="system message for --chat")
    p.add_argument("--max-new-tokens", type=int, default=128, help="new base tokens at most (default 128)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-stream", action="store_true", help="print the answer at the end only")
    p.add_argument(
        "--show-hypertokens", action="store_true", help="highlight hypertokens in prompt and answer"
    )
    p.add_argument("--no-color", action="store_true", help="bracket hypertokens instead of colouring them")
    p.add_argument("--max-codebook-size", type=int, default=2048, help="C of the default (untrained) model")
    p.add_argument("--max-subtokens", type=int, default=4, help="M of the default (untrained) model")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)")
    p.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    import torch
    from transformers import TextStreamer

    prompt = args.prompt
    if prompt is None or prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise SystemExit("zip2zip generate: empty prompt; pass PROMPT or pipe text on standard input")
    _set_threads(args.threads)
    model, tok, trained = _zip2zip_model(args.model, args.max_codebook_size, args.max_subtokens)
    if not trained:
        print("note: the zip2zip model is UNTRAINED (freshly initialised hyper-encoders)", file=sys.stderr)
    if args.chat:
        messages = [{"role": "system", "content": args.system}] if args.system else []
        messages.append({"role": "user", "content": prompt})
        enc = tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(args.seed)
    settings: dict[str, Any] = {"max_new_base_tokens": args.max_new_tokens, "do_sample": args.sample}
    if args.sample:
        settings.update(temperature=args.temperature, top_p=args.top_p)
    streamer = None if args.no_stream else TextStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    start = time.perf_counter()
    out = model.generate(
        **enc, **settings, streamer=streamer, return_dict_in_generate=True, pad_token_id=tok.pad_token_id
    )
    seconds = time.perf_counter() - start
    prompt_len = enc["input_ids"].shape[1]
    answer = tok.decode(out.sequences[0][prompt_len:], skip_special_tokens=True)
    if args.no_stream:
        print(answer)
    stats = out.generation_stats
    if args.show_hypertokens:
        print("\n== prompt and answer, hypertokens highlighted")
        print(
            tok.visualize(out.codes[0], format="plain" if args.no_color else "ansi", skip_special_tokens=True)
        )
    base_prompt = len(tok.decode_to_base_ids(enc["input_ids"][0]))
    print(
        f"\n[prompt: {base_prompt} base tokens in {prompt_len} positions; answer: {sum(stats.base_tokens)} base "
        f"tokens in {stats.steps} decoding steps ({stats.compression:.2f} base tokens per step, "
        f"{stats.hypertoken_rate:.0%} hypertokens); {seconds:.1f} s]",
        file=sys.stderr,
    )
    return 0


# ============================================================================================ entry point

_REGISTRARS: list[Callable[[Any], None]] = [
    _register_train,
    _register_compress,
    _register_demo,
    _register_export,
    _register_push,
    _register_eval,
    _register_generate,
]


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
