"""The state the LZW encoder and decoder share: one sequence's codebook, as a trie, and what decoding reports.

Standard library only, like the rest of the codec (:mod:`lzw` describes the algorithm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .lzw_inputs import require_int

__all__ = ["Codebook", "CodecSettings", "DecodeStep", "DecodeTrace", "expand_node"]


@dataclass(frozen=True)
class Codebook:
    """The hypertokens of one sequence: entry ``k`` has id ``base_vocab_size + k``.

    ``created_at[k]`` is the index of the code whose decoding created entry ``k``; the entry can be read
    as input from that position on (the ``KwKwK`` case uses it at exactly that position). The first
    ``initial_size`` entries are the codec's initial codebook (created at 0, before any code).
    """

    base_vocab_size: int
    max_subtokens: int
    entries: tuple[tuple[int, ...], ...]
    created_at: tuple[int, ...]
    initial_size: int = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, code: int) -> bool:
        return 0 <= code - self.base_vocab_size < len(self.entries)

    def expand(self, code: int) -> tuple[int, ...]:
        """Base ids of ``code`` (a base id expands to itself)."""
        code = require_int(code, "code")
        if 0 <= code < self.base_vocab_size:
            return (code,)
        k = code - self.base_vocab_size
        if 0 <= k < len(self.entries):
            return self.entries[k]
        raise ValueError(
            f"code {code} is not in this codebook: it holds ids {self.base_vocab_size}.."
            f"{self.base_vocab_size + len(self.entries) - 1} ({len(self.entries)} entries)"
        )

    def to_dict(self) -> dict[int, tuple[int, ...]]:
        """``{hypertoken id: base ids}`` in creation order."""
        return {self.base_vocab_size + k: entry for k, entry in enumerate(self.entries)}

    def table(self, size: int | None = None, pad: int = -1) -> list[list[int]]:
        """The codebook as a ``(size, max_subtokens)`` id table, rows padded with ``pad``.

        ``size`` defaults to the number of entries; rows past the last entry are all ``pad``.
        """
        size = len(self.entries) if size is None else size
        if size < len(self.entries):
            raise ValueError(f"table size {size} is smaller than the codebook ({len(self.entries)} entries)")
        width = self.max_subtokens
        rows = [list(entry) + [pad] * (width - len(entry)) for entry in self.entries]
        rows.extend([pad] * width for _ in range(size - len(rows)))
        return rows

    def lengths(self) -> list[int]:
        """Number of base ids in each entry."""
        return [len(entry) for entry in self.entries]


class DecodeStep(NamedTuple):
    """What feeding one code to an :class:`LZWDecoder` produced."""

    phrase: tuple[int, ...]
    """The base ids the code stands for."""
    created: list[tuple[int, tuple[int, ...]]]
    """``(id, entry)`` for every codebook entry created while decoding it."""


@dataclass(frozen=True)
class DecodeTrace:
    """Everything the model needs about one code stream, position by position.

    ``accept_limits[t]`` and ``candidates[t]`` describe the decoder *before* code ``t``
    (``t = len(codes)`` is the state after the last code, used to predict the next one in generation):
    hypertoken ids ``V .. V + accept_limits[t] - 1`` are acceptable, and when ``candidates[t]`` is not
    ``None`` the last of them is not created yet and would stand for ``candidates[t]`` if used.
    """

    codes: list[int]
    base_ids: list[int]
    spans: list[int]
    codebook: Codebook
    accept_limits: list[int]
    candidates: list[tuple[int, ...] | None]
    excluded: list[list[int]] | None = None
    """With ``trace(codes, exclusions=True)``: ``excluded[t]`` are the codes a canonical stream could not have
    at position ``t``, given code ``t - 1`` (:meth:`LZWDecoder.excluded_next`; nothing at ``t = 0``)."""


class _State:
    """The encoder state machine shared by the encoder and the decoder.

    The codebook is a trie over base ids: ``children[node * V + x]`` is the id of ``node``'s phrase
    extended by ``x`` (a node is a base id or a hypertoken id). ``node == -1`` means the pending phrase
    (``buf`` in the reference algorithm) is empty; ``length`` is its number of base ids.
    """

    __slots__ = ("children", "created_at", "entries", "length", "next_id", "node")

    def __init__(self, base_vocab_size: int) -> None:
        self.children: dict[int, int] = {}
        self.entries: list[tuple[int, ...]] = []
        self.created_at: list[int] = []
        self.next_id = base_vocab_size
        self.node = -1
        self.length = 0

    def copy(self) -> _State:
        other = _State.__new__(_State)
        other.children = dict(self.children)
        other.entries = list(self.entries)
        other.created_at = list(self.created_at)
        other.next_id = self.next_id
        other.node = self.node
        other.length = self.length
        return other


class CodecSettings(Protocol):
    """What the decoder reads of its codec: the vocabulary layout, the never-merged ids and the initial state."""

    base_vocab_size: int
    max_codebook_size: int
    max_subtokens: int
    disabled_ids: frozenset[int]
    initial_codebook: tuple[tuple[int, ...], ...]

    def new_state(self) -> _State: ...


def expand_node(node: int, entries: list[tuple[int, ...]], base_vocab_size: int) -> tuple[int, ...]:
    """The base ids of trie node ``node``: itself for a base id, else its codebook entry."""
    return (node,) if node < base_vocab_size else entries[node - base_vocab_size]
