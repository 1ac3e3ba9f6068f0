"""Long context: how bits per byte, compression and speed change with the window, base against zip2zip.

An LZW codebook keeps learning along a sequence, so compression grows with the window, and the positions it
saves shrink the KV cache and attention exactly where they cost most. This benchmark measures, side by side
in one run:

* **quality** (``--part quality``): strict bits per byte of the base model, the zip2zip model and, with
  ``--control``, the no-compression control, in windows of 1,024 .. 8,192 positions on the same bytes: whole
  held-out documents long enough for the largest window (code, prose, and the unseen Go); compression (base
  tokens per code) per window; a plot of zip2zip / base and zip2zip / control against the window. With
  ``--uncompressed-reading``, also the zip2zip model's own weights reading the same bytes as base tokens only
  (its codec at ``max_subtokens=1``): whether what zip2zip misses at long windows is the context or the
  hypertokens.
* **endings** (``--part endings``): greedy continuations of held-out code prompts cut mid-file at a line end, and
  the probability of end of sequence right after the cut; a model that reads the prompt's bare newline as the end
  of the file writes an end-of-sequence token where the file goes on.
* **speed** (``--part speed``): prefill time, time per decoding step and KV-cache bytes after prompts of 1k
  .. 8k base tokens of held-out code, base vs zip2zip; the time for 128 new base tokens after a 4k-token code
  prompt; the codebook's fill along an 8k-token window and what a larger codebook (``C``) gives in
  compression and costs per decoding step (an untrained model of that ``C``: the cost of a step does not
  depend on training).

Run from the repository root (``python -m benchmarks.long_context``); results go to
``benchmarks/results/long_context/`` (JSON, PNG) and the tables are printed as Markdown.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import cut_at_line_end, resolve_model

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "long_context"
WINDOWS = (1024, 2048, 4096, 8192)
DOMAINS = ("code", "prose", "go")
PROMPT_TOKENS = (1024, 2048, 4096, 8192)
CODEBOOK_SIZES = (2048, 4096, 8192)


def long_documents(domain: str, count: int, chars: int) -> list[str]:
    """``count`` whole held-out documents of ``domain`` (a source file, a handbook page), each cut to ``chars``
    characters: the longest ones at least that long, in the corpus's fixed order; fewer long enough ones are
    filled up with the longest of the rest (their windows then end with the document)."""
    from zip2zip.corpora.store import load_files

    files = load_files(domain, "heldout")
    long = [text for text in files if len(text) >= chars]
    rest = sorted((text for text in files if len(text) < chars), key=len, reverse=True)
    return [text[:chars] for text in (long + rest)[:count]]


def code_ids(tokenizer: Any, tokens: int = max(PROMPT_TOKENS)) -> list[int]:
    """Base ids of the held-out code file the speed measurements cut their prompts from: the first one long
    enough for ``tokens`` base tokens with room to spare, so every prompt length (here and in the release
    benchmark) reads the same file."""
    document = long_documents("code", 1, 4 * tokens + 4096)[0]
    return tokenizer(document, add_special_tokens=False)["input_ids"]


def measure_quality(models: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Bits per byte and compression per domain and window, every model on the same bytes."""
    from zip2zip.evaluation.scoring import bits_per_byte

    results: dict[str, Any] = {}
    for domain in args.domains:
        texts = long_documents(domain, args.documents, args.chars)
        entry: dict[str, Any] = {
            "documents": len(texts),
            "characters": [len(t) for t in texts],
            "digest": hashlib.sha256("".join(texts).encode()).hexdigest()[:12],
            "windows": {},
        }
        for window in args.windows:
            scores = {}
            for name in ("base", "zip2zip", "control", "uncompressed"):
                if models.get(name) is None:
                    continue
                model, tokenizer = models[name]
                started = time.perf_counter()
                score = bits_per_byte(model, tokenizer, texts, max_length=window)
                scores[name] = {**score.to_dict(), "seconds": round(time.perf_counter() - started, 1)}
                print(
                    f"{domain:6s} window {window:5d} {name:8s} {score.bits_per_byte:.4f} bits/byte, "
                    f"{score.compression:.3f} base tokens per code",
                    flush=True,
                )
            entry["windows"][str(window)] = scores
        results[domain] = entry
    return results


def cache_bytes(cache: Any) -> int:
    """Bytes of the keys and values a cache holds (``DynamicCache`` layers or legacy tuples)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return sum(t.numel() * t.element_size() for layer in layers for t in (layer.keys, layer.values))
    return sum(t.numel() * t.element_size() for pair in cache for t in pair)


@torch.inference_mode()
def kv_cache_bytes(model: Any, input_ids: torch.Tensor) -> int:
    """Bytes of the KV cache ``model`` holds after reading ``input_ids`` (one row) in one forward pass."""
    mask = torch.ones_like(input_ids)
    return cache_bytes(model(input_ids=input_ids, attention_mask=mask, use_cache=True).past_key_values)


def _median_time(run: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def greedy(model: Any, ids: list[int] | torch.Tensor, **budget: Any) -> list[int]:
    """The new ids of a greedy ``generate`` after the prompt ``ids`` (one row; ``budget``: its length settings)."""
    input_ids = ids if isinstance(ids, torch.Tensor) else torch.tensor([ids])
    out = model.generate(
        input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False, **budget
    )
    return out[0, input_ids.shape[1] :].tolist()


class _StepClock:
    """A logits processor that only notes when each decoding step reaches it: the gaps are the steps' times."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


@torch.inference_mode()
def prefill_and_step(model: Any, input_ids: torch.Tensor, steps: int, repeats: int) -> dict[str, float]:
    """Prefill time, KV-cache bytes and the median time of one greedy decoding step after ``input_ids``.

    The prefill is the time from the call to the first step's logits; a step is the median gap between the
    logits of consecutive steps. Medians over ``repeats`` runs after the untimed forward pass that measures the
    KV cache (it warms up the prompt's length).
    """
    from transformers import LogitsProcessorList

    def run() -> tuple[float, float]:
        clock = _StepClock()
        started = time.perf_counter()
        greedy(
            model,
            input_ids,
            max_new_tokens=steps + 1,
            min_new_tokens=steps + 1,
            logits_processor=LogitsProcessorList([clock]),
        )
        gaps = [b - a for a, b in zip(clock.times, clock.times[1:], strict=False)]
        return clock.times[0] - started, statistics.median(gaps)

    kv = kv_cache_bytes(model, input_ids)  # also the warm-up: allocations and kernels of this prompt length
    timings = [run() for _ in range(repeats)]
    return {
        "prompt_positions": int(input_ids.shape[1]),
        "prefill_seconds": statistics.median(t[0] for t in timings),
        "kv_cache_bytes": kv,
        "seconds_per_step": statistics.median(t[1] for t in timings),
    }


def measure_speed(models: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Prefill, step time and KV bytes per prompt length, the 128-token continuation, the codebook's fill."""
    base, base_tokenizer = models["base"]
    zip_model, zip_tokenizer = models["zip2zip"]
    ids = code_ids(base_tokenizer, max(args.prompt_tokens))
    rows = []
    for length in args.prompt_tokens:
        prompt = ids[:length]
        codes = zip_tokenizer.codec.encode(prompt)
        row = {"base_tokens": length, "codes": len(codes)}
        row["base"] = prefill_and_step(base, torch.tensor([prompt]), args.steps, args.repeats)
        row["zip2zip"] = prefill_and_step(zip_model, torch.tensor([codes]), args.steps, args.repeats)
        rows.append(row)
        print(
            f"{length:5d} base tokens ({len(codes)} codes): prefill {row['base']['prefill_seconds']:.2f} s vs "
            f"{row['zip2zip']['prefill_seconds']:.2f} s, step {row['base']['seconds_per_step'] * 1000:.0f} ms vs "
            f"{row['zip2zip']['seconds_per_step'] * 1000:.0f} ms, KV {row['base']['kv_cache_bytes'] / 2**20:.1f} "
            f"vs {row['zip2zip']['kv_cache_bytes'] / 2**20:.1f} MiB",
            flush=True,
        )
    continuation = continuation_time(models, ids[: args.continuation_prompt], args)
    fill = codebook_fill(zip_tokenizer, ids[: max(args.prompt_tokens)])
    return {"prompts": rows, "continuation": continuation, "codebook": fill}


@torch.inference_mode()
def continuation_time(models: dict[str, Any], prompt: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Time for the same number of new base tokens after one code prompt, base vs zip2zip (greedy).

    End of sequence is suppressed for both (``min_new_tokens``; for zip2zip it counts codes, each at least one
    base token, so it holds until ``max_new_base_tokens`` stops the row): both write the same tokens.
    """
    base, _ = models["base"]
    zip_model, zip_tokenizer = models["zip2zip"]
    codes = zip_tokenizer.codec.encode(prompt)
    new = args.new_tokens

    base_seconds = _median_time(
        lambda: greedy(base, prompt, max_new_tokens=new, min_new_tokens=new), args.repeats
    )
    zip_seconds = _median_time(
        lambda: greedy(zip_model, codes, max_new_base_tokens=new, min_new_tokens=new), args.repeats
    )
    stats = zip_model.last_generation_stats
    return {
        "prompt_base_tokens": len(prompt),
        "prompt_codes": len(codes),
        "new_base_tokens": new,
        "base_seconds": base_seconds,
        "zip2zip_seconds": zip_seconds,
        "ratio": zip_seconds / base_seconds,
        "zip2zip_steps": int(stats.steps) if stats is not None else None,
        "zip2zip_base_tokens": int(stats.base_tokens[0]) if stats is not None else None,
    }


def codebook_fill(tokenizer: Any, ids: list[int]) -> dict[str, Any]:
    """Along one long window: entries created, and compression per quarter, for codebooks of several sizes."""
    from zip2zip.model.lzw import LZWCodec

    codec = tokenizer.codec
    out = {}
    for size in CODEBOOK_SIZES:
        sized = LZWCodec(codec.base_vocab_size, size, codec.max_subtokens, codec.disabled_ids)
        codes, codebook = sized.encode_with_codebook(ids)
        spans = [len(codebook.expand(code)) for code in codes]
        quarters = []
        position, consumed = 0, 0
        for quarter in range(1, 5):
            limit = len(ids) * quarter // 4
            start_codes, start_ids = position, consumed
            while position < len(codes) and consumed < limit:
                consumed += spans[position]
                position += 1
            quarters.append((consumed - start_ids) / max(1, position - start_codes))
        out[str(size)] = {
            "entries": len(codebook),
            "full": len(codebook) >= size,
            "full_at_code": codebook.created_at[-1] if len(codebook) >= size else None,
            "compression": len(ids) / len(codes),
            "compression_by_quarter": quarters,
        }
    return out


@torch.inference_mode()
def step_cost_by_codebook(args: argparse.Namespace) -> dict[str, Any]:
    """Time per greedy decoding step of untrained zip2zip models that differ only in ``C``, after the same
    prompt: the price of a larger codebook (a wider output layer and more entries to embed)."""
    from zip2zip import default_base_path, zip2zip_from_base
    from zip2zip.bundled.base import load_default_tokenizer

    tokenizer = load_default_tokenizer()
    document = long_documents("code", 1, 40_000)[0]
    prompt = tokenizer(document, add_special_tokens=False)["input_ids"][: args.continuation_prompt]
    out = {}
    for size in CODEBOOK_SIZES:
        model, zip_tokenizer = zip2zip_from_base(default_base_path(), max_codebook_size=size)
        model.eval()
        codes = zip_tokenizer.codec.encode(prompt)
        out[str(size)] = prefill_and_step(model, torch.tensor([codes]), args.steps, args.repeats)
        print(f"C = {size}: {out[str(size)]['seconds_per_step'] * 1000:.0f} ms per step", flush=True)
    return out


@torch.inference_mode()
def measure_endings(models: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Greedy continuations of held-out code cut mid-file (the first ``--eos-chars`` characters of files at least
    twice that long, cut at a line end): does a model write its ``--new-tokens`` base tokens, or end the file?
    Beside the count, each model's probability of end of sequence as the next token (code) after the cut: it
    moves before the count does, so it shows a training run unlearning early endings."""
    from zip2zip.corpora.store import load_files

    base, base_tokenizer = models["base"]
    zip_model, zip_tokenizer = models["zip2zip"]
    eos = base_tokenizer.eos_token_id
    files = [t for t in load_files("code", "heldout") if len(t) >= 2 * args.eos_chars][: args.eos_prompts]
    rows = []
    for text in files:
        head = cut_at_line_end(text, args.eos_chars)
        prompt = base_tokenizer(head, add_special_tokens=False)["input_ids"]
        codes = zip_tokenizer.codec.encode(prompt)
        new = greedy(base, prompt, max_new_tokens=args.new_tokens)
        zip_new = greedy(zip_model, codes, max_new_base_tokens=args.new_tokens)
        rows.append(
            {
                "prompt_chars": len(head),
                "base": {
                    "base_tokens": len(new),
                    "ended": eos in new,
                    "p_eos": next_probability(base, prompt, eos),
                },
                "zip2zip": {
                    "base_tokens": len(zip_new),
                    "ended": eos in zip_new,
                    "p_eos": next_probability(zip_model, codes, eos),
                },
            }
        )
        if args.token_healing:
            healed = greedy_healed(zip_model, zip_tokenizer, codes, args.new_tokens)
            rows[-1]["zip2zip_token_healing"] = {"base_tokens": len(healed), "ended": eos in healed}
        print(
            f"prompt of {len(head)} characters: base {rows[-1]['base']}, zip2zip {rows[-1]['zip2zip']}",
            flush=True,
        )

    def full(kind: str) -> int:
        """The prompts on which ``kind`` wrote its whole budget without an end-of-sequence token."""
        return sum(not r[kind]["ended"] and r[kind]["base_tokens"] >= args.new_tokens for r in rows)

    summary = {
        "prompts": len(rows),
        "rows": rows,
        "base_full": full("base"),
        "zip2zip_full": full("zip2zip"),
        "base_mean_p_eos": sum(r["base"]["p_eos"] for r in rows) / max(len(rows), 1),
        "zip2zip_mean_p_eos": sum(r["zip2zip"]["p_eos"] for r in rows) / max(len(rows), 1),
    }
    if args.token_healing:
        summary["zip2zip_token_healing_full"] = full("zip2zip_token_healing")
    return summary


def greedy_healed(model: Any, tokenizer: Any, codes: list[int], new_base_tokens: int) -> list[int]:
    """The new base ids of a greedy zip2zip ``generate(token_healing=True)``: the prompt gives up its last base
    token and the first new code must start with a token that extends it, so the model writes the
    newline-and-indentation token itself instead of reading a bare newline. The new ids start with that token."""
    input_ids = torch.tensor([codes])
    out = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        do_sample=False,
        token_healing=True,
        tokenizer=tokenizer,
        max_new_base_tokens=new_base_tokens,
        pad_token_id=tokenizer.eos_token_id,
    )
    # The healed prompt's length differs from the prompt's: count back from the end what the model wrote.
    written = sum(model.last_generation_stats.base_tokens)
    return out[0, out.shape[1] - written :].tolist() if written else []


def next_probability(model: Any, ids: list[int], token: int) -> float:
    """The model's probability of ``token`` (a code, for a zip2zip model) right after ``ids``."""
    logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return float(logits.softmax(-1)[token])


def load(args: argparse.Namespace) -> dict[str, Any]:
    from zip2zip.bundled.base import load_default_base_model, load_default_tokenizer
    from zip2zip.loading import load_model_and_tokenizer

    models: dict[str, Any] = {"base": (load_default_base_model(), load_default_tokenizer())}
    models["zip2zip"] = load_model_and_tokenizer(resolve_model(args.model))
    if args.control:
        models["control"] = load_model_and_tokenizer(args.control)
    if args.uncompressed_reading:
        models["uncompressed"] = uncompressed_reading(resolve_model(args.model))
    return models


def uncompressed_reading(folder: str) -> tuple[Any, Any]:
    """The zip2zip model in ``folder`` reading base tokens only: its own weights, its codec with
    ``max_subtokens=1`` (no entry is ever made, so every code is a base token). A copy of its own:
    ``change_codec`` changes the model it is given."""
    from zip2zip.conversion import change_codec
    from zip2zip.loading import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(folder)
    return model, change_codec(model, tokenizer.base, max_subtokens=1)


def quality_table(quality: dict[str, Any]) -> str:
    uncompressed = any("uncompressed" in s for e in quality.values() for s in e["windows"].values())
    extra = " zip2zip weights, uncompressed / base |" if uncompressed else ""
    lines = [
        "| domain | window | bits/byte base | bits/byte zip2zip | zip2zip / base | bits/byte control | "
        f"zip2zip / control | base tokens per code |{extra}",
        "|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if uncompressed else ""),
    ]
    for domain, entry in quality.items():
        for window, scores in entry["windows"].items():
            base, zip_ = scores["base"]["bits_per_byte"], scores["zip2zip"]["bits_per_byte"]
            control = scores.get("control", {}).get("bits_per_byte")
            plain = scores.get("uncompressed", {}).get("bits_per_byte")
            lines.append(
                f"| {domain} | {int(window):,} | {base:.4f} | {zip_:.4f} | {zip_ / base:.3f}x | "
                + (f"{control:.4f} | {zip_ / control:.3f}x" if control else "- | -")
                + f" | {scores['zip2zip']['compression']:.3f} |"
                + (f" {plain:.4f} ({plain / base:.3f}x) |" if plain else " - |" if uncompressed else "")
            )
    return "\n".join(lines)


def speed_table(speed: dict[str, Any]) -> str:
    lines = [
        "| prompt (base tokens) | codes | prefill base | prefill zip2zip | ms/step base | ms/step zip2zip | "
        "KV MiB base | KV MiB zip2zip | KV zip2zip / base |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in speed["prompts"]:
        b, z = row["base"], row["zip2zip"]
        lines.append(
            f"| {row['base_tokens']:,} | {row['codes']:,} | {b['prefill_seconds']:.2f} s | "
            f"{z['prefill_seconds']:.2f} s | {b['seconds_per_step'] * 1000:.0f} | {z['seconds_per_step'] * 1000:.0f} | "
            f"{b['kv_cache_bytes'] / 2**20:.1f} | {z['kv_cache_bytes'] / 2**20:.1f} | "
            f"{z['kv_cache_bytes'] / b['kv_cache_bytes']:.3f}x |"
        )
    return "\n".join(lines)


def plot(quality: dict[str, Any], path: Path) -> None:
    """zip2zip / base against the window per domain and, beside it, zip2zip / control for the domains whose
    every window has the control's score (a control carried from an earlier run may lack some)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_control = any(
        all("control" in s for s in e["windows"].values()) for e in quality.values() if e["windows"]
    )
    fig, axes = plt.subplots(
        1, 2 if with_control else 1, figsize=(10 if with_control else 5.5, 4), squeeze=False
    )
    axes = axes[0]
    for domain, entry in quality.items():
        windows = [int(w) for w in entry["windows"]]
        scores = list(entry["windows"].values())
        axes[0].plot(
            windows,
            [s["zip2zip"]["bits_per_byte"] / s["base"]["bits_per_byte"] for s in scores],
            marker="o",
            label=domain,
        )
        if with_control and all("control" in s for s in scores):
            axes[1].plot(
                windows,
                [s["zip2zip"]["bits_per_byte"] / s["control"]["bits_per_byte"] for s in scores],
                marker="o",
                label=domain,
            )
    for ax, title in zip(axes, ("zip2zip / base", "zip2zip / control"), strict=False):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("window (positions)")
        ax.set_ylabel("strict bits per byte ratio")
        ax.set_title(title)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("quality", "speed", "endings", "all"), default="all")
    parser.add_argument("--model", default=None, help="zip2zip model folder (default: the shipped model)")
    parser.add_argument("--control", default=None, help="the no-compression control's folder (M = 1)")
    parser.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS))
    parser.add_argument("--documents", type=int, default=2, help="documents per domain")
    parser.add_argument("--chars", type=int, default=28_000, help="characters per document (8k+ code tokens)")
    parser.add_argument("--prompt-tokens", type=int, nargs="+", default=list(PROMPT_TOKENS))
    parser.add_argument("--continuation-prompt", type=int, default=4096, help="base tokens before the 128")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--eos-prompts", type=int, default=8, help="held-out code prompts cut mid-file")
    parser.add_argument("--eos-chars", type=int, default=3000, help="characters of each such prompt")
    parser.add_argument(
        "--token-healing",
        action="store_true",
        help="also continue each cut file with generate(token_healing=True), zip2zip only",
    )
    parser.add_argument(
        "--uncompressed-reading",
        action="store_true",
        help="quality: also score the zip2zip weights reading base tokens only (max_subtokens=1)",
    )
    parser.add_argument("--steps", type=int, default=8, help="decoding steps timed after each prompt")
    parser.add_argument("--repeats", type=int, default=3, help="timings are medians over this many")
    parser.add_argument(
        "--codebook-cost", action="store_true", help="also time steps of untrained C variants"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(OUT))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = load(args)
    report: dict[str, Any] = {"settings": vars(args), "threads": torch.get_num_threads()}
    if args.part in ("quality", "all"):
        report["quality"] = measure_quality(models, args)
        print(quality_table(report["quality"]))
        plot(report["quality"], out / "quality.png")
    if args.part in ("speed", "all"):
        report["speed"] = measure_speed(models, args)
        if args.codebook_cost:
            report["speed"]["step_cost_by_codebook"] = step_cost_by_codebook(args)
        print(speed_table(report["speed"]))
        print(json.dumps(report["speed"]["continuation"], indent=1))
        print(json.dumps(report["speed"]["codebook"], indent=1))
    if args.part in ("endings", "all"):
        report["endings"] = measure_endings(models, args)
        print(
            f"full {args.new_tokens} base tokens without end-of-sequence: base {report['endings']['base_full']}, "
            f"zip2zip {report['endings']['zip2zip_full']}, "
            f"zip2zip with token healing {report['endings'].get('zip2zip_token_healing_full', 'not run')} "
            f"of {report['endings']['prompts']}; mean probability of end of sequence after the cut: "
            f"base {report['endings']['base_mean_p_eos']:.3f}, zip2zip {report['endings']['zip2zip_mean_p_eos']:.3f}"
        )
    (out / f"{args.part}.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
