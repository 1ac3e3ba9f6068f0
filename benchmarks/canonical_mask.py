"""Canonical masking (``Zip2ZipConfig.canonical_mask``) on a trained model: what it does to scores and to outputs.

A zip2zip model normally spreads probability over every *decodable* code stream, while the LZW encoder writes
only one, the canonical stream. The canonical mask gives ``-inf`` to every code that would break it (after a
code ``c``, any code starting with a base id ``x`` where ``c + x`` is an entry), so the same weights become a
model of canonical streams only. This script measures, for one model with the mask off and on:

* **strict bits per byte** on held-out text (the release benchmark's texts and windows), beside the base model's;
* **greedy continuations** of held-out prompts (the release benchmark's), 128 new base tokens each: base tokens
  per code, the share of hypertokens, the share of codes that break the canonical rule, the share of repeated
  8-grams (the release benchmark's loop measure), and the base model's bits per byte of the continuation given
  the prompt (how natural the base model finds the text); the base model's own continuations for reference.

Run: ``python -m benchmarks.canonical_mask [--model FOLDER] [--domains code,prose,go] [--chars 8000]
[--prompts 6] [--threads 2] [--json FILE] [--png FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import heldout_texts, load_models, load_prompts, repeated_ngram_share, resolve_model

MODES = (False, True)
COLORS = {"base": "tab:gray", "mask off": "tab:blue", "mask on": "tab:orange"}


def _mode_name(on: bool) -> str:
    return "mask on" if on else "mask off"


def compare_bits(
    zip_model: Any,
    zip_tokenizer: Any,
    base_model: Any,
    base_tokenizer: Any,
    texts: dict[str, Sequence[str]],
    max_length: int,
) -> dict[str, dict[str, float]]:
    """Per domain: the base model's strict bits per byte and the zip2zip model's with the mask off and on."""
    from zip2zip.evaluation.scoring import Scorer

    saved = zip_model.config.canonical_mask
    results = {}
    try:
        for domain, domain_texts in texts.items():
            row = {
                "base": Scorer(base_model, base_tokenizer, max_length).score_texts(domain_texts).bits_per_byte
            }
            for on in MODES:
                zip_model.config.canonical_mask = on
                row[_mode_name(on)] = (
                    Scorer(zip_model, zip_tokenizer, max_length).score_texts(domain_texts).bits_per_byte
                )
            results[domain] = row
    finally:
        zip_model.config.canonical_mask = saved
    return results


def continuation_bits(base_model: Any, prompt: Sequence[int], continuation: Sequence[int]) -> float:
    """The base model's bits for ``continuation`` (base ids) after ``prompt``."""
    ids = torch.tensor([[*prompt, *continuation]], device=base_model.device)
    with torch.inference_mode():
        logprobs = torch.log_softmax(base_model(input_ids=ids).logits[0, :-1].float(), -1)
    picked = logprobs.gather(-1, ids[0, 1:, None]).squeeze(-1)[len(prompt) - 1 :]
    return -float(picked.double().sum()) / math.log(2)


def non_canonical_share(codec: Any, prompt_codes: int, codes: Sequence[int]) -> float:
    """Share of the generated codes after the first that break the canonical rule (the first starts a segment)."""
    excluded = codec.trace(codes, exclusions=True).excluded
    checked = range(prompt_codes + 1, len(codes))
    return sum(codes[t] in excluded[t] for t in checked) / len(checked) if len(checked) else 0.0


def compare_generations(
    zip_model: Any,
    base_model: Any,
    base_tokenizer: Any,
    prompts: dict[str, Sequence[Sequence[int]]],
    new_tokens: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Per domain and per model (base, mask off, mask on): the statistics of greedy continuations (see above)."""
    codec = zip_model.codec
    V = codec.base_vocab_size
    eos = base_tokenizer.eos_token_id
    common = {"do_sample": False, "pad_token_id": eos, "min_new_tokens": new_tokens}
    saved = zip_model.config.canonical_mask
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        for domain, domain_prompts in prompts.items():
            rows: dict[str, list[dict[str, float]]] = {"base": [], **{_mode_name(on): [] for on in MODES}}
            for prompt in domain_prompts:
                ids = torch.tensor([list(prompt)], device=base_model.device)
                out = base_model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, **common
                )
                text = out[0, ids.shape[1] :].tolist()
                rows["base"].append(
                    _text_stats(base_model, base_tokenizer, prompt, text, repeated_ngram_share)
                )
                zip_ids = torch.tensor([codec.encode(list(prompt))], device=zip_model.device)
                prompt_codes = zip_ids.shape[1]
                for on in MODES:
                    zip_model.config.canonical_mask = on
                    out = zip_model.generate(
                        input_ids=zip_ids,
                        attention_mask=torch.ones_like(zip_ids),
                        max_new_base_tokens=new_tokens,
                        return_codes=True,
                        **common,
                    )
                    codes = out[0].tolist()
                    new_codes = codes[prompt_codes:]
                    text = codec.decode(codes)[len(prompt) :][:new_tokens]
                    stats = _text_stats(base_model, base_tokenizer, prompt, text, repeated_ngram_share)
                    stats.update(
                        codes=len(new_codes),
                        hypertokens=sum(c >= V for c in new_codes),
                        non_canonical=non_canonical_share(codec, prompt_codes, codes),
                    )
                    rows[_mode_name(on)].append(stats)
            results[domain] = {name: _pool(stats) for name, stats in rows.items()}
    finally:
        zip_model.config.canonical_mask = saved
    return results


def _text_stats(
    base_model: Any, tokenizer: Any, prompt: Sequence[int], text: list[int], repeated: Any
) -> dict:
    return {
        "base_tokens": len(text),
        "bytes": len(tokenizer.decode(text).encode("utf-8")),
        "bits": continuation_bits(base_model, prompt, text),
        "repeated_8grams": repeated(text),
    }


def _pool(stats: list[dict[str, float]]) -> dict[str, float]:
    pooled = {
        "prompts": len(stats),
        "base_bits_per_byte": sum(s["bits"] for s in stats) / max(sum(s["bytes"] for s in stats), 1),
        "repeated_8grams": statistics.mean(s["repeated_8grams"] for s in stats) if stats else 0.0,
    }
    if stats and "codes" in stats[0]:
        codes = sum(s["codes"] for s in stats)
        pooled["base_tokens_per_code"] = sum(s["base_tokens"] for s in stats) / max(codes, 1)
        pooled["hypertoken_share"] = sum(s["hypertokens"] for s in stats) / max(codes, 1)
        pooled["non_canonical_share"] = statistics.mean(s["non_canonical"] for s in stats)
    return pooled


def print_tables(results: dict[str, Any]) -> None:
    print("| domain | base | mask off | mask on | off / base | on / base |")
    print("|---|---:|---:|---:|---:|---:|")
    for domain, row in results["bits"].items():
        off, on, base = row["mask off"], row["mask on"], row["base"]
        print(f"| {domain} | {base:.4f} | {off:.4f} | {on:.4f} | {off / base:.3f}x | {on / base:.3f}x |")
    print()
    print(
        "| prompts | model | base tokens per code | hypertokens | codes breaking the rule | repeated 8-grams | "
        "base model's bits per byte of the text |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for domain, rows in results["generations"].items():
        for name, row in rows.items():
            per_code = f"{row['base_tokens_per_code']:.3f}" if "base_tokens_per_code" in row else ""
            hyper = f"{row['hypertoken_share']:.1%}" if "hypertoken_share" in row else ""
            broken = f"{row['non_canonical_share']:.1%}" if "non_canonical_share" in row else ""
            print(
                f"| {domain} ({row['prompts']}) | {name} | {per_code} | {hyper} | {broken} | "
                f"{row['repeated_8grams']:.1%} | {row['base_bits_per_byte']:.3f} |"
            )


def plot(results: dict[str, Any], path: str) -> None:
    """Left: bits per byte over the base's, mask off and on; right: repeated 8-grams of continuations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    domains = list(results["bits"])
    width = 0.38
    for i, on in enumerate(MODES):
        name = _mode_name(on)
        values = [results["bits"][d][name] / results["bits"][d]["base"] for d in domains]
        left.bar(
            [x + (i - 0.5) * width for x in range(len(domains))],
            values,
            width,
            label=name,
            color=COLORS[name],
        )
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_xticks(range(len(domains)), domains)
    left.set_ylabel("strict bits per byte / base")
    left.set_ylim(0.8, None)
    left.legend(fontsize=8)
    gen_domains = list(results["generations"])
    names = ["base", *(_mode_name(on) for on in MODES)]
    width = 0.27
    for i, name in enumerate(names):
        values = [results["generations"][d][name]["repeated_8grams"] for d in gen_domains]
        right.bar(
            [x + (i - 1) * width for x in range(len(gen_domains))],
            values,
            width,
            label=name,
            color=COLORS[name],
        )
    right.set_xticks(range(len(gen_domains)), gen_domains)
    right.set_ylabel("repeated 8-grams of greedy continuations")
    right.legend(fontsize=8)
    fig.suptitle("Canonical masking: the same weights, mask off and on")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a zip2zip model folder (default: the shipped one)")
    parser.add_argument("--domains", default="code,prose,go", help="held-out corpora scored in bits per byte")
    parser.add_argument("--generation-domains", default="code,prose", help="held-out corpora of the prompts")
    parser.add_argument("--chars", type=int, default=8000, help="held-out characters per domain")
    parser.add_argument("--max-length", type=int, default=1024, help="positions per scored window")
    parser.add_argument("--prompts", type=int, default=6, help="prompts per generation domain")
    parser.add_argument("--prompt-tokens", type=int, default=384, help="base tokens per prompt")
    parser.add_argument("--new-tokens", type=int, default=128, help="new base tokens per continuation")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", default="", help="also write the numbers here")
    parser.add_argument("--png", default="", help="plot file ('' = none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = resolve_model(args.model)
    models = load_models(folder)
    base_model, base_tokenizer = models["base"].eval(), models["base_tokenizer"]
    zip_model, zip_tokenizer = models["zip"].eval(), models["zip_tokenizer"]
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    texts = {domain: heldout_texts(domain, args.chars) for domain in domains}
    prompts = {
        domain: load_prompts(base_tokenizer, domain, args.prompts, args.prompt_tokens)
        for domain in (d.strip() for d in args.generation_domains.split(",") if d.strip())
    }
    results = {
        "model": str(folder),
        "settings": vars(args),
        "bits": compare_bits(zip_model, zip_tokenizer, base_model, base_tokenizer, texts, args.max_length),
        "generations": compare_generations(zip_model, base_model, base_tokenizer, prompts, args.new_tokens),
    }
    print(f"{folder}, mask off and on, against SmolLM2-135M-Instruct\n")
    print_tables(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
