"""Greedy search by code or by base-token prefix (`greedy_by="prefix"`): what each writes, how fast, how good.

    python -m benchmarks.prefix_greedy [--model shipped --model FOLDER ...] [--prompts 8] [--new-tokens 128]

For each zip2zip model, greedy continuations of held-out chat prompts and Python code prompts (the seeded-training
study's prompts: 128 new base tokens, end of sequence suppressed) with plain greedy search over codes and with
greedy search by prefix, beside the base model's, run side by side (:func:`benchmarks.generation.measure`).
Per model and domain: base tokens per code written, time for the same new base tokens over the base model's, and
the base model's bits per byte of each continuation given its prompt (lower: text the base model finds more
likely; the base model's own greedy text is the floor greedy search reaches). The code prompts are cut from
held-out files, so each continuation is also held against what the file really says next: whether it completes
the prompt's last line exactly, and how similar its text is to the file's (per prompt, by prefix against plain
greedy: wins, ties, losses). Writes ``results.json`` and ``results.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

CONFIGS = ("base", "zip2zip", "prefix")


def base_bits_per_byte(base: Any, tokenizer: Any, prompt: list[int], new: list[int]) -> tuple[float, int]:
    """The base model's negative log-likelihood of ``new`` after ``prompt`` in bits, and its UTF-8 bytes."""
    ids = torch.tensor([prompt + new])
    with torch.inference_mode():
        logits = base(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(new), reduction="sum")
    return float(nll) / math.log(2), len(tokenizer.decode(new).encode())


def continuation_match(text: str, reference: str) -> dict[str, float]:
    """How close a continuation is to what the file really says next: the rest of the prompt's last line exactly
    (``line_exact``), that line's similarity, and the similarity of the whole continuation (cut to the
    reference's length): difflib's ratio, 1.0 for equal text."""
    line, reference_line = text.split("\n", 1)[0].rstrip(), reference.split("\n", 1)[0].rstrip()

    def ratio(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a or b else 1.0

    return {
        "line_exact": float(line == reference_line),
        "line_similarity": ratio(line, reference_line),
        "similarity": ratio(text[: len(reference)], reference),
    }


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, int]:
    """Per prompt, ``a`` against ``b``: how often higher, equal, lower."""
    return {
        "wins": sum(x > y for x, y in zip(a, b, strict=True)),
        "ties": sum(x == y for x, y in zip(a, b, strict=True)),
        "losses": sum(x < y for x, y in zip(a, b, strict=True)),
    }


def study(models: Sequence[str], args: argparse.Namespace) -> dict:
    from benchmarks.common import heldout_ids, load_zip2zip
    from benchmarks.generation import measure
    from benchmarks.seeded_training import chat_prompts
    from zip2zip.loading import load_model_and_tokenizer

    torch.set_num_threads(args.threads)
    base, base_tokenizer = load_model_and_tokenizer(args.base)
    files = heldout_ids(base_tokenizer, "code", args.prompts, args.prompt_tokens + 16)
    prompts = {
        "chat": chat_prompts(base_tokenizer, args.chat_prompts or args.prompts),
        "code": [ids[: args.prompt_tokens] for ids in files],
    }
    references = [
        base_tokenizer.decode(ids[args.prompt_tokens : args.prompt_tokens + args.new_tokens]) for ids in files
    ]
    result: dict = {"settings": vars(args) | {"models": list(models)}, "models": {}}
    for folder in models:
        model, tokenizer = load_zip2zip(folder, base_tokenizer)
        print(f"[{folder}] generating", flush=True)
        measured = measure(
            base,
            model,
            base_tokenizer,
            prompts,
            new_tokens=args.new_tokens,
            repeats=args.repeats,
            codec=tokenizer.codec,
            configs=CONFIGS,
            progress=True,
        )
        rows = {}
        for domain, runs in measured["results"].items():
            row: dict = {}
            per_prompt: dict = {}
            for config in CONFIGS:
                bits = nbytes = 0.0
                per_prompt[config] = []
                for run in runs[config]:
                    b, n = base_bits_per_byte(
                        base, base_tokenizer, prompts[domain][run["prompt"]], run["output"]
                    )
                    bits, nbytes = bits + b, nbytes + n
                    per_prompt[config].append({"base_bits_per_byte": b / n})
                    if domain == "code":
                        per_prompt[config][-1] |= continuation_match(run["text"], references[run["prompt"]])
                row[config] = {"base_bits_per_byte": bits / nbytes}
                for metric in ("line_exact", "line_similarity", "similarity") if domain == "code" else ():
                    row[config][metric] = statistics.mean(p[metric] for p in per_prompt[config])
            if domain == "code":
                row["prefix_vs_greedy"] = {
                    metric: paired(
                        [p[metric] for p in per_prompt["prefix"]], [p[metric] for p in per_prompt["zip2zip"]]
                    )
                    for metric in ("line_exact", "similarity")
                }
            row["per_prompt"] = per_prompt
            summary = next(r for r in measured["rows"] if r["domain"] == domain)
            for config in CONFIGS:
                row[config]["seconds"] = summary[config]["seconds"]
                row[config]["time_over_base"] = summary[config]["seconds"] / summary["base"]["seconds"]
                if "compression" in summary[config]:
                    row[config]["compression"] = summary[config]["compression"]
            row["same_text_as_base"] = statistics.mean(
                a["output"] == b["output"] for a, b in zip(runs["prefix"], runs["base"], strict=True)
            )
            row["plain_same_text_as_base"] = statistics.mean(
                a["output"] == b["output"] for a, b in zip(runs["zip2zip"], runs["base"], strict=True)
            )
            row["examples"] = {config: runs[config][0]["text"] for config in CONFIGS}
            rows[domain] = row
        result["models"][folder] = rows
    return result


def markdown(result: dict) -> str:
    lines = [
        "| model | domain | base tokens per code: greedy / by prefix | time / base: greedy / by prefix "
        "| base model's bits per byte: base / greedy / by prefix |",
        "|---|---|---:|---:|---:|",
    ]
    for folder, rows in result["models"].items():
        path = Path(folder)
        name = path.parent.name if path.name == "model" else path.name  # a study's arm: its folder's name
        for domain, row in rows.items():
            z, p, b = row["zip2zip"], row["prefix"], row["base"]
            lines.append(
                f"| {name} | {domain} | {z['compression']:.3f} / {p['compression']:.3f} "
                f"| {z['time_over_base']:.3f}x / {p['time_over_base']:.3f}x "
                f"| {b['base_bits_per_byte']:.3f} / {z['base_bits_per_byte']:.3f} / {p['base_bits_per_byte']:.3f} |"
            )
    matched = [(folder, rows["code"]) for folder, rows in result["models"].items() if "code" in rows]
    if matched:
        lines += [
            "",
            "Code continuations against what the held-out file says next (base / greedy / by prefix; by prefix "
            "against greedy per prompt: wins-ties-losses):",
            "",
            "| model | last line completed exactly | wins-ties-losses | similarity of the line "
            "| similarity of the continuation | wins-ties-losses |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for folder, row in matched:
            path = Path(folder)
            name = path.parent.name if path.name == "model" else path.name

            def cell(metric: str, row: dict = row) -> str:
                return " / ".join(f"{row[c][metric]:.3f}" for c in ("base", "zip2zip", "prefix"))

            def record(metric: str, row: dict = row) -> str:
                return "-".join(str(row["prefix_vs_greedy"][metric][k]) for k in ("wins", "ties", "losses"))

            lines.append(
                f"| {name} | {cell('line_exact')} | {record('line_exact')} | {cell('line_similarity')} "
                f"| {cell('similarity')} | {record('similarity')} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", action="append", help="zip2zip model folder (repeatable; default: shipped)"
    )
    parser.add_argument("--base", default=None, help="base model folder (default: the embedded SmolLM2)")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per domain")
    parser.add_argument("--chat-prompts", type=int, default=None, help="chat prompts (default: --prompts)")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="base tokens of each code prompt")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "prefix_greedy")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    from benchmarks.common import resolve_model
    from zip2zip.bundled.base import default_base_path

    args = parse_args(argv)
    models = [resolve_model(m) for m in (args.model or [None])]
    args.model = None
    args.base = args.base or str(default_base_path())
    result = study(models, args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    table = markdown(result)
    (args.out / "results.md").write_text(table)
    print(table)
    return result


if __name__ == "__main__":
    main()
