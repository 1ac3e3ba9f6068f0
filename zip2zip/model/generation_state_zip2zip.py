"""The per-row codebook state of one zip2zip `generate()` call, and the statistics it reports.

See ``generation_zip2zip.py`` for how the generation loop uses it.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .codebook_state_zip2zip import excluded_after, padded_table
from .lzw_decoder import LZWDecoder

__all__ = ["Zip2ZipGenerationState", "Zip2ZipGenerationStats", "Zip2ZipStateSnapshot"]


@dataclass
class Zip2ZipGenerationStats:
    """What one `generate()` call produced, per row (rows after `num_return_sequences` expansion).

    Attributes:
        steps: decoding steps, each appending one code to every row (prefill included); one forward pass
            each, except with prompt lookup (see `forward_passes`).
        codes: codes each row emitted, up to and including the one that finished it (eos, a stop string,
            the base-token budget); the padding a finished row gets while others go on is not counted.
        base_tokens: base tokens those codes stand for (after the `max_new_base_tokens` cut, if any).
        hypertokens: how many of those codes were hypertokens.
        forward_passes: forward calls of the model, prefill included (equal to `steps` without prompt lookup;
            with it, one per verification pass).
        proposed_codes: codes prompt lookup proposed for verification (0 without it).
        accepted_codes: proposed codes the model accepted (each saved one forward pass).
    """

    steps: int
    codes: list[int] = field(default_factory=list)
    base_tokens: list[int] = field(default_factory=list)
    hypertokens: list[int] = field(default_factory=list)
    forward_passes: int | None = None
    proposed_codes: int = 0
    accepted_codes: int = 0

    def __post_init__(self) -> None:
        if self.forward_passes is None:
            self.forward_passes = self.steps

    @property
    def compression(self) -> float:
        """Base tokens per emitted code over all rows (1.0 = no gain; the paper's tokens-per-step)."""
        codes = sum(self.codes)
        return sum(self.base_tokens) / codes if codes else 1.0

    @property
    def hypertoken_rate(self) -> float:
        """Share of emitted codes that were hypertokens."""
        codes = sum(self.codes)
        return sum(self.hypertokens) / codes if codes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "codes": list(self.codes),
            "base_tokens": list(self.base_tokens),
            "hypertokens": list(self.hypertokens),
            "forward_passes": self.forward_passes,
            "proposed_codes": self.proposed_codes,
            "accepted_codes": self.accepted_codes,
            "compression": self.compression,
            "hypertoken_rate": self.hypertoken_rate,
        }


@dataclass
class Zip2ZipStateSnapshot:
    """What :meth:`Zip2ZipGenerationState.restore` needs to undo every column fed after the snapshot."""

    columns: int
    decoders: list[Any]
    entries: list[int]
    attended: list[int]
    pending_entries: list[tuple[int, int, tuple[int, ...]]]


class Zip2ZipGenerationState:
    """The codebook state of every row of one `generate()` call.

    Built at the first `prepare_inputs_for_generation` (after `num_return_sequences` expansion) from the full
    `input_ids` and attention mask, then advanced with :meth:`sync` as the loop appends codes. Everything is
    recorded per column (the input position in the loop's `input_ids`): the phrase each code stands for, the
    accept limit and the `KwKwK` candidate *after* it (what the next code may be), and its position id. That
    lets any consumer (the model inputs, the stopping criteria, the streamer) look at any column without
    caring who fed it first.

    Hypertoken vectors live in two `(rows, capacity, hidden)` buffers indexed by codebook slot: input
    embeddings of created entries, and output vectors of created entries plus, at slot `next_id - V`, the
    row's current candidate (its logit is then an ordinary slot score). The model's entry cache
    (`model.new_entry_cache()`) computes each distinct entry's vectors once (rows of a batch, and
    `num_return_sequences` copies, share prompt entries). Every row starts with the codec's initial codebook
    (slots `0 .. S-1`), whose vectors the model keeps (`model.initial_codebook_vectors`): they are copied in once
    per call, so a seed adds nothing to a step but its slots' scores.
    """

    def __init__(self, model: Any, max_new_base_tokens: int | None = None) -> None:
        self.model = model
        self.codec = model.codec
        config = model.config
        self.V = config.base_vocab_size
        self.C = config.max_codebook_size
        self.M = config.max_subtokens
        self.base_positions = config.position_mode == "base"
        self.canonical = bool(getattr(config, "canonical_mask", False))
        self.max_new_base_tokens = max_new_base_tokens
        self.decoders: list[LZWDecoder] = []
        self.columns = 0
        self.prompt_columns = 0
        self.phrases: list[list[tuple[int, ...]]] = []
        self.limits: list[list[int]] = []
        self.candidates: list[list[tuple[int, ...] | None]] = []
        self.excluded: list[list[list[int]]] = []  # codes a canonical stream could not have after each column
        self.positions: list[list[int]] = []
        self.base_end: list[list[int]] = []  # base ids decoded up to and including each column
        self.attended: list[int] = []
        self.prompt_base: list[int] = []
        self.finished_at: list[int | None] = []  # column whose code a zip2zip criterion stopped the row at
        self.codes: list[list[int]] = []
        self.entries: list[list[tuple[int, ...]]] = []  # each row's codebook, slot by slot
        self._new_entries: list[tuple[int, int, tuple[int, ...]]] = []  # created, output vector not written
        self._in_written: list[set[int]] = []
        self._in_buffer: torch.Tensor | None = None
        self._out_buffer: torch.Tensor | None = None
        self.entry_vectors = model.new_entry_cache()  # each distinct entry's vectors, computed once
        self._written_candidates: list[tuple[int, tuple[int, ...]] | None] = []
        self._seed_written = False
        # Prompt lookup (``lookup_zip2zip.py``): what it matches on, and what it counts.
        self.lookup_match = "base"
        self.restores = 0  # times `restore` cut entries: caches of entries by slot are stale after it
        self.forward_passes: int | None = None  # None: one forward pass per step
        self.proposed_codes = 0
        self.accepted_codes = 0

    @property
    def initialized(self) -> bool:
        return bool(self.decoders)

    @property
    def batch_size(self) -> int:
        return len(self.decoders)

    # ---------------------------------------------------------------- feeding codes

    def sync(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> None:
        """Feed every column of `input_ids` not fed yet (the first call reads the prompt with its mask)."""
        if not self.initialized:
            self._start(input_ids, attention_mask)
            return
        if input_ids.shape[0] != self.batch_size:
            raise ValueError(
                f"generation state holds {self.batch_size} rows but input_ids has {input_ids.shape[0]}; "
                "a zip2zip generation state serves one generate() call"
            )
        if input_ids.shape[1] > self.columns:
            self._feed_columns(input_ids[:, self.columns :].tolist(), None, generated=True)

    def push(self, tokens: torch.Tensor, column: int) -> None:
        """Feed `tokens` (one code per row) as `column`, unless that column was fed already."""
        if column == self.columns:
            self._feed_columns([[int(t)] for t in tokens.reshape(-1).tolist()], None, generated=True)
        elif column > self.columns:
            raise ValueError(f"generation state is at column {self.columns}, cannot feed column {column}")

    def snapshot(self) -> Zip2ZipStateSnapshot:
        """The state as it is now, for :meth:`restore` (prompt lookup takes one before feeding proposed codes)."""
        return Zip2ZipStateSnapshot(
            columns=self.columns,
            decoders=[decoder.copy() for decoder in self.decoders],
            entries=[len(entries) for entries in self.entries],
            attended=list(self.attended),
            pending_entries=list(self._new_entries),
        )

    def restore(self, snapshot: Zip2ZipStateSnapshot) -> None:
        """Forget every column fed after `snapshot` (taken from this state; each snapshot restores once).

        Afterwards the state equals one that was never fed those columns: decoders, per-column records, the
        codebook entries and which slots hold input vectors. Output vectors of the forgotten entries stay in
        the buffer, but their slots are masked until an entry is created there again and rewritten.
        """
        keep = snapshot.columns
        if keep > self.columns:
            raise ValueError(
                f"cannot restore a snapshot at column {keep}: the state is at column {self.columns}"
            )
        self.decoders = snapshot.decoders
        self.columns = keep
        for records in (
            self.phrases,
            self.limits,
            self.candidates,
            self.excluded,
            self.positions,
            self.base_end,
            self.codes,
        ):
            for row in records:
                del row[keep:]
        for b, count in enumerate(snapshot.entries):
            del self.entries[b][count:]
            self._in_written[b] = {slot for slot in self._in_written[b] if slot < count}
            self._written_candidates[b] = None
        self.attended = list(snapshot.attended)
        self._new_entries = list(snapshot.pending_entries)
        self.restores += 1

    def _start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        rows = input_ids.shape[0]
        seed = list(self.codec.initial_codebook)
        self.decoders = [self.codec.new_decoder() for _ in range(rows)]
        self.phrases = [[] for _ in range(rows)]
        self.codes = [[] for _ in range(rows)]
        self.entries = [list(seed) for _ in range(rows)]
        self._in_written = [set(range(len(seed))) for _ in range(rows)]  # written with the buffers
        self.limits = [[] for _ in range(rows)]
        self.candidates = [[] for _ in range(rows)]
        self.excluded = [[] for _ in range(rows)]
        self.positions = [[] for _ in range(rows)]
        self.base_end = [[] for _ in range(rows)]
        self.attended = [0] * rows
        self.finished_at = [None] * rows
        self._written_candidates = [None] * rows
        mask = None
        if attention_mask is not None and attention_mask.dim() == 2:
            mask = attention_mask[:, -input_ids.shape[1] :].bool().tolist()
        self._feed_columns(input_ids.tolist(), mask, generated=False)
        self.prompt_columns = self.columns
        self.prompt_base = [ends[-1] if ends else 0 for ends in self.base_end]

    def _feed_columns(self, ids: list[list[int]], mask: list[list[bool]] | None, generated: bool) -> None:
        """Feed columns of codes. With the canonical mask, the prompt is a segment of its own (see
        `excluded_after`): nothing is excluded after its last code, as after a training row's prompt."""
        V = self.V
        canonical = self.canonical
        width = len(ids[0]) if ids else 0
        prompt_end = width - 1 if not generated else -1  # left padding: every prompt ends in the last column
        for b, row in enumerate(ids):
            decoder = self.decoders[b]
            phrases, limits, candidates = self.phrases[b], self.limits[b], self.candidates[b]
            excluded = self.excluded[b]
            positions, base_end = self.positions[b], self.base_end[b]
            row_mask = mask[b] if mask is not None else None
            self.codes[b].extend(row)
            entries = self.entries[b]
            total = base_end[-1] if base_end else 0
            for j, code in enumerate(row):
                if row_mask is not None and not row_mask[j]:
                    phrases.append(())
                    limits.append(0)
                    candidates.append(None)
                    excluded.append([])
                    positions.append(0)
                    base_end.append(total)
                    continue
                if not decoder.can_accept(code):
                    raise ValueError(self._rejected_message(b, self.columns + j, code, decoder))
                step = decoder.feed(code)
                for code_id, entry in step.created:
                    self._new_entries.append((b, code_id - V, entry))
                    entries.append(entry)
                total += len(step.phrase)
                self.attended[b] += 1
                phrases.append(step.phrase)
                limits.append(decoder.accept_limit)
                candidates.append(decoder.candidate)
                excluded.append(
                    excluded_after(decoder.excluded_next(code), j == prompt_end) if canonical else []
                )
                positions.append(total - 1 if self.base_positions else self.attended[b] - 1)
                base_end.append(total)
        self.columns += width

    def _rejected_message(self, row: int, column: int, code: int, decoder: LZWDecoder) -> str:
        where = "prompt" if not self.prompt_columns else f"generation step {column - self.prompt_columns}"
        limit = self.V + decoder.accept_limit
        return (
            f"row {row} has code {code} at column {column} ({where}), but its LZW decoder accepts only base ids "
            f"and hypertoken ids < {limit} there, so the sequence could not be decoded. In a prompt: tokenize it "
            "with the model's Zip2ZipTokenizer (same base_vocab_size, max_codebook_size, max_subtokens, "
            "disabled_ids). In generation: a logits processor gave a masked (-inf) slot a finite score."
        )

    # ---------------------------------------------------------------- per-row views

    def generated_base_before(self, row: int, column: int) -> int:
        """New base ids of `row` decoded before `column` (a generated column)."""
        ends = self.base_end[row]
        return (ends[column - 1] if column > 0 else 0) - self.prompt_base[row]

    def visible_phrase(self, row: int, column: int) -> tuple[int, ...]:
        """The base ids `column` adds to the output of `row`: its phrase, cut to the base-token budget."""
        phrase = self.phrases[row][column]
        if self.max_new_base_tokens is None or column < self.prompt_columns:
            return phrase
        room = self.max_new_base_tokens - self.generated_base_before(row, column)
        return phrase[: max(room, 0)]

    def prompt_base_ids(self, row: int) -> list[int]:
        return [i for phrase in self.phrases[row][: self.prompt_columns] for i in phrase]

    def generated_base_ids(self, row: int, end: int | None = None) -> list[int]:
        stop = self.columns if end is None else end
        return [i for c in range(self.prompt_columns, stop) for i in self.visible_phrase(row, c)]

    # ---------------------------------------------------------------- model inputs

    def model_inputs(self, length: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Codebook inputs of `forward` for the last `length` columns (the slice the loop feeds)."""
        start = self.columns - length
        self._grow(min(max(d.next_id - self.V + 1 for d in self.decoders), self.C), device)
        self._write_seed()
        self._embed_outputs(device)
        self._embed_inputs(start, device)
        limits = [row[start:] for row in self.limits]
        K = max((max(row) for row in limits if row), default=0)
        inputs = {
            "accept_limits": torch.tensor(limits, dtype=torch.long, device=device),
            "position_ids": torch.tensor(
                [row[start:] for row in self.positions], dtype=torch.long, device=device
            ),
            "codebook_input_embeds": self._in_buffer[:, :K],
            "codebook_output_embeds": self._out_buffer[:, :K],
        }
        if length > 1:
            # Earlier positions' candidates are not in the output buffer (it holds the current one only).
            M = self.M
            table = [
                [list(c) + [-1] * (M - len(c)) if c is not None else [-1] * M for c in row[start:]]
                for row in self.candidates
            ]
            inputs["candidates"] = torch.tensor(table, dtype=torch.long, device=device)
        if self.canonical:
            inputs["excluded_codes"] = self.excluded_codes(length, device)
        return inputs

    def excluded_codes(self, length: int, device: torch.device) -> torch.Tensor:
        """`(B, length, E)` codes masked after each of the last `length` columns (`-1` padded; see
        `Zip2ZipConfig.canonical_mask`). Empty after the prompt's last code (`excluded_after`)."""
        start = self.columns - length
        return padded_table([row[start:] for row in self.excluded]).to(device)

    def _write_seed(self) -> None:
        """Copy the initial codebook's vectors (kept by the model) into slots `0 .. S-1` of every row, once."""
        if self._seed_written:
            return
        self._seed_written = True
        S = len(self.codec.initial_codebook)
        if not S:
            return
        for buffer, output in ((self._in_buffer, False), (self._out_buffer, True)):
            buffer[:, :S] = self.model.initial_codebook_vectors(output=output).to(buffer)

    def _embed_outputs(self, device: torch.device) -> None:
        """Output vectors of the entries created since the last call and of changed candidates.

        Every acceptable slot is scored at every step, so these are needed now: one encoder pass per step
        over the new entries and the candidates together.
        """
        current = [decoder.candidate for decoder in self.decoders]
        slots = [decoder.next_id - self.V for decoder in self.decoders]
        changed = [
            b
            for b in range(self.batch_size)
            if current[b] is not None and (slots[b], current[b]) != self._written_candidates[b]
        ]
        new = self._new_entries
        if not new and not changed:
            return
        targets = [(b, slot, entry) for b, slot, entry in new] + [(b, slots[b], current[b]) for b in changed]
        self._write(self._out_buffer, targets, True, device)
        for b in changed:
            self._written_candidates[b] = (slots[b], current[b])
        self._new_entries = []

    def _embed_inputs(self, start: int, device: torch.device) -> None:
        """Input vectors of the hypertokens fed from column `start` on, computed the first time each is fed.

        An entry's input vector is only needed where the entry is read, so most entries (created, scored,
        never emitted) never pay for the input encoder.
        """
        V = self.V
        targets = []
        for b in range(self.batch_size):
            written = self._in_written[b]
            codes = self.codes[b]
            for c in range(start, self.columns):
                slot = codes[c] - V
                if slot >= 0 and self.phrases[b][c] and slot not in written:
                    written.add(slot)
                    targets.append((b, slot, self.entries[b][slot]))
        if targets:
            self._write(self._in_buffer, targets, False, device)

    def _write(
        self,
        buffer: torch.Tensor,
        targets: list[tuple[int, int, tuple[int, ...]]],
        output: bool,
        device: torch.device,
    ) -> None:
        """Write the input (or output) vector of each target's entry to `buffer[row, slot]`."""
        vectors = self.entry_vectors.vectors([entry for _, _, entry in targets], output=output, device=device)
        index = (
            torch.tensor([b for b, _, _ in targets], device=device),
            torch.tensor([slot for _, slot, _ in targets], device=device),
        )
        buffer.index_put_(index, vectors.to(buffer.dtype))

    def _grow(self, needed: int, device: torch.device) -> None:
        capacity = 0 if self._in_buffer is None else self._in_buffer.shape[1]
        if needed <= capacity and self._in_buffer is not None:
            return
        new_capacity = min(self.C, max(64, needed, 2 * capacity)) if self.C else 0
        weight = self.model.get_input_embeddings().weight
        shape = (self.batch_size, new_capacity, weight.shape[-1])
        in_buffer = weight.new_zeros(shape, device=device)
        out_buffer = weight.new_zeros(shape, device=device)
        if self._in_buffer is not None and capacity:
            in_buffer[:, :capacity] = self._in_buffer
            out_buffer[:, :capacity] = self._out_buffer
        self._in_buffer, self._out_buffer = in_buffer, out_buffer

    # ---------------------------------------------------------------- results

    def finish_columns(self, codes: list[list[int]], eos_ids: set[int], pad_id: int | None) -> list[int]:
        """For each row, the column after its last counted code (see `Zip2ZipGenerationStats.codes`)."""
        start = self.prompt_columns
        ends = []
        for b, row in enumerate(codes):
            end = len(row)
            for c in range(start, len(row)):
                if row[c] in eos_ids:
                    end = c + 1
                    break
            if self.finished_at[b] is not None:
                end = min(end, self.finished_at[b] + 1)
            elif end == len(row) and pad_id is not None and pad_id not in eos_ids:
                while end > start and row[end - 1] == pad_id:
                    end -= 1
            ends.append(end)
        return ends

    def stats(self, codes: list[list[int]], eos_ids: set[int], pad_id: int | None) -> Zip2ZipGenerationStats:
        start = self.prompt_columns
        ends = self.finish_columns(codes, eos_ids, pad_id)
        return Zip2ZipGenerationStats(
            steps=self.columns - start,
            codes=[end - start for end in ends],
            base_tokens=[len(self.generated_base_ids(b, end)) for b, end in enumerate(ends)],
            hypertokens=[sum(code >= self.V for code in row[start:end]) for row, end in zip(codes, ends)],
            forward_passes=self.forward_passes,
            proposed_codes=self.proposed_codes,
            accepted_codes=self.accepted_codes,
        )
