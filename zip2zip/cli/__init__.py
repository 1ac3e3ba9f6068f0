"""The ``zip2zip`` command line: one small module per subcommand, each with ``register(subparsers)`` and
``run(args)``.

Add a subcommand by writing such a module and listing it in :data:`COMMANDS`. Options several subcommands
share are parent parsers in :mod:`zip2zip.cli.options`; models are loaded through :mod:`zip2zip.loading`.
Nothing heavy (torch, transformers, TRL) is imported before a subcommand runs, so ``zip2zip --help`` and
``zip2zip COMMAND --help`` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from zip2zip.cli import compress, demo, export, generate, push, seed, serve, train
from zip2zip.cli import eval as eval_command  # the module of `zip2zip eval`; `eval` itself stays the builtin
from zip2zip.cli.compress import compression_stats

__all__ = ["COMMANDS", "build_parser", "compression_stats", "main"]

COMMANDS = (train, compress, seed, demo, export, push, eval_command, generate, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zip2zip",
        description="Inference-time adaptive tokenization (LZW hypertokens) for Hugging Face causal LMs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="info-level logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
