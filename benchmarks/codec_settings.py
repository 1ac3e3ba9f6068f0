"""Compression against quality at inference: one trained model read under other codec settings.

A zip2zip model takes any codebook its tokenizer builds, so the codec can change after training: fewer base
tokens per hypertoken (``max_subtokens``) or more ids that never merge (``protect_whitespace``: spaces, tabs,
newlines and their runs). Both give up compression; this script measures what each buys in quality, on the
release benchmark's held-out texts and windows:

* **strict bits per byte** over the base model's (the same texts, the same windows);
* **compression**: base tokens per code of the scored windows.

Each setting is one point of compression against bits per byte per domain; the plot draws them, so a setting
that lies below the line through the others buys more quality per unit of compression given up. The weights
are the same throughout: a setting the model was not trained with measures how far its training carries.

Run: ``python -m benchmarks.codec_settings [--model FOLDER] [--domains code,prose,go] [--chars 8000]
[--subtokens 4,3,2,1] [--threads 2] [--json FILE] [--png FILE]``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import heldout_texts, load_models, resolve_model

MARKERS = {False: "o", True: "s"}


def setting_name(max_subtokens: int, protect_whitespace: bool) -> str:
    return f"M={max_subtokens}" + (", whitespace protected" if protect_whitespace else "")


def compare_settings(
    zip_model: Any,
    base_model: Any,
    base_tokenizer: Any,
    texts: dict[str, Sequence[str]],
    settings: Sequence[tuple[int, bool]],
    max_length: int,
) -> dict[str, Any]:
    """Per domain: the base's strict bits per byte, and per setting the zip2zip model's and its compression."""
    from zip2zip.conversion import change_codec
    from zip2zip.evaluation.scoring import Scorer

    config = zip_model.config
    trained = {"max_subtokens": config.max_subtokens, "protect_whitespace": config.protect_whitespace}
    saved = (config.max_subtokens, config.protect_whitespace, list(config.disabled_ids))
    results: dict[str, Any] = {"trained": trained, "domains": {}}
    try:
        for domain, domain_texts in texts.items():
            base = Scorer(base_model, base_tokenizer, max_length).score_texts(domain_texts).bits_per_byte
            rows = {}
            for max_subtokens, whitespace in settings:
                tokenizer = change_codec(
                    zip_model, base_tokenizer, max_subtokens=max_subtokens, protect_whitespace=whitespace
                )
                score = Scorer(zip_model, tokenizer, max_length).score_texts(domain_texts)
                rows[setting_name(max_subtokens, whitespace)] = {
                    "max_subtokens": max_subtokens,
                    "protect_whitespace": whitespace,
                    "bits_per_byte": score.bits_per_byte,
                    "ratio": score.bits_per_byte / base,
                    "compression": score.compression,
                }
            results["domains"][domain] = {"base": base, "settings": rows}
    finally:
        config.max_subtokens, config.protect_whitespace, config.disabled_ids = saved
    return results


def print_table(results: dict[str, Any]) -> None:
    domains = list(results["domains"])
    print("| setting | " + " | ".join(f"{d}: bits/byte vs base | {d}: compression" for d in domains) + " |")
    print("|---|" + "---:|---:|" * len(domains))
    names = list(results["domains"][domains[0]]["settings"])
    for name in names:
        cells = []
        for domain in domains:
            row = results["domains"][domain]["settings"][name]
            cells += [f"{row['ratio']:.3f}x", f"{row['compression']:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def plot(results: dict[str, Any], path: str) -> None:
    """One panel per domain: bits per byte over the base's against compression, a point per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(results["domains"])
    fig, axes = plt.subplots(1, len(domains), figsize=(3.6 * len(domains), 3.4), squeeze=False)
    for ax, domain in zip(axes[0], domains, strict=True):
        rows = results["domains"][domain]["settings"]
        for whitespace in (False, True):
            points = sorted(
                (r["compression"], r["ratio"], r["max_subtokens"])
                for r in rows.values()
                if r["protect_whitespace"] is whitespace
            )
            if not points:
                continue
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker=MARKERS[whitespace],
                label="whitespace protected" if whitespace else "all tokens merge",
            )
            for x, y, m in points:
                ax.annotate(f"M={m}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(domain)
        ax.set_xlabel("compression (base tokens per code)")
    axes[0][0].set_ylabel("strict bits per byte / base")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("One trained model under other codec settings")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a zip2zip model folder (default: the shipped one)")
    parser.add_argument("--domains", default="code,prose,go", help="held-out corpora scored in bits per byte")
    parser.add_argument("--chars", type=int, default=8000, help="held-out characters per domain")
    parser.add_argument("--max-length", type=int, default=1024, help="positions per scored window")
    parser.add_argument("--subtokens", default="4,3,2,1", help="max_subtokens values to read under")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json", default="", help="also write the numbers here")
    parser.add_argument("--png", default="", help="plot file ('' = none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    folder = resolve_model(args.model)
    models = load_models(folder)
    subtokens = [int(m) for m in args.subtokens.split(",") if m.strip()]
    # M = 1 merges nothing, so protecting whitespace changes nothing there: measured once.
    settings = [(m, ws) for ws in (False, True) for m in subtokens if not (ws and m == 1)]
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    texts = {domain: heldout_texts(domain, args.chars) for domain in domains}
    results = {
        "model": str(folder),
        "settings": vars(args),
        **compare_settings(
            models["zip"].eval(),
            models["base"].eval(),
            models["base_tokenizer"],
            texts,
            settings,
            args.max_length,
        ),
    }
    print(f"\n{folder} (trained with {results['trained']}) against SmolLM2-135M-Instruct\n")
    print_table(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        plot(results, args.png)
        print(f"\nplot: {args.png}")


if __name__ == "__main__":
    main()
