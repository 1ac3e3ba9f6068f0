"""The subcommands' way to load models: :mod:`zip2zip.loading`, with its errors turned into one-line exits."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, TypeVar

from zip2zip.cli.options import codec_settings
from zip2zip.cli.output import note

__all__ = ["UNTRAINED_NOTE", "load_base_or_exit", "load_tokenizer_or_exit", "load_zip2zip_or_exit"]

T = TypeVar("T")

UNTRAINED_NOTE = (
    "note: the zip2zip model is UNTRAINED (freshly initialised hyper-encoders): its compression and decoding "
    "steps are real, its text quality is not that of a trained model (train one with `zip2zip train`)"
)


def _or_exit(command: str, load: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from zip2zip.bundled.base import DefaultModelUnavailableError

    try:
        return load(*args, **kwargs)
    except (ValueError, OSError, DefaultModelUnavailableError) as error:
        raise SystemExit(f"zip2zip {command}: {error}") from None


def load_zip2zip_or_exit(command: str, args: argparse.Namespace, device: Any = None) -> Any:
    """`zip2zip.loading.load_zip2zip` for ``--model`` and the codec flags; notes an untrained model."""
    from zip2zip.loading import load_zip2zip

    loaded = _or_exit(command, load_zip2zip, args.model, device=device, **codec_settings(args))
    if not loaded.trained:
        note(UNTRAINED_NOTE)
    return loaded


def load_base_or_exit(command: str, model: Any, path_or_id: str | None = None, device: Any = None) -> Any:
    """`zip2zip.loading.load_base_model`: ``(model, tokenizer)``, or ``None`` when no base is known."""
    from zip2zip.loading import load_base_model

    return _or_exit(command, load_base_model, model, path_or_id, device=device)


def load_tokenizer_or_exit(command: str, path_or_id: str | None, args: argparse.Namespace) -> Any:
    from zip2zip.loading import load_zip2zip_tokenizer

    return _or_exit(command, load_zip2zip_tokenizer, path_or_id, **codec_settings(args))
