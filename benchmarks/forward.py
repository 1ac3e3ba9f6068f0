"""Forward speed: zip2zip on compressed ids vs the base model on base ids, per *base* token.

Windows of 1024 base tokens of held-out code and prose are tokenized with the SmolLM2 tokenizer. Side by
side in one run, each window goes through

* ``base``: the base SmolLM2 forward on the 1024 base ids (full logits, width V);
* ``zip2zip``: the (untrained) zip2zip forward on the window's LZW codes (full logits, width V + C),
  codebooks rebuilt from the ids by the codec, exactly as ``model(**batch)`` does in training.

Times are medians over repeats, summed over windows and divided by the number of base tokens, so a
shorter compressed sequence shows up as a lower cost per base token. The zip2zip time is broken down
into the codec (codebook, accept limits and candidates from the ids), the hyper-encoders (input vectors
of the hypertokens used, output vectors of every codebook entry and KwKwK candidate), the base model on
``inputs_embeds``, and the output layer (LM head, slot scores, mask).

Run: ``python -m benchmarks.forward [--windows 4] [--repeats 5] [--dtype float32] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

WINDOW = 1024


def load_windows(tokenizer, domain: str, count: int) -> list[list[int]]:
    """Up to ``count`` windows of exactly ``WINDOW`` base ids from a held-out corpus."""
    try:
        from zip2zip.corpora.store import load_corpus

        docs = load_corpus(domain, split="heldout")
    except Exception as error:  # corpora need their sources; code falls back to the stdlib
        if domain != "code":
            raise
        print(f"(corpus unavailable: {error}; using stdlib sources for code)")
        import pathlib
        import sysconfig

        root = pathlib.Path(sysconfig.get_paths()["stdlib"])
        docs = [p.read_text(errors="ignore") for p in sorted(root.glob("*.py"))[:50]]
    windows: list[list[int]] = []
    for doc in docs:
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids) - WINDOW + 1, WINDOW):
            windows.append(ids[start : start + WINDOW])
            if len(windows) == count:
                return windows
    return windows


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_medians(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in alternation so a change of machine load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def time_window(model, base, ids: list[int], repeats: int) -> dict[str, float]:
    from zip2zip.model.encoders_zip2zip import encode_distinct

    codes = model.codec.encode(ids)
    base_ids = torch.tensor([ids])
    code_ids = torch.tensor([codes])
    decoder = model.get_decoder()
    V = model.config.base_vocab_size
    out: dict[str, float] = {"codes": len(codes)}
    with torch.no_grad():
        out.update(
            paired_medians(
                {"base": lambda: base(input_ids=base_ids), "zip2zip": lambda: model(input_ids=code_ids)},
                repeats,
            )
        )

        # Breakdown: the steps forward takes, timed one by one.
        out["codec"] = median_seconds(lambda: model.prepare_codebook(code_ids), repeats)
        state = model.prepare_codebook(code_ids)
        codebook, limits, candidates = state["codebook"], state["accept_limits"], state["candidates"]

        def encoders():
            is_hyper = code_ids >= V
            rows, cols = is_hyper.nonzero(as_tuple=True)
            encode_distinct(codebook[rows, code_ids[rows, cols] - V], model.embed_hypertokens)
            has = candidates[..., 0] >= 0
            entries = torch.cat([codebook[codebook[..., 0] >= 0], candidates[has]])
            return encode_distinct(entries, model.unembed_hypertokens)

        out["encoders"] = median_seconds(encoders, repeats)
        vectors = model.unembed_codebook(codebook)
        embeds = model.embed_codebook(codebook)
        is_hyper = code_ids >= V
        inputs = model.get_input_embeddings()(torch.where(is_hyper, 0, code_ids))
        rows, cols = is_hyper.nonzero(as_tuple=True)
        inputs[rows, cols] = embeds[rows, code_ids[rows, cols] - V]
        positions = model._position_ids(code_ids, None, codebook)
        out["base model"] = median_seconds(
            lambda: decoder(inputs_embeds=inputs, position_ids=positions, use_cache=False), repeats
        )
        hidden = decoder(inputs_embeds=inputs, position_ids=positions, use_cache=False).last_hidden_state
        out["output layer"] = median_seconds(
            lambda: model.compute_logits(hidden, codebook, limits, None, vectors), repeats
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--max-codebook-size", type=int, default=2048)
    parser.add_argument("--max-subtokens", type=int, default=4)
    parser.add_argument("--position-mode", default="compressed", choices=["compressed", "base"])
    parser.add_argument("--domains", default="code,prose", help="comma-separated corpus domains")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 is steadier on a shared, busy machine)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from zip2zip import Zip2ZipForCausalLM
    from zip2zip.bundled.base import load_default_base_model, load_default_tokenizer

    dtype = getattr(torch, args.dtype)
    tokenizer = load_default_tokenizer()
    base = load_default_base_model(dtype=dtype).eval()
    model = Zip2ZipForCausalLM.from_base(
        base,
        tokenizer=tokenizer,
        max_codebook_size=args.max_codebook_size,
        max_subtokens=args.max_subtokens,
        position_mode=args.position_mode,
    ).eval()
    encoder_params = sum(
        p.numel() for n, p in model.named_parameters() if not n.startswith("language_model.")
    )
    print(
        f"SmolLM2-135M ({args.dtype}, {torch.get_num_threads()} threads); zip2zip M={args.max_subtokens}, "
        f"C={args.max_codebook_size}, encoders {encoder_params / 1e6:.1f}M params (untrained); "
        f"windows of {WINDOW} base tokens, median of {args.repeats} repeats"
    )
    header = f"{'domain':<8} {'ratio':>6} {'base us/tok':>12} {'z2z us/tok':>11} {'z2z/base':>9}   breakdown of z2z (us/base tok)"
    print(header)
    print("-" * len(header))
    for domain in args.domains.split(","):
        windows = load_windows(tokenizer, domain, args.windows)
        if not windows:
            print(f"{domain:<8} (no windows)")
            continue
        results = [time_window(model, base, ids, args.repeats) for ids in windows]
        tokens = WINDOW * len(results)
        total = {key: sum(r[key] for r in results) for key in results[0]}
        per = {key: 1e6 * value / tokens for key, value in total.items() if key != "codes"}
        parts = ", ".join(
            f"{key} {per[key]:.0f}" for key in ("codec", "encoders", "base model", "output layer")
        )
        print(
            f"{domain:<8} {tokens / total['codes']:>6.3f} {per['base']:>12.0f} {per['zip2zip']:>11.0f} "
            f"{per['zip2zip'] / per['base']:>9.3f}   {parts}"
        )
    print("ratio = base tokens per compressed token; bar: z2z/base <= 0.85 on code")


if __name__ == "__main__":
    main()
