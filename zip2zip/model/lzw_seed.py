"""The initial codebook of the LZW codec: hypertokens every sequence knows before its first token.

An LZW codebook that starts empty saves almost nothing on a short text. An *initial codebook* (a seed) is a
list of base-token runs of length 2..M that every sequence starts with: entry ``k`` has the hypertoken id
``V + k`` from position 0 on, LZW growth goes on after it (the first created entry gets ``V + len(seed)``),
and ``C`` counts both. The reference algorithm is unchanged except for its first line::

    codebook = {tuple(run): V + k for k, run in enumerate(seed)}; next = V + len(seed)

The codec walks its codebook as a trie, and the reference algorithm only ever looks up runs whose every
prefix of two or more ids is an entry, so a seed must be *prefix-closed*: each entry's prefix of length 2 or
more is an entry that comes before it. :func:`close_prefixes` makes any list of runs so.

Standard library only, like the rest of the codec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .lzw_inputs import describe, to_int
from .lzw_state import _State

__all__ = ["check_initial_codebook", "close_prefixes", "restrict_initial_codebook", "seeded_state"]


def check_initial_codebook(
    entries: Iterable[Sequence[int]] | None,
    base_vocab_size: int,
    max_codebook_size: int,
    max_subtokens: int,
    disabled_ids: Iterable[int] = (),
    subject: str = "initial_codebook",
) -> tuple[tuple[int, ...], ...]:
    """``entries`` as a tuple of id tuples, or a ValueError/TypeError naming the first bad entry and the fix.

    An entry must be 2..``max_subtokens`` base ids (``0 <= id < base_vocab_size``), hold no disabled id (those
    never merge, so the entry could never be used), appear once, and come after its prefix when it is longer
    than 2 ids; the seed must leave room in ``max_codebook_size``.
    """
    if entries is None:
        return ()
    if isinstance(entries, (str, bytes, bytearray)) or not isinstance(entries, Iterable):
        raise TypeError(
            f"{subject} must be a list of base-token runs (lists of ints), got {describe(entries)}"
        )
    entries = list(entries)
    disabled = frozenset(disabled_ids)
    V, M = base_vocab_size, max_subtokens
    if len(entries) > max_codebook_size:
        raise ValueError(
            f"{subject} holds {len(entries)} entries but max_codebook_size is {max_codebook_size}: the seed and "
            "the entries a sequence creates share the codebook; use a seed of at most max_codebook_size entries"
        )
    seen: dict[tuple[int, ...], int] = {}
    for k, raw in enumerate(entries):
        where = f"{subject} entry {k}"
        if isinstance(raw, (str, bytes, bytearray)) or not isinstance(raw, Iterable):
            raise TypeError(f"{where} must be a list of base ids, got {describe(raw)}")
        entry = []
        for value in raw:
            i = to_int(value)
            if i is None:
                raise TypeError(f"{where} holds {describe(value)}: entries are lists of integer base ids")
            entry.append(i)
        entry = tuple(entry)
        if not 2 <= len(entry) <= M:
            raise ValueError(
                f"{where} is {list(entry)}: an entry stands for 2 to max_subtokens={M} base ids, got {len(entry)}"
            )
        for i in entry:
            if not 0 <= i < V:
                raise ValueError(
                    f"{where} is {list(entry)}: id {i} is outside the base vocabulary [0, {V}); a seed holds "
                    "base token ids of the model's base vocabulary (was it built for another tokenizer?)"
                )
            if i in disabled:
                raise ValueError(
                    f"{where} is {list(entry)}: id {i} is a disabled id, which never merges, so the entry could "
                    "never be used; build the seed with the model's disabled_ids (restrict_initial_codebook drops "
                    "such entries)"
                )
        if entry in seen:
            raise ValueError(
                f"{where} is {list(entry)}, the same run as entry {seen[entry]}: list each run once"
            )
        if len(entry) > 2 and entry[:-1] not in seen:
            raise ValueError(
                f"{where} is {list(entry)} but its prefix {list(entry[:-1])} is not an entry before it: the codec "
                "reaches a run through its prefixes, so a seed must list every prefix of 2 or more ids first "
                "(close_prefixes(runs) does)"
            )
        seen[entry] = k
    return tuple(seen)


def seeded_state(entries: Sequence[tuple[int, ...]], base_vocab_size: int) -> _State:
    """The encoder state of a sequence that has read nothing yet: the trie of a checked initial codebook."""
    V = base_vocab_size
    state = _State(V)
    ids: dict[tuple[int, ...], int] = {}
    for k, entry in enumerate(entries):
        parent = entry[0] if len(entry) == 2 else ids[entry[:-1]]
        state.children[parent * V + entry[-1]] = V + k
        ids[entry] = V + k
        state.entries.append(entry)
        state.created_at.append(0)
    state.next_id = V + len(entries)
    return state


def close_prefixes(runs: Iterable[Sequence[int]]) -> list[tuple[int, ...]]:
    """``runs`` with every missing prefix of 2 or more ids inserted before its first extension, duplicates dropped."""
    out: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for run in runs:
        run = tuple(int(i) for i in run)
        for end in range(2, len(run) + 1):
            prefix = run[:end]
            if prefix not in seen:
                seen.add(prefix)
                out.append(prefix)
    return out


def restrict_initial_codebook(
    entries: Iterable[Sequence[int]], max_subtokens: int, disabled_ids: Iterable[int]
) -> list[tuple[int, ...]]:
    """The entries a codec with these settings can hold: at most ``max_subtokens`` ids, none of them disabled.

    Dropping an entry drops its extensions too (they are longer and hold the same ids), so a prefix-closed
    seed stays prefix-closed. Used when a model is read under other codec settings.
    """
    disabled = frozenset(disabled_ids)
    return [
        tuple(entry) for entry in entries if len(entry) <= max_subtokens and not disabled.intersection(entry)
    ]
