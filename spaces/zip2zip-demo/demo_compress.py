"""The Compress tab: a text tokenized by the base tokenizer and by zip2zip, side by side.

Only the codec runs here (no model): the text is base-tokenized once, then LZW-compressed with the M and C
chosen in the page, which may differ from the model's own settings. Every piece of text shown is a slice of
the pasted text (from the base tokenizer's character offsets), so the rendered panes read exactly as the
input, and every hypertoken carries its constituents in its tooltip.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from zip2zip.model.lzw import LZWCodec

MAX_TEXT_CHARS = 50_000
"""Longest text the page compresses (about 12,000 base tokens): keeps a CPU Space responsive."""
MAX_SUBTOKENS_RANGE = (1, 16)
MAX_CODEBOOK_RANGE = (0, 8192)
GROWTH_POINTS = 200
"""Points of the codebook-growth curve sent to the page (sampled evenly over the codes)."""

HYPER_COLOURS = ("#afd7ff", "#ffd787", "#afffaf", "#ffafd7", "#d7d7ff", "#ffffd7")
BASE_COLOURS = ("#eeeeee", "#dadada")


class DemoInputError(ValueError):
    """Bad input from a visitor: the message is shown in the page as it is."""


@dataclass
class CompressResult:
    """Everything the Compress tab shows for one text."""

    base_html: str
    zip2zip_html: str
    counts: dict[str, Any]
    codebook_rows: list[list[Any]] = field(default_factory=list)
    growth: list[tuple[int, int]] = field(default_factory=list)
    """(codes read so far, codebook entries so far), at most GROWTH_POINTS points."""


def check_setting(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]``, else a :class:`DemoInputError` naming the setting."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.") from None
    if number != int(number) or not low <= number <= high:
        raise DemoInputError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    return int(number)


def check_text(text: Any, what: str, limit: int) -> str:
    """A non-empty string of at most ``limit`` characters, else a :class:`DemoInputError`."""
    if not isinstance(text, str) or not text.strip():
        raise DemoInputError(f"The {what} is empty: paste or type some text first.")
    if len(text) > limit:
        raise DemoInputError(
            f"The {what} has {len(text):,} characters; this demo takes at most {limit:,}. Paste a shorter "
            "text (or run `zip2zip compress FILE` locally for whole files)."
        )
    return text


def token_pieces(base_tokenizer: Any, text: str, ids: list[int]) -> list[str]:
    """The slice of ``text`` each base token stands for; the slices join to ``text``.

    Uses the fast tokenizer's character offsets (a character split over several byte-level tokens goes to
    the first of them; gaps go to the token after them). Without offsets, or if they belong to other ids,
    each token is decoded alone.
    """
    try:
        encoding = base_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoding["offset_mapping"]
        same = list(encoding["input_ids"]) == list(ids)
    except (NotImplementedError, TypeError, ValueError, KeyError):
        same = False
    if not same:
        return [base_tokenizer.decode([i]) for i in ids]
    pieces, done = [], 0
    for k, (_, end) in enumerate(offsets):
        end = len(text) if k == len(offsets) - 1 else max(end, done)
        pieces.append(text[done:end])
        done = end
    return pieces


def _quote(piece: str) -> str:
    return repr(piece).replace("\\n", "\u21b5")


def hyper_span(text: str, code: int | None, constituents: list[str], index: int) -> str:
    """One highlighted hypertoken; its tooltip lists its id (when known) and the text of each constituent."""
    colour = HYPER_COLOURS[index % len(HYPER_COLOURS)]
    name = "hypertoken" if code is None else f"hypertoken {code}"
    title = f"{name} = " + " + ".join(_quote(c) for c in constituents)
    return (
        f'<span class="z2z-hyper" style="background:{colour}" title="{html.escape(title)}">'
        f"{html.escape(text)}</span>"
    )


def base_span(text: str, code: int, index: int, special: bool = False) -> str:
    """One base token, in alternating grey so token boundaries show."""
    colour = BASE_COLOURS[index % len(BASE_COLOURS)]
    style = f"background:{colour}" + ("; color:#a0a" if special else "")
    return (
        f'<span class="z2z-base" style="{style}" title="token {code}: {html.escape(_quote(text))}">'
        f"{html.escape(text)}</span>"
    )


def pane(body: str, elem_class: str) -> str:
    return f'<pre class="z2z-pane {elem_class}">{body}</pre>'


def compress(tokenizer: Any, text: str, max_subtokens: Any, max_codebook_size: Any) -> CompressResult:
    """Tokenize ``text`` with the base tokenizer and with zip2zip (LZW with M and C); render both.

    ``tokenizer`` is a ``Zip2ZipTokenizer``: its base tokenizer and never-merged ids are used, with the
    codec settings given here. Raises :class:`DemoInputError` for empty or over-long text and settings out
    of range.
    """
    text = check_text(text, "text", MAX_TEXT_CHARS)
    m = check_setting("M (max subtokens)", max_subtokens, *MAX_SUBTOKENS_RANGE)
    c = check_setting("C (max codebook size)", max_codebook_size, *MAX_CODEBOOK_RANGE)
    codec = LZWCodec(tokenizer.base_vocab_size, c, m, tokenizer.disabled_ids)
    base_ids = tokenizer(text, add_special_tokens=False, return_base_ids=True)["base_ids"]
    codes, codebook = codec.encode_with_codebook(base_ids)
    pieces = token_pieces(tokenizer.base, text, base_ids)
    special = set(tokenizer.all_special_ids)
    V = codec.base_vocab_size

    base_html = "".join(base_span(p, i, k, i in special) for k, (p, i) in enumerate(zip(pieces, base_ids)))
    out, start, hyper, uses = [], 0, 0, {}
    for code in codes:
        span = len(codebook.expand(code))
        piece = "".join(pieces[start : start + span])
        if code >= V:
            out.append(hyper_span(piece, code, pieces[start : start + span], hyper))
            hyper += 1
            uses[code] = uses.get(code, 0) + 1
        else:
            out.append(html.escape(piece))
        start += span

    n_bytes = len(text.encode("utf-8"))
    counts = {
        "bytes": n_bytes,
        "base tokens": len(base_ids),
        "codes": len(codes),
        "hypertokens": hyper,
        "codebook entries": len(codebook),
        "compression (base tokens per code)": round(len(base_ids) / max(len(codes), 1), 3),
        "fewer positions": f"{1 - len(codes) / max(len(base_ids), 1):.1%}",
        "bytes per base token": round(n_bytes / max(len(base_ids), 1), 2),
        "bytes per code": round(n_bytes / max(len(codes), 1), 2),
    }
    decode = tokenizer.base.decode
    rows = [
        [V + k, created, len(entry), " + ".join(_quote(decode([i])) for i in entry), uses.get(V + k, 0)]
        for k, (entry, created) in enumerate(zip(codebook.entries, codebook.created_at))
    ]
    return CompressResult(
        base_html=pane(base_html, "z2z-base-pane"),
        zip2zip_html=pane("".join(out), "z2z-zip-pane"),
        counts=counts,
        codebook_rows=rows,
        growth=_growth(codebook.created_at, len(codes)),
    )


def _growth(created_at: tuple[int, ...], n_codes: int) -> list[tuple[int, int]]:
    """Codebook size after each code, sampled at most GROWTH_POINTS times (always ending at the last code)."""
    if n_codes == 0:
        return []
    step = max(1, n_codes // GROWTH_POINTS)
    marks = [*range(step, n_codes, step), n_codes]
    points, size = [(0, 0)], 0
    for mark in marks:
        while size < len(created_at) and created_at[size] < mark:
            size += 1
        points.append((mark, size))
    return points
