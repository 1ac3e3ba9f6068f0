"""Showing how a text splits into base tokens and hypertokens: terminal colours, HTML or brackets.

This file is copied into exported Hub repos with the tokenizer: it imports only the standard library.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

__all__ = ["text_pieces", "visualize"]

# Background colours for consecutive hypertokens (256-colour ANSI codes and their HTML equivalents).
_ANSI_BACKGROUNDS = (153, 222, 157, 218, 189, 230)
_HTML_BACKGROUNDS = ("#afd7ff", "#ffd787", "#afffaf", "#ffafd7", "#d7d7ff", "#ffffd7")


def visualize(
    tokenizer: Any,
    ids_or_text: Any,
    format: str = "ansi",
    add_special_tokens: bool = False,
    skip_special_tokens: bool = False,
) -> str:
    """The text of `Zip2ZipTokenizer.visualize` (see there)."""
    if format not in ("ansi", "html", "plain"):
        raise ValueError(f"format must be 'ansi', 'html' or 'plain', got {format!r}")
    if hasattr(ids_or_text, "tolist"):
        ids_or_text = ids_or_text.tolist()
    if isinstance(ids_or_text, (list, tuple)) and ids_or_text and not isinstance(ids_or_text[0], int):
        rows = [
            tokenizer.visualize(row, format, add_special_tokens, skip_special_tokens) for row in ids_or_text
        ]
        return "\n".join(rows)
    if isinstance(ids_or_text, str):
        codes = tokenizer.encode(ids_or_text, add_special_tokens=add_special_tokens)
    else:
        codes = [int(c) for c in ids_or_text]
    phrases = tokenizer._phrases(codes)  # the whole sequence, so every hypertoken is known
    special = set(tokenizer.all_special_ids)
    if skip_special_tokens:  # specials are disabled ids: dropping them leaves every other code intact
        kept = [(code, phrase) for code, phrase in zip(codes, phrases) if code not in special]
        codes, phrases = [c for c, _ in kept], [p for _, p in kept]
    pieces = text_pieces(tokenizer.base.decode, phrases)
    out = []
    hyper_index = 0
    for code, phrase, piece in zip(codes, phrases, pieces):
        is_special = code in special
        is_hyper = code >= tokenizer.codec.base_vocab_size
        out.append(_render_piece(piece, code, phrase, is_hyper, is_special, hyper_index, format))
        hyper_index += is_hyper
    body = "".join(out)
    if format == "html":
        return f'<pre class="zip2zip-tokens" style="white-space: pre-wrap; line-height: 1.6">{body}</pre>'
    return body


def text_pieces(decode: Callable[[list[int]], str], phrases: list[tuple[int, ...]]) -> list[str]:
    """The text each code stands for; the pieces join to the decoded sequence.

    Decoding each code alone is right for most vocabularies, but not when a byte-level character is
    split across codes, or when the decoder strips the leading space of a text. Then each piece is what
    the code adds to the text decoded from a few codes before it (an incomplete trailing character is
    left to the code that completes it); the context start is the same on both sides, so its own
    artefacts cancel. If even that disagrees with the whole, pieces are grown from full prefixes.
    """
    pieces = [decode(list(phrase)) for phrase in phrases]
    flat = [i for phrase in phrases for i in phrase]
    whole = decode(flat)
    if "".join(pieces) == whole:
        return pieces
    starts = [0]
    for phrase in phrases:
        starts.append(starts[-1] + len(phrase))
    last = len(phrases) - 1
    for context in (8, None):  # a few codes of context, then (slow but sure) the whole prefix
        pieces = []
        for k in range(len(phrases)):
            begin = 0 if context is None else starts[max(0, k - context)]
            before = decode(flat[begin : starts[k]]).rstrip("\ufffd")
            after = decode(flat[begin : starts[k + 1]])
            after = after if k == last else after.rstrip("\ufffd")
            pieces.append(after[len(before) :] if after.startswith(before) else "")
        if "".join(pieces) == whole:
            break
    return pieces


def _render_piece(
    piece: str, code: int, phrase: tuple[int, ...], is_hyper: bool, is_special: bool, index: int, format: str
) -> str:
    if format == "plain":
        return f"[{piece}]" if is_hyper else piece
    if format == "html":
        text = html.escape(piece)
        if is_hyper:
            colour = _HTML_BACKGROUNDS[index % len(_HTML_BACKGROUNDS)]
            title = f"{code} = {list(phrase)}"
            return f'<span class="z2z-hyper" style="background: {colour}" title="{title}">{text}</span>'
        if is_special:
            return f'<span class="z2z-special" style="color: #888" title="{code}">{text}</span>'
        return text
    if is_hyper:
        style = f"\x1b[30;48;5;{_ANSI_BACKGROUNDS[index % len(_ANSI_BACKGROUNDS)]}m"
    elif is_special:
        style = "\x1b[2;35m"
    else:
        return piece
    # Reset before each newline so a background never runs to the end of a terminal line.
    return "\n".join(f"{style}{line}\x1b[0m" if line else "" for line in piece.split("\n"))
