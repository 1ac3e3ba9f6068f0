"""The LZW codec that turns base token ids into hypertoken codes and back.

zip2zip merges recurring runs of base tokens into per-sequence *hypertokens* with an online LZW
compressor. This module is that compressor, written in pure Python with the standard library only: it is
copied into every exported Hub repo and runs in every tokenizer call and every generation step.

Vocabulary layout: base ids are ``0 .. V-1`` (``V`` = the base model's embedding rows); hypertoken ids are
``V .. V+C-1``, handed out in creation order (``C`` = ``max_codebook_size``). A hypertoken stands for 2 to
``M`` base ids (``M`` = ``max_subtokens``; ``M = 1`` disables merging). Disabled ids (pad, bos/eos, chat
markers, optionally digits) are never merged: each one flushes the pending phrase and is emitted alone.

Ids: every entry point takes Python ints, numpy/torch integer scalars and integer numpy arrays / torch
tensors, and works on Python ints from there on (results are plain ints; no fixed-width arithmetic can
overflow). Bools, floats, complex numbers, text, ``None`` and nested sequences raise a TypeError naming
their position in the whole stream. Errors are raised at the first bad position, whatever is wrong there,
so decoding a stream at once, with ``feed_many`` or code by code fails in the same way.

The encoder is the reference zip2zip-compression algorithm, id for id::

    codebook = {}  (tuple of 2..M base ids -> code); next = V; buf = []
    for x in ids:
        if x in D:      emit(buf) if buf; emit x; buf = []; continue
        buf.append(x)
        if len(buf) >= 2 and tuple(buf) not in codebook:
            if next < V + C: codebook[tuple(buf)] = next; next += 1
            emit(buf[:-1]); buf = [x]
        if len(buf) == M: emit(buf); buf = []
    emit(buf) if buf

With an initial codebook (a seed, :mod:`lzw_seed`) the codebook starts as the seed's entries, ids ``V ..``
in order, and ``next`` starts after them; nothing else changes.

The codebook is therefore a function of the base-token stream alone (and the seed). The decoder exploits that: it expands
each code with the codebook it knows and feeds the resulting base ids, one at a time, through the very same
encoder state machine, which grows the codebook exactly as the encoder did. On a canonical stream this
rebuilds the encoder's codebook entry for entry and id for id; on a non-canonical but decodable stream (a
model that spelled out two base tokens where a hypertoken existed) it keeps growing the codebook as the
encoder would on the decoded base tokens. The one code a decoder can accept before it exists is the entry
about to be created by the code itself (the classic ``KwKwK`` case): ``pending + pending[0]``.

Accept-sets: before each code, the decoder accepts every base id and the hypertoken ids
``V .. V + accept_limit - 1``; the accept-set is always a prefix of the codebook slots, so one integer per
position describes it. The model masks every other slot with ``-inf``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress

from .lzw_decoder import LZWDecoder
from .lzw_inputs import check_base_ids, int_prefix, map_batch, require_int, to_list
from .lzw_seed import check_initial_codebook, seeded_state
from .lzw_state import Codebook, DecodeTrace, _State

__all__ = ["LZWCodec", "spans_to_positions"]


class LZWCodec:
    """LZW over base token ids with a bounded codebook and a bounded merge size.

    Args:
        base_vocab_size: ``V``, the number of base ids (the base model's embedding rows).
        max_codebook_size: ``C``, the most hypertokens one sequence can create; when full, the codebook
            stops growing and existing entries keep being used.
        max_subtokens: ``M``, the most base ids one hypertoken stands for (``1`` = no merging).
        disabled_ids: base ids that are never merged (pad, bos/eos, chat markers, optionally digits).
        initial_codebook: runs of 2..``M`` base ids that every sequence knows from its first code (a seed;
            see :mod:`lzw_seed`): entry ``k`` is hypertoken ``V + k``, and created entries follow. Prefix-closed,
            at most ``C`` entries; ``C`` counts the seed and the created entries together.

    Example:

    ```python
    >>> from zip2zip import LZWCodec
    >>> codec = LZWCodec(base_vocab_size=10, max_codebook_size=8, max_subtokens=3, disabled_ids=[0])
    >>> codes = codec.encode([5, 6, 5, 6, 5, 6, 5, 6])  # ids 10.. are hypertokens made on the way
    >>> codes
    [5, 6, 10, 12, 6]
    >>> codec.decode(codes)  # the codebook is rebuilt from the codes alone
    [5, 6, 5, 6, 5, 6, 5, 6]
    >>> codec.encode_segments([[5, 6, 5], [6, 5, 6]])  # no code spans the boundary; one shared codebook
    [5, 6, 5, 11, 6]

    ```
    """

    def __init__(
        self,
        base_vocab_size: int,
        max_codebook_size: int,
        max_subtokens: int,
        disabled_ids: Iterable[int] = (),
        initial_codebook: Iterable[Sequence[int]] | None = None,
    ) -> None:
        sizes = []
        for name, value, low in (
            ("base_vocab_size", base_vocab_size, 1),
            ("max_codebook_size", max_codebook_size, 0),
            ("max_subtokens", max_subtokens, 1),
        ):
            size = require_int(value, name, "an int")
            if size < low:
                raise ValueError(f"{name} must be >= {low}, got {size}")
            sizes.append(size)
        self.base_vocab_size, self.max_codebook_size, self.max_subtokens = sizes
        disabled, error = int_prefix(disabled_ids, "disabled id")
        for position, i in enumerate(disabled):
            if not 0 <= i < self.base_vocab_size:
                raise ValueError(
                    f"disabled id {i} at position {position} is outside the base vocabulary "
                    f"[0, {self.base_vocab_size}); disabled ids must be base token ids"
                )
        if error is not None:
            raise error
        self.disabled_ids = frozenset(disabled)
        self.initial_codebook: tuple[tuple[int, ...], ...] = check_initial_codebook(
            initial_codebook, *sizes, self.disabled_ids
        )
        self._initial_state = seeded_state(self.initial_codebook, self.base_vocab_size)

    def __repr__(self) -> str:
        seed = f", initial_codebook=<{len(self.initial_codebook)} entries>" if self.initial_codebook else ""
        return (
            f"LZWCodec(base_vocab_size={self.base_vocab_size}, max_codebook_size={self.max_codebook_size}, "
            f"max_subtokens={self.max_subtokens}, disabled_ids=<{len(self.disabled_ids)} ids>{seed})"
        )

    def new_state(self) -> _State:
        """The state of a sequence before its first code: the initial codebook, nothing pending."""
        if not self.initial_codebook:
            return _State(self.base_vocab_size)
        return self._initial_state.copy()

    @property
    def vocab_size(self) -> int:
        """Base ids plus every hypertoken slot: the width of the model's logits."""
        return self.base_vocab_size + self.max_codebook_size

    # ------------------------------------------------------------------ encoding

    def _encode(self, ids: list[int], distinct: set[int], state: _State, record: bool) -> list[int]:
        """The reference encoder; ``record`` also keeps the entries (for the codebook).

        Disabled ids cut the stream into segments that share one codebook; each segment runs through a
        loop that never has to test for disabled ids. The cuts are found in one pass over the ids, whatever
        the number of distinct disabled ids present (a vocabulary may protect a thousand digit pieces).
        """
        if self.max_subtokens == 1:
            return list(ids)
        out: list[int] = []
        present = self.disabled_ids.intersection(distinct)
        if not present:
            self._encode_segment(ids, state, record, out)
            return out
        cuts = compress(range(len(ids)), map(present.__contains__, ids))
        start = 0
        for cut in cuts:
            if cut > start:
                self._encode_segment(ids[start:cut], state, record, out)
            out.append(ids[cut])
            start = cut + 1
        if start < len(ids):
            self._encode_segment(ids[start:], state, record, out)
        return out

    def _encode_segment(self, ids: list[int], state: _State, record: bool, out: list[int]) -> None:
        """Encode a run of ids that holds no disabled id, starting from an empty pending phrase."""
        V = self.base_vocab_size
        M = self.max_subtokens
        limit = V + self.max_codebook_size
        children = state.children
        lookup = children.get
        entries = state.entries
        created_at = state.created_at
        next_id = state.next_id
        emit = out.append
        node = -1
        length = 0
        for x in ids:
            if node < 0:
                node = x
                length = 1
                continue
            key = node * V + x
            found = lookup(key)
            if found is None:
                if next_id < limit:
                    children[key] = next_id
                    next_id += 1
                    if record:
                        entries.append(((node,) if node < V else entries[node - V]) + (x,))
                        created_at.append(len(out) + 1)
                emit(node)
                node = x
                length = 1
            elif length + 1 == M:
                emit(found)
                node = -1
            else:
                node = found
                length += 1
        if node >= 0:
            emit(node)
        state.next_id = next_id

    def encode(self, ids: Iterable[int]) -> list[int]:
        """Compress base ids into codes (base ids and hypertoken ids)."""
        ids, distinct = check_base_ids(self.base_vocab_size, ids)
        return self._encode(ids, distinct, self.new_state(), record=False)

    def encode_with_codebook(self, ids: Iterable[int]) -> tuple[list[int], Codebook]:
        """Compress base ids; also return the codebook the encoder built.

        ``created_at`` is in code positions: the index of the first code that may use the entry.
        """
        state = self.new_state()
        ids, distinct = check_base_ids(self.base_vocab_size, ids)
        codes = self._encode(ids, distinct, state, record=True)
        return codes, self._codebook(state)

    def batch_encode(self, batch: Iterable[Iterable[int]]) -> list[list[int]]:
        """Compress every sequence of a batch independently (each gets its own codebook)."""
        return map_batch(self.encode, batch)

    def encode_segments(self, segments: Iterable[Iterable[int]]) -> list[int]:
        """Compress consecutive segments into one code stream where no code spans a segment boundary.

        The segments share one codebook, which grows exactly as it would for their concatenation (the
        codebook is a function of the base stream), so the result decodes with :meth:`decode` and a
        decoder that read the first segments can go on reading the next ones. Codes are chosen greedily:
        at each position, the longest phrase the decoder knows there (or the entry the code itself would
        create). For a single segment this is exactly :meth:`encode`. Use it for a prompt and its
        completion, or a context and its continuation: the prompt's codes are then the ones the prompt
        gets on its own, as in generation.
        """
        decoder = LZWDecoder(self)
        codes: list[int] = []
        start = 0
        for index, segment in enumerate(to_list(segments, "segment")):
            ids = check_base_ids(self.base_vocab_size, segment, start, f" (in segment {index})")[0]
            codes.extend(decoder._encode_greedy(ids))
            start += len(ids)
        return codes

    def _codebook(self, state: _State) -> Codebook:
        return Codebook(
            self.base_vocab_size,
            self.max_subtokens,
            tuple(state.entries),
            tuple(state.created_at),
            len(self.initial_codebook),
        )

    # ------------------------------------------------------------------ decoding

    def new_decoder(self) -> LZWDecoder:
        """An incremental decoder: feed codes one at a time (generation)."""
        return LZWDecoder(self)

    def decode(self, codes: Iterable[int]) -> list[int]:
        """Expand codes back into base ids.

        Raises at the first bad position: ValueError for a code the decoder cannot know there, TypeError
        for a value that is not an integer id.
        """
        decoder = LZWDecoder(self)
        decoder._run_checked(codes)
        return decoder.base_ids

    def decode_with_codebook(self, codes: Iterable[int]) -> tuple[list[int], Codebook]:
        """Expand codes; also return the codebook the decoder rebuilt."""
        decoder = LZWDecoder(self)
        decoder._run_checked(codes)
        return decoder.base_ids, decoder.codebook

    def batch_decode(self, batch: Iterable[Iterable[int]]) -> list[list[int]]:
        """Decode every sequence of a batch independently."""
        return map_batch(self.decode, batch)

    def trace(self, codes: Iterable[int], exclusions: bool = False) -> DecodeTrace:
        """Decode ``codes`` and record, for every position, what the decoder could accept there.

        ``exclusions=True`` also records what a canonical stream could not have there (``excluded``).
        """
        decoder = LZWDecoder(self)
        limits: list[int] = []
        candidates: list[tuple[int, ...] | None] = []
        spans: list[int] = []
        excluded = None
        if exclusions:
            codes, error = int_prefix(codes, "code")
            excluded = [[]]
            for code in codes:
                decoder._run_checked([code], limits, candidates, spans)
                excluded.append(decoder.excluded_next(code))
            if error is not None:
                raise error
        else:
            codes = decoder._run_checked(codes, limits, candidates, spans)
        codes = list(codes)  # the trace is frozen: it must not share the caller's list
        limits.append(decoder.accept_limit)
        candidates.append(decoder.candidate)
        return DecodeTrace(codes, decoder.base_ids, spans, decoder.codebook, limits, candidates, excluded)

    def batch_trace(self, batch: Iterable[Iterable[int]]) -> list[DecodeTrace]:
        """:meth:`trace` for every sequence of a batch."""
        return map_batch(self.trace, batch)


def spans_to_positions(spans: Sequence[int]) -> list[int]:
    """Base-stream position of each code's last constituent (``cumsum(spans) - 1``)."""
    positions = []
    total = 0
    for span in spans:
        total += span
        positions.append(total - 1)
    return positions


# The incremental decoder lives in its own file (it travels with this one); imported last, because it builds on
# the classes above.
