"""Seeded codebooks: base tokens per code on short held-out windows, plain vs seeded, and which seed rule wins.

An LZW codebook that starts empty saves almost nothing on short texts; a seed (``Zip2ZipConfig.initial_codebook``,
built by :mod:`zip2zip.seeding`) gives every sequence hypertokens from its first token on. Measured with the codec
alone (SmolLM2 tokenizer, ``M = 4``, ``C = 2048``), on the first windows of 64, 128, 256 and 1,024 base tokens cut
from the held-out split (documents joined in the corpus's order, each window compressed on its own, as one prompt):

* domains: ``code`` (Python), ``prose`` (the handbook), ``multilingual`` (its translations), ``chat`` (chat turns
  in SmolLM2's chat template, user and assistant parts; :mod:`zip2zip.corpora.chat`), and ``go`` (code of a
  language no seed saw, read with the code seed);
* seeds of 256, 512 and 1,024 entries, by ``frequency`` and by ``gain``, per domain (built from that domain's
  train split) and mixed (the four domains, equal base tokens each). Both rules count the same text (the train
  split less its last documents, which ``gain`` cuts into 128-token tuning windows);
* two codec settings: ``digits`` (digits never merged: the settings of the issue's figures and bars) and
  ``shipped`` (digits and whitespace never merged: the shipped model's).

A second part (``--step-time``) times decoding steps of the shipped model with a 1,024-entry seed and without one.

Run: ``python -m benchmarks.seeding [--quick] [--step-time]``; results in ``benchmarks/results/seeding/``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from zip2zip.model.lzw import LZWCodec

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "seeding"
WINDOWS = (64, 128, 256, 1024)
SIZES = (256, 512, 1024)
RULES = ("frequency", "gain")
DOMAINS = ("code", "prose", "multilingual", "chat")
UNSEEN = {"go": "code"}  # evaluated with the seed of this domain
SETTINGS = {
    "digits": {"protect_digits": True, "protect_whitespace": False},
    "shipped": {"protect_digits": True, "protect_whitespace": True},
}
COUNTED_TOKENS = 1_000_000  # per source (a domain, or the mix of the four)
TUNING_TOKENS = 60_000
HELDOUT_TOKENS = 60_000  # per domain and window length


def ratio(codec: LZWCodec, windows: list[list[int]]) -> float:
    return sum(map(len, windows)) / sum(len(codec.encode(w)) for w in windows)


def source_text(tokenizer, domains, counted_tokens: int, tuning_tokens: int):
    """The counted documents and the tuning windows of a seed source (one domain, or several mixed)."""
    from zip2zip.seeding import _tokenize_until, domain_texts, windows_of

    counted, tuning = [], []
    for domain in domains:
        texts = domain_texts(tokenizer, domain, "train")
        tail = _tokenize_until(tokenizer.base, texts[::-1], tuning_tokens // len(domains))
        tuning += windows_of(tail, 128, tuning_tokens // len(domains))
        counted += _tokenize_until(
            tokenizer.base, texts[: len(texts) - len(tail)], counted_tokens // len(domains)
        )
    return counted, tuning


def build_seeds(tokenizer, sources: dict[str, tuple[str, ...]], sizes, counted_tokens, tuning_tokens) -> dict:
    """``{(source, rule, size): entries}`` for every source, rule and size."""
    from zip2zip.seeding import build_seed, count_runs

    codec = tokenizer.codec
    seeds = {}
    for name, domains in sources.items():
        start = time.perf_counter()
        counted, tuning = source_text(tokenizer, domains, counted_tokens, tuning_tokens)
        counts = count_runs(counted, codec.max_subtokens, codec.disabled_ids)
        for rule in RULES:
            for size in sizes:
                seeds[(name, rule, size)] = build_seed(
                    counted,
                    size,
                    base_vocab_size=codec.base_vocab_size,
                    max_subtokens=codec.max_subtokens,
                    disabled_ids=codec.disabled_ids,
                    rule=rule,
                    tuning=tuning,
                    counts=counts,
                )
        print(
            f"  seeds from {name}: {sum(map(len, counted)):,} base tokens counted, "
            f"{sum(map(len, tuning)):,} tuning, {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    return seeds


def measure_setting(setting: str, quick: bool) -> dict:
    from zip2zip.loading import load_zip2zip_tokenizer
    from zip2zip.seeding import domain_documents, windows_of

    tokenizer = load_zip2zip_tokenizer(None, **SETTINGS[setting])
    codec = tokenizer.codec
    domains = DOMAINS[:2] if quick else DOMAINS
    sizes = SIZES[:1] if quick else SIZES
    windows = (128,) if quick else WINDOWS
    scale = 10 if quick else 1
    sources = {domain: (domain,) for domain in domains}
    if not quick:
        sources["mixed"] = domains
    print(f"{setting}: {codec}", flush=True)
    seeds = build_seeds(tokenizer, sources, sizes, COUNTED_TOKENS // scale, TUNING_TOKENS // scale)
    rows = []
    evaluated = {domain: domain for domain in domains}
    if not quick:
        evaluated.update(UNSEEN)
    for domain, seed_domain in evaluated.items():
        documents = domain_documents(tokenizer, domain, "heldout", HELDOUT_TOKENS // scale + 1024)
        for length in windows:
            held = windows_of(documents, length, max(HELDOUT_TOKENS // scale, length))
            row = {"domain": domain, "window": length, "windows": len(held), "plain": ratio(codec, held)}
            for (source, rule, size), entries in seeds.items():
                if source not in (seed_domain, "mixed"):
                    continue
                seeded = LZWCodec(
                    codec.base_vocab_size,
                    codec.max_codebook_size,
                    codec.max_subtokens,
                    codec.disabled_ids,
                    initial_codebook=entries,
                )
                kind = "domain" if source == seed_domain else "mixed"
                row[f"{kind}/{rule}/{size}"] = ratio(seeded, held)
            rows.append(row)
            best = max((v for k, v in row.items() if "/" in k), default=row["plain"])
            print(
                f"  {domain:<13} {length:>5} tokens ({len(held)} windows): plain {row['plain']:.3f}, best seeded {best:.3f}",
                flush=True,
            )
    return {"setting": setting, "codec": repr(codec), "rows": rows}


STEP_PROMPT = "Write a Python function that returns the n-th Fibonacci number, and explain how it works."


def step_time(repeats: int, new_tokens: int) -> dict:
    """Seconds per decoding step of the shipped model, with a 1,024-entry seed and without, interleaved."""
    import torch

    from zip2zip.bundled.base import load_default_tokenizer
    from zip2zip.loading import load_zip2zip
    from zip2zip.seeding import seed_from_corpora

    torch.set_num_threads(1)
    model, tok, _ = load_zip2zip()
    seed = seed_from_corpora(tok, DOMAINS, 1024, max_base_tokens=400_000)
    result = {
        "model": "shipped",
        **decoding_step_times(model, load_default_tokenizer(), seed, repeats, new_tokens),
    }
    median = result["seconds_per_step"]
    print(
        f"step time: plain {median['plain'] * 1e3:.1f} ms, seeded {median['seeded'] * 1e3:.1f} ms, "
        f"ratio {result['ratio']:.3f}"
    )
    return result


def decoding_step_times(
    model, base_tokenizer, seed, repeats: int, new_tokens: int, prompt: str = STEP_PROMPT
) -> dict:
    """Seconds per greedy decoding step of ``model`` answering the chat ``prompt`` with ``seed`` and without it,
    alternating, the first round a warm-up; the median of each (``ratio``: seeded over plain).

    Both answers run ``new_tokens`` steps (end of sequence suppressed), so only the seed differs between them.
    The model keeps the seed it came with afterwards.
    """
    import statistics

    import torch

    from zip2zip.seeding import apply_seed

    kept = model.config.initial_codebook
    tokenizers = {
        "seeded": apply_seed(model, base_tokenizer, seed),
        "plain": apply_seed(model, base_tokenizer, None),
    }
    times: dict[str, list[float]] = {"plain": [], "seeded": []}
    try:
        for _ in range(repeats + 1):
            for name in ("plain", "seeded"):
                apply_seed(model, base_tokenizer, seed if name == "seeded" else None)
                batch = tokenizers[name].apply_chat_template(
                    [{"role": "user", "content": prompt}],
                    add_generation_prompt=True,
                    return_tensors="pt",
                    return_dict=True,
                )
                with torch.no_grad():
                    # prefill and warm-up, not timed
                    model.generate(**batch, max_new_tokens=2, do_sample=False)
                    start = time.perf_counter()
                    model.generate(
                        **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
                    )
                    elapsed = time.perf_counter() - start
                times[name].append(elapsed / model.last_generation_stats.steps)
    finally:
        apply_seed(model, base_tokenizer, kept)
    for name in times:
        times[name] = times[name][1:]  # the first round warms caches
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "seed_entries": len(seed),
        "new_tokens": new_tokens,
        "repeats": repeats,
        "seconds_per_step": median,
        "all": times,
        "ratio": median["seeded"] / median["plain"],
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = list(dict.fromkeys(row["domain"] for row in results[0]["rows"]))
    fig, axes = plt.subplots(
        len(results), len(domains), figsize=(3.2 * len(domains), 3.0 * len(results)), squeeze=False
    )
    for r, result in enumerate(results):
        for c, domain in enumerate(domains):
            ax = axes[r][c]
            rows = [row for row in result["rows"] if row["domain"] == domain]
            x = [row["window"] for row in rows]
            ax.plot(x, [row["plain"] for row in rows], "k-o", label="plain", markersize=3)
            keys = [k for k in rows[0] if k.startswith("domain/frequency/")]
            for key in keys:
                ax.plot(x, [row[key] for row in rows], "-o", markersize=3, label=f"seed {key.split('/')[-1]}")
            mixed = [k for k in rows[0] if k.startswith("mixed/frequency/")]
            if mixed:
                key = mixed[-1]
                ax.plot(x, [row[key] for row in rows], "--", label=f"mixed seed {key.split('/')[-1]}")
            ax.set_xscale("log", base=2)
            ax.set_xticks(x, [str(v) for v in x])
            ax.set_title(f"{domain} ({result['setting']})", fontsize=9)
            ax.grid(alpha=0.3)
            if c == 0:
                ax.set_ylabel("base tokens per code")
            if r == len(results) - 1:
                ax.set_xlabel("window (base tokens)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def tables(results: list[dict]) -> str:
    """The README tables: compression per window (the best rule per domain seed), and the rules at 128 tokens."""
    lines = []
    for result in results:
        rows = result["rows"]
        sizes = sorted({int(k.split("/")[2]) for k in rows[0] if "/" in k})
        lines += [
            f"\n{result['setting']} settings, `frequency` seeds of the domain (mixed: the four domains together):\n",
            "| domain | window | plain | "
            + " | ".join(f"seed {n}" for n in sizes)
            + f" | mixed {sizes[-1]} |",
            "|---|---:|---:|" + "---:|" * (len(sizes) + 1),
        ]
        for row in rows:
            cells = [f"{row[f'domain/frequency/{n}']:.3f}" for n in sizes]
            lines.append(
                f"| {row['domain']} | {row['window']} | {row['plain']:.3f} | "
                + " | ".join(cells)
                + f" | {row[f'mixed/frequency/{sizes[-1]}']:.3f} |"
            )
        lines += [
            f"\n{result['setting']} settings, 128-token windows: base tokens per code, and (in brackets) the gain over "
            "plain per 100 seed entries:\n",
            "| domain | seed | " + " | ".join(f"{rule} {n}" for rule in RULES for n in sizes) + " |",
            "|---|---|" + "---:|" * (len(RULES) * len(sizes)),
        ]
        for row in rows:
            if row["window"] != 128:
                continue
            for kind in ("domain", "mixed"):
                cells = []
                for rule in RULES:
                    for n in sizes:
                        value = row[f"{kind}/{rule}/{n}"]
                        cells.append(f"{value:.3f} ({100 * (value - row['plain']) / n:.3f})")
                lines.append(f"| {row['domain']} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two domains, 128-token windows, small budgets")
    parser.add_argument(
        "--step-time", action="store_true", help="also time decoding steps of the shipped model"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--output", default=str(OUT))
    parser.add_argument("--tables", metavar="JSON", help="print the README tables of a results file and stop")
    args = parser.parse_args()
    if args.tables:
        print(tables(json.loads(Path(args.tables).read_text())))
        return
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results = [measure_setting(setting, args.quick) for setting in SETTINGS]
    name = "quick" if args.quick else "seeding"
    (out / f"{name}.json").write_text(json.dumps(results, indent=1))
    plot(results, out / f"{name}.png")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")
    if not args.quick:
        print(tables(results))
    if args.step_time:
        timing = step_time(args.repeats, args.new_tokens)
        (out / "step_time.json").write_text(json.dumps(timing, indent=1))


if __name__ == "__main__":
    main()
