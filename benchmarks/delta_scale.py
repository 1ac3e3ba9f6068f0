"""How far to apply the shipped delta: quality per domain when the base weights step back toward the base.

The shipped model is its base plus a low-rank delta. Applied at ``scale`` < 1, every weight of the base
language model sits at ``base + scale * (trained - base)`` while the hyper-encoders stay whole
(:func:`zip2zip.bundled.low_rank.apply_low_rank_delta`). Interpolating a fine-tune toward its base keeps more of the
base on text the fine-tune never saw (WiSE-FT, Wortsman et al. 2022) and costs some of what it learnt; this
script measures both, per domain, in strict bits per byte over the base model's.

The scale is chosen on **development** text, never on what ``benchmarks/RESULTS.md`` reports: for each domain,
the held-out documents that come after the ones the release benchmark scores (its first ``--skip`` characters).
The rule, fixed before looking: the scale with the lowest mean over all domains of log(zip2zip / base), every
domain counting once (so the unseen one counts as much as any trained one). ``--write`` records the chosen
scale in the shipped settings (:func:`zip2zip.bundled.packing.set_delta_scale`); rerun ``python -m benchmarks.release`` after.

With ``--prompts N`` it also continues the first N long-enough held-out code and prose documents greedily (384
base tokens of prompt, 128 new, as ``benchmarks.release`` does) with the base model and at every scale, and reports the
share of repeated 8-grams of each continuation (``benchmarks.common.repeated_ngram_share``): a step toward the base can
bring back the base's loops. The rule does not use it; it is there to be read beside the choice.

Run: ``python -m benchmarks.delta_scale [--scales 1,0.9,...] [--chars 16000] [--skip 8000] [--threads 2]
[--prompts 8] [--json FILE] [--png FILE] [--write]``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks import generation
from benchmarks.common import DOMAINS, heldout_texts, load_prompts, repeated_ngram_share

HERE = Path(__file__).resolve().parent
SCALES = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5)
RULE = "lowest mean over the domains of log(zip2zip / base) strict bits per byte on development text"


def development_texts(domain: str, skip: int, chars: int) -> list[str]:
    """Held-out documents after those the release benchmark reads (its first ``skip`` characters), ``chars`` in
    all, the last one cut: the same corpus and split, none of the same text."""
    texts = heldout_texts(domain, chars, skip=skip)
    if sum(map(len, texts)) < chars:
        raise SystemExit(
            f"{domain}: its held-out split has under {skip + chars:,} characters; lower --skip or --chars"
        )
    return texts


def choose_scale(results: dict[str, Any]) -> float:
    """The scale :data:`RULE` picks: lowest mean log ratio, the larger scale on a tie."""
    means = {
        scale: sum(math.log(row["ratio"]) for row in rows.values()) / len(rows)
        for scale, rows in results["scales"].items()
    }
    return min(means, key=lambda s: (round(means[s], 6), -s))


def measure(
    scales: list[float], texts: dict[str, list[str]], max_length: int, source: Any = None
) -> dict[str, Any]:
    from zip2zip.bundled.base import load_default_base_model, load_default_tokenizer
    from zip2zip.bundled.shipped import build_shipped_model
    from zip2zip.evaluation.scoring import Scorer

    base_tokenizer = load_default_tokenizer()
    base_model = load_default_base_model().eval()
    base = {
        d: Scorer(base_model, base_tokenizer, max_length).score_texts(t).bits_per_byte
        for d, t in texts.items()
    }
    del base_model
    results: dict[str, Any] = {"base": base, "scales": {}}
    for scale in scales:
        started = time.perf_counter()
        model, tokenizer = build_shipped_model(source, scale=scale)
        rows = {}
        for domain, domain_texts in texts.items():
            score = Scorer(model, tokenizer, max_length).score_texts(domain_texts)
            rows[domain] = {
                "bits_per_byte": score.bits_per_byte,
                "ratio": score.bits_per_byte / base[domain],
                "compression": score.compression,
            }
        results["scales"][scale] = rows
        cells = ", ".join(f"{d} {r['ratio']:.3f}x" for d, r in rows.items())
        print(f"scale {scale}: {cells} ({time.perf_counter() - started:.0f} s)", flush=True)
    return results


def measure_loops(scales: list[float], count: int) -> dict[str, Any]:
    """Mean repeated-8-gram share of greedy code and prose continuations: the base's and at every scale."""
    from zip2zip.bundled.base import load_default_base_model, load_default_tokenizer
    from zip2zip.bundled.shipped import build_shipped_model

    tokenizer = load_default_tokenizer()
    prompts = {d: load_prompts(tokenizer, d, count, 384) for d in ("code", "prose")}
    base = load_default_base_model().eval()
    loops: dict[str, Any] = {}
    for index, scale in enumerate(scales):
        model, zip_tokenizer = build_shipped_model(scale=scale)
        configs = ("base", "zip2zip") if index == 0 else ("zip2zip",)  # the base's runs once
        runs = generation.measure(
            base,
            model,
            tokenizer,
            prompts,
            new_tokens=128,
            repeats=1,
            codec=zip_tokenizer.codec,
            configs=configs,
        )["results"]
        for config in configs:
            row = {}
            for domain, by_config in runs.items():
                shares = [repeated_ngram_share(run["output"]) for run in by_config[config]]
                row[domain] = {"mean": sum(shares) / len(shares), "per_prompt": shares}
            name = "base" if config == "base" else scale
            loops[name] = row
            print(f"loops, {'base' if config == 'base' else f'scale {scale}'}: ", row, flush=True)
    return loops


def print_table(results: dict[str, Any], chosen: float) -> None:
    domains = list(results["base"])
    print("\n| scale | " + " | ".join(domains) + " | mean log ratio |")
    print("|---:|" + "---:|" * (len(domains) + 1))
    for scale, rows in results["scales"].items():
        mean = sum(math.log(rows[d]["ratio"]) for d in domains) / len(domains)
        mark = " (chosen)" if scale == chosen else ""
        cells = " | ".join(f"{rows[d]['ratio']:.3f}x" for d in domains)
        print(f"| {scale}{mark} | {cells} | {mean:+.4f} |")
    loops = results.get("loops")
    if loops:
        print("\nrepeated 8-grams of greedy continuations (mean over prompts):\n")
        print("| | code | prose |\n|---|---:|---:|")
        for name, row in loops.items():
            label = name if name == "base" else f"scale {name}"
            print(f"| {label} | {row['code']['mean']:.1%} | {row['prose']['mean']:.1%} |")


def plot(results: dict[str, Any], chosen: float, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    scales = sorted(results["scales"])
    for domain in results["base"]:
        ax.plot(scales, [results["scales"][s][domain]["ratio"] for s in scales], marker="o", label=domain)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.axvline(chosen, color="grey", linestyle="--", linewidth=0.8, label=f"chosen: {chosen}")
    ax.set_xlabel("delta scale (1 = the trained weights, 0 = the base's)")
    ax.set_ylabel("strict bits per byte / base (development text)")
    ax.set_title("Stepping the shipped weights back toward the base")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default=",".join(map(str, SCALES)), help="delta scales to measure")
    parser.add_argument("--domains", default=",".join(DOMAINS), help="held-out corpora scored")
    parser.add_argument("--chars", type=int, default=16000, help="development characters per domain")
    parser.add_argument(
        "--skip", type=int, default=8000, help="held-out characters the release benchmark reads"
    )
    parser.add_argument("--max-length", type=int, default=1024, help="positions per scored window")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--prompts", type=int, default=0, help="greedy continuations per domain (0 = none)")
    parser.add_argument("--json", default=str(HERE / "results" / "delta_scale.json"), help="numbers file")
    parser.add_argument("--png", default=str(HERE / "delta_scale.png"), help="plot file ('' = none)")
    parser.add_argument(
        "--write", action="store_true", help="record the chosen scale in the shipped settings"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    scales = [float(s) for s in args.scales.split(",") if s.strip()]
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    texts = {domain: development_texts(domain, args.skip, args.chars) for domain in domains}
    results = {"settings": vars(args), "rule": RULE, **measure(scales, texts, args.max_length)}
    chosen = choose_scale(results)
    results["chosen"] = chosen
    if args.prompts:
        results["loops"] = measure_loops(scales, args.prompts)
    print_table(results, chosen)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.png:
        plot(results, chosen, args.png)
        print(f"\nplot: {args.png}")
    if args.write:
        print(f"recorded delta_scale={chosen} in {record_choice(results)}")


def record_choice(results: dict[str, Any]) -> Path:
    """Write the chosen scale and how it was chosen into the shipped settings (``--write``)."""
    from zip2zip.bundled.packing import set_delta_scale

    settings, scales = results["settings"], [float(s) for s in results["scales"]]
    domains = list(results["base"])
    how = (
        f"Chosen by `benchmarks/delta_scale.py` from {', '.join(map(str, scales))}: the {RULE} "
        f"({settings['chars']:,} characters per domain of {', '.join(domains)}, after the {settings['skip']:,} "
        "the release benchmark reads)."
    )
    return set_delta_scale(
        results["chosen"], {"how": how, "rule": RULE, "scales": scales, "domains": domains}
    )


if __name__ == "__main__":
    main()
