"""``zip2zip compress``: how LZW compresses files into hypertokens (no model is loaded)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zip2zip.cli.models import load_tokenizer_or_exit
from zip2zip.cli.options import codec_options, display_options
from zip2zip.cli.output import print_stats_table, view_format

__all__ = ["compression_stats", "first_chars", "register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compress",
        parents=[codec_options(), display_options()],
        help="show how LZW compresses files into hypertokens (counts, ratio, coloured view)",
        description=(
            "Tokenize each FILE with the base tokenizer, cut its tokens into windows of --context base tokens "
            "(one model context each), LZW-compress every window and print base tokens, codes, compression "
            "ratio, hypertoken share and a view of where hypertokens fall (coloured on a terminal)."
        ),
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="text files ('-' reads standard input)")
    p.add_argument(
        "--tokenizer",
        default=None,
        metavar="PATH_OR_ID",
        help="base tokenizer or zip2zip repo, a folder or Hub id (default: the embedded SmolLM2-135M-Instruct's)",
    )
    p.add_argument("--context", type=int, default=2048, help="base tokens per window (default 2048)")
    p.add_argument(
        "--show", type=int, default=1200, help="characters of the hypertoken view per file (0: none)"
    )
    p.add_argument("--html", default=None, metavar="OUT", help="also write the coloured view as an HTML file")
    p.set_defaults(func=run)


def compression_stats(tokenizer: Any, text: str, context: int) -> dict[str, Any]:
    """Compress ``text`` window by window (``context`` base tokens each); return counts and the codes."""
    base = tokenizer.base(text, add_special_tokens=False)["input_ids"]
    windows = [base[i : i + context] for i in range(0, len(base), context)] or [[]]
    codes = [tokenizer.codec.encode(window) for window in windows]
    n_codes = sum(map(len, codes))
    n_hyper = sum(c >= tokenizer.base_vocab_size for row in codes for c in row)
    return {
        "bytes": len(text.encode("utf-8")),
        "base_tokens": len(base),
        "codes": n_codes,
        "hypertokens": n_hyper,
        "ratio": len(base) / n_codes if n_codes else 1.0,
        "hypertoken_share": n_hyper / n_codes if n_codes else 0.0,
        "windows": codes,
    }


def first_chars(codes: list[int], tokenizer: Any, chars: int) -> list[int]:
    """The shortest prefix of ``codes`` whose text reaches ``chars`` characters (hypertokens stay valid)."""
    text_length = 0
    trace = tokenizer.codec.trace(codes)
    for i, span in enumerate(trace.spans):
        text_length += span * 4  # about 4 characters per base token; precise enough to cut a preview
        if text_length >= chars:
            return codes[: i + 1]
    return codes


def run(args: argparse.Namespace) -> int:
    if args.context < 1:
        raise SystemExit(f"zip2zip compress: --context must be >= 1 base token, got {args.context}")
    tokenizer = load_tokenizer_or_exit("compress", args.tokenizer, args)
    fmt = view_format(args)
    rows = []
    html_parts = []
    for name in args.files:
        text = sys.stdin.read() if name == "-" else _read(name)
        stats = compression_stats(tokenizer, text, args.context)
        rows.append((name, stats))
        if args.show:
            view = first_chars(stats["windows"][0], tokenizer, args.show)
            print(f"\n== {name} (first window, {len(view)} codes shown)")
            print(tokenizer.visualize(view, format=fmt))
        if args.html:
            html_parts.append(f"<h3>{name}</h3>" + tokenizer.visualize(stats["windows"][0], format="html"))
    print()
    print(
        f"LZW with max_codebook_size={tokenizer.max_codebook_size}, max_subtokens={tokenizer.max_subtokens}, "
        f"windows of {args.context} base tokens"
    )
    print_stats_table(rows)
    if args.html:
        with open(args.html, "w", encoding="utf-8") as handle:
            handle.write("<html><meta charset='utf-8'><body>" + "".join(html_parts) + "</body></html>")
        print(f"wrote {args.html}")
    return 0


def _read(name: str) -> str:
    try:
        with open(name, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise SystemExit(f"zip2zip compress: cannot read {name!r} as UTF-8 text: {error}") from None
