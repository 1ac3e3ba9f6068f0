"""Building an initial codebook (a seed) from a corpus: the runs of base tokens every sequence should know.

An LZW codebook that starts empty saves almost nothing on a short text; a seed gives every sequence hypertokens
from its first token on (``Zip2ZipConfig.initial_codebook``). Two rules pick its runs from text of the train split:

* ``"frequency"``: the most frequent runs of 2..M base ids (no never-merged id inside), counted over the text.
  Ordered by count (a run's prefix is at least as frequent), so any prefix of the ranking is prefix-closed.
* ``"gain"``: start from the ``pool_factor`` times larger frequency ranking, encode short windows of *other*
  text (tuning windows: train-split documents not counted) with it, and drop the entries that saved the fewest
  codes there (leaves first: an entry whose extensions are kept stays), in rounds, re-encoding after each, down
  to the budget. Each use of a seed entry saves one code over its prefix (or over its two halves), so an entry's
  use count is what dropping it would cost.

``"frequency"`` is the default: it needs no tuning text, and ``benchmarks.seeding`` found ``"gain"`` no better on
average (it can fit its few tuning windows too closely). A seed is built per domain or for several domains mixed (equal base tokens of each); ``zip2zip seed`` is the
command line. :func:`apply_seed` puts one into a model and returns the matching tokenizer.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from zip2zip.model.lzw import LZWCodec

__all__ = [
    "SEED_DOMAINS",
    "SEED_RULES",
    "Seed",
    "SeedRule",
    "apply_seed",
    "build_seed",
    "count_runs",
    "domain_documents",
    "domain_texts",
    "frequent_runs",
    "seed_from_corpora",
    "windows_of",
]

SeedRule = Literal["frequency", "gain"]
SEED_RULES: tuple[str, ...] = ("frequency", "gain")
# The corpora a seed can be built from: the training domains and the chat turns made from them.
SEED_DOMAINS: tuple[str, ...] = ("code", "prose", "math", "multilingual", "rust", "chat")
SEED_FORMAT = 1


@dataclass(frozen=True)
class Seed:
    """An initial codebook and where it came from (saved as JSON by ``zip2zip seed``)."""

    entries: tuple[tuple[int, ...], ...]
    base_vocab_fingerprint: str | None = None
    max_subtokens: int | None = None
    rule: str | None = None
    domains: tuple[str, ...] = ()
    counted_base_tokens: int = 0
    tuning_base_tokens: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def save(self, path: str | os.PathLike) -> str:
        """Write the seed as JSON (entries as lists of base ids, one per line)."""
        record = asdict(self)
        entries = record.pop("entries")
        head = json.dumps({"format": SEED_FORMAT, **record}, indent=1)
        # One entry per line: the file stays readable and diffs stay small.
        rows = ",\n  ".join(json.dumps(list(entry)) for entry in entries)
        text = head[: -len("\n}")] + ',\n "entries": [' + (f"\n  {rows}\n ]" if entries else "]") + "\n}\n"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return os.fspath(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Seed:
        """Read a seed written by :meth:`save` (``zip2zip seed --output``)."""
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        if not isinstance(record, dict) or "entries" not in record:
            raise ValueError(
                f"{path}: not a seed file (no 'entries' field); write one with zip2zip seed --output {path}"
            )
        record.pop("format", None)
        known = {name for name in cls.__dataclass_fields__}
        unknown = sorted(set(record) - known)
        if unknown:
            raise ValueError(f"{path}: unknown seed fields {unknown}; known ones are {sorted(known)}")
        record["entries"] = tuple(tuple(int(i) for i in entry) for entry in record["entries"])
        record["domains"] = tuple(record.get("domains") or ())
        return cls(**record)


def count_runs(
    sequences: Iterable[Sequence[int]], max_subtokens: int, disabled_ids: Iterable[int] = ()
) -> Counter:
    """How often each run of 2..``max_subtokens`` consecutive base ids occurs (overlaps counted), leaving out
    runs that hold a never-merged id (they can never be an entry)."""
    counts: Counter = Counter()
    for ids in sequences:
        ids = list(ids)
        for n in range(2, max_subtokens + 1):
            counts.update(zip(*(ids[k:] for k in range(n))))
    disabled = frozenset(disabled_ids)
    if disabled:
        for run in [run for run in counts if disabled.intersection(run)]:
            del counts[run]
    return counts


def frequent_runs(counts: Counter, size: int, min_count: int = 2) -> list[tuple[int, ...]]:
    """The ``size`` most frequent runs seen at least ``min_count`` times, prefix-closed, prefixes first.

    Ties go to the shorter run, so a run's prefix (never rarer) always ranks before it."""
    ranked = sorted(
        (run for run, count in counts.items() if count >= min_count),
        key=lambda run: (-counts[run], len(run), run),
    )
    return ranked[:size]


def build_seed(
    sequences: Sequence[Sequence[int]],
    size: int,
    *,
    base_vocab_size: int,
    max_subtokens: int,
    disabled_ids: Iterable[int] = (),
    rule: SeedRule = "frequency",
    tuning: Sequence[Sequence[int]] = (),
    pool_factor: float = 4.0,
    shrink: float = 0.75,
    counts: Counter | None = None,
) -> list[tuple[int, ...]]:
    """Pick at most ``size`` runs from ``sequences`` (base ids) by ``rule``; see the module docstring.

    ``tuning`` are the short windows the ``"gain"`` rule encodes (base ids, text other than ``sequences``);
    each round keeps ``shrink`` of the entries until ``size`` are left. ``counts`` (:func:`count_runs` of
    ``sequences``) saves counting again when several seeds come from the same text.
    """
    if rule not in SEED_RULES:
        raise ValueError(f"rule must be one of {SEED_RULES}, got {rule!r}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    disabled = frozenset(disabled_ids)
    if counts is None:
        counts = count_runs(sequences, max_subtokens, disabled)
    if rule == "frequency" or size == 0:
        return frequent_runs(counts, size)
    if not tuning:
        raise ValueError("rule='gain' needs tuning windows (base ids of text the runs were not counted on)")
    if not 0 < shrink < 1:
        raise ValueError(f"shrink must be in (0, 1), got {shrink}")
    current = frequent_runs(counts, max(size, int(size * pool_factor)))
    longest = max(len(window) for window in tuning)
    while len(current) > size:
        codec = LZWCodec(
            base_vocab_size, len(current) + longest, max_subtokens, disabled, initial_codebook=current
        )
        uses = [0] * len(current)
        V, end = base_vocab_size, base_vocab_size + len(current)
        for window in tuning:
            for code in codec.encode(window):
                if V <= code < end:
                    uses[code - V] += 1
        target = max(size, int(len(current) * shrink))
        current = _drop_leaves(current, uses, [counts[run] for run in current], target)
    return current


def _drop_leaves(
    entries: list[tuple[int, ...]], uses: list[int], counts: list[int], target: int
) -> list[tuple[int, ...]]:
    """``entries`` (prefix-closed, in order) down to ``target``: drop the least used entry without kept extensions
    (then the least frequent), again and again. The result stays prefix-closed and in order."""
    index = {entry: k for k, entry in enumerate(entries)}
    parent = [index[entry[:-1]] if len(entry) > 2 else -1 for entry in entries]
    children = [0] * len(entries)
    for p in parent:
        if p >= 0:
            children[p] += 1
    heap = [(uses[k], counts[k], k) for k in range(len(entries)) if not children[k]]
    heapq.heapify(heap)
    kept = [True] * len(entries)
    left = len(entries)
    while left > target and heap:
        _, _, k = heapq.heappop(heap)
        kept[k] = False
        left -= 1
        p = parent[k]
        if p >= 0:
            children[p] -= 1
            if not children[p]:
                heapq.heappush(heap, (uses[p], counts[p], p))
    return [entry for k, entry in enumerate(entries) if kept[k]]


# ----------------------------------------------------------------------------------- the project's corpora


def domain_texts(tokenizer: Any, domain: str, split: str) -> list[str]:
    """The texts of a domain's split in the corpus's fixed order (``chat``: each conversation in the chat
    template of ``tokenizer``, a zip2zip or a base tokenizer)."""
    if domain == "chat":
        from zip2zip.corpora.chat import chat_conversations

        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("domain 'chat' needs a tokenizer with a chat template")
        return [
            tokenizer.apply_chat_template(messages, tokenize=False) for messages in chat_conversations(split)
        ]
    from zip2zip.corpora.store import load_corpus

    return load_corpus(domain, split)


def domain_documents(
    tokenizer: Any, domain: str, split: str, max_base_tokens: int | None = None
) -> list[list[int]]:
    """Base ids of a domain split's documents (:func:`domain_texts`) in order, until ``max_base_tokens`` base
    tokens (the last document cut); ``tokenizer`` is a zip2zip tokenizer (its base tokenizes) or a base one."""
    texts = domain_texts(tokenizer, domain, split)
    return _tokenize_until(getattr(tokenizer, "base", tokenizer), texts, max_base_tokens)


def _tokenize_until(
    base_tokenizer: Any, texts: Sequence[str], max_base_tokens: int | None
) -> list[list[int]]:
    documents: list[list[int]] = []
    left = max_base_tokens
    for start in range(0, len(texts), 64):
        for ids in base_tokenizer(list(texts[start : start + 64]), add_special_tokens=False)["input_ids"]:
            if left is not None:
                ids = ids[:left]
                left -= len(ids)
            documents.append(list(ids))
            if left is not None and left <= 0:
                return documents
    return documents


def seed_from_corpora(
    tokenizer: Any,
    domains: Sequence[str],
    size: int,
    rule: SeedRule = "frequency",
    *,
    max_base_tokens: int = 1_000_000,
    tuning_base_tokens: int = 100_000,
    window: int = 128,
) -> Seed:
    """A seed for ``tokenizer``'s codec (a `Zip2ZipTokenizer`) from the train split of the project's corpora.

    Each domain gives its train documents in the corpus's fixed order: the first ones (up to ``max_base_tokens``
    base tokens) are counted, the next ones are cut into tuning windows of ``window`` base tokens (up to
    ``tuning_base_tokens``) for the ``"gain"`` rule. Several domains are mixed with equal base tokens each.
    """
    unknown = sorted(set(domains) - set(SEED_DOMAINS))
    if unknown or not domains:
        raise ValueError(f"domains must be some of {SEED_DOMAINS}, got {list(domains)}")
    codec = tokenizer.codec
    counted: list[list[int]] = []
    tuning: list[list[int]] = []
    share, tuning_share = max_base_tokens // len(domains), tuning_base_tokens // len(domains)
    for domain in domains:
        texts = domain_texts(tokenizer, domain, "train")
        if rule == "gain":
            # The tuning windows come from the split's last documents, the counted text from the ones before.
            tail = _tokenize_until(tokenizer.base, texts[::-1], tuning_share)
            tuning += windows_of(tail, window, tuning_share)
            texts = texts[: len(texts) - len(tail)]
        counted += _tokenize_until(tokenizer.base, texts, share)
    entries = build_seed(
        counted,
        size,
        base_vocab_size=codec.base_vocab_size,
        max_subtokens=codec.max_subtokens,
        disabled_ids=codec.disabled_ids,
        rule=rule,
        tuning=tuning,
    )
    return Seed(
        entries=tuple(entries),
        base_vocab_fingerprint=tokenizer.base_vocab_fingerprint,
        max_subtokens=codec.max_subtokens,
        rule=rule,
        domains=tuple(domains),
        counted_base_tokens=sum(map(len, counted)),
        tuning_base_tokens=sum(map(len, tuning)) if rule == "gain" else 0,
        settings={"size": size, "window": window},
    )


def windows_of(documents: Sequence[Sequence[int]], length: int, max_base_tokens: int) -> list[list[int]]:
    """Consecutive windows of ``length`` base ids cut from the documents joined in order, up to
    ``max_base_tokens`` in all (each window is compressed on its own, like a short prompt)."""
    stream: list[int] = []
    for ids in documents:
        stream += ids
        if len(stream) >= max_base_tokens:
            break
    stream = stream[: max_base_tokens - max_base_tokens % length]
    return [stream[i : i + length] for i in range(0, len(stream) - length + 1, length)]


def apply_seed(model: Any, base_tokenizer: Any, seed: Seed | Sequence[Sequence[int]] | None) -> Any:
    """Give a zip2zip model ``seed`` as its initial codebook (in place); return the matching `Zip2ZipTokenizer`.

    A :class:`Seed` built for another base vocabulary is refused. The model then trains (`Zip2ZipSFTTrainer`),
    generates and saves with it; ``None`` removes the seed.
    """
    from zip2zip.conversion import change_codec

    return change_codec(model, base_tokenizer, initial_codebook=seed)
