"""Options several subcommands share, declared once as argparse parent parsers.

Defaults come from :mod:`zip2zip.recipe`: a flag left unset is ``None`` and the recipe's value applies, so
the help can name the value without this module holding a copy of it.
"""

from __future__ import annotations

import argparse
from typing import Any

from zip2zip.recipe import ZIP2ZIP_SETTINGS

__all__ = [
    "add_codec_arguments",
    "codec_options",
    "codec_settings",
    "display_options",
    "model_options",
    "threads_options",
]


def add_codec_arguments(group: Any) -> None:
    """Add ``--max-codebook-size``, ``--max-subtokens``, ``--protect-digits`` (the LZW codec's settings) to
    ``group`` (a parser or an argument group)."""
    group.add_argument(
        "--max-codebook-size",
        type=int,
        default=None,
        metavar="C",
        help=f"hypertokens one sequence may create (default {ZIP2ZIP_SETTINGS['max_codebook_size']})",
    )
    group.add_argument(
        "--max-subtokens",
        type=int,
        default=None,
        metavar="M",
        help=f"base tokens per hypertoken at most (default {ZIP2ZIP_SETTINGS['max_subtokens']})",
    )
    group.add_argument(
        "--protect-digits",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"never merge digit tokens (default {'on' if ZIP2ZIP_SETTINGS['protect_digits'] else 'off'})",
    )
    group.add_argument(
        "--protect-whitespace",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="never merge whitespace-only tokens (default "
        f"{'on' if ZIP2ZIP_SETTINGS.get('protect_whitespace') else 'off'})",
    )


def codec_options(title: str = "codec (the recipe's values unless given)") -> argparse.ArgumentParser:
    """A parent parser with the codec settings (:func:`add_codec_arguments`) in a group called ``title``."""
    parent = argparse.ArgumentParser(add_help=False)
    add_codec_arguments(parent.add_argument_group(title))
    return parent


def codec_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The codec settings given on the command line (unset ones are left to the recipe)."""
    names = ("max_codebook_size", "max_subtokens", "protect_digits", "protect_whitespace")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def model_options() -> argparse.ArgumentParser:
    """``--model``, plus the codec settings of the untrained model used when no trained one is available."""
    parent = argparse.ArgumentParser(
        add_help=False, parents=[codec_options("untrained model (no trained one ships)")]
    )
    parent.add_argument(
        "--model",
        default=None,
        metavar="PATH_OR_ID",
        help="zip2zip model folder or Hub id (default: the trained model shipped with the package, or an "
        "untrained one of the embedded SmolLM2-135M-Instruct if none ships)",
    )
    return parent


def threads_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: the cores other processes leave idle)",
    )
    return parent


def display_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--no-color",
        action="store_true",
        help="bracket hypertokens instead of colouring them (colour is used only on a terminal and never with "
        "NO_COLOR set)",
    )
    return parent
