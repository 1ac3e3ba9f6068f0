"""Training data for zip2zip: examples tokenised and LZW-compressed per segment, and the collator.

A hypertoken must never span the prompt/completion (or user/assistant) boundary, and TRL's "tokenise prompt
and prompt+completion, then find the common prefix" would let LZW merge across it, so examples are tokenised
here (:func:`tokenize_example`). The collator (:class:`Zip2ZipDataCollator`) pads compressed rows and builds
each row's codebook state on the data-loader side, so the model does not rerun the LZW decoder in the step.
"""

from __future__ import annotations

import itertools
import logging
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.data.data_collator import DataCollatorMixin

from zip2zip.model.codebook_state_zip2zip import codebook_state
from zip2zip.model.lzw import LZWCodec
from zip2zip.trainer.data_validation import _SEQUENCE, _raw_empty_field

logger = logging.getLogger(__name__)


ENDS_DOCUMENT = "ends_document"
"""Optional boolean column of plain-text rows: False for a piece cut from a longer document (the recipe's long
mix), which then gets no end-of-sequence token, so that the model does not learn to stop where text goes on."""


STAT_COLUMNS: tuple[str, ...] = ("num_base_tokens", "num_target_bytes")
"""Per-example statistics that dataset preparation adds beside `input_ids` and `labels`: the base tokens the
row stands for (compression ratio) and the UTF-8 bytes its loss targets stand for (bits per byte). The collator
turns them into tensors; `compute_loss` takes them out before calling the model."""


DROPPED_COLUMN = "num_dropped_base_tokens"
"""Base tokens of an example that `max_length` cut off; the trainer sums it into one warning, then drops it."""


SEGMENT_ENDS = "segment_ends"
"""Column of training rows: the indices of the codes that end a segment compressed apart from the next one (a
prompt before its completion, a chat turn before the next). With canonical masking nothing is excluded after
them, as generation excludes nothing after the prompt's last code (`excluded_after`)."""


BASE_COLUMNS: tuple[str, ...] = ("base_input_ids", "base_attention_mask", "base_positions")
"""What :class:`Zip2ZipDataCollator` adds with `return_base_ids` (the teacher's rows); never given to the model."""


def _base_tokenizer(tokenizer: Any) -> Any:
    """The wrapped base tokenizer of a `Zip2ZipTokenizer` (the tokenizer itself when it has none)."""
    return getattr(tokenizer, "base", None) or tokenizer


def _tokenize_piece(base: Any, text: str, add_special_tokens: bool) -> list[int]:
    if not text:
        return []
    # verbose=False: the base tokenizer's "longer than the maximum" notice would be wrong here, since a long text is
    # split into rows (or its truncation counted and reported) after compression.
    return list(base(text, add_special_tokens=add_special_tokens, verbose=False)["input_ids"])


def line_cuts(text: str, share: float, count: int = 1) -> list[int]:
    """Where a plain text is cut as a user's prompt is cut: after `count` of its line ends (fewer if it has
    fewer), for about a `share` of texts, else nowhere. The choice is drawn from the text itself, so a text is
    cut alike in every run and on resume.

    A prompt is tokenised on its own, so one that ends at a line end ends with a bare newline token even where the
    file goes on with an indented line, which the tokenizer, reading the whole file, would have merged with the
    newline. A model that only ever saw whole files reads that bare newline as the end of an indented block, and
    at the end of a file, as the file's end; one cut per file is one such newline mid-file for each one before
    the file's end, so more cuts teach the difference faster.
    """
    if share <= 0:
        return []
    draw = random.Random(zlib.crc32(text.encode("utf-8", "surrogatepass")))
    if draw.random() >= share:
        return []
    ends = [k + 1 for k, char in enumerate(text[:-1]) if char == "\n"]
    if not ends:
        return []
    if count == 1:  # the single cut of earlier runs, drawn alike
        return [draw.choice(ends)]
    return sorted(draw.sample(ends, min(count, len(ends))))


def _render(
    tokenizer: Any, messages: list[dict], tools: Any, add_generation_prompt: bool, template: Any
) -> str:
    return tokenizer.apply_chat_template(
        messages,
        tools=tools,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        chat_template=template,
    )


def _chat_segments(
    tokenizer: Any, messages: list[dict], tools: Any, assistant_only: bool, template: Any
) -> list[tuple[str, bool]]:
    """Cut a rendered conversation into `(text, trained)` pieces at assistant-turn boundaries.

    Each assistant turn is the text between the conversation rendered up to the turn with the generation prompt
    and the conversation rendered through the turn: exactly what the model produces at inference. This needs a
    prefix-preserving template (ChatML, Llama 3, ...); otherwise we fail loudly rather than mislabel tokens.
    """
    full = _render(tokenizer, messages, tools, False, template)
    if not assistant_only:
        return [(full, True)]
    pieces: list[tuple[str, bool]] = []
    done = 0
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        before = _render(tokenizer, messages[:i], tools, True, template)
        after = _render(tokenizer, messages[: i + 1], tools, False, template)
        if not (full.startswith(after) and after.startswith(before) and len(before) >= done):
            raise ValueError(
                "assistant_only_loss=True needs a chat template whose rendering of the first turns is a prefix of "
                f"the whole conversation's, but turn {i} renders differently alone. Use a prefix-preserving "
                "template (chat_template_path=...) or set assistant_only_loss=False."
            )
        pieces.append((full[done : len(before)], False))
        pieces.append((full[len(before) : len(after)], True))
        done = len(after)
    pieces.append((full[done:], False))
    if not any(trained and text for text, trained in pieces):
        raise ValueError(
            "assistant_only_loss=True but a conversation has no assistant turn, so it has nothing to train on; "
            f"roles seen: {[m.get('role') for m in messages]}"
        )
    return pieces


def _segments(
    example: dict[str, Any],
    tokenizer: Any,
    text_field: str,
    completion_only: bool,
    assistant_only: bool,
    template: Any,
    line_cut_share: float = 0.0,
    line_cuts_per_text: int = 1,
) -> list[tuple[list[int], bool]]:
    """Base-token segments `(ids, trained)` of one example, in order; segments never share a hypertoken. A plain
    text picked by :func:`line_cuts` is tokenised in pieces, as a prompt and what follows it would be."""
    base = _base_tokenizer(tokenizer)
    eos = tokenizer.eos_token_id
    tools = example.get("tools")
    if "prompt" in example and "completion" in example:
        if isinstance(example["prompt"], _SEQUENCE):  # conversational (checked: both are lists of messages)
            prompt = list(example["prompt"])
            prompt_text = _render(tokenizer, prompt, tools, True, template) if prompt else ""
            full = _render(tokenizer, prompt + list(example["completion"]), tools, False, template)
            if not full.startswith(prompt_text):
                raise ValueError(
                    "the chat template renders the prompt alone differently from the start of prompt+completion, so "
                    "the completion cannot be cut out on a token boundary; use a prefix-preserving template"
                )
            prompt_ids = _tokenize_piece(base, prompt_text, False)
            completion_ids = _tokenize_piece(base, full[len(prompt_text) :], False)
        else:
            # Tokenised apart, as at inference: the prompt is tokenised alone and the completion generated after it.
            prompt_ids = _tokenize_piece(base, example["prompt"], True)
            completion_ids = _tokenize_piece(base, example["completion"], False)
            if eos is not None and (not completion_ids or completion_ids[-1] != eos):
                completion_ids.append(eos)
        return [(prompt_ids, not completion_only), (completion_ids, True)]
    if "messages" in example:
        pieces = _chat_segments(tokenizer, list(example["messages"]), tools, assistant_only, template)
        return [(_tokenize_piece(base, text, False), trained) for text, trained in pieces]
    text = example[text_field]
    bounds = [0, *line_cuts(text, line_cut_share, line_cuts_per_text), len(text)]
    ids = []
    for k, (start, end) in enumerate(itertools.pairwise(bounds)):
        ids += _tokenize_piece(base, text[start:end], k == 0)
    # A piece cut from a longer document (ENDS_DOCUMENT False) goes on after its last line: no end of sequence.
    if eos is not None and (not ids or ids[-1] != eos) and example.get(ENDS_DOCUMENT, True) is not False:
        ids.append(eos)
    return [(ids, True)]


def tokenize_example(
    example: dict[str, Any],
    tokenizer: Any,
    *,
    dataset_text_field: str = "text",
    completion_only_loss: bool = True,
    assistant_only_loss: bool = False,
    max_length: int | None = None,
    chat_template: str | None = None,
) -> dict[str, Any]:
    """Tokenise and LZW-compress one example into `input_ids`, `labels` and the :data:`STAT_COLUMNS`.

    Plain text (`dataset_text_field`), prompt/completion and conversational (`messages`) examples are
    accepted; plain text ends with the end-of-sequence token unless the row's :data:`ENDS_DOCUMENT` is False.
    The example is cut into base-token segments (prompt | completion, or the turns of a chat when
    `assistant_only_loss`), and the segments are compressed with one shared codebook where no hypertoken spans a
    segment boundary (`LZWDecoder.encode_greedy`, as in `LZWCodec.encode_segments`). The prompt therefore keeps
    the codes it gets on its own, exactly what the model reads at generation time, and the completion mask is
    exact in compressed space. Labels are `-100` on untrained segments. `max_length` truncates the codes
    (keep-start; a code-stream prefix always decodes). Bytes count the decoded text of the loss targets (the
    codes at positions 1.., since position 0 is never predicted), special tokens excluded; `num_dropped_base_tokens`
    counts the base tokens that `max_length` cut off. This is :func:`tokenize_rows` without splitting.

    A field of the wrong type raises TypeError, and an example with nothing to train on (None, `""` or an empty
    list where its trained text goes; see :func:`check_example`) raises ValueError.
    """
    return tokenize_rows(
        example,
        tokenizer,
        dataset_text_field=dataset_text_field,
        completion_only_loss=completion_only_loss,
        assistant_only_loss=assistant_only_loss,
        max_length=max_length,
        chat_template=chat_template,
        split_long_texts=False,
    )[0]


def tokenize_batch(batch: dict[str, list[Any]], tokenizer: Any, **kwargs: Any) -> dict[str, list[Any]]:
    """:func:`tokenize_rows` over a batch of examples (for `Dataset.map(batched=True)`): rows may outnumber examples."""
    names = list(batch)
    out: dict[str, list[Any]] = {}
    for values in zip(*(batch[name] for name in names), strict=True):
        for row in tokenize_rows(dict(zip(names, values, strict=True)), tokenizer, **kwargs):
            for key, value in row.items():
                out.setdefault(key, []).append(value)
    return out


def tokenize_rows(
    example: dict[str, Any],
    tokenizer: Any,
    *,
    dataset_text_field: str = "text",
    completion_only_loss: bool = True,
    assistant_only_loss: bool = False,
    max_length: int | None = None,
    chat_template: str | None = None,
    split_long_texts: bool = True,
    line_cut_share: float = 0.0,
    line_cuts_per_text: int = 1,
) -> list[dict[str, Any]]:
    """The training rows of one example: one row, or with `split_long_texts` a plain text cut into several.

    With `line_cut_share`, about that share of plain texts are tokenised in pieces cut after `line_cuts_per_text`
    of their line ends (:func:`line_cuts`): the model then sees, mid-text, the bare newline a prompt cut there
    ends with.

    A plain text longer than `max_length` codes is cut at line ends into consecutive rows of at most
    `max_length` codes, each compressed with a codebook of its own (each row is a sequence the model reads from
    its start), so that no text is dropped; only the text's last row carries the end-of-sequence token. A row
    is cut at the last line end that keeps it at least half full, else at the code limit. Prompt/completion and
    chat examples are truncated (their prompt is context the completion needs); `num_dropped_base_tokens` counts
    what truncation cut off.
    """
    empty = _raw_empty_field(example, dataset_text_field)
    if empty is not None:
        raise ValueError(
            f"the example has nothing to train on: its {empty!r} field is {example[empty]!r}; drop it "
            "(Zip2ZipSFTTrainer skips such rows and counts them)"
        )
    segments = _segments(
        example,
        tokenizer,
        dataset_text_field,
        completion_only_loss,
        assistant_only_loss,
        chat_template,
        line_cut_share,
        line_cuts_per_text,
    )
    codec, base = tokenizer.codec, _base_tokenizer(tokenizer)
    plain = not ("prompt" in example and "completion" in example) and "messages" not in example
    if not (split_long_texts and plain and max_length is not None):
        return [_row(segments, codec, base, max_length)]
    ((ids, _),) = segments
    line_ends = {x for x in set(ids) if "\n" in base.decode([x])}
    return [
        _row([(ids[start:end], True)], codec, base, None)
        for start, end in _row_bounds(codec, ids, max_length, line_ends)
    ]


def warn_dropped_text(dataset: Any, dataset_name: str = "train", max_length: int | None = None) -> Any:
    """`dataset` without its :data:`DROPPED_COLUMN`, after one warning with the base tokens truncation dropped.

    A streamed dataset warns at its first truncated row (its total is not known before training).
    """
    columns = dataset.column_names or []
    if DROPPED_COLUMN not in columns:
        return dataset
    if not hasattr(dataset, "num_rows"):
        return dataset.map(_StreamedDropWarning(dataset_name, max_length), remove_columns=[DROPPED_COLUMN])
    dropped = dataset[DROPPED_COLUMN]
    cut = sum(1 for x in dropped if x)
    if cut:
        kept = sum(dataset["num_base_tokens"])
        lost = sum(dropped)
        logger.warning(
            "max_length=%s codes truncated %d of the %d rows of the %s dataset: %d of %d base tokens (%.1f%%) are "
            "dropped. Plain texts are split into rows instead (split_long_texts=True); prompt/completion and chat "
            "rows are truncated: raise max_length or shorten those examples",
            max_length,
            cut,
            dataset.num_rows,
            dataset_name,
            lost,
            kept + lost,
            100 * lost / max(1, kept + lost),
        )
    return dataset.remove_columns(DROPPED_COLUMN)


class _StreamedDropWarning:
    def __init__(self, dataset_name: str, max_length: int | None) -> None:
        self.dataset_name, self.max_length, self.warned = dataset_name, max_length, False

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        if example[DROPPED_COLUMN] and not self.warned:
            self.warned = True
            logger.warning(
                "max_length=%s codes truncates rows of the streamed %s dataset (the first lost %d base tokens); "
                "raise max_length or shorten those examples",
                self.max_length,
                self.dataset_name,
                example[DROPPED_COLUMN],
            )
        return example


def describe_rows(dataset: Any, rows_per_step: int, steps: int) -> str:
    """What a run will see: rows, base tokens and passes over them (for a map-style dataset of training rows)."""
    if not hasattr(dataset, "num_rows"):
        return f"{steps} steps of {rows_per_step} rows from a streamed dataset"
    rows = dataset.num_rows
    tokens = sum(dataset["num_base_tokens"]) if "num_base_tokens" in dataset.column_names else None
    epochs = steps * rows_per_step / max(1, rows)
    seen = f"{tokens:,} base tokens" if tokens is not None else "base tokens not counted"
    return f"{rows:,} rows ({seen}); {steps} steps of {rows_per_step} rows read them {epochs:.2f} times"


def _row_bounds(
    codec: LZWCodec, ids: list[int], max_length: int, line_ends: set[int]
) -> list[tuple[int, int]]:
    """Base-id ranges of consecutive rows of at most `max_length` codes each, cut after line-end tokens."""
    reach = (max_length + 1) * codec.max_subtokens  # base ids the first max_length codes can span
    bounds = []
    start = 0
    while start < len(ids):
        codes, codebook = codec.encode_with_codebook(ids[start : start + reach])
        ends, position = [], start
        for code in codes[:max_length]:
            position += len(codebook.expand(code))
            ends.append(position)
        end = ends[-1]
        if end < len(ids):  # the text goes on: prefer a line end that keeps the row at least half full
            for k in range(len(ends) - 1, len(ends) // 2 - 1, -1):
                if ids[ends[k] - 1] in line_ends:
                    end = ends[k]
                    break
        bounds.append((start, end))
        start = end
    return bounds


def _row(
    segments: list[tuple[list[int], bool]], codec: LZWCodec, base: Any, max_length: int | None
) -> dict[str, Any]:
    """Compress `(ids, trained)` segments with one shared codebook into a training row (truncated to `max_length`)."""
    decoder = codec.new_decoder()
    codes: list[int] = []
    labels: list[int] = []
    spans: list[int] = []
    ends: list[int] = []
    for ids, trained in segments:
        if not ids:
            continue
        if codes:
            ends.append(len(codes) - 1)
        first = len(decoder.base_ids)
        segment_codes = decoder.encode_greedy(ids)
        if decoder.base_ids[first:] != ids:  # guards the invariant the masks rely on
            raise RuntimeError(
                "LZW segment encoding did not reproduce its base ids; this is a bug in the codec"
            )
        codes.extend(segment_codes)
        labels.extend(segment_codes if trained else [-100] * len(segment_codes))
    if max_length is not None:
        codes, labels = codes[:max_length], labels[:max_length]
        ends = [end for end in ends if end < len(codes) - 1]
    # Spans of the kept codes: replay them through a fresh decoder (cheap, and exact after truncation).
    replay = codec.new_decoder()
    phrases = [replay.feed(code).phrase for code in codes]
    spans = [len(phrase) for phrase in phrases]
    target_ids = [x for t in range(1, len(codes)) if labels[t] != -100 for x in phrases[t]]
    text = base.decode(target_ids, skip_special_tokens=True) if target_ids else ""
    return {
        "input_ids": codes,
        "labels": labels,
        "num_base_tokens": sum(spans),
        "num_target_bytes": len(text.encode("utf-8")),
        SEGMENT_ENDS: ends,
        DROPPED_COLUMN: len(decoder.base_ids) - sum(spans),
    }


@dataclass
class Zip2ZipDataCollator(DataCollatorMixin):
    """Pads compressed rows and builds every row's codebook state for `Zip2ZipForCausalLM.forward`.

    Returns `input_ids` (right-padded with `pad_token_id`), `attention_mask`, `labels` (`-100` on padding) and,
    with `return_codebook`, the row-wise codebook state the model would otherwise rebuild inside `forward`:
    `codebook` `(B, K, M)` (entries as base ids, `-1` padded to the batch's largest codebook), `accept_limits`
    `(B, T)` and `candidates` `(B, T, M)`. Doing it here runs the LZW decoder in the data loader (in worker
    processes with `dataloader_num_workers`), off the training step. Statistic columns (:data:`STAT_COLUMNS`)
    pass through as `(B,)` tensors.

    With `return_base_ids` (set by the trainer when distillation is on) it also returns the uncompressed rows
    the teacher reads, from the same decoder pass: `base_input_ids` / `base_attention_mask` `(B, N)` and
    `base_positions` `(B, T)`, the base index of each code's last constituent (see :func:`base_alignment`).

    Args:
        pad_token_id: the pad id; it must be a disabled id of the codec (never merged).
        codec: the model's LZW codec (`model.codec` or `tokenizer.codec`).
        return_codebook: build the codebook state (recommended); without it the model rebuilds it.
        pad_to_multiple_of: pad the length to a multiple of this.
        return_base_ids: also return the base-token rows and the code-to-base alignment (for distillation).
        canonical_mask: also return `excluded_codes`, for a model with `config.canonical_mask` (the model masks
            them). Nothing is excluded after the codes an example's :data:`SEGMENT_ENDS` lists (the last code
            of a prompt, of a chat turn), as in generation after the prompt; an example without the column is
            one segment.
    """

    pad_token_id: int
    codec: LZWCodec
    return_codebook: bool = True
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    return_base_ids: bool = False
    canonical_mask: bool = False

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [list(example["input_ids"]) for example in examples]
        label_rows = [list(example.get("labels", example["input_ids"])) for example in examples]
        B = len(rows)
        T = max((len(row) for row in rows), default=0)
        if self.pad_to_multiple_of and T % self.pad_to_multiple_of:
            T += self.pad_to_multiple_of - T % self.pad_to_multiple_of
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((B, T), dtype=torch.long)
        labels = torch.full((B, T), -100, dtype=torch.long)
        for b, (row, label_row) in enumerate(zip(rows, label_rows)):
            if len(label_row) != len(row):
                raise ValueError(
                    f"example {b} has {len(row)} input_ids but {len(label_row)} labels; they must align one to one"
                )
            n = len(row)
            input_ids[b, :n] = torch.tensor(row, dtype=torch.long)
            attention_mask[b, :n] = 1
            labels[b, :n] = torch.tensor(label_row, dtype=torch.long)
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        if self.return_codebook or self.return_base_ids:
            traces = _traces(self.codec, rows, self.canonical_mask and self.return_codebook)
            if self.return_codebook:
                ends = [example.get(SEGMENT_ENDS) or [] for example in examples]
                batch.update(codebook_state(self.codec, traces, T, segment_ends=ends))
            if self.return_base_ids:
                batch.update(base_alignment(traces, T, self.pad_token_id))
        for name in STAT_COLUMNS:
            if all(name in example for example in examples):
                batch[name] = torch.tensor([int(example[name]) for example in examples], dtype=torch.long)
        return batch

    def codebook_state(
        self,
        rows: Sequence[Sequence[int]],
        length: int,
        segment_ends: Sequence[Sequence[int]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Codebook, accept limits and candidates of right-padded rows (the model's `prepare_codebook` layout)."""
        traces = _traces(self.codec, rows, self.canonical_mask)
        return codebook_state(self.codec, traces, length, segment_ends=segment_ends)


def _traces(codec: LZWCodec, rows: Sequence[Sequence[int]], exclusions: bool = False) -> list[Any]:
    traces = []
    for b, row in enumerate(rows):
        try:
            traces.append(codec.trace(row, exclusions=exclusions))
        except ValueError as error:
            raise ValueError(f"example {b} of the batch does not decode: {error}") from None
    return traces


def base_alignment(traces: Sequence[Any], length: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """The uncompressed rows behind right-padded code rows, and where each code ends in them.

    For row `b` with codes `c_0 .. c_{n-1}` (code `t` standing for `spans[t]` base ids), returns

    - `base_input_ids` `(B, N)`: the decoded base ids, right-padded with `pad_token_id` (`N` = longest row);
    - `base_attention_mask` `(B, N)`;
    - `base_positions` `(B, length)`: `e_t = spans[0] + ... + spans[t] - 1`, the base index of code `t`'s last
      constituent; `-1` on padding.

    The base prefix `b_0 .. b_{e_t}` is exactly the text of the code prefix `c_0 .. c_t`, so a base model's
    prediction at `e_t` and a zip2zip model's prediction at `t` are both about the base token `b_{e_t + 1}`, the
    first constituent of code `t + 1`.
    """
    B = len(traces)
    N = max((len(trace.base_ids) for trace in traces), default=0)
    base_ids = torch.full((B, N), pad_token_id, dtype=torch.long)
    base_mask = torch.zeros((B, N), dtype=torch.long)
    positions = torch.full((B, length), -1, dtype=torch.long)
    for b, trace in enumerate(traces):
        n, codes = len(trace.base_ids), len(trace.codes)
        if n:
            base_ids[b, :n] = torch.tensor(trace.base_ids, dtype=torch.long)
            base_mask[b, :n] = 1
        if codes:
            positions[b, :codes] = torch.tensor(trace.spans, dtype=torch.long).cumsum(0) - 1
    return {"base_input_ids": base_ids, "base_attention_mask": base_mask, "base_positions": positions}


def base_alignment_from_inputs(
    codec: LZWCodec, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad_token_id: int
) -> dict[str, torch.Tensor]:
    """:func:`base_alignment` for a batch in any padding layout (attended codes only, mapped back to columns)."""
    B, T = input_ids.shape
    ids = input_ids.tolist()
    masks = attention_mask.bool().tolist() if attention_mask is not None else [[True] * T] * B
    columns = [[t for t in range(T) if masks[b][t]] for b in range(B)]
    traces = _traces(codec, [[ids[b][t] for t in columns[b]] for b in range(B)])
    aligned = base_alignment(traces, T, pad_token_id)
    positions = torch.full((B, T), -1, dtype=torch.long)
    for b in range(B):
        if columns[b]:
            positions[b, columns[b]] = aligned["base_positions"][b, : len(columns[b])]
    aligned["base_positions"] = positions
    return {name: value.to(input_ids.device) for name, value in aligned.items()}
