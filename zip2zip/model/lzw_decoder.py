"""The incremental, fault-tolerant LZW decoder of :mod:`lzw`: one sequence's codebook state during generation.

It runs the same state machine as the encoder (:mod:`lzw_state`); the algorithm is described in :mod:`lzw`.
Standard library only, like the rest of the codec.
"""

from __future__ import annotations

from collections.abc import Iterable

from .lzw_inputs import check_base_ids, int_prefix, require_int, to_int
from .lzw_state import Codebook, CodecSettings, DecodeStep, expand_node

__all__ = ["LZWDecoder"]


class LZWDecoder:
    """Incremental, fault-tolerant LZW decoder: the codebook state of one sequence during generation.

    Feed the prompt's codes, then each generated code; :attr:`accept_limit` and :attr:`candidate` say
    which hypertoken ids the next code may be, and :meth:`feed` reports the entries each code created.
    """

    def __init__(self, codec: CodecSettings) -> None:
        self.codec = codec
        self._state = codec.new_state()
        self.base_ids: list[int] = []
        self.num_codes = 0
        self._reset_index()

    def _reset_index(self) -> None:
        # Built on demand by `excluded_next` (only canonical masking needs it): each phrase's extensions
        # (node -> last base ids of its children) and the hypertokens starting with each base id.
        self._indexed = 0
        self._extensions: dict[int, list[int]] = {}
        self._starting_with: dict[int, list[int]] = {}

    def copy(self) -> LZWDecoder:
        other = LZWDecoder.__new__(LZWDecoder)
        other.codec = self.codec
        other._state = self._state.copy()
        other.base_ids = list(self.base_ids)
        other.num_codes = self.num_codes
        other._reset_index()
        return other

    @property
    def next_id(self) -> int:
        """The id the next created entry will get."""
        return self._state.next_id

    @property
    def codebook(self) -> Codebook:
        state = self._state
        return Codebook(
            self.codec.base_vocab_size,
            self.codec.max_subtokens,
            tuple(state.entries),
            tuple(state.created_at),
            len(self.codec.initial_codebook),
        )

    @property
    def pending(self) -> tuple[int, ...]:
        """The base ids of the phrase the encoder would still be extending (``buf``)."""
        state = self._state
        return () if state.node < 0 else expand_node(state.node, state.entries, self.codec.base_vocab_size)

    @property
    def candidate(self) -> tuple[int, ...] | None:
        """The entry the next code could use in the step that creates it (``pending + pending[0]``)."""
        state = self._state
        codec = self.codec
        V = codec.base_vocab_size
        if state.node < 0 or state.next_id >= V + codec.max_codebook_size:
            return None
        phrase = expand_node(state.node, state.entries, codec.base_vocab_size)
        if state.node * V + phrase[0] in state.children:
            return None
        return (*phrase, phrase[0])

    @property
    def accept_limit(self) -> int:
        """Number of hypertoken slots (from id ``V`` on) the next code may use."""
        known = self._state.next_id - self.codec.base_vocab_size
        return known + (self.candidate is not None)

    def can_accept(self, code: int) -> bool:
        """Whether :meth:`feed` would accept ``code`` now (``False`` for a value that is not an integer id)."""
        if type(code) is not int:
            code = to_int(code)
            if code is None:
                return False
        V = self.codec.base_vocab_size
        return 0 <= code < V + self.accept_limit

    def excluded_next(self, previous: int) -> list[int]:
        """Codes that cannot come next in a *canonical* stream, given that `previous` was the last code fed.

        The LZW encoder ends a phrase only where it cannot extend it, so after a code `c` it never emits a
        code starting with a base id `x` for which `c + x` is an entry (it would have emitted that entry, or a
        longer one). These codes are such base ids `x` and every hypertoken (the one a code may use in its
        own step included) that starts with one. A stream is canonical (``encode(decode(codes)) == codes``)
        exactly when none of its codes is excluded by the one before it.
        """
        self._index_entries()
        extensions = self._extensions.get(previous)
        if not extensions:
            return []
        excluded: list[int] = []
        starting_with = self._starting_with
        for x in extensions:
            excluded.append(x)
            excluded.extend(starting_with.get(x, ()))
        candidate = self.candidate
        if candidate is not None and candidate[0] in extensions:
            excluded.append(self._state.next_id)
        return excluded

    def _index_entries(self) -> None:
        state = self._state
        entries = state.entries
        if self._indexed == len(entries):
            return
        V = self.codec.base_vocab_size
        children = state.children
        for k in range(self._indexed, len(entries)):
            entry = entries[k]
            parent = entry[0]
            for x in entry[1:-1]:
                parent = children[parent * V + x]
            self._extensions.setdefault(parent, []).append(entry[-1])
            self._starting_with.setdefault(entry[0], []).append(V + k)
        self._indexed = len(entries)

    def feed(self, code: int) -> DecodeStep:
        """Decode one code; returns its base ids and the entries it created.

        Raises ValueError for a code the decoder cannot know now, TypeError for a value that is not an
        integer id; both name the code's position in the whole stream.
        """
        if type(code) is not int:
            code = require_int(code, f"code at position {self.num_codes}")
        return self._feed(code)

    def _feed(self, code: int) -> DecodeStep:
        first_new = len(self._state.entries)
        first_base = len(self.base_ids)
        self._run([code])
        V = self.codec.base_vocab_size
        entries = self._state.entries
        created = [(V + k, entries[k]) for k in range(first_new, len(entries))]
        return DecodeStep(tuple(self.base_ids[first_base:]), created)

    def feed_many(self, codes: Iterable[int]) -> list[DecodeStep]:
        """Decode several codes in order (what :meth:`feed` does for each, errors included)."""
        codes, error = int_prefix(codes, "code", self.num_codes)
        steps = [self._feed(code) for code in codes]
        if error is not None:
            raise error
        return steps

    def encode_greedy(self, ids: Iterable[int]) -> list[int]:
        """Emit codes for base ``ids`` from the current state (longest known phrase first) and feed them.

        The first code starts a new phrase even where the pending phrase could have been extended: this
        is how a new segment starts (see :meth:`LZWCodec.encode_segments`).
        """
        return self._encode_greedy(check_base_ids(self.codec.base_vocab_size, ids)[0])

    def _encode_greedy(self, ids: list[int]) -> list[int]:
        codec = self.codec
        state = self._state
        V = codec.base_vocab_size
        M = codec.max_subtokens
        disabled = codec.disabled_ids
        children = state.children
        codes: list[int] = []
        i = 0
        n = len(ids)
        while i < n:
            node = ids[i]
            length = 1
            if node not in disabled:
                while length < M and i + length < n:
                    found = children.get(node * V + ids[i + length])
                    if found is None:
                        break
                    node = found
                    length += 1
                if node == state.node and i + length < n:
                    candidate = self.candidate
                    if candidate is not None and ids[i + length] == candidate[0]:
                        node = state.next_id
                        length += 1
            self._run([node])
            codes.append(node)
            i += length
        return codes

    def _run_checked(
        self,
        codes: Iterable[int],
        limits: list[int] | None = None,
        candidates: list[tuple[int, ...] | None] | None = None,
        spans: list[int] | None = None,
    ) -> list[int]:
        """:meth:`_run` on any codes; raises at the first bad position. Returns the codes as Python ints."""
        codes, error = int_prefix(codes, "code", self.num_codes)
        self._run(codes, limits, candidates, spans)
        if error is not None:
            raise error
        return codes

    def _run(
        self,
        codes: list[int],
        limits: list[int] | None = None,
        candidates: list[tuple[int, ...] | None] | None = None,
        spans: list[int] | None = None,
    ) -> None:
        """Decode ``codes`` (Python ints): expand each one, then run the encoder state machine over its base ids.

        When ``limits`` is given, also record the accept limit, the candidate and the span of every code.
        """
        codec = self.codec
        state = self._state
        V = codec.base_vocab_size
        M = codec.max_subtokens
        limit = V + codec.max_codebook_size
        disabled = codec.disabled_ids
        children = state.children
        entries = state.entries
        created_at = state.created_at
        out = self.base_ids
        extend = out.extend
        node = state.node
        length = state.length
        next_id = state.next_id
        record = limits is not None
        position = self.num_codes
        for code in codes:
            # The candidate (KwKwK) entry: pending + pending[0], usable by the code that creates it.
            candidate = None
            if (record or code == next_id) and node >= 0 and next_id < limit:
                pending = (node,) if node < V else entries[node - V]
                if node * V + pending[0] not in children:
                    candidate = (*pending, pending[0])
            if record:
                limits.append(next_id - V + (candidate is not None))
                candidates.append(candidate)
            if 0 <= code < V:
                phrase: tuple[int, ...] = (code,)
            elif V <= code < next_id:
                phrase = entries[code - V]
            elif code == next_id and candidate is not None:
                phrase = candidate
            else:
                state.node, state.length, state.next_id = node, length, next_id
                self.num_codes = position
                raise ValueError(self._unknown_code_message(code, position))
            if record:
                spans.append(len(phrase))
            extend(phrase)
            for x in phrase:
                if M == 1 or x in disabled:
                    node = -1
                    continue
                if node < 0:
                    node = x
                    length = 1
                    continue
                key = node * V + x
                found = children.get(key)
                if found is None:
                    if next_id < limit:
                        children[key] = next_id
                        entries.append(((node,) if node < V else entries[node - V]) + (x,))
                        created_at.append(position)
                        next_id += 1
                    node = x
                    length = 1
                elif length + 1 == M:
                    node = -1
                else:
                    node = found
                    length += 1
            position += 1
        state.node, state.length, state.next_id = node, length, next_id
        self.num_codes = position

    def _unknown_code_message(self, code: int, position: int) -> str:
        codec = self.codec
        V = codec.base_vocab_size
        known = f"hypertoken ids {V}..{self.next_id - 1}" if self.next_id > V else "no hypertokens yet"
        if self.candidate is not None:
            known += f" (and {self.next_id}, created by its own use)"
        if not 0 <= code < V + codec.max_codebook_size:
            return (
                f"code {code} at position {position} is outside the vocabulary [0, {V + codec.max_codebook_size})"
                f" of base ids (< {V}) and hypertoken slots (max_codebook_size={codec.max_codebook_size})"
            )
        return (
            f"hypertoken id {code} at position {position} is not in the codebook: the decoder knows {known}. "
            "Hypertokens are defined by the codes before them, so decode a sequence from its start "
            "(for a generation, decode the prompt and the new codes together)."
        )
