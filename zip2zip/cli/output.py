"""Where the command line writes: results on standard output, notes and progress on standard error, colour
only on a terminal that wants it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["note", "print_stats_table", "use_color", "view_format"]


def use_color(stream: TextIO | None = None, no_color: bool = False) -> bool:
    """Colour only when ``stream`` (default: standard output) is a terminal, ``no_color`` is off and the
    ``NO_COLOR`` environment variable is unset or empty (https://no-color.org)."""
    stream = sys.stdout if stream is None else stream
    if no_color or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def view_format(args: argparse.Namespace, stream: TextIO | None = None) -> str:
    """The `Zip2ZipTokenizer.visualize` format for ``stream``: ``"ansi"`` where colour is wanted, else ``"plain"``."""
    return "ansi" if use_color(stream, getattr(args, "no_color", False)) else "plain"


def note(message: str) -> None:
    """A message about the run rather than its result: standard error, so piped results stay clean."""
    print(message, file=sys.stderr, flush=True)


def print_stats_table(rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Bytes, base tokens, codes, compression ratio and hypertoken share per named text."""
    header = f"{'':<28} {'bytes':>9} {'base tokens':>12} {'codes':>9} {'ratio':>7} {'hypertokens':>12}"
    print(header)
    print("-" * len(header))
    for name, st in rows:
        print(
            f"{name[-28:]:<28} {st['bytes']:>9,} {st['base_tokens']:>12,} {st['codes']:>9,} "
            f"{st['ratio']:>7.3f} {st['hypertoken_share']:>11.1%}"
        )
