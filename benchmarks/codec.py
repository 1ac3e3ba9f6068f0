"""Codec speed: our pure-Python LZW vs the Rust reference and vs BPE tokenization of the same text.

Windows of 1024 base tokens of real code and prose are tokenized with the SmolLM2 tokenizer; then, side by
side in one run, each is timed (median over repeats, in base tokens per second):

* ``bpe``: the base tokenizer's own ``__call__`` on the window's text (what every request pays anyway);
* ``ours encode`` / ``ours decode``: :class:`zip2zip.model.lzw.LZWCodec`, one sequence at a time;
* ``rust encode`` / ``rust batch_encode``: ``zip2zip-compression==0.3.4`` (``pip install .[bench]``).

``--many-disabled`` runs one case instead: encode and decode of one stream of 100,000 base ids in which 1,000
distinct disabled ids occur (a vocabulary whose digit pieces are all protected, reading long numeric text),
side by side; encode must not cost more per id because the disabled set is large.

Run: ``python -m benchmarks.codec [--windows 64] [--repeats 7]`` or ``python -m benchmarks.codec --many-disabled``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from zip2zip.model.lzw import LZWCodec

WINDOW = 1024


def load_windows(tokenizer, domain: str, count: int) -> list[tuple[str, list[int]]]:
    """Up to ``count`` (text, ids) windows of exactly ``WINDOW`` base tokens from a held-out corpus.

    Documents are tokenized and concatenated (a blank line between them) before cutting windows, so short
    documents contribute too.
    """
    from zip2zip.corpora.store import load_corpus

    windows: list[tuple[str, list[int]]] = []
    stream: list[int] = []
    separator = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    for doc in load_corpus(domain, split="heldout"):
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + separator
        while len(stream) >= WINDOW:
            piece, stream = stream[:WINDOW], stream[WINDOW:]
            windows.append((tokenizer.decode(piece), piece))
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


def measure_domain(
    domain: str, texts: list[str], tokenizer, codec: LZWCodec, rust, repeats: int
) -> list[tuple]:
    """Time BPE, our codec and the Rust reference on the same windows; print the ratios."""
    # Decoding a window and re-tokenizing its text can differ at the cut; the codec gets the ids the text
    # tokenizes to, so BPE and LZW see the same sequence.
    seqs = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    codes = [codec.encode(ids) for ids in seqs]
    assert all(codec.decode(c) == ids for c, ids in zip(codes, seqs))
    n_tokens = sum(map(len, seqs))
    timings = {
        "bpe (tokenizer __call__ per text)": median_seconds(
            lambda: [tokenizer(t, add_special_tokens=False) for t in texts], repeats
        ),
        "ours encode": median_seconds(lambda: [codec.encode(ids) for ids in seqs], repeats),
        "ours decode": median_seconds(lambda: [codec.decode(c) for c in codes], repeats),
    }
    if rust is not None:
        assert [rust.encode(ids)[0] for ids in seqs] == codes, "Rust reference disagrees with our encoder"
        timings["rust encode"] = median_seconds(lambda: [rust.encode(ids) for ids in seqs], repeats)
        timings["rust batch_encode"] = median_seconds(lambda: rust.batch_encode(seqs), repeats)
    ratio = n_tokens / sum(map(len, codes))
    ours = timings["ours encode"]
    print(
        f"\n{domain}: {len(seqs)} windows, {n_tokens} base tokens, compression {ratio:.3f} base tokens per code"
    )
    print(f"  ours encode adds {ours / timings['bpe (tokenizer __call__ per text)']:.1%} to BPE tokenization")
    if rust is not None:
        print(f"  ours vs rust encode: {timings['rust encode'] / ours:.2f}x faster")
        print(f"  ours vs rust batch_encode: {timings['rust batch_encode'] / ours:.2f}x faster")
    return [(domain, name, n_tokens / sec / 1e6, sec / len(seqs) * 1e6) for name, sec in timings.items()]


def measure_many_disabled(repeats: int, length: int = 100_000, distinct: int = 1000) -> dict[str, float]:
    """Encode vs decode of ``length`` ids of which one in five is one of ``distinct`` disabled ids."""
    rng = random.Random(0)
    V = 49152
    disabled = list(range(1000, 1000 + distinct))
    words = [rng.randrange(5000, V) for _ in range(200)]
    ids = [disabled[(k // 5) % distinct] if k % 5 == 4 else rng.choice(words) for k in range(length)]
    codec = LZWCodec(V, 2048, 4, disabled)
    codes = codec.encode(ids)
    assert codec.decode(codes) == ids and len(codec.disabled_ids.intersection(ids)) == distinct
    encode = median_seconds(lambda: codec.encode(ids), repeats)
    decode = median_seconds(lambda: codec.decode(codes), repeats)
    print(f"\n{length} base ids, {distinct} distinct disabled ids present, {len(codes)} codes:")
    print("| method | s (median) | M base ids/s |")
    print("|---|---:|---:|")
    for name, seconds in (("ours encode", encode), ("ours decode", decode)):
        print(f"| {name} | {seconds:.4f} | {length / seconds / 1e6:.2f} |")
    print(f"encode / decode = {encode / decode:.2f}x")
    return {"encode": encode, "decode": decode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-codebook-size", type=int, default=2048)
    parser.add_argument("--max-subtokens", type=int, default=4)
    parser.add_argument(
        "--many-disabled",
        action="store_true",
        help="only the case of 100,000 ids with 1,000 distinct disabled ids present (encode vs decode)",
    )
    args = parser.parse_args()
    if args.many_disabled:
        measure_many_disabled(args.repeats)
        return

    from zip2zip.bundled.base import load_default_tokenizer

    tokenizer = load_default_tokenizer()
    disabled = sorted(set(tokenizer.all_special_ids))
    V = len(tokenizer)
    codec = LZWCodec(V, args.max_codebook_size, args.max_subtokens, disabled)
    try:
        import zip2zip_compression
    except ImportError:
        zip2zip_compression = None
        print("zip2zip-compression is not installed (pip install -e '.[bench]'); skipping the Rust reference")

    rows = []
    for domain in ("code", "prose"):
        windows = load_windows(tokenizer, domain, args.windows)
        if not windows:
            print(f"no {domain} text available; skipping")
            continue
        rust = None
        if zip2zip_compression is not None:
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else disabled[0]
            rust = zip2zip_compression.LZWCompressor(
                V, args.max_codebook_size, args.max_subtokens, pad, disabled
            )
        rows += measure_domain(domain, [text for text, _ in windows], tokenizer, codec, rust, args.repeats)

    print(f"\n| domain | method | M base tokens/s | µs per {WINDOW}-token sequence |")
    print("|---|---|---:|---:|")
    for domain, name, mtps, us in rows:
        print(f"| {domain} | {name} | {mtps:.2f} | {us:.0f} |")


if __name__ == "__main__":
    main()
