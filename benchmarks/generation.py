"""Generation speed: the base model with and without prompt-lookup decoding, the zip2zip model with and without.

Greedy decoding on CPU, batch 1, side by side in one run. Each prompt is the first ``--prompt-tokens``
base tokens of a held-out code or prose document (SmolLM2 tokenizer), or an open-ended chat question
(``chat``: the chat template around a question whose answer the prompt does not contain), or, for ``copy``, a
held-out code document followed by its own first 64 base tokens again, so that the expected continuation is a
copy of the prompt (input-grounded generation, where prompt lookup pays); every configuration continues it by
128 new base tokens' worth:

* ``base``: SmolLM2-135M-Instruct, ``generate(max_new_tokens=128)``;
* ``pld``: the same with transformers' prompt-lookup decoding (``prompt_lookup_num_tokens``), lossless
  under greedy decoding, so its output is checked to equal ``base``'s;
* ``zip2zip``: the untrained zip2zip model made from the same base with the training recipe's settings
  (``ZIP2ZIP_SETTINGS`` of ``examples/train_smollm2.py``: C=2048, M=4, half-width encoders), i.e. the
  architecture we train, or the trained one in ``--model FOLDER`` (``--model shipped``: the shipped one), on
  the prompt's LZW codes, ``generate(max_new_base_tokens=128)``. Step time depends on the architecture only,
  not on the weights;
* ``lookup``: zip2zip with its own prompt lookup (``prompt_lookup_num_tokens``, same value as ``pld``): codes
  proposed from the row's text and codebook, verified in one pass; lossless, so its output is checked to
  equal ``zip2zip``'s.

End of sequence is suppressed (``min_new_tokens``) so that every run produces the full budget. Reported
per configuration and domain:

* decoding steps: forward calls of the generating model after the prefill (for ``pld`` and ``lookup``, one
  per verification pass); summed over prompts; forward passes count the prefill too;
* ms/step: the median time between the starts of consecutive decoding steps, i.e. the whole loop
  iteration (input preparation, codebook updates and hyper-encoders for zip2zip, forward, logits
  processing, selection, stopping criteria); pooled over prompts and repeats;
* seconds: wall time of the whole ``generate`` calls for the same 128 new base tokens, summed over prompts,
  best of the repeats;
* bytes/s: UTF-8 bytes of the generated text over that time;
* its text, LZW-encoded: base tokens per code the LZW encoder writes for the generated text after the same
  prompt, for every configuration: what the text allows, whoever wrote it (beside zip2zip's own output
  compression it separates the model's choice of codes from how much its text repeats);
* lookup bound: the fewest forward passes that *any* prompt lookup proposing up to ``--pld-tokens`` units
  (base tokens for the base model, codes for zip2zip) copied from the row's own earlier text could need to
  write the output that was written (:func:`lookup_bound`): how much there was to copy, whatever the proposer.

Bars: zip2zip's time per decoding step against the base model's (at most 1.05x): the codebook updates and
the encoders of new hypertokens must stay under 5% of a step. zip2zip + lookup against base + prompt lookup on
code: at most 0.8x the forward passes and 0.85x the time; on the open-ended chat question (little to look up)
at most 1.05x the time of zip2zip alone. With an untrained model the number of steps stays close to the base
model's; a trained checkpoint is what reduces it.

Run: ``python -m benchmarks.generation [--prompts 2] [--repeats 2] [--threads 1] [--model FOLDER] [--png FILE]``;
``--encoder-hidden-size`` and ``--tie-encoders`` override the recipe's shape of the untrained model.
:func:`measure` is the measuring part on its own (``benchmarks.release`` calls it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from benchmarks.common import load_prompts, load_zip2zip

CONFIGS = ("base", "pld", "zip2zip", "lookup")
# Measured on request (--configs): prompt lookup matching the row's code stream instead of its base-token text.
# Greedy search by base-token prefix (`greedy_by="prefix"`) is measured on request too.
EXTRA_CONFIGS = ("lookup-codes", "prefix")
LABELS = {
    "base": "base",
    "pld": "base + PLD",
    "zip2zip": "zip2zip",
    "lookup": "zip2zip + lookup",
    "lookup-codes": "zip2zip + lookup (match codes)",
    "prefix": "zip2zip, greedy by prefix",
}
DOMAINS = ("code", "prose", "chat")


class StepClock:
    """Start time of every forward call of a module (prefill first, then one per decoding step)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.starts: list[float] = []
        self.handle = module.register_forward_pre_hook(lambda *_: self.starts.append(time.perf_counter()))

    def close(self) -> None:
        self.handle.remove()


def run(model, clock_module, input_ids: list[int], settings: dict) -> dict:
    """One timed ``generate``: the new ids (base ids, also for zip2zip), and for zip2zip the new codes."""
    clock = StepClock(clock_module)
    ids = torch.tensor([input_ids])
    try:
        start = time.perf_counter()
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), return_dict_in_generate=True, **settings
        )
        end = time.perf_counter()
    finally:
        clock.close()
    starts = clock.starts
    intervals = [b - a for a, b in itertools.pairwise(starts[1:])] + (
        [end - starts[-1]] if len(starts) > 1 else []
    )
    result = {
        "output": out.sequences[0, ids.shape[1] :].tolist(),
        "seconds": end - start,
        "steps": len(starts) - 1,
        "intervals": intervals,
    }
    codes = getattr(out, "codes", None)
    if codes is not None:
        result["codes"] = codes[0, ids.shape[1] :].tolist()
    return result


def encoded_codes(codec, prompt: Sequence[int], output: Sequence[int]) -> int:
    """Codes the LZW encoder writes for ``output`` (base ids) after ``prompt``, with the codebook the prompt
    built and no code across the boundary: how far the generated text itself compresses, whoever wrote it."""
    return len(codec.encode_segments([list(prompt), list(output)])) - len(codec.encode(list(prompt)))


def lookup_bound(
    prompt: Sequence[int],
    output: Sequence[int],
    num_units: int,
    expand: Callable[[int], Sequence[int]] | None = None,
) -> int:
    """The fewest forward passes any prompt lookup could need to write ``output`` after ``prompt``.

    The prefill is the first pass: it writes the first unit and, as in transformers' assisted decoding and
    zip2zip's lookup, already verifies a proposal. A pass verifies up to ``num_units`` proposed units (base tokens, or codes with ``expand`` giving each
    code's base tokens) and keeps the model's next unit too. Whatever a lookup proposes is copied from the
    row's text so far, so a pass can at best accept the longest run of next units whose text occurs in that
    text (a copy may overlap its own end, as LZ77's do). Taking the longest such run each pass is optimal
    (a run's every suffix is copyable too), so this is a bound no proposer beats, however it chooses.
    """
    expand = expand or (lambda unit: (unit,))
    text = [t for unit in prompt for t in expand(unit)]
    passes = i = 0
    while i < len(output):
        sources = range(len(text))  # where a copy of the run so far may start
        run: list[int] = []
        j = i
        while j < len(output) and j - i < num_units:
            longer = run + list(expand(output[j]))
            joined = text + longer
            sources = [s for s in sources if joined[s + len(run) : s + len(longer)] == longer[len(run) :]]
            if not sources:
                break
            run, j = longer, j + 1
        end = min(j + 1, len(output))
        for unit in output[i:end]:
            text.extend(expand(unit))
        passes, i = passes + 1, end
    return passes


def generation_settings(eos: int, new_tokens: int, pld_tokens: int) -> dict[str, dict]:
    """``generate`` keyword arguments of each configuration.

    End of sequence is suppressed (``min_new_tokens``) so that every configuration produces the same budget of
    text and the timings compare like with like; for zip2zip the budget is counted in base tokens.
    """
    common = {"do_sample": False, "pad_token_id": eos, "min_new_tokens": new_tokens}
    return {
        "base": {**common, "max_new_tokens": new_tokens},
        "pld": {**common, "max_new_tokens": new_tokens, "prompt_lookup_num_tokens": pld_tokens},
        "zip2zip": {**common, "max_new_base_tokens": new_tokens},
        "lookup": {**common, "max_new_base_tokens": new_tokens, "prompt_lookup_num_tokens": pld_tokens},
        "lookup-codes": {
            **common,
            "max_new_base_tokens": new_tokens,
            "prompt_lookup_num_tokens": pld_tokens,
            "prompt_lookup_match": "codes",
        },
        "prefix": {**common, "max_new_base_tokens": new_tokens, "greedy_by": "prefix"},
    }


def measure(
    base,
    zip_model,
    tokenizer,
    prompts: dict[str, list[list[int]]],
    new_tokens: int = 128,
    pld_tokens: int = 10,
    repeats: int = 2,
    codec=None,
    progress: bool = False,
    configs: tuple[str, ...] = CONFIGS,
) -> dict:
    """Generate from every prompt with every configuration and summarise; the measuring part of this script.

    ``prompts`` maps a domain to prompts of *base* ids (SmolLM2 tokenizer). The base model and prompt lookup
    read them as they are; the zip2zip model reads their LZW codes (``codec``, default ``zip_model.codec``), so
    all three continue exactly the same text. ``tokenizer`` is the base tokenizer: it decodes every output
    (zip2zip's ``generate`` returns the generated part expanded to base ids).

    Returns ``{"rows": [...], "results": {domain: {config: [run, ...]}}}``: one row per domain plus ``all``
    (see :func:`summarize`), and every run (output ids, text, seconds, steps, step intervals; zip2zip runs
    also carry ``stats``, the model's ``last_generation_stats``). ``configs`` picks the configurations (of
    :data:`CONFIGS`, ``base`` among them).
    """
    from tqdm.auto import tqdm

    codec = codec if codec is not None else zip_model.codec
    eos = tokenizer.eos_token_id
    settings = generation_settings(eos, new_tokens, pld_tokens)
    models = {
        "base": base,
        "pld": base,
        "zip2zip": zip_model,
        "lookup": zip_model,
        "lookup-codes": zip_model,
        "prefix": zip_model,
    }
    domains = tuple(prompts)

    def one(config: str, prompt: list[int]) -> dict:
        model = models[config]
        ids = codec.encode(prompt) if model is zip_model else prompt
        result = run(model, model, ids, settings[config])
        result["text"] = tokenizer.decode(result["output"], skip_special_tokens=True)
        result["encoded_codes"] = encoded_codes(codec, prompt, result["output"])
        if model is zip_model:
            if model.last_generation_stats is not None:
                result["stats"] = model.last_generation_stats.to_dict()
            _, codebook = codec.decode_with_codebook(ids + result["codes"])
            result["lookup_bound"] = lookup_bound(ids, result["codes"], pld_tokens, codebook.expand)
        else:
            result["lookup_bound"] = lookup_bound(prompt, result["output"], pld_tokens)
        return result

    warm = next(p for d in domains for p in prompts[d])
    for config in configs:  # warm-up: first calls allocate and pick kernels
        warm_ids = codec.encode(warm[:64]) if models[config] is zip_model else warm[:64]
        models[config].generate(
            input_ids=torch.tensor([warm_ids]),
            max_new_tokens=4,
            do_sample=False,
            pad_token_id=eos,
            **(
                {"prompt_lookup_num_tokens": pld_tokens}
                if config in ("pld", "lookup", "lookup-codes")
                else {}
            ),
        )

    total = sum(len(prompts[d]) for d in domains) * repeats * len(configs)
    bar = tqdm(total=total, desc="generation", disable=not progress, leave=False)
    results: dict[str, dict[str, list[dict]]] = {d: {c: [] for c in configs} for d in domains}
    for domain in domains:
        for p, prompt in enumerate(prompts[domain]):
            for r in range(repeats):
                # Rotate, and reverse every other repeat, so that no configuration always runs first or always
                # right after the same other one (a run measured a few percent slower right after another).
                shift = (r // 2) % len(configs)
                order = configs[shift:] + configs[:shift]
                if r % 2:
                    order = order[::-1]
                for config in order:
                    result = one(config, prompt)
                    result["prompt"] = p
                    results[domain][config].append(result)
                    bar.update(1)
            for speculative, reference in (
                ("pld", "base"),
                ("lookup", "zip2zip"),
                ("lookup-codes", "zip2zip"),
            ):
                runs = results[domain]
                if (
                    speculative in runs
                    and reference in runs
                    and runs[speculative][-1]["output"] != runs[reference][-1]["output"]
                ):
                    print(f"warning: {speculative} output differs from {reference} on {domain} prompt {p}")
    bar.close()
    return {"rows": summarize(results), "results": results}


def summarize(results: dict[str, dict[str, list[dict]]]) -> list[dict]:
    """One row per domain and one for all domains together.

    Per configuration: decoding steps and forward passes (summed over prompts), the median step time (pooled
    over prompts and repeats), seconds and bytes/s (the fastest run of each prompt, summed). zip2zip runs also
    get ``compression``, the base tokens its generated codes stand for per code (from
    ``last_generation_stats``), and lookup runs the proposed and accepted codes; every configuration gets
    ``encoded_compression``, the base tokens per code of the LZW encoder on the same text after the same
    prompt: what the text allows, whoever wrote it (a zip2zip model that spells out entries of its codebook as
    shorter codes writes below it; text that repeats its prompt allows more); ``ratio`` is zip2zip's median
    step time over the base model's; ``lookup_bound_passes`` is :func:`lookup_bound` summed over prompts
    (comparable with ``forward_passes``: the prefill is a bound pass too, it writes the first unit).
    """
    domains = tuple(results)
    configs = tuple(results[domains[0]]) if domains else ()
    rows = []
    for domain in [*domains, "all"]:
        chosen_domains = domains if domain == "all" else (domain,)
        row: dict = {"domain": domain}
        for config in configs:
            runs = [x for d in chosen_domains for x in results[d][config]]
            per_prompt: dict[tuple, dict] = {}  # the fastest run of each prompt
            for d in chosen_domains:
                for x in results[d][config]:
                    k = (d, x["prompt"])
                    if k not in per_prompt or x["seconds"] < per_prompt[k]["seconds"]:
                        per_prompt[k] = x
            chosen = list(per_prompt.values())
            row[config] = {
                "steps": sum(x["steps"] for x in chosen),
                "forward_passes": sum(x["steps"] + 1 for x in chosen),
                "ms_per_step": 1000 * statistics.median(i for x in runs for i in x["intervals"]),
                "seconds": sum(x["seconds"] for x in chosen),
                "bytes_per_s": sum(len(x["text"].encode()) for x in chosen)
                / sum(x["seconds"] for x in chosen),
            }
            if all("lookup_bound" in x for x in chosen):
                row[config]["lookup_bound_passes"] = sum(x["lookup_bound"] for x in chosen)
            if all("encoded_codes" in x for x in chosen):
                encoded = sum(x["encoded_codes"] for x in chosen)
                row[config]["encoded_compression"] = (
                    sum(len(x["output"]) for x in chosen) / encoded if encoded else 1.0
                )
            stats = [x["stats"] for x in chosen if "stats" in x]
            if stats:
                codes = sum(sum(s["codes"]) for s in stats)
                row[config]["compression"] = (
                    sum(sum(s["base_tokens"]) for s in stats) / codes if codes else 1.0
                )
                row[config]["hypertoken_rate"] = (
                    sum(sum(s["hypertokens"]) for s in stats) / codes if codes else 0.0
                )
                row[config]["proposed_codes"] = sum(s.get("proposed_codes", 0) for s in stats)
                row[config]["accepted_codes"] = sum(s.get("accepted_codes", 0) for s in stats)
        if "zip2zip" in row and "base" in row:
            row["ratio"] = row["zip2zip"]["ms_per_step"] / row["base"]["ms_per_step"]
        rows.append(row)
    return rows


def lookup_bars(rows: list[dict]) -> list[str]:
    """The lookup bars, one line each: code passes and time against base + PLD, chat time against zip2zip."""
    lines = []
    by_domain = {row["domain"]: row for row in rows}
    for domain in ("code", "copy"):
        row = by_domain.get(domain)
        if row is None or "lookup" not in row or "pld" not in row:
            continue
        bar = " (bar: <= {})" if domain == "code" else ""
        passes = row["lookup"]["forward_passes"] / row["pld"]["forward_passes"]
        seconds = row["lookup"]["seconds"] / row["pld"]["seconds"]
        lines.append(
            f"{domain}: zip2zip + lookup / base + PLD forward passes = {passes:.3f}" + bar.format(0.8)
        )
        lines.append(
            f"{domain}: zip2zip + lookup / base + PLD time for the same base tokens = {seconds:.3f}"
            + bar.format(0.85)
        )
        if "lookup_bound_passes" in row["lookup"]:
            best = row["lookup"]["lookup_bound_passes"] / row["pld"]["forward_passes"]
            lines.append(
                f"{domain}: the lookup bound of zip2zip's output / base + PLD forward passes = {best:.3f} "
                "(no proposer can do better on this output)"
            )
    for row in rows:
        if "lookup-codes" in row and "lookup" in row:
            passes = row["lookup-codes"]["forward_passes"] / row["lookup"]["forward_passes"]
            seconds = row["lookup-codes"]["seconds"] / row["lookup"]["seconds"]
            lines.append(
                f"{row['domain']}: lookup matching codes / matching base text: forward passes {passes:.3f}, "
                f"time {seconds:.3f}"
            )
    chat = by_domain.get("chat")
    if chat is not None and "lookup" in chat and "zip2zip" in chat:
        seconds = chat["lookup"]["seconds"] / chat["zip2zip"]["seconds"]
        lines.append(f"chat: zip2zip + lookup / zip2zip time = {seconds:.3f} (bar: <= 1.05)")
    return lines


def recipe_settings() -> dict:
    """The zip2zip settings of the training recipe (``zip2zip.recipe``): the architecture we train."""
    from zip2zip.recipe import ZIP2ZIP_SETTINGS

    return dict(ZIP2ZIP_SETTINGS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=2, help="prompts per domain")
    parser.add_argument(
        "--domains",
        default=",".join(DOMAINS),
        help="comma-separated held-out corpora (code, prose, math, multilingual, go) and/or chat",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration per prompt")
    parser.add_argument("--prompt-tokens", type=int, default=384, help="base tokens per prompt")
    parser.add_argument("--new-tokens", type=int, default=128, help="new base tokens per generation")
    parser.add_argument("--pld-tokens", type=int, default=10, help="prompt_lookup_num_tokens of the pld run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every run)")
    parser.add_argument(
        "--model",
        default="",
        help="a trained zip2zip model folder made from SmolLM2-135M-Instruct (default: an untrained model "
        "with the training recipe's settings)",
    )
    parser.add_argument(
        "--encoder-hidden-size",
        type=int,
        default=0,
        help="untrained model only: hyper-encoder width (default: the recipe's)",
    )
    parser.add_argument(
        "--tie-encoders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="untrained model only: one encoder for both sides (default: the recipe's)",
    )
    parser.add_argument(
        "--png", default=str(Path(__file__).with_suffix(".png")), help="plot file ('' = none)"
    )
    parser.add_argument("--json", default="", help="also write the raw measurements here")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIGS),
        help=f"comma-separated configurations, base among them (default: {','.join(CONFIGS)}; also "
        f"{','.join(EXTRA_CONFIGS)})",
    )
    args = parser.parse_args()
    configs = tuple(c.strip() for c in args.configs.split(",") if c.strip())
    unknown = sorted(set(configs) - set(CONFIGS + EXTRA_CONFIGS))
    if unknown or "base" not in configs:
        parser.error(f"--configs {args.configs!r}: choose from {CONFIGS + EXTRA_CONFIGS}, base among them")
    torch.set_num_threads(args.threads)

    from transformers.utils import logging as hf_logging

    from zip2zip import Zip2ZipForCausalLM
    from zip2zip.bundled.base import default_base_path, load_default_base_model, load_default_tokenizer

    hf_logging.set_verbosity_error()
    tokenizer = load_default_tokenizer()
    base = load_default_base_model()
    if args.model and (args.encoder_hidden_size or args.tie_encoders is not None):
        parser.error("--encoder-hidden-size and --tie-encoders shape the untrained model; --model is trained")
    if args.model == "shipped":
        from zip2zip.bundled.shipped import shipped_zip2zip_path

        args.model = shipped_zip2zip_path() or parser.error(
            "--model shipped: no trained checkpoint ships here"
        )
    if args.model:
        zip_model, zip_tokenizer = load_zip2zip(args.model, tokenizer)
        codec = zip_tokenizer.codec
        config = zip_model.config
        label = f"{args.model} (C={config.max_codebook_size}, M={config.max_subtokens})"
    else:
        settings = recipe_settings()
        if args.encoder_hidden_size:
            settings["encoder_hidden_size"] = args.encoder_hidden_size
        if args.tie_encoders is not None:
            settings["tie_encoders"] = args.tie_encoders
        zip_model = Zip2ZipForCausalLM.from_base(default_base_path(), tokenizer=tokenizer, **settings).eval()
        codec = zip_model.codec
        config = zip_model.config
        label = (
            f"untrained, recipe settings (C={config.max_codebook_size}, M={config.max_subtokens}, encoder width "
            f"{config.encoder_hidden_size}, {'tied' if config.tie_encoders else 'untied'} encoders)"
        )
    n = args.new_tokens

    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    prompts = {d: load_prompts(tokenizer, d, args.prompts, args.prompt_tokens) for d in domains}
    measured = measure(
        base, zip_model, tokenizer, prompts, n, args.pld_tokens, args.repeats, codec, configs=configs
    )
    rows, results = measured["rows"], measured["results"]

    stats = zip_model.last_generation_stats
    print(
        f"SmolLM2-135M-Instruct, greedy, CPU ({args.threads} thread(s)), batch 1, {args.prompts} prompt(s) of "
        f"{args.prompt_tokens} base tokens per domain, {n} new base tokens, {args.repeats} repeat(s); "
        f"pld and lookup = prompt_lookup_num_tokens={args.pld_tokens}; zip2zip {label}\n"
    )
    print_table(rows)
    print()
    for row in rows:
        print(f"{row['domain']}: zip2zip ms/step / base ms/step = {row['ratio']:.3f} (bar: <= 1.05)")
    for line in lookup_bars(rows):
        print(line)
    if stats is not None:
        print(f"last zip2zip generation: {stats.to_dict()}")

    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "results": results}, indent=1))
    if args.png:
        plot(rows, args.png)
        print(f"plot: {args.png}")


def print_table(rows: list[dict]) -> None:
    """The Markdown table of passes, pass time, time and throughput per domain and configuration."""
    print(
        "| domain | config | forward passes | lookup bound | ms/pass (median) | seconds for the base tokens | "
        "bytes/s | accepted / proposed codes |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for config in CONFIGS + EXTRA_CONFIGS:
            if config not in row:
                continue
            v = row[config]
            accepted = f"{v['accepted_codes']} / {v['proposed_codes']}" if v.get("proposed_codes") else ""
            bound = v.get("lookup_bound_passes", "")
            print(
                f"| {row['domain']} | {LABELS[config]} | {v['forward_passes']} | {bound} | {v['ms_per_step']:.1f} | "
                f"{v['seconds']:.2f} | {v['bytes_per_s']:.0f} | {accepted} |"
            )


def plot(
    rows: list[dict],
    path: str,
    title: str = "Greedy generation of 128 new base tokens, SmolLM2-135M, CPU, batch 1",
) -> None:
    """Steps, median step time and bytes/s per domain, one bar per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = (
        ("steps", "decoding steps"),
        ("ms_per_step", "ms per step (median)"),
        ("bytes_per_s", "generated bytes per second"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    configs = [config for config in CONFIGS + EXTRA_CONFIGS if all(config in row for row in rows)]
    width = 0.8 / max(len(configs), 1)
    for ax, (key, title) in zip(axes, metrics):
        for k, config in enumerate(configs):
            xs = [i + (k - (len(configs) - 1) / 2) * width for i in range(len(rows))]
            ax.bar(xs, [row[config][key] for row in rows], width, label=LABELS[config])
        ax.set_xticks(range(len(rows)), [row["domain"] for row in rows])
        ax.set_title(title)
    axes[1].text(
        0.02,
        0.02,
        "zip2zip/base: " + ", ".join(f"{row['domain']} {row['ratio']:.3f}" for row in rows),
        transform=axes[1].transAxes,
        fontsize=8,
    )
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
