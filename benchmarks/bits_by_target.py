"""Where a zip2zip model's extra bits go: strict bits per byte split by the kind of each target code.

The strict score of a zip2zip model (``zip2zip.evaluation.scoring``) sums, over every code of each window, the model's
log-probability of that code. This script splits that sum by what the target code is, and puts beside each
part the base model's bits for the same base tokens of the same windows:

* **base token**: a code of the base vocabulary;
* **hypertoken, first use**: a hypertoken emitted for the first time in its window. LZW only creates an entry
  from text it has read, so emitting one means the text repeats something seen earlier in the window;
* **hypertoken, reused**: a hypertoken emitted again, i.e. a repeat of a repeat.

Beside the kinds, every target is also put in one of two **contexts**: *a repeat* where its first base token,
with the ``COPY_CONTEXT`` base tokens before it, already stood in the window (a base model copies such a token
from its earlier occurrence), *new text* elsewhere. LZW parses a repeat differently each time it comes, so a
model that copies by matching codes finds no earlier match to copy from; the split shows whether zip2zip's
extra bits are in the repeats.

``excess`` is zip2zip's bits minus the base's on those tokens; the parts add up to the whole strict score of
each model (the same numbers ``bits_per_byte`` gives). Each excess splits in two: on the **first token**
(zip2zip's ``-log q1``, the probability that the next code *starts with* the target's first base token, summed
over every code that does, against the base's bits for that token) and on the **rest** (choosing this code
among those starting with that token, against the base's bits for the target's other tokens). A large first-
token excess means the model does not see what comes; a large rest excess, that it does but expects another
length of match. "hypertoken mass" is the probability the model put on
hypertokens (of any id) at those positions: how much it expected to copy there.

Run: ``python -m benchmarks.bits_by_target [--model FOLDER | shipped] [--domains code,prose,go] [--chars 3000]
[--threads 1] [--json FILE] [--png FILE]``. Held-out texts: the release benchmark's (whole held-out documents
up to ``--chars`` characters per domain).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import heldout_texts

KINDS = ("base token", "hypertoken, first use", "hypertoken, reused")
CONTEXTS = ("a repeat", "new text")
COPY_CONTEXT = 3


def target_kinds(codes: Sequence[int], base_vocab_size: int) -> list[str]:
    """The kind of each code of one window's code stream (see the module docstring)."""
    seen: set[int] = set()
    kinds = []
    for code in codes:
        if code < base_vocab_size:
            kinds.append(KINDS[0])
        else:
            kinds.append(KINDS[2] if code in seen else KINDS[1])
            seen.add(code)
    return kinds


def repeated_positions(tokens: Sequence[int], context: int = COPY_CONTEXT) -> list[bool]:
    """Whether each base token, with the `context` tokens before it, already stood earlier in `tokens` (the first
    `context` tokens have too little before them and count as new)."""
    seen: set[tuple[int, ...]] = set()
    repeated = []
    for end in range(len(tokens)):
        if end < context:
            repeated.append(False)
            continue
        gram = tuple(tokens[end - context : end + 1])
        repeated.append(gram in seen)
        seen.add(gram)
    return repeated


@torch.inference_mode()
def _target_logprobs(model: Any, sequence: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each code after the first, and the full log-softmax rows that gave them."""
    ids = torch.tensor([list(sequence)], device=model.device)
    logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(-1, ids[0, 1:, None]).squeeze(-1).cpu(), logprobs.cpu()


def bits_by_target(
    zip_model: Any,
    zip_tokenizer: Any,
    base_model: Any,
    base_tokenizer: Any,
    texts: Sequence[str],
    max_length: int = 512,
) -> dict[str, Any]:
    """Per kind of target: codes, base tokens, zip2zip's bits, the base's bits on the same tokens, and the mean
    probability zip2zip put on hypertokens there; plus the texts' bytes and both totals.

    Windows are those of ``zip2zip.evaluation.scoring.Scorer`` with ``max_length`` positions (the base model scores the
    same base-token windows, so its bits are those of its own strict score on the texts).
    """
    from zip2zip.evaluation.scoring import Scorer
    from zip2zip.trainer.distillation import first_token_log_probs

    scorer = Scorer(zip_model, zip_tokenizer, max_length)
    codec, prefix = scorer.codec, scorer.prefix_id
    V = codec.base_vocab_size
    fields = ("zip_bits", "base_bits", "first_token_zip_bits", "first_token_base_bits", "mass")
    parts = {kind: {"codes": 0, "base_tokens": 0, **dict.fromkeys(fields, 0.0)} for kind in KINDS}
    contexts = {name: {"codes": 0, "base_tokens": 0, "zip_bits": 0.0, "base_bits": 0.0} for name in CONTEXTS}
    n_bytes = 0
    for text in texts:
        n_bytes += len(text.encode("utf-8"))
        windows, sequences = scorer.windows(text)
        for window, sequence in zip(windows, sequences):
            codes = sequence[1:]
            zip_logprobs, zip_rows = _target_logprobs(zip_model, sequence)
            base_logprobs, _ = _target_logprobs(base_model, [prefix, *window])
            _, codebook = codec.decode_with_codebook(codes)
            hyper_mass = zip_rows[:, V:].exp().sum(-1)
            first_ids = torch.tensor([entry[0] for entry in codebook.entries], dtype=torch.long)
            # log q1: the probability that the next code starts with a base token, whatever its length
            first_logprobs = first_token_log_probs(zip_rows, first_ids.expand(len(codes), -1), V)
            repeated = repeated_positions([prefix, *window])[1:]
            position = 0
            for i, (code, kind) in enumerate(zip(codes, target_kinds(codes, V))):
                phrase = codebook.expand(code)
                length = len(phrase)
                zip_bits = -float(zip_logprobs[i]) / math.log(2)
                base_bits = -float(base_logprobs[position : position + length].double().sum()) / math.log(2)
                part = parts[kind]
                context = contexts[CONTEXTS[0] if repeated[position] else CONTEXTS[1]]
                for total in (part, context):
                    total["codes"] += 1
                    total["base_tokens"] += length
                    total["zip_bits"] += zip_bits
                    total["base_bits"] += base_bits
                part["mass"] += float(hyper_mass[i])
                part["first_token_zip_bits"] -= float(first_logprobs[i, phrase[0]]) / math.log(2)
                part["first_token_base_bits"] -= float(base_logprobs[position]) / math.log(2)
                position += length
            if position != len(window):
                raise AssertionError(f"codes expand to {position} base tokens, the window has {len(window)}")
    for part in parts.values():
        part["excess_bits"] = part["zip_bits"] - part["base_bits"]
        part["first_token_excess_bits"] = part["first_token_zip_bits"] - part["first_token_base_bits"]
        part["rest_excess_bits"] = part["excess_bits"] - part["first_token_excess_bits"]
        part["hypertoken_mass"] = part.pop("mass") / part["codes"] if part["codes"] else 0.0
    for context in contexts.values():
        context["excess_bits"] = context["zip_bits"] - context["base_bits"]
    zip_bits = sum(p["zip_bits"] for p in parts.values())
    base_bits = sum(p["base_bits"] for p in parts.values())
    return {
        "bytes": n_bytes,
        "parts": parts,
        "contexts": contexts,
        "zip_bits_per_byte": zip_bits / n_bytes if n_bytes else math.nan,
        "base_bits_per_byte": base_bits / n_bytes if n_bytes else math.nan,
    }


def print_table(results: dict[str, dict[str, Any]]) -> None:
    print(
        "| domain | target | codes | base tokens | zip2zip bits | base bits | excess bits | excess per code | "
        "share of the excess | on the first token | on the rest | hypertoken mass |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for domain, result in results.items():
        excess = sum(p["excess_bits"] for p in result["parts"].values())
        for kind, p in result["parts"].items():
            per_code = p["excess_bits"] / p["codes"] if p["codes"] else 0.0
            share = f"{p['excess_bits'] / excess:.0%}" if excess > 0 else ""
            print(
                f"| {domain} | {kind} | {p['codes']} | {p['base_tokens']} | {p['zip_bits']:.0f} | "
                f"{p['base_bits']:.0f} | {p['excess_bits']:+.0f} | {per_code:+.2f} | {share} | "
                f"{p['first_token_excess_bits']:+.0f} | {p['rest_excess_bits']:+.0f} | {p['hypertoken_mass']:.2f} |"
            )
        ratio = result["zip_bits_per_byte"] / result["base_bits_per_byte"]
        for name, c in result.get("contexts", {}).items():
            per_token = c["excess_bits"] / c["base_tokens"] if c["base_tokens"] else 0.0
            share = f"{c['excess_bits'] / excess:.0%}" if excess > 0 else ""
            print(
                f"| {domain} | in {name} | {c['codes']} | {c['base_tokens']} | {c['zip_bits']:.0f} | "
                f"{c['base_bits']:.0f} | {c['excess_bits']:+.0f} | {per_token:+.2f} per base token | {share} | | | |"
            )
        print(
            f"| {domain} | all ({result['bytes']:,} bytes) | | | {result['zip_bits_per_byte']:.4f} bits/byte | "
            f"{result['base_bits_per_byte']:.4f} bits/byte | {ratio:.3f}x | | | | | |"
        )


def plot(results: dict[str, dict[str, Any]], path: str) -> None:
    """Excess bits per byte of each kind of target, stacked per domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(results)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    bottom_pos = [0.0] * len(domains)
    bottom_neg = [0.0] * len(domains)
    for kind in KINDS:
        values = [results[d]["parts"][kind]["excess_bits"] / results[d]["bytes"] for d in domains]
        bottoms = [bottom_pos[i] if v >= 0 else bottom_neg[i] for i, v in enumerate(values)]
        ax.bar(domains, values, bottom=bottoms, label=kind)
        for i, v in enumerate(values):
            if v >= 0:
                bottom_pos[i] += v
            else:
                bottom_neg[i] += v
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("zip2zip - base, bits per byte")
    ax.set_title("Where zip2zip's extra bits go, by target code")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shipped", help="a zip2zip model folder, or 'shipped'")
    parser.add_argument("--domains", default="code,prose,go", help="comma-separated held-out corpora")
    parser.add_argument("--chars", type=int, default=3000, help="held-out characters per domain")
    parser.add_argument("--max-length", type=int, default=512, help="positions per scored window")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default="", help="also write the numbers here")
    parser.add_argument("--png", default="", help="plot file ('' = none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from zip2zip.bundled.base import load_default_base_model, load_default_tokenizer
    from zip2zip.bundled.shipped import shipped_zip2zip_path

    hf_logging.set_verbosity_error()
    folder = shipped_zip2zip_path() if args.model == "shipped" else args.model
    if folder is None:
        parser.error("--model shipped: no trained checkpoint ships here")
    zip_model = AutoModelForCausalLM.from_pretrained(
        folder, trust_remote_code=True, dtype=torch.float32
    ).eval()
    zip_tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    base_model, base_tokenizer = load_default_base_model().eval(), load_default_tokenizer()
    results = {}
    for domain in (d.strip() for d in args.domains.split(",") if d.strip()):
        texts = heldout_texts(domain, args.chars)
        results[domain] = bits_by_target(
            zip_model, zip_tokenizer, base_model, base_tokenizer, texts, args.max_length
        )
    print(f"{folder} against SmolLM2-135M-Instruct, {args.chars:,} held-out characters per domain\n")
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
