"""``zip2zip seed``: build an initial codebook (a seed) from the project's corpora and write it as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from zip2zip.cli.models import load_tokenizer_or_exit
from zip2zip.cli.options import codec_options

__all__ = ["register", "run"]

DEFAULT_DOMAINS = ("code", "prose", "math", "multilingual", "chat")


def register(subparsers: Any) -> None:
    from zip2zip.seeding import SEED_DOMAINS, SEED_RULES

    p = subparsers.add_parser(
        "seed",
        parents=[codec_options("codec (the tokenizer's, else the recipe's values)")],
        help="build an initial codebook (a seed) from the corpora: hypertokens every sequence knows at its start",
        description=(
            "Pick runs of 2..M base tokens from the train split of the project's corpora (one domain, or several "
            "mixed with equal base tokens each) and write them as a seed file. --rule frequency takes the most "
            "frequent runs; --rule gain starts from a larger frequency ranking and drops the entries that save the "
            "fewest codes on short windows of other train text. Give a model the seed with "
            "zip2zip.apply_seed(model, base_tokenizer, Seed.load(FILE)) (or examples/train_smollm2.py --seed-file FILE)."
        ),
    )
    p.add_argument("--output", "-o", required=True, metavar="FILE", help="where to write the seed (JSON)")
    p.add_argument(
        "--domains",
        nargs="+",
        choices=SEED_DOMAINS,
        default=list(DEFAULT_DOMAINS),
        help=f"corpora to take runs from (default: {' '.join(DEFAULT_DOMAINS)}, mixed)",
    )
    p.add_argument("--size", type=int, default=1024, help="entries of the seed (default 1024)")
    p.add_argument(
        "--rule", choices=SEED_RULES, default="frequency", help="how runs are picked (default frequency)"
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="PATH_OR_ID",
        help="zip2zip repo or base tokenizer whose codec the seed is for (default: the embedded SmolLM2's)",
    )
    p.add_argument(
        "--max-base-tokens", type=int, default=1_000_000, help="base tokens counted, all domains together"
    )
    p.add_argument(
        "--tuning-base-tokens",
        type=int,
        default=100_000,
        help="base tokens of tuning windows for --rule gain, all domains together",
    )
    p.add_argument("--window", type=int, default=128, help="base tokens per tuning window (default 128)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zip2zip.seeding import domain_documents, seed_from_corpora, windows_of

    for name in ("size", "max_base_tokens", "tuning_base_tokens", "window"):
        if getattr(args, name) < (0 if name == "size" else 1):
            raise SystemExit(
                f"zip2zip seed: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    tokenizer = load_tokenizer_or_exit("seed", args.tokenizer, args)
    if args.size > tokenizer.max_codebook_size:
        raise SystemExit(
            f"zip2zip seed: --size {args.size} is more than max_codebook_size={tokenizer.max_codebook_size} (the "
            "seed and the entries a sequence creates share the codebook)"
        )
    try:
        seed = seed_from_corpora(
            tokenizer,
            args.domains,
            args.size,
            args.rule,
            max_base_tokens=args.max_base_tokens,
            tuning_base_tokens=args.tuning_base_tokens,
            window=args.window,
        )
    except (ValueError, OSError) as error:
        raise SystemExit(f"zip2zip seed: {error}") from None
    seed.save(args.output)
    lengths = [len(entry) for entry in seed.entries]
    print(
        f"wrote {args.output}: {len(seed)} entries ({', '.join(f'{lengths.count(n)} of {n}' for n in sorted(set(lengths)))} "
        f"base tokens) by {args.rule} from {' + '.join(args.domains)}, {seed.counted_base_tokens:,} base tokens counted"
    )
    print("first entries: " + " | ".join(repr(tokenizer.base.decode(list(e))) for e in seed.entries[:12]))

    from zip2zip.model.lzw import LZWCodec

    settings = (tokenizer.base_vocab_size, tokenizer.max_codebook_size, tokenizer.max_subtokens)
    codec = LZWCodec(*settings, tokenizer.disabled_ids)
    seeded = LZWCodec(*settings, tokenizer.disabled_ids, initial_codebook=seed.entries)
    print(f"held-out windows of {args.window} base tokens, base tokens per code:")
    for domain in args.domains:
        windows = windows_of(domain_documents(tokenizer, domain, "heldout", 20_000), args.window, 20_000)
        if not windows:
            continue
        tokens = sum(map(len, windows))
        plain = tokens / sum(len(codec.encode(w)) for w in windows)
        with_seed = tokens / sum(len(seeded.encode(w)) for w in windows)
        print(f"  {domain:<13} plain {plain:.3f}  seeded {with_seed:.3f}")
    return 0
