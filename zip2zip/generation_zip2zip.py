"""Generation for zip2zip models: transformers' own `generate()` loop, with a per-row LZW codebook.

A zip2zip model emits *codes*: base ids and hypertoken ids whose meaning depends on every code before them
in the same sequence (see ``lzw.py``). This file plugs that into [`~transformers.GenerationMixin`] through
its hooks, so greedy search, multinomial sampling and every logits processor, stopping criterion and
streamer of transformers keep working:

* ``prepare_inputs_for_generation`` keeps one [`Zip2ZipGenerationState`] per `generate()` call (passed
  through the model kwargs as ``zip2zip_state``). It holds an incremental LZW decoder per row, started from
  the row's prompt (left padding stripped with the attention mask) and fed every code the loop appends. Each
  step it embeds only the entries the new codes created, input side and output side, plus each row's
  ``KwKwK`` candidate (the entry the next code could create and use at once), caches the vectors by entry,
  and hands ``forward`` the precomputed ``accept_limits``, ``codebook_input_embeds``,
  ``codebook_output_embeds`` and ``position_ids``. ``forward`` masks every hypertoken slot the decoder
  cannot accept with ``-inf``, so every emitted code decodes. With ``use_cache=False`` nothing is passed and
  ``forward`` rebuilds the codebook from the full ``input_ids``: both paths give the same logits.
* ``generate`` wraps transformers' ``generate``: it returns, by default, each row's prompt codes followed by
  its generated codes *expanded to base ids* (right-padded with the pad id). The universal idiom
  ``tok.decode(out[0][prompt_len:])``, ``pipeline("text-generation")`` with a model object (which decodes
  only the new ids, without the prompt that defines their hypertokens) and stock streamers then all give the
  right text. ``return_codes=True`` returns the raw code stream instead (decode it with the prompt:
  ``tok.decode(out[0])``); with ``return_dict_in_generate=True`` both are on the output, as ``sequences`` and
  ``codes``, beside the generation statistics.
* Streamers get base ids: the prompt's (once the per-row state exists, at the first step), then each step's
  phrase, so ``TextStreamer`` and ``TextIteratorStreamer`` print exactly the final text. (The tokenizer's
  ``Zip2ZipTextStreamer`` keeps working too: base ids expand to themselves. It is only needed to stream
  codes produced elsewhere.)
* Input vectors of hypertokens are computed the first time a hypertoken is fed back (most entries are
  scored but never emitted); output vectors of each step's new entries and candidates take one padded
  encoder pass. Both are cached per distinct entry for the whole call; with tied encoders over tied
  embeddings an entry's two vectors are equal, so one cache serves both sides.
* ``stop_strings`` are checked on decoded text (transformers' ``StopStringCriteria`` indexes tables built
  from the tokenizer vocabulary by token id, which hypertoken ids would overrun).
* ``max_new_tokens`` counts *codes* (decoding steps), as everywhere in transformers; ``max_new_base_tokens``
  (a `generate` argument or a generation-config attribute) also stops each row once its new base tokens reach
  the budget, and the returned and streamed base ids are cut to exactly that many.
* Beam search, assisted and prompt-lookup decoding are rejected up front: they roll the KV cache back, and
  the per-row codebook would have to roll back with it.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import (
    GenerationMixin,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation import GenerationMode
from transformers.generation.streamers import BaseStreamer
from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerateDecoderOnlyOutput

from .lzw import LZWDecoder

__all__ = [
    "Zip2ZipAcceptSetLogitsProcessor",
    "Zip2ZipGenerateOutput",
    "Zip2ZipGenerationMixin",
    "Zip2ZipGenerationState",
    "Zip2ZipGenerationStats",
    "Zip2ZipMaxBaseTokensCriteria",
    "Zip2ZipStopStringCriteria",
]

_SUPPORTED_MODES = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE)


# ----------------------------------------------------------------------------------------- outputs


@dataclass
class Zip2ZipGenerationStats:
    """What one `generate()` call produced, per row (rows after `num_return_sequences` expansion).

    Attributes:
        steps: decoding steps (forward passes that each appended one code to every row, prefill included).
        codes: codes each row emitted, up to and including the one that finished it (eos, a stop string,
            the base-token budget); the padding a finished row gets while others go on is not counted.
        base_tokens: base tokens those codes stand for (after the `max_new_base_tokens` cut, if any).
        hypertokens: how many of those codes were hypertokens.
    """

    steps: int
    codes: list[int] = field(default_factory=list)
    base_tokens: list[int] = field(default_factory=list)
    hypertokens: list[int] = field(default_factory=list)

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
            "compression": self.compression,
            "hypertoken_rate": self.hypertoken_rate,
        }


@dataclass
class Zip2ZipGenerateOutput(GenerateDecoderOnlyOutput):
    r"""
    [`~transformers.generation.GenerateDecoderOnlyOutput`] of a zip2zip model.

    sequences (`torch.LongTensor` of shape `(batch_size * num_return_sequences, prompt_len + new_len)`):
        The prompt's codes, then the generated codes expanded to base ids, right-padded with the pad id
        (the raw codes with `return_codes=True`). Decode the new part alone with `tok.decode(seq[prompt_len:])`.
    scores / logits (`tuple(torch.FloatTensor)`):
        One `(batch, V + C)` tensor per decoding step (per *code*, not per base id).
    codes (`torch.LongTensor` of shape `(batch_size * num_return_sequences, prompt_len + steps)`):
        The raw code stream: prompt codes, then one code per step. Decode with the prompt.
    generation_stats ([`Zip2ZipGenerationStats`]):
        Steps, codes emitted, base tokens and hypertokens per row.
    """

    codes: torch.LongTensor | None = None
    generation_stats: Zip2ZipGenerationStats | None = None


# ----------------------------------------------------------------------------------------- state


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
    row's current candidate (its logit is then an ordinary slot score). Vectors are computed once per
    distinct entry (rows of a batch, and `num_return_sequences` copies, share prompt entries).
    """

    def __init__(self, model: Any, max_new_base_tokens: int | None = None) -> None:
        self.model = model
        self.codec = model.codec
        config = model.config
        self.V = config.base_vocab_size
        self.C = config.max_codebook_size
        self.M = config.max_subtokens
        self.base_positions = config.position_mode == "base"
        self.max_new_base_tokens = max_new_base_tokens
        self.decoders: list[LZWDecoder] = []
        self.columns = 0
        self.prompt_columns = 0
        self.phrases: list[list[tuple[int, ...]]] = []
        self.limits: list[list[int]] = []
        self.candidates: list[list[tuple[int, ...] | None]] = []
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
        self._out_cache: dict[tuple[int, ...], torch.Tensor] = {}
        # One encoder over tied embeddings gives every entry the same input and output vector: share them.
        self._in_cache = self._out_cache if _same_vectors_both_sides(model) else {}
        self._written_candidates: list[tuple[int, tuple[int, ...]] | None] = []

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
            self._feed_columns(input_ids[:, self.columns :].tolist(), None)

    def push(self, tokens: torch.Tensor, column: int) -> None:
        """Feed `tokens` (one code per row) as `column`, unless that column was fed already."""
        if column == self.columns:
            self._feed_columns([[int(t)] for t in tokens.reshape(-1).tolist()], None)
        elif column > self.columns:
            raise ValueError(f"generation state is at column {self.columns}, cannot feed column {column}")

    def _start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        rows = input_ids.shape[0]
        self.decoders = [self.codec.new_decoder() for _ in range(rows)]
        self.phrases = [[] for _ in range(rows)]
        self.codes = [[] for _ in range(rows)]
        self.entries = [[] for _ in range(rows)]
        self._in_written = [set() for _ in range(rows)]
        self.limits = [[] for _ in range(rows)]
        self.candidates = [[] for _ in range(rows)]
        self.positions = [[] for _ in range(rows)]
        self.base_end = [[] for _ in range(rows)]
        self.attended = [0] * rows
        self.finished_at = [None] * rows
        self._written_candidates = [None] * rows
        mask = None
        if attention_mask is not None and attention_mask.dim() == 2:
            mask = attention_mask[:, -input_ids.shape[1] :].bool().tolist()
        self._feed_columns(input_ids.tolist(), mask)
        self.prompt_columns = self.columns
        self.prompt_base = [ends[-1] if ends else 0 for ends in self.base_end]

    def _feed_columns(self, ids: list[list[int]], mask: list[list[bool]] | None) -> None:
        V = self.V
        width = len(ids[0]) if ids else 0
        for b, row in enumerate(ids):
            decoder = self.decoders[b]
            phrases, limits, candidates = self.phrases[b], self.limits[b], self.candidates[b]
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
        return inputs

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
        self._write(self._out_buffer, targets, self._out_cache, True, device)
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
            self._write(self._in_buffer, targets, self._in_cache, False, device)

    def _write(
        self,
        buffer: torch.Tensor,
        targets: list[tuple[int, int, tuple[int, ...]]],
        cache: dict[tuple[int, ...], torch.Tensor],
        output: bool,
        device: torch.device,
    ) -> None:
        """Encode the targets' entries not in `cache` (one pass), then write `buffer[row, slot]`."""
        missing = list(dict.fromkeys(entry for _, _, entry in targets if entry not in cache))
        if missing:
            width = max(len(e) for e in missing)  # pad to the longest entry, not to M: fewer encoder rows
            table = torch.tensor(
                [list(e) + [-1] * (width - len(e)) for e in missing], dtype=torch.long, device=device
            )
            vectors = _encode_entries(self.model, table, output).to(buffer.dtype)
            cache.update(zip(missing, vectors))
        index = (
            torch.tensor([b for b, _, _ in targets], device=device),
            torch.tensor([slot for _, slot, _ in targets], device=device),
        )
        buffer.index_put_(index, torch.stack([cache[entry] for _, _, entry in targets]))

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
        )


# ----------------------------------------------------------------------------------------- processors


class Zip2ZipAcceptSetLogitsProcessor(LogitsProcessor):
    """Keeps every hypertoken slot a row's decoder cannot accept at `-inf`, after all other processors.

    The model's logits are masked already, and transformers' processors keep `-inf` scores at `-inf`;
    `generate` adds this one after the caller's own `logits_processor` list, so that no custom processor
    (one that shifts or clamps scores) can make an undecodable code selectable.
    """

    def __init__(self, state: Zip2ZipGenerationState) -> None:
        self.state = state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        state = self.state
        state.sync(input_ids)
        limits = torch.tensor([decoder.accept_limit for decoder in state.decoders], device=scores.device)
        slots = torch.arange(scores.shape[-1] - state.V, device=scores.device)
        blocked = slots[None, :] >= limits[:, None]
        if bool(blocked.any()):
            hyper = scores[:, state.V :].masked_fill(blocked, float("-inf"))
            scores = torch.cat([scores[:, : state.V], hyper], dim=-1)
        return scores


class Zip2ZipStopStringCriteria(StoppingCriteria):
    """Stops a row when its decoded text gains one of `stop_strings` (the match must end in the newest code).

    Text is decoded from the row's base ids with the base tokenizer, over a window of the last few base ids,
    so the cost per step does not grow with the sequence. transformers' `StopStringCriteria` cannot be used:
    it precomputes tables from the vocabulary and indexes them by token id, and hypertoken ids are beyond it.
    """

    def __init__(
        self, state: Zip2ZipGenerationState, stop_strings: str | Sequence[str], tokenizer: Any
    ) -> None:
        if isinstance(stop_strings, str):
            stop_strings = [stop_strings]
        self.stop_strings = [s for s in stop_strings if s]
        if not self.stop_strings:
            raise ValueError(f"stop_strings must hold at least one non-empty string, got {stop_strings!r}")
        if tokenizer is None:
            raise ValueError(
                "generate(stop_strings=...) needs the tokenizer to read the text: pass tokenizer=tok as well"
            )
        # A Zip2ZipTokenizer decodes base ids through its base tokenizer; use that directly (no LZW pass).
        base = getattr(tokenizer, "base", None) if hasattr(tokenizer, "decode_to_base_ids") else None
        self.decode = (base or tokenizer).decode
        self.state = state
        longest = max(len(s) for s in self.stop_strings)
        # A character spans at most 4 byte-level tokens; the newest code adds at most max_subtokens ids.
        self.window = 4 * longest + state.M + 4

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        state = self.state
        state.sync(input_ids)
        column = state.columns - 1
        done = []
        for b in range(state.batch_size):
            if state.finished_at[b] is not None:
                done.append(True)
                continue
            new = state.visible_phrase(b, column)
            hit = False
            if new:
                ids = self._row_ids(b, column)
                window = ids[max(0, len(ids) - self.window) :]
                before = self.decode(window[: len(window) - len(new)], skip_special_tokens=False)
                after = self.decode(window, skip_special_tokens=False)
                boundary = _common_prefix_length(before, after)
                hit = any(after.find(s, max(0, boundary - len(s) + 1)) >= 0 for s in self.stop_strings)
            if hit:
                state.finished_at[b] = column
            done.append(hit)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _row_ids(self, row: int, column: int) -> list[int]:
        """The row's base ids up to `column`, reading back only as many columns as the window needs."""
        state = self.state
        pieces: list[tuple[int, ...]] = []
        count = 0
        c = column
        while c >= 0 and count < self.window:
            phrase = state.visible_phrase(row, c)
            pieces.append(phrase)
            count += len(phrase)
            c -= 1
        return [i for phrase in reversed(pieces) for i in phrase]


class Zip2ZipMaxBaseTokensCriteria(StoppingCriteria):
    """Stops a row once its generated codes stand for `max_new_base_tokens` base tokens.

    A hypertoken can cross the budget; the returned and streamed base ids are cut to exactly the budget.
    """

    def __init__(self, state: Zip2ZipGenerationState, max_new_base_tokens: int) -> None:
        if isinstance(max_new_base_tokens, bool) or not isinstance(max_new_base_tokens, int):
            raise TypeError(f"max_new_base_tokens must be an int, got {max_new_base_tokens!r}")
        if max_new_base_tokens < 1:
            raise ValueError(f"max_new_base_tokens must be >= 1, got {max_new_base_tokens}")
        self.state = state
        self.max_new_base_tokens = max_new_base_tokens

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        state = self.state
        state.sync(input_ids)
        column = state.columns - 1
        done = []
        for b in range(state.batch_size):
            reached = state.base_end[b][column] - state.prompt_base[b] >= self.max_new_base_tokens
            if reached and state.finished_at[b] is None:
                state.finished_at[b] = column
            done.append(reached or state.finished_at[b] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# ----------------------------------------------------------------------------------------- streaming


class _BaseIdStreamer(BaseStreamer):
    """Puts base ids into the user's streamer: the prompt's, then each step's phrase.

    transformers puts the prompt before the per-row state exists (it is built at the first model call, from
    the expanded prompt and its attention mask), so the prompt is held back and put right before the first
    step's ids. A stock streamer decodes what it has been given without the prompt; since it only ever sees
    base ids, hypertokens that refer to prompt entries print correctly.
    """

    def __init__(self, streamer: BaseStreamer, state: Zip2ZipGenerationState, pad_id: int) -> None:
        self.streamer = streamer
        self.state = state
        self.pad_id = pad_id
        self.column: int | None = None
        self.prompt_pending = False

    def put(self, value: torch.Tensor) -> None:
        if self.column is None:
            self.column = value.shape[-1] if value.dim() > 1 else value.shape[0]
            self.prompt_pending = True
            return
        self._flush_prompt()
        self.state.push(value, self.column)
        rows = [list(self.state.visible_phrase(b, self.column)) for b in range(self.state.batch_size)]
        self.column += 1
        if len(rows) == 1:
            if rows[0]:
                self.streamer.put(torch.tensor(rows[0], dtype=torch.long))
        else:
            self.streamer.put(self._pad(rows))

    def end(self) -> None:
        self._flush_prompt()
        self.streamer.end()

    def _flush_prompt(self) -> None:
        if not self.prompt_pending or not self.state.initialized:
            return
        self.prompt_pending = False
        rows = [self.state.prompt_base_ids(b) for b in range(self.state.batch_size)]
        self.streamer.put(
            torch.tensor(rows[0], dtype=torch.long) if len(rows) == 1 else self._pad(rows, "left")
        )

    def _pad(self, rows: list[list[int]], side: str = "right") -> torch.Tensor:
        width = max(len(r) for r in rows)
        fill = [[self.pad_id] * (width - len(r)) for r in rows]
        padded = [f + r if side == "left" else r + f for r, f in zip(rows, fill)]
        return torch.tensor(padded, dtype=torch.long)


# ----------------------------------------------------------------------------------------- the mixin


class Zip2ZipGenerationMixin(GenerationMixin):
    """`GenerationMixin` for zip2zip models: per-row LZW codebooks in transformers' generation loop.

    See the module docstring for the design. The model class must provide `codec`, `config`
    (`base_vocab_size`, `max_codebook_size`, `max_subtokens`, `position_mode`), `embed_hypertokens`,
    `unembed_hypertokens` and a `forward` that accepts `accept_limits`, `candidates`,
    `codebook_input_embeds` and `codebook_output_embeds`.
    """

    _supported_generation_modes = _SUPPORTED_MODES

    last_generation_stats: Zip2ZipGenerationStats | None = None
    """Statistics of the latest `generate()` call of this model."""

    @torch.no_grad()
    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: Any = None,
        logits_processor: LogitsProcessorList | None = None,
        stopping_criteria: Any = None,
        prefix_allowed_tokens_fn: Any = None,
        synced_gpus: bool | None = None,
        assistant_model: Any = None,
        streamer: BaseStreamer | None = None,
        negative_prompt_ids: torch.Tensor | None = None,
        negative_prompt_attention_mask: torch.Tensor | None = None,
        custom_generate: Any = None,
        **kwargs: Any,
    ) -> Zip2ZipGenerateOutput | torch.LongTensor:
        r"""
        Generate with transformers' loop ([`~transformers.GenerationMixin.generate`]); every argument works as
        there (greedy and sampling only). On top:

        Args:
            return_codes (`bool`, *optional*, defaults to `False`):
                Return the raw code stream (prompt codes, then one code per step) instead of the generated codes
                expanded to base ids. Also read from `generation_config.return_codes`.
            max_new_base_tokens (`int`, *optional*):
                Stop each row once its new codes stand for this many base tokens, and cut the returned and
                streamed base ids to exactly that many. `max_new_tokens` (codes) defaults to it when unset.
                Also read from `generation_config.max_new_base_tokens`.
            stop_strings (`str` or `list[str]`, *optional*):
                As in transformers (needs `tokenizer=`), checked on the decoded text of each row.

        Returns:
            `torch.LongTensor` of shape `(rows, prompt_len + new_len)`: the prompt's codes (as given, left
            padding included), then each row's new base ids right-padded with the pad id, so
            `tok.decode(out[b][prompt_len:])` is the new text of row `b`. With `return_dict_in_generate=True`,
            a [`Zip2ZipGenerateOutput`] that also holds the raw `codes` and the `generation_stats`
            (always available as `model.last_generation_stats` too).
        """
        if custom_generate is not None:
            raise ValueError(
                f"{type(self).__name__}.generate does not take custom_generate={custom_generate!r}: its decoding "
                "loop must keep each row's LZW codebook; use greedy search or sampling"
            )
        if assistant_model is not None:
            self._check_generation_mode(GenerationMode.ASSISTED_GENERATION, "assistant_model= was given")
        configs = [c for c in (generation_config, self.generation_config) if c is not None]
        return_codes = bool(_setting("return_codes", kwargs, configs, pop=True) or False)
        max_new_base_tokens = _setting("max_new_base_tokens", kwargs, configs, pop=True)
        stop_strings = _setting("stop_strings", kwargs, configs)
        if max_new_base_tokens is not None and not any(
            _setting(name, kwargs, configs) is not None for name in ("max_new_tokens", "max_length")
        ):
            kwargs["max_new_tokens"] = int(max_new_base_tokens)

        state = Zip2ZipGenerationState(self, max_new_base_tokens)
        pad_id, eos_ids = _special_ids(self, kwargs, configs)

        criteria = list(stopping_criteria) if stopping_criteria is not None else []
        if stop_strings:
            criteria.append(Zip2ZipStopStringCriteria(state, stop_strings, kwargs.get("tokenizer")))
        if max_new_base_tokens is not None:
            criteria.append(Zip2ZipMaxBaseTokensCriteria(state, max_new_base_tokens))
        criteria = StoppingCriteriaList(criteria)
        processors = LogitsProcessorList(list(logits_processor) if logits_processor is not None else [])
        if processors:
            # transformers' own processors keep -inf at -inf; custom ones may not, so re-mask after them.
            processors.append(Zip2ZipAcceptSetLogitsProcessor(state))
        wrapped = _BaseIdStreamer(streamer, state, pad_id) if streamer is not None else None

        result = super().generate(
            inputs=inputs,
            generation_config=generation_config,
            logits_processor=processors,
            stopping_criteria=criteria,
            prefix_allowed_tokens_fn=prefix_allowed_tokens_fn,
            synced_gpus=synced_gpus,
            assistant_model=assistant_model,
            streamer=wrapped,
            negative_prompt_ids=negative_prompt_ids,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
            zip2zip_state=state,
            **kwargs,
        )
        codes = result.sequences if isinstance(result, GenerateDecoderOnlyOutput) else result
        state.sync(codes)
        code_rows = codes.tolist()
        stats = state.stats(code_rows, eos_ids, pad_id)
        self.last_generation_stats = stats
        sequences = codes if return_codes else _expand(state, codes, pad_id)
        if not isinstance(result, GenerateDecoderOnlyOutput):
            return sequences
        return Zip2ZipGenerateOutput(
            sequences=sequences,
            scores=result.scores,
            logits=result.logits,
            attentions=result.attentions,
            hidden_states=result.hidden_states,
            cache=result.cache,
            codes=codes,
            generation_stats=stats,
        )

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Any = None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        is_first_iteration: bool | None = False,
        zip2zip_state: Zip2ZipGenerationState | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """transformers' inputs, plus the codebook state of the positions this step feeds.

        Positions are computed here from the codebook (compressed or base-stream positions, as `forward`
        computes them for a full sequence), not extended by one per step as transformers does. With a cache,
        `forward` gets the precomputed accept limits and hypertoken vectors; without one (`use_cache=False`),
        it rebuilds them from the full `input_ids`.
        """
        if inputs_embeds is not None:
            raise ValueError(
                f"{type(self).__name__} generates from input_ids only: hypertoken embeddings depend on each row's "
                "codebook, which inputs_embeds does not carry"
            )
        kwargs.pop("position_ids", None)
        if kwargs.pop("past_key_values", None) is not None and cache is None:
            raise ValueError("pass the KV cache as cache=, not past_key_values=")
        state = zip2zip_state
        if state is None:
            # Called outside generate(): rebuild from the full sequence at every call (correct, slower).
            state = Zip2ZipGenerationState(self)
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        state.sync(input_ids, attention_mask)
        length = model_inputs["input_ids"].shape[1]
        if cache is None:
            model_inputs["position_ids"] = None
            return model_inputs
        model_inputs.update(state.model_inputs(length, self.device))
        return model_inputs

    def _validate_generation_mode(
        self, generation_mode: Any, generation_config: Any, generation_mode_kwargs: Any
    ):
        reason = ""
        if generation_mode not in _SUPPORTED_MODES:
            reason = _mode_reason(generation_mode, generation_config, generation_mode_kwargs)
        self._check_generation_mode(generation_mode, reason)
        if getattr(generation_config, "prefill_chunk_size", None) is not None:
            raise ValueError(
                f"{type(self).__name__}.generate does not support prefill_chunk_size="
                f"{generation_config.prefill_chunk_size}: chunked prefill calls forward without the per-row codebook "
                "state; leave it unset"
            )
        return super()._validate_generation_mode(generation_mode, generation_config, generation_mode_kwargs)

    def _get_deprecated_gen_repo(
        self, generation_mode: Any, trust_remote_code: Any, custom_generate: Any = None
    ):
        # Runs before _validate_generation_mode: modes moved to Hub repos (contrastive search, group and
        # constrained beam search) would otherwise ask for trust_remote_code instead of saying they are unsupported.
        if "/" in GENERATION_MODES_MAPPING.get(generation_mode, ""):
            self._check_generation_mode(generation_mode)
        return super()._get_deprecated_gen_repo(generation_mode, trust_remote_code, custom_generate)

    def _check_generation_mode(self, generation_mode: Any, reason: str = "") -> None:
        if generation_mode in _SUPPORTED_MODES:
            return
        name = getattr(generation_mode, "value", generation_mode)
        supported = " and ".join(repr(m.value) for m in _SUPPORTED_MODES)
        raise ValueError(
            f"{type(self).__name__}.generate supports the generation modes {supported} (num_beams=1, do_sample "
            f"False or True, no assistant_model / prompt_lookup_num_tokens / assistant_early_exit), but got "
            f"generation mode {name!r}{f' ({reason})' if reason else ''}. Beam search, assisted and prompt-lookup "
            "decoding roll the KV cache back, and each row's LZW codebook would have to roll back with it."
        )

    def _get_stopping_criteria(self, generation_config: Any, stopping_criteria: Any, tokenizer: Any = None):
        """transformers' criteria without its `StopStringCriteria` (generate() adds a text-based one)."""
        stop_strings = generation_config.stop_strings
        generation_config.stop_strings = None
        try:
            return super()._get_stopping_criteria(generation_config, stopping_criteria, tokenizer)
        finally:
            generation_config.stop_strings = stop_strings


# ----------------------------------------------------------------------------------------- helpers


def _setting(name: str, kwargs: dict, configs: Sequence[Any], pop: bool = False) -> Any:
    """A generation setting: the `generate` kwarg, else the first config that sets it."""
    if name in kwargs:
        return kwargs.pop(name) if pop else kwargs[name]
    for config in configs:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _special_ids(model: Any, kwargs: dict, configs: Sequence[Any]) -> tuple[int, set[int]]:
    """The pad id finished rows get, and the eos ids, resolved as transformers resolves them."""
    eos = _setting("eos_token_id", kwargs, configs)
    if isinstance(eos, torch.Tensor):
        eos = eos.tolist()
    eos_list = [int(i) for i in (eos if isinstance(eos, (list, tuple)) else [eos]) if i is not None]
    pad = _setting("pad_token_id", kwargs, configs)
    if pad is None:  # transformers pads finished rows with the first eos id then
        pad = eos_list[0] if eos_list else 0
    return int(pad), set(eos_list)


def _encode_entries(model: Any, entries: torch.Tensor, output: bool) -> torch.Tensor:
    """Input (or output) vectors of `(N, M)` entries, `-1` padded.

    A handful of entries of mixed lengths (one step's new entries and candidates) go through the encoder in
    one padded, masked pass: the public `embed_hypertokens` / `unembed_hypertokens` group entries by
    length, which would cost one pass per distinct length, and a pass costs a read of all encoder weights.
    The encoder documents both ways as equal. (Packing the real rows into one sequence with block-diagonal
    attention instead of padding measured slower: its extra operators cost more than the padded rows.) Many
    entries (a prompt's codebook) use the public methods.
    """
    public = model.unembed_hypertokens if output else model.embed_hypertokens
    encoder = model.input_encoder
    if output and model.output_encoder is not None:
        encoder = model.output_encoder
    padded = getattr(encoder, "_encode", None)
    if padded is None or entries.shape[0] > 8:
        return public(entries)
    lengths = (entries >= 0).sum(-1)
    ids = entries.clamp(min=0)
    if output:
        constituents = model.get_output_embeddings().weight[ids]
    else:
        constituents = model.get_input_embeddings()(ids)
    return padded(constituents, lengths)


def _same_vectors_both_sides(model: Any) -> bool:
    """Whether an entry's input vector equals its output vector: tied encoders over tied embeddings."""
    if getattr(model, "output_encoder", None) is not None:
        return False
    return model.get_input_embeddings().weight is model.get_output_embeddings().weight


def _common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _mode_reason(generation_mode: Any, generation_config: Any, generation_mode_kwargs: Any) -> str:
    if generation_mode == GenerationMode.ASSISTED_GENERATION:
        if getattr(generation_config, "prompt_lookup_num_tokens", None) is not None:
            return f"prompt_lookup_num_tokens={generation_config.prompt_lookup_num_tokens}"
        if (generation_mode_kwargs or {}).get("assistant_model") is not None:
            return "assistant_model= was given"
        return "assisted decoding was requested"
    beams = getattr(generation_config, "num_beams", None)
    return f"num_beams={beams}" if beams and beams > 1 else ""


def _expand(state: Zip2ZipGenerationState, codes: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Prompt codes as given, then each row's generated base ids, right-padded with `pad_id`."""
    prompt = codes[:, : state.prompt_columns]
    rows = [state.generated_base_ids(b) for b in range(state.batch_size)]
    width = max((len(r) for r in rows), default=0)
    new = torch.full((len(rows), width), pad_id, dtype=codes.dtype, device=codes.device)
    for b, row in enumerate(rows):
        if row:
            new[b, : len(row)] = torch.tensor(row, dtype=codes.dtype, device=codes.device)
    return torch.cat([prompt, new], dim=1)
