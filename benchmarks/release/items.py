"""The multiple-choice items: "which of four candidates comes next?" built from held-out documents."""

from __future__ import annotations

import bisect
import json
import math
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def unit_spans(text: str, domain: str) -> list[tuple[int, int]]:
    """Character spans of the units a next-unit item is made of: non-blank lines (code) or sentences (prose).

    A code line keeps its indentation (the span starts at the line start), so what separates two units is
    only newlines; a sentence starts at its first non-space character.
    """
    if domain == "code":
        return [(m.start(), m.end()) for m in re.finditer(r"^[^\n]*\S[^\n]*$", text, flags=re.M)]
    spans = []
    for paragraph in re.finditer(r"[^\n]+", text):
        start = paragraph.start()
        body = paragraph.group()
        cuts = [m.end() for m in re.finditer(r"[.!?][\"”)]?\s+(?=[A-Z\"“(])", body)]
        for a, b in zip([0, *cuts], [*cuts, len(body)]):
            piece = body[a:b]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + a + lead, start + a + len(piece.rstrip())))
    return spans


def build_next_line_items(
    docs_by_domain: dict[str, Sequence[str]],
    per_domain: int,
    seed: int = 0,
    context_units: int = 4,
    min_chars: int = 16,
    max_chars: int = 240,
) -> list[dict[str, Any]]:
    """Four-way "which comes next?" items from held-out documents, the same for the same arguments.

    For each domain, ``per_domain`` positions are drawn (``seed``) among the units (see :func:`unit_spans`)
    of ``min_chars`` to ``max_chars`` characters that follow at least ``context_units`` units of their own
    document. The context is the text of those preceding units; each choice is the separator that really
    precedes the true unit (newlines, a space) followed by a candidate: the true unit, or one of three units
    from *other* documents of the domain, of the closest lengths, each different from the true unit and
    from one another. The gold choice sits at a drawn index (``label``), so position says nothing.
    """
    items: list[dict[str, Any]] = []
    for domain, docs in docs_by_domain.items():
        rng = random.Random(f"next-line:{domain}:{seed}")
        units = [[(a, b) for a, b in unit_spans(doc, domain)] for doc in docs]
        by_length: dict[int, list[tuple[int, str]]] = {}
        for d, (doc, spans) in enumerate(zip(docs, units)):
            for a, b in spans:
                text = doc[a:b]
                if min_chars <= len(text.strip()) and len(text) <= max_chars:
                    by_length.setdefault(len(text), []).append((d, text))
        lengths = sorted(by_length)
        positions = [
            (d, j)
            for d, spans in enumerate(units)
            for j in range(context_units, len(spans))
            if min_chars <= len(docs[d][spans[j][0] : spans[j][1]].strip())
            and spans[j][1] - spans[j][0] <= max_chars
        ]
        if len(positions) < per_domain:
            raise ValueError(
                f"{domain}: only {len(positions)} eligible positions in {len(docs)} documents for "
                f"{per_domain} items; use fewer items (--mc-items) or more documents"
            )
        for n, (d, j) in enumerate(rng.sample(positions, per_domain)):
            doc, spans = docs[d], units[d]
            context = doc[spans[j - context_units][0] : spans[j - 1][1]]
            separator = doc[spans[j - 1][1] : spans[j][0]]
            answer = doc[spans[j][0] : spans[j][1]]
            distractors = _distractors(by_length, lengths, d, answer, rng)
            label = rng.randrange(4)
            candidates = distractors[:label] + [answer] + distractors[label:]
            items.append(
                {
                    "id": f"{domain}-{n}",
                    "domain": domain,
                    "doc": d,
                    "unit": j,
                    "context": context,
                    "choices": [separator + c for c in candidates],
                    "label": label,
                    "answer": answer,
                }
            )
    return items


def _distractors(
    by_length: dict[int, list[tuple[int, str]]], lengths: list[int], doc: int, answer: str, rng: random.Random
) -> list[str]:
    """Three distinct units of the closest lengths to ``answer``'s, from documents other than ``doc``."""
    target = len(answer)
    pool: list[str] = []
    seen = {answer.strip()}
    lo = bisect.bisect_left(lengths, target)
    hi = lo
    while len(pool) < 12 and (lo > 0 or hi < len(lengths)):  # widen the length window one length at a time
        below = target - lengths[lo - 1] if lo > 0 else math.inf
        above = lengths[hi] - target if hi < len(lengths) else math.inf
        if below <= above:
            lo -= 1
            group = by_length[lengths[lo]]
        else:
            group = by_length[lengths[hi]]
            hi += 1
        for d, text in group:
            if d != doc and text.strip() not in seen:
                seen.add(text.strip())
                pool.append(text)
    if len(pool) < 3:
        raise ValueError("fewer than three distractor candidates from other documents; use more documents")
    return rng.sample(pool, 3)


def write_items(items: list[dict[str, Any]], path: Path) -> None:
    """The items as JSONL, the file the lm-eval tasks in ``benchmarks/tasks/`` read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
