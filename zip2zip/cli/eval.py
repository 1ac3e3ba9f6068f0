"""``zip2zip eval``: bits per byte and compression per domain, a zip2zip model beside its base model."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from zip2zip.cli.models import load_base_or_exit, load_zip2zip_or_exit
from zip2zip.cli.options import model_options, threads_options
from zip2zip.cli.output import note
from zip2zip.recipe import DOMAINS

__all__ = ["heldout_texts", "print_eval_table", "register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval",
        parents=[model_options(), threads_options()],
        help="bits per byte and compression per domain, base vs zip2zip, in one table",
        description=(
            "Score a zip2zip model and its base model on the same texts: strict bits per byte (the canonical "
            "code stream's likelihood, windows of --max-length positions each started by the bos token) and "
            "LZW compression, per domain. lm-eval's bits_per_byte with the `zip2zip` model class gives the "
            "same numbers on the same texts."
        ),
    )
    p.add_argument(
        "--base",
        default=None,
        metavar="PATH_OR_ID",
        help="base model folder or Hub id (default: the one the zip2zip model was made from, when it is local)",
    )
    p.add_argument("--no-base", action="store_true", help="score the zip2zip model only")
    p.add_argument(
        "--domains", nargs="+", default=list(DOMAINS), help="project corpora domains (default: all)"
    )
    p.add_argument("--samples", type=int, default=4, help="held-out texts per domain (default 4)")
    p.add_argument(
        "--data", nargs="+", default=None, metavar="FILE", help=".jsonl or text files, one domain per file"
    )
    p.add_argument("--text-field", default="text", help="text field of .jsonl files (default 'text')")
    p.add_argument("--max-length", type=int, default=None, help="positions per scored window (default 1024)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the result as JSON (for export)")
    p.set_defaults(func=run)


def heldout_texts(domains: Sequence[str], samples: int) -> dict[str, list[str]]:
    """``samples`` held-out chunks per project domain (skipping domains whose source is unavailable)."""
    from zip2zip.corpora.debian import CorpusUnavailableError
    from zip2zip.corpora.store import load_corpus

    texts = {}
    for domain in domains:
        try:
            texts[domain] = load_corpus(domain, "heldout", max_docs=samples)
        except CorpusUnavailableError as error:
            note(f"[{domain}] skipped: {error}")
    if not texts:
        raise SystemExit("no held-out texts available for any domain; pass --data FILE instead")
    return texts


def _file_texts(paths: Sequence[str], text_field: str) -> dict[str, list[str]]:
    from zip2zip.corpora.text_files import read_texts

    try:
        return {os.path.splitext(os.path.basename(path))[0]: read_texts(path, text_field) for path in paths}
    except (OSError, ValueError) as error:
        raise SystemExit(f"zip2zip eval: {error}") from None


def run(args: argparse.Namespace) -> int:
    from zip2zip.evaluation.scoring import compare_on_domains
    from zip2zip.utils.hardware import set_cpu_threads

    if args.data:
        texts = _file_texts(args.data, args.text_field)
        description = "the texts of " + ", ".join(os.path.basename(p) for p in args.data)
    else:
        texts = heldout_texts(args.domains, args.samples)
        description = f"{args.samples} held-out texts per domain of the project corpora"
    set_cpu_threads(args.threads)
    model, tokenizer, trained = load_zip2zip_or_exit("eval", args, device=args.device)
    base = None
    if not args.no_base:
        base = load_base_or_exit("eval", model, args.base, device=args.device)
        if base is None:
            note(
                "no --base given and the zip2zip model's base is not a local folder: scoring the zip2zip model only"
            )
    result = compare_on_domains(
        texts,
        model,
        tokenizer,
        *(base or (None, None)),
        max_length=args.max_length,
        batch_size=args.batch_size,
        progress=True,
        description=description,
    )
    result["trained"] = trained
    print_eval_table(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        note(f"wrote {args.json}")
    return 0


def print_eval_table(result: dict[str, Any]) -> None:
    has_base = all("base" in entry for entry in result["domains"].values())
    header = f"{'domain':<16} {'bytes':>9} {'compression':>12} {'bpb zip2zip':>12}"
    if has_base:
        header += f" {'bpb base':>9} {'delta':>8}"
    which = "trained" if result.get("trained") else "UNTRAINED"
    print(
        f"\nStrict bits per byte of the {which} zip2zip model, windows of {result['max_length']} positions "
        f"({result['description']}):"
    )
    print(header)
    print("-" * len(header))
    for name, entry in [*result["domains"].items(), ("all", result["overall"])]:
        z = entry["zip2zip"]
        line = f"{name[-16:]:<16} {z['bytes']:>9,} {z['compression']:>12.3f} {z['bits_per_byte']:>12.4f}"
        if has_base:
            b = entry["base"]["bits_per_byte"]
            line += f" {b:>9.4f} {z['bits_per_byte'] - b:>+8.4f}"
        print(line)
