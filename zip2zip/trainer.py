"""Uptraining a causal LM to read and write hypertokens: TRL's `SFTTrainer`, taught to speak LZW.

A zip2zip model comes to exist by training an existing model on LZW-compressed text (paper Eq. 2, plus the
optional reconstruction loss of Eq. 3), usually with LoRA on the base model and the hyper-encoders trained in
full. This module keeps TRL's split of concerns:

- :class:`Zip2ZipSFTConfig` (an `SFTConfig`): the zip2zip-specific settings and the CPU-safe defaults;
- :func:`tokenize_example` / :meth:`Zip2ZipSFTTrainer._prepare_dataset`: our own tokenisation, because a
  hypertoken must never span the prompt/completion (or user/assistant) boundary, and TRL's "tokenise prompt and
  prompt+completion, then find the common prefix" would let LZW merge across it;
- :class:`Zip2ZipDataCollator`: pads compressed ids and builds each row's codebook state (codebook, accept
  limits, KwKwK candidates) on the data-loader side, so the model does not rerun the LZW decoder;
- :class:`Zip2ZipSFTTrainer`: our loss path (TRL's stock `compute_loss` calls the model with its fused LM head,
  which would bypass the hypertoken logits), normalised by the number of targets of the whole accumulated batch,
  and zip2zip metrics (compressed loss, reconstruction loss, compression ratio, hypertoken share of targets,
  bits per byte);
- :func:`first_token_distillation`: the optional self-distillation loss, the frozen base model (adapters
  disabled) teaching the zip2zip model the next-token distribution at every compressed position;
- :func:`default_lora_config`: LoRA on the base model's projections only, hyper-encoders in `modules_to_save`.

Packing and padding-free batches are rejected: they would concatenate sequences, and every sequence has its own
codebook.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, TrainingArguments
from transformers.data.data_collator import DataCollatorMixin
from trl import SFTConfig, SFTTrainer
from trl.data_utils import is_conversational

from .lzw import LZWCodec

logger = logging.getLogger(__name__)

__all__ = [
    "STAT_COLUMNS",
    "Zip2ZipDataCollator",
    "Zip2ZipSFTConfig",
    "Zip2ZipSFTTrainer",
    "adapt_peft_config",
    "base_alignment",
    "default_lora_config",
    "first_token_distillation",
    "first_token_log_probs",
    "hypertoken_first_ids",
    "lora_target_modules",
    "tokenize_example",
    "zip2zip_from_base",
]

STAT_COLUMNS: tuple[str, ...] = ("num_base_tokens", "num_target_bytes")
"""Per-example statistics that dataset preparation adds beside `input_ids` and `labels`: the base tokens the
row stands for (compression ratio) and the UTF-8 bytes its loss targets stand for (bits per byte). The collator
turns them into tensors; `compute_loss` takes them out before calling the model."""

_BASE_COLUMNS: tuple[str, ...] = ("base_input_ids", "base_attention_mask", "base_positions")
"""What :class:`Zip2ZipDataCollator` adds with `return_base_ids` (the teacher's rows); never given to the model."""

# Projection names of the common decoder families (Llama/Mistral/Qwen2/Gemma/Phi-3, GPT-2/GPT-J/NeoX, Falcon).
_KNOWN_PROJECTIONS: tuple[str, ...] = (
    "q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj", "up_proj", "down_proj", "gate_up_proj",
    "c_attn", "c_proj", "c_fc", "query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "fc1", "fc2",
    "out_proj", "wqkv", "w1", "w2", "w3",
)  # fmt: skip
# The zip2zip modules that are new (randomly initialised) and must be trained in full and saved with the adapter.
_ENCODER_MODULES: tuple[str, ...] = ("input_encoder", "output_encoder", "reconstruction_head")


# ============================================================================================ config


@dataclass
class Zip2ZipSFTConfig(SFTConfig):
    r"""
    [`~trl.SFTConfig`] for [`Zip2ZipSFTTrainer`].

    Everything in `SFTConfig` keeps its meaning, with three differences that follow from LZW:

    - `max_length` counts **compressed** tokens (codes), as `SFTConfig` does after tokenisation.
    - `packing=True`, `padding_free=True` and `eval_packing=True` are rejected: packing concatenates examples,
      which would merge their per-sequence codebooks.
    - `bf16` left unset means bf16 on CUDA and float32 elsewhere (`SFTConfig` turns bf16 on unconditionally,
      which fails on a CPU-only machine with "Your setup doesn't support bf16/gpu").
    - On a machine without an accelerator, `use_cpu=True`, so that several processes (`accelerate launch
      --multi_gpu --num_processes 2` or `torchrun`) train together over gloo instead of each alone.
    - `ddp_find_unused_parameters` left unset means `True`: a batch whose inputs hold no hypertoken does not use
      the input encoder, and DDP would otherwise wait forever for its gradients.

    Parameters:
        reconstruction_loss_weight (`float`, *optional*):
            Weight of the auxiliary reconstruction loss (paper Eq. 3). `None` uses the model config's
            `reconstruction_loss_weight`. `0` switches the loss off for this run; a positive value needs a model
            built with a reconstruction head (`reconstruction_loss_weight > 0` in its config).
        zip2zip_settings (`dict`, *optional*):
            [`Zip2ZipConfig`] fields (`max_codebook_size`, `max_subtokens`, ...) used when the trainer is given the
            path of a plain base model and converts it with `Zip2ZipForCausalLM.from_base`.
        distillation_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the self-distillation loss from the frozen base model (see [`first_token_distillation`]);
            `0` switches it off. It needs LoRA (or another PEFT adapter): the teacher is the same weights with
            the adapters disabled, so no second copy of the model is kept in memory.
    """

    reconstruction_loss_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the reconstruction loss; None = the model config's weight, 0 = off."},
    )
    zip2zip_settings: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Zip2ZipConfig fields used when converting a plain base model given by path."},
    )
    distillation_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the first-token distillation loss from the frozen base model (adapters disabled); "
            "0 = off."
        },
    )

    def __post_init__(self) -> None:
        if not _has_accelerator():
            if self.bf16 is None and not self.fp16:
                self.bf16 = False
            # Without it, processes started by torchrun / `accelerate launch` on a CPU-only machine would each
            # train alone (accelerate only picks the gloo MULTI_CPU backend when asked for the CPU).
            self.use_cpu = True
        if self.ddp_find_unused_parameters is None:
            # A batch without hypertokens in its inputs leaves the input encoder unused; DDP must not wait for it.
            self.ddp_find_unused_parameters = True
        super().__post_init__()
        _reject_packing(self)
        weight = self.reconstruction_loss_weight
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0
        ):
            raise ValueError(
                f"Zip2ZipSFTConfig.reconstruction_loss_weight must be None or a float >= 0, got {weight!r}"
            )
        weight = self.distillation_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not weight >= 0
            or math.isinf(weight)
        ):
            raise ValueError(
                f"Zip2ZipSFTConfig.distillation_weight must be a finite float >= 0 (0 = off), got {weight!r}"
            )


def _has_accelerator() -> bool:
    mps = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available()) or bool(xpu and xpu.is_available())


def _reject_packing(args: Any) -> None:
    """Packing and padding-free both concatenate examples into one row: codebooks would merge across them."""
    for name in ("packing", "padding_free", "eval_packing"):
        if getattr(args, name, False):
            raise ValueError(
                f"{name}=True is not supported by zip2zip training: it concatenates examples into one sequence, "
                "and LZW gives every sequence its own codebook, so hypertokens would be built across example "
                f"boundaries. Set {name}=False (the default); batches are padded per row instead."
            )


# ============================================================================================ data


def _base_tokenizer(tokenizer: Any) -> Any:
    """The wrapped base tokenizer of a `Zip2ZipTokenizer` (the tokenizer itself when it has none)."""
    return getattr(tokenizer, "base", None) or tokenizer


def _tokenize_piece(base: Any, text: str, add_special_tokens: bool) -> list[int]:
    if not text:
        return []
    return list(base(text, add_special_tokens=add_special_tokens)["input_ids"])


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
) -> list[tuple[list[int], bool]]:
    """Base-token segments `(ids, trained)` of one example, in order; segments never share a hypertoken."""
    base = _base_tokenizer(tokenizer)
    eos = tokenizer.eos_token_id
    tools = example.get("tools")
    if "prompt" in example and "completion" in example:
        if is_conversational(example):
            prompt_text = _render(tokenizer, example["prompt"], tools, True, template)
            full = _render(tokenizer, example["prompt"] + example["completion"], tools, False, template)
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
    if is_conversational(example):
        pieces = _chat_segments(tokenizer, example["messages"], tools, assistant_only, template)
        return [(_tokenize_piece(base, text, False), trained) for text, trained in pieces]
    if text_field not in example:
        raise ValueError(
            f"the example has no {text_field!r} field (fields: {sorted(example)}); set dataset_text_field, or give "
            "'prompt'/'completion' or 'messages' columns"
        )
    ids = _tokenize_piece(base, example[text_field], True)
    if eos is not None and (not ids or ids[-1] != eos):
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
    accepted. The example is cut into base-token segments (prompt | completion, or the turns of a chat when
    `assistant_only_loss`), and the segments are compressed with one shared codebook where no hypertoken spans a
    segment boundary (`LZWDecoder.encode_greedy`, as in `LZWCodec.encode_segments`). The prompt therefore keeps
    the codes it gets on its own, exactly what the model reads at generation time, and the completion mask is
    exact in compressed space. Labels are `-100` on untrained segments. `max_length` truncates the codes
    (keep-start; a code-stream prefix always decodes). Bytes count the decoded text of the loss targets (the
    codes at positions 1.., since position 0 is never predicted), special tokens excluded.
    """
    codec: LZWCodec = tokenizer.codec
    segments = _segments(
        example, tokenizer, dataset_text_field, completion_only_loss, assistant_only_loss, chat_template
    )
    decoder = codec.new_decoder()
    codes: list[int] = []
    labels: list[int] = []
    spans: list[int] = []
    for ids, trained in segments:
        if not ids:
            continue
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
    # Spans of the kept codes: replay them through a fresh decoder (cheap, and exact after truncation).
    replay = codec.new_decoder()
    phrases = [replay.feed(code).phrase for code in codes]
    spans = [len(phrase) for phrase in phrases]
    target_ids = [x for t in range(1, len(codes)) if labels[t] != -100 for x in phrases[t]]
    base = _base_tokenizer(tokenizer)
    text = base.decode(target_ids, skip_special_tokens=True) if target_ids else ""
    return {
        "input_ids": codes,
        "labels": labels,
        "num_base_tokens": sum(spans),
        "num_target_bytes": len(text.encode("utf-8")),
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
    """

    pad_token_id: int
    codec: LZWCodec
    return_codebook: bool = True
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    return_base_ids: bool = False

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
            traces = _traces(self.codec, rows)
            if self.return_codebook:
                batch.update(_codebook_state(self.codec, traces, T))
            if self.return_base_ids:
                batch.update(base_alignment(traces, T, self.pad_token_id))
        for name in STAT_COLUMNS:
            if all(name in example for example in examples):
                batch[name] = torch.tensor([int(example[name]) for example in examples], dtype=torch.long)
        return batch

    def codebook_state(self, rows: Sequence[Sequence[int]], length: int) -> dict[str, torch.Tensor]:
        """Codebook, accept limits and candidates of right-padded rows (the model's `prepare_codebook` layout)."""
        return _codebook_state(self.codec, _traces(self.codec, rows), length)


def _traces(codec: LZWCodec, rows: Sequence[Sequence[int]]) -> list[Any]:
    traces = []
    for b, row in enumerate(rows):
        try:
            traces.append(codec.trace(row))
        except ValueError as error:
            raise ValueError(f"example {b} of the batch does not decode: {error}") from None
    return traces


def _codebook_state(codec: LZWCodec, traces: Sequence[Any], length: int) -> dict[str, torch.Tensor]:
    M = codec.max_subtokens
    B = len(traces)
    limits = torch.zeros((B, length), dtype=torch.long)
    candidates = torch.full((B, length, M), -1, dtype=torch.long)
    tables = []
    for b, trace in enumerate(traces):
        n = len(trace.codes)
        if n:
            limits[b, :n] = torch.tensor(trace.accept_limits[1 : n + 1], dtype=torch.long)
        for t, candidate in enumerate(trace.candidates[1 : n + 1]):
            if candidate is not None:
                candidates[b, t, : len(candidate)] = torch.tensor(candidate, dtype=torch.long)
        tables.append(trace.codebook.table())
    K = max((len(table) for table in tables), default=0)
    codebook = torch.full((B, K, M), -1, dtype=torch.long)
    for b, table in enumerate(tables):
        if table:
            codebook[b, : len(table)] = torch.tensor(table, dtype=torch.long)
    return {"codebook": codebook, "accept_limits": limits, "candidates": candidates}


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


# ============================================================================================ distillation


def hypertoken_first_ids(
    codebook: torch.Tensor | None,
    accept_limits: torch.Tensor,
    candidates: torch.Tensor | None,
    num_slots: int,
) -> torch.Tensor:
    """First constituent of every hypertoken slot a position can emit: `(B, T, num_slots)` base ids.

    Slot `k` holds `codebook[b, k, 0]`; where the position has a `KwKwK` candidate, slot `accept_limits - 1`
    holds `candidates[b, t, 0]` instead (the entry the code would create and use in one step). Slots that are
    empty or not acceptable get id 0: their probability is exactly 0 (their logit is `-inf`), so wherever they
    are summed they add nothing.
    """
    B, T = accept_limits.shape
    device = accept_limits.device
    first = torch.zeros((B, num_slots), dtype=torch.long, device=device)
    if codebook is not None and codebook.shape[1] and num_slots:
        K = min(codebook.shape[1], num_slots)
        first[:, :K] = codebook[:, :K, 0].clamp(min=0)
    first = first[:, None, :].expand(B, T, num_slots).clone()
    if candidates is not None and num_slots:
        has = candidates[..., 0] >= 0
        if bool(has.any()):
            rows, cols = has.nonzero(as_tuple=True)
            slots = accept_limits[rows, cols] - 1
            inside = (slots >= 0) & (slots < num_slots)
            rows, cols, slots = rows[inside], cols[inside], slots[inside]
            first[rows, cols, slots] = candidates[rows, cols, 0]
    return first


def first_token_log_probs(
    logits: torch.Tensor, first_ids: torch.Tensor, base_vocab_size: int
) -> torch.Tensor:
    """`log q1(x)`: the zip2zip model's log-probability that the next code *starts with* base token `x`.

    `logits` `(N, V + C)` are the model's (masked) logits at `N` positions, `first_ids` `(N, S)` the first
    constituent of hypertoken slots `0 .. S-1` there (:func:`hypertoken_first_ids`). With `q = softmax(logits)`,

        q1(x) = q(x) + sum over slots k with first_ids[k] == x of q(V + k)        (x < V)

    i.e. the probability of the base code `x` plus that of every hypertoken whose phrase starts with `x`. Masked
    slots (`-inf`) have `q = 0` and add nothing; `q1` sums to 1 over the base vocabulary. Computed in log space
    (`logaddexp` of the base term and the summed hypertoken mass), so tokens far in the tail stay finite.
    """
    V = base_vocab_size
    log_q = torch.log_softmax(logits.float(), dim=-1)
    S = first_ids.shape[-1]
    if S == 0:
        return log_q[:, :V]
    hyper = log_q[:, V : V + S].exp()
    mass = torch.zeros_like(log_q[:, :V]).scatter_add(1, first_ids, hyper)
    # clamp (not log(0)): a zero mass would give -inf and NaN gradients through logaddexp.
    return torch.logaddexp(log_q[:, :V], mass.clamp(min=torch.finfo(mass.dtype).tiny).log())


def first_token_distillation(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    first_ids: torch.Tensor,
    base_vocab_size: int,
) -> torch.Tensor:
    r"""Per-position `KL(p || q1)` between the base model's next-token distribution and the zip2zip model's.

    The self-distillation loss of [`Zip2ZipSFTTrainer`] (`distillation_weight > 0`). At compressed position `t`
    the zip2zip model has read codes `c_0 .. c_t`, which decode to base ids `b_0 .. b_e` (`e` = the base index
    of `c_t`'s last constituent), and predicts the next code `c_{t+1}`, whose phrase starts at `b_{e+1}`. The
    frozen base model, reading the uncompressed `b_0 .. b_e` (the same text), predicts `p(x) = p(b_{e+1} = x |
    b_0 .. b_e)`. The zip2zip model's distribution `q` over codes induces a distribution over that same next base
    token, `q1(x)` = the probability that the next code starts with `x` (:func:`first_token_log_probs`: base code
    `x` plus every acceptable hypertoken whose first constituent is `x`). Both are distributions over the next
    base token given the same text, and the true one minimises both this loss and the compressed cross-entropy,
    so the two objectives agree; the KL gives a dense target over the whole vocabulary at every position instead
    of one observed code.

    Why the first token only: the base model's probability of a whole hypertoken phrase (and of the encoder
    stopping there, which decides whether LZW emits that code) is known from one teacher-forced pass only for the
    phrase that actually follows; scoring every acceptable hypertoken would need a base pass per candidate
    continuation. The first-token marginal is exact for every code at once.

    Args:
        logits: `(N, V + C)` zip2zip logits at the scored positions (masked slots `-inf`).
        teacher_logits: `(N, V)` base-model logits at the aligned base positions.
        first_ids: `(N, S)` first constituent of hypertoken slots `0 .. S-1` at those positions.
        base_vocab_size: `V`.

    Returns:
        `(N,)` KL divergences in nats (0 when `q1 == p`).
    """
    log_q1 = first_token_log_probs(logits, first_ids, base_vocab_size)
    log_p = torch.log_softmax(teacher_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q1)).sum(-1)


# ============================================================================================ models


def _is_zip2zip(model: Any) -> bool:
    """Duck-typed: a model loaded with remote code is a different class object than ours."""
    return getattr(getattr(model, "config", None), "model_type", None) == "zip2zip" and hasattr(
        model, "prepare_codebook"
    )


def _is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _core_model(model: Any) -> Any:
    """The zip2zip model inside a PEFT wrapper (the model itself when unwrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) and _is_peft_model(model) else model


def _base_alignment_from_inputs(
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


def zip2zip_from_base(
    base_model_or_path: str | os.PathLike | PreTrainedModel,
    tokenizer: Any = None,
    dtype: torch.dtype | str | None = None,
    **settings: Any,
) -> tuple[PreTrainedModel, Any]:
    """Turn any Hugging Face causal LM (object or local path) into an untrained zip2zip model and its tokenizer.

    `settings` are [`Zip2ZipConfig`] fields (`max_codebook_size`, `max_subtokens`, `encoder_num_layers`,
    `reconstruction_loss_weight`, ...). The tokenizer defaults to the one saved with the base model; its special
    and added tokens become the codec's never-merged ids.
    """
    from .modeling_zip2zip import Zip2ZipForCausalLM
    from .tokenization_zip2zip import Zip2ZipTokenizer

    if tokenizer is None:
        if not isinstance(base_model_or_path, (str, os.PathLike)):
            raise ValueError(
                "zip2zip_from_base needs tokenizer= when given a model object (it cannot find the base tokenizer)"
            )
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(base_model_or_path))
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    model = Zip2ZipForCausalLM.from_base(base_model_or_path, tokenizer=tokenizer, dtype=dtype, **settings)
    _ensure_zero_init(model)
    return model, Zip2ZipTokenizer.from_base(tokenizer, model.config)


def _ensure_zero_init(model: nn.Module) -> None:
    """Make an untrained hypertoken start at its first (or mean) constituent, as `encoder_init` promises.

    With `encoder_init="residual"` or `"mean"`, a hyper-encoder's output projection must start at zero (the
    zip2zip++ fix: otherwise the random correction dwarfs the constituent and the first steps see losses of
    50+ nats instead of about the base model's). Training depends on it, so it is checked (and enforced) here.
    """
    if getattr(model.config, "encoder_init", "random") == "random":
        return
    for name in ("input_encoder", "output_encoder"):
        encoder = getattr(model, name, None)
        projection = getattr(encoder, "out_proj", None)
        if projection is None:
            continue
        if projection.weight.detach().abs().max() > 0 or (
            projection.bias is not None and projection.bias.detach().abs().max() > 0
        ):
            logger.warning(
                "%s.out_proj was not zero-initialised; zeroing it (encoder_init=%r)",
                name,
                model.config.encoder_init,
            )
            with torch.no_grad():
                projection.weight.zero_()
                if projection.bias is not None:
                    projection.bias.zero_()


def lora_target_modules(model: nn.Module) -> str:
    """A PEFT `target_modules` regex matching the base model's projections and nothing else.

    Known projection names (Llama/Qwen2 `q_proj ... down_proj`, GPT-2 `c_attn c_proj c_fc`, ...) found in the base
    model are used; for an unknown family, every Linear/Conv1D of the base model except its LM head. The regex is
    anchored on the base model's own path (`language_model.`), so the hyper-encoders, whose layers also have
    Linear projections, never get an adapter: they are trained in full instead (`modules_to_save`).
    """
    inner = getattr(model, "language_model", None)
    if inner is None:
        raise ValueError(
            f"{type(model).__name__} has no `language_model` attribute: lora_target_modules expects a zip2zip model "
            "(Zip2ZipForCausalLM); for a plain base model use target_modules='all-linear'"
        )
    from transformers.pytorch_utils import Conv1D

    head = inner.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in inner.named_modules()
        if isinstance(module, (nn.Linear, Conv1D)) and module is not head and name
    }
    chosen = sorted(names & set(_KNOWN_PROJECTIONS)) or sorted(names)
    if not chosen:
        raise ValueError(f"found no Linear or Conv1D layer in the base model {type(inner).__name__} to adapt")
    return r"language_model\..*\.(" + "|".join(re.escape(n) for n in chosen) + r")"


def default_lora_config(
    model: nn.Module,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.0,
    target_modules: str | list[str] | None = None,
    train_encoders: bool = True,
    **kwargs: Any,
):
    """The LoRA setup of the zip2zip recipe: adapters on the base projections, hyper-encoders trained in full.

    `task_type="CAUSAL_LM"` makes PEFT record a loadable auto mapping (with `None` it would name the remote-code
    module, which `AutoPeftModel` refuses to import). The hyper-encoders (and the reconstruction head when the
    model has one) are new, randomly initialised layers, so they go into `modules_to_save`: trained and saved
    with the adapter, not re-initialised on reload. The paper uses r=32/alpha=32 (4B) and r=16/alpha=16 (14B).
    """
    from peft import LoraConfig

    modules_to_save = (
        [name for name in _ENCODER_MODULES if getattr(model, name, None) is not None]
        if train_encoders
        else None
    )
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules if target_modules is not None else lora_target_modules(model),
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
        **kwargs,
    )


def adapt_peft_config(peft_config: Any, model: nn.Module) -> Any:
    """Make a user's PEFT config fit a zip2zip model the way the recipe intends (a copy; the input is untouched).

    - `target_modules` given as names (`["q_proj", "o_proj"]`) would also match the hyper-encoders' own layers
      (they have `o_proj` and `qkv_proj` too) and put adapters on freshly initialised weights; names are turned
      into a regex anchored on the base model (`language_model.`). `"all-linear"` becomes
      :func:`lora_target_modules`. A regex string is taken as the user wrote it.
    - The hyper-encoders (and the reconstruction head) are new layers: PEFT would freeze them at their random
      initialisation and not save them, so they are added to `modules_to_save`.
    - `task_type=None` becomes `"CAUSAL_LM"`, so that the saved adapter names a loadable auto class.
    """
    config = copy.deepcopy(peft_config)
    targets = getattr(config, "target_modules", None)
    if targets == "all-linear":
        config.target_modules = lora_target_modules(model)
    elif isinstance(targets, (list, set, tuple)) and targets:
        names = sorted(str(t) for t in targets)
        config.target_modules = r"language_model\..*\.(" + "|".join(re.escape(n) for n in names) + r")"
    if hasattr(config, "modules_to_save"):
        wanted = [name for name in _ENCODER_MODULES if getattr(model, name, None) is not None]
        present = list(config.modules_to_save or [])
        missing = [name for name in wanted if name not in present]
        if missing:
            logger.info("adding the hyper-encoder modules %s to the PEFT modules_to_save", missing)
            config.modules_to_save = present + missing
    if getattr(config, "task_type", "unset") is None:
        config.task_type = "CAUSAL_LM"
    return config


# ============================================================================================ trainer


class Zip2ZipSFTTrainer(SFTTrainer):
    """[`~trl.SFTTrainer`] for zip2zip models: compressed cross-entropy over hypertokens, TRL and PEFT as usual.

    Differences from `SFTTrainer`, each forced by LZW:

    - **Loss.** TRL's `compute_loss` calls the model with its fused LM head, which scores only the base vocabulary
      and bypasses the hypertoken logits. Ours calls the zip2zip forward: cross-entropy over the compressed targets
      (logits of width `V + C`, with the decoder's accept masks), summed and divided by the number of targets in
      the whole accumulated batch (`num_items_in_batch`, counted over shifted labels and across processes), so
      gradient accumulation and data parallelism give the gradient of one big batch
      (`loss_is_scaled_for_ga = True`). The reconstruction loss is a per-micro-batch mean and is divided by the
      accumulation steps.
    - **Data.** Raw datasets (plain text, prompt/completion, conversational) are tokenised by
      :func:`tokenize_example`, so hypertokens never span the prompt/completion or turn boundaries and masks are
      exact in compressed space. Pre-tokenised datasets (`input_ids`, optional `labels`) are used as they are.
    - **Collator.** :class:`Zip2ZipDataCollator` by default (per-row padding and codebooks). Packing and
      padding-free are rejected.
    - **Tokenizer.** A plain base tokenizer is wrapped into a `Zip2ZipTokenizer` with the model's codec settings,
      so checkpoints carry the right tokenizer.
    - **Self-distillation** (optional, `distillation_weight > 0`, with LoRA). The frozen base model (the same
      weights with the adapters disabled, so no second copy in memory) reads the uncompressed rows, and at every
      scored compressed position the zip2zip model's probability that the next code *starts with* base token
      `x` is pulled towards the base model's `p(x | same text)`: `loss += distillation_weight * sum KL(p || q1)
      / num_items_in_batch` (:func:`first_token_distillation` defines the mapping). It gives a dense target over
      the whole vocabulary at every position from what the base model already knows.
    - **Saving.** `save_model(dir)` writes a complete `trust_remote_code` repo: merged weights (LoRA folded in),
      config with `auto_map`, the model's code, the tokenizer, and the adapter under `dir/adapter`. Checkpoints
      (during training) stay adapter-only, as in TRL, and resume as usual.

    Logged metrics: `loss`, `lm_loss` (compressed cross-entropy per target), `reconstruction_loss`,
    `compression_ratio` (base tokens per code), `hypertoken_share` (share of targets that are hypertokens),
    `bits_per_byte`, `mean_token_accuracy`, `num_tokens` (codes seen), `num_base_tokens`, `num_target_bytes`
    (UTF-8 bytes of the targets seen) and, with distillation, `distillation_loss` (mean KL per target, nats).
    """

    loss_is_scaled_for_ga = True
    _tag_names: ClassVar[list[str]] = ["trl", "sft", "zip2zip"]
    _name = "Zip2Zip SFT"

    def __init__(
        self,
        model: str | os.PathLike | PreTrainedModel,
        args: Zip2ZipSFTConfig | SFTConfig | TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Callable | None = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        optimizer_cls_and_kwargs: tuple | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        peft_config: Any = None,
        formatting_func: Callable[[dict], str] | None = None,
    ) -> None:
        args = _as_zip2zip_config(args, model)
        _reject_packing(args)
        if isinstance(model, (str, os.PathLike)):
            model, processing_class = _load_model(os.fspath(model), processing_class, args)
        if not _is_zip2zip(model):
            raise TypeError(
                f"Zip2ZipSFTTrainer trains zip2zip models, got {type(model).__name__} (model_type="
                f"{getattr(getattr(model, 'config', None), 'model_type', None)!r}); convert a base model first with "
                "Zip2ZipForCausalLM.from_base(...) or zip2zip.trainer.zip2zip_from_base(...)"
            )
        processing_class = _as_zip2zip_tokenizer(processing_class, model)
        if peft_config is not None:
            peft_config = adapt_peft_config(peft_config, model)

        # Reconstruction weight: the model's unless the run overrides it.
        weight = args.reconstruction_loss_weight
        has_head = getattr(model, "reconstruction_head", None) is not None
        if weight is None:
            weight = float(model.config.reconstruction_loss_weight) if has_head else 0.0
        elif weight > 0 and not has_head:
            raise ValueError(
                f"reconstruction_loss_weight={weight} but the model has no reconstruction head (its config has "
                "reconstruction_loss_weight=0); build it with from_base(..., reconstruction_loss_weight=0.1) or set "
                "reconstruction_loss_weight=None/0 in the training config"
            )
        self.reconstruction_loss_weight = float(weight)

        self.distillation_weight = float(args.distillation_weight)
        if self.distillation_weight > 0 and peft_config is None and not _is_peft_model(model):
            raise ValueError(
                f"distillation_weight={args.distillation_weight} needs a PEFT adapter (LoRA): the teacher is the "
                "frozen base model, i.e. the same weights with the adapters disabled, so that no second copy is "
                "kept in memory. Full fine-tuning changes the base weights themselves and leaves no frozen copy. "
                "Pass peft_config=default_lora_config(model) (or a PeftModel), or set distillation_weight=0."
            )

        # Pad token: TRL sets it up only for its own collator; ours needs the same.
        pad_token = args.pad_token or processing_class.pad_token or processing_class.eos_token
        if pad_token is None or pad_token not in processing_class.get_vocab():
            raise ValueError(
                f"the pad token {pad_token!r} is not in the tokenizer's vocabulary; set pad_token= in the config to a "
                "special token of the tokenizer (eos works)"
            )
        if processing_class.pad_token != pad_token:
            processing_class.pad_token = pad_token
        pad_id = processing_class.pad_token_id
        if pad_id not in processing_class.codec.disabled_ids:
            raise ValueError(
                f"pad id {pad_id} ({pad_token!r}) is not a never-merged id of the codec; padded rows would decode "
                "differently. Use a special token as pad_token."
            )
        model.config.get_text_config().pad_token_id = pad_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = pad_id
        if data_collator is None:
            pad_multiple = args.pad_to_multiple_of if isinstance(args.pad_to_multiple_of, int) else None
            data_collator = Zip2ZipDataCollator(
                pad_id,
                model.codec,
                pad_to_multiple_of=pad_multiple,
                return_base_ids=self.distillation_weight > 0,
            )

        # Assistant-only masks are built by our tokenisation (turn segments), not by TRL's template patching
        # (`get_training_chat_template` only knows a fixed list of templates). Hide the flag from SFTTrainer while
        # it sets up, then restore it.
        self._assistant_only_loss = bool(args.assistant_only_loss)
        if self._assistant_only_loss and train_dataset is not None:
            sample = next(iter(train_dataset))
            if not is_conversational(sample):
                raise ValueError(
                    "assistant_only_loss=True needs a conversational dataset ('messages' or conversational "
                    "'prompt'/'completion' columns)"
                )
        args.assistant_only_loss = False
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                compute_metrics=compute_metrics,
                callbacks=callbacks,
                optimizers=optimizers,
                optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
                preprocess_logits_for_metrics=preprocess_logits_for_metrics,
                peft_config=peft_config,
                formatting_func=formatting_func,
            )
        finally:
            args.assistant_only_loss = self._assistant_only_loss
        self._total_base_tokens = 0

    # ------------------------------------------------------------------------------------ data

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """Tokenise raw examples with :func:`tokenize_example`, then let TRL finish (labels, truncation, shuffle)."""
        _reject_packing(args)
        columns = dataset.column_names or list(next(iter(dataset)).keys())
        if "input_ids" not in columns:
            map_kwargs: dict[str, Any] = {}
            if hasattr(dataset, "num_rows"):  # a map-style Dataset (IterableDataset.map takes neither)
                map_kwargs = {
                    "num_proc": args.dataset_num_proc,
                    "desc": f"Compressing {dataset_name} dataset",
                }
            if formatting_func is not None:
                dataset = dataset.map(lambda example: {"text": formatting_func(example)}, **map_kwargs)
                text_field = "text"
            else:
                text_field = args.dataset_text_field
            from trl.data_utils import maybe_convert_to_chatml

            dataset = dataset.map(maybe_convert_to_chatml, **map_kwargs)
            columns = dataset.column_names or list(next(iter(dataset)).keys())
            dataset = dataset.map(
                tokenize_example,
                fn_kwargs={
                    "tokenizer": processing_class,
                    "dataset_text_field": text_field,
                    "completion_only_loss": bool(self.completion_only_loss),
                    "assistant_only_loss": self._assistant_only_loss,
                    "max_length": args.max_length,
                    "chat_template": None,
                },
                remove_columns=[c for c in columns if c not in ("input_ids", "labels", *STAT_COLUMNS)],
                **map_kwargs,
            )
        return super()._prepare_dataset(dataset, processing_class, args, False, None, dataset_name)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels", *STAT_COLUMNS]

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Targets of the whole accumulated batch: labels at positions 1.. that are not -100, over all processes.

        Counted here whatever the model class says about loss kwargs, because `compute_loss` always normalises by
        this count (`loss_is_scaled_for_ga = True`).
        """
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = sum((batch["labels"][..., 1:] != -100).sum() for batch in batch_samples)
        count = torch.as_tensor(count, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    # ------------------------------------------------------------------------------------ loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        stats = {name: inputs.pop(name) for name in STAT_COLUMNS if name in inputs}
        base_inputs = {name: inputs.pop(name) for name in _BASE_COLUMNS if name in inputs}
        labels = inputs["labels"]
        valid = labels[:, 1:] != -100
        local_targets = valid.sum()
        denominator = num_items_in_batch if num_items_in_batch is not None else local_targets.clamp(min=1)
        # `fused_lm_head` stays False: the fused path would score only the base vocabulary.
        outputs = model(**inputs, use_cache=False, num_items_in_batch=denominator)
        lm_loss = outputs.lm_loss
        loss = lm_loss
        reconstruction = outputs.reconstruction_loss
        if reconstruction is not None:
            accumulating = num_items_in_batch is not None and self.model.training
            steps = self.current_gradient_accumulation_steps if accumulating else 1
            # Weight 0 still keeps the head in the graph (DDP expects every trainable parameter to get a gradient).
            loss = loss + (self.reconstruction_loss_weight / steps) * reconstruction
        distillation_sum = None
        if self.distillation_weight > 0:
            distillation_sum = self._distillation_sum(model, inputs, outputs.logits, valid, base_inputs)
            # Summed over positions and divided like the compressed loss: exact under accumulation and DDP.
            loss = loss + self.distillation_weight * distillation_sum / denominator
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # `num_items_in_batch` counts the targets of every process and DDP averages gradients: undo the mean.
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())

        self._record_metrics(
            mode,
            inputs,
            outputs,
            valid,
            lm_loss.detach() * denominator,
            reconstruction,
            stats,
            distillation_sum,
        )
        return (loss, outputs) if return_outputs else loss

    def _distillation_sum(self, model, inputs, logits, valid, base_inputs) -> torch.Tensor:
        """Sum over the scored positions of `KL(p_base || q1)` (:func:`first_token_distillation`).

        Scored positions are those whose next code is a target (`labels[:, 1:] != -100`), the same set as the
        compressed cross-entropy: padding and masked prompt codes contribute nothing.
        """
        V = self.model.config.base_vocab_size
        if not base_inputs:  # a collator of the user's: align here (runs the LZW decoder in the step)
            base_inputs = _base_alignment_from_inputs(
                self.model.codec,
                inputs["input_ids"],
                inputs.get("attention_mask"),
                self.processing_class.pad_token_id,
            )
        rows, cols = valid.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return logits.float().sum() * 0.0  # keeps the graph (DDP) and adds nothing
        accept_limits = inputs.get("accept_limits")
        codebook, candidates = inputs.get("codebook"), inputs.get("candidates")
        if accept_limits is None:
            core = _core_model(self.accelerator.unwrap_model(model))
            state = core.prepare_codebook(inputs["input_ids"], inputs.get("attention_mask"))
            codebook, accept_limits, candidates = (
                state["codebook"],
                state["accept_limits"],
                state["candidates"],
            )
        positions = base_inputs["base_positions"].to(logits.device)[rows, cols]
        if bool((positions < 0).any()):
            raise ValueError(
                "a scored position has no base alignment (base_positions = -1): base_positions must give the base "
                "index of every attended code's last constituent (Zip2ZipDataCollator(return_base_ids=True))"
            )
        teacher = self._teacher_logits(model, base_inputs, rows, positions)
        slots = int(accept_limits[rows, cols].max())
        first = hypertoken_first_ids(codebook, accept_limits, candidates, slots)[rows, cols]
        if teacher.shape[-1] != V:
            raise ValueError(
                f"the base model's LM head has {teacher.shape[-1]} rows but base_vocab_size is {V}; distillation "
                "compares distributions over the same base vocabulary"
            )
        return first_token_distillation(logits[rows, cols], teacher, first, V).sum()

    @torch.no_grad()
    def _teacher_logits(
        self, model, base_inputs, rows: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """The frozen base model's logits at base positions `(rows, positions)`: adapters off, eval mode, no grad.

        The base model reads the uncompressed rows; only the hidden states at the scored positions go through
        the LM head, so the `(B, N, V)` logits of the whole base row are never built.
        """
        unwrapped = self.accelerator.unwrap_model(model)
        language_model = _core_model(unwrapped).language_model
        was_training = language_model.training
        device = rows.device
        with unwrapped.disable_adapter():
            language_model.eval()  # the teacher is the base model as it was trained: no dropout
            try:
                hidden = language_model.base_model(
                    input_ids=base_inputs["base_input_ids"].to(device),
                    attention_mask=base_inputs["base_attention_mask"].to(device),
                    use_cache=False,
                    return_dict=True,
                ).last_hidden_state
                logits = language_model.get_output_embeddings()(hidden[rows, positions])
            finally:
                language_model.train(was_training)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @torch.no_grad()
    def _record_metrics(
        self, mode, inputs, outputs, valid, nll_sum, reconstruction, stats, distillation_sum=None
    ) -> None:
        """One gather per step of the sums behind every ratio, so ratios are exact over all processes."""
        V = self.model.config.base_vocab_size
        targets = inputs["labels"][:, 1:]
        predicted = outputs.logits[:, :-1].argmax(-1)
        sums = torch.stack(
            [
                nll_sum.float().reshape(()),
                valid.sum().float(),
                ((targets >= V) & valid).sum().float(),
                ((predicted == targets) & valid).sum().float(),
                stats["num_target_bytes"].sum().float() if "num_target_bytes" in stats else valid.new_zeros((), dtype=torch.float),
                stats["num_base_tokens"].sum().float() if "num_base_tokens" in stats else valid.new_zeros((), dtype=torch.float),
                inputs["attention_mask"].sum().float() if "attention_mask" in inputs else valid.new_tensor(float(targets.numel() + targets.shape[0])),
                reconstruction.detach().float().reshape(()) if reconstruction is not None else valid.new_zeros((), dtype=torch.float),
                distillation_sum.detach().float().reshape(()) if distillation_sum is not None else valid.new_zeros((), dtype=torch.float),
            ]
        )  # fmt: skip
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.gather(sums[None]).sum(0)
        nll, targets_n, hyper, correct, n_bytes, base_tokens, codes, recon, distill = sums.tolist()
        metrics = self._metrics[mode]
        metrics["lm_loss"].append(nll / targets_n if targets_n else 0.0)
        metrics["hypertoken_share"].append(hyper / targets_n if targets_n else 0.0)
        metrics["mean_token_accuracy"].append(correct / targets_n if targets_n else 0.0)
        if n_bytes:
            metrics["bits_per_byte"].append(nll / math.log(2) / n_bytes)
        if base_tokens and codes:
            metrics["compression_ratio"].append(base_tokens / codes)
        if reconstruction is not None:
            metrics["reconstruction_loss"].append(recon / self.accelerator.num_processes)
        if distillation_sum is not None:
            metrics["distillation_loss"].append(distill / targets_n if targets_n else 0.0)
        if mode == "train":
            self._total_train_tokens += int(codes)
            self._total_base_tokens = getattr(self, "_total_base_tokens", 0) + int(base_tokens)
            self._total_target_bytes = getattr(self, "_total_target_bytes", 0) + int(n_bytes)
            metrics["num_tokens"] = [self._total_train_tokens]
            metrics["num_base_tokens"] = [self._total_base_tokens]
            metrics["num_target_bytes"] = [self._total_target_bytes]

    # ------------------------------------------------------------------------------------ saving

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints (internal calls) as in TRL; a user's call writes a complete `trust_remote_code` repo."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        self.save_zip2zip(output_dir or self.args.output_dir)

    def save_zip2zip(self, output_dir: str, save_adapter: bool = True) -> None:
        """Write a loadable repo: merged weights, config with `auto_map`, model code, tokenizer (and `adapter/`).

        LoRA is merged into a copy of the model, so training can go on afterwards. The folder loads with
        `AutoModelForCausalLM.from_pretrained(output_dir, trust_remote_code=True)` and
        `AutoTokenizer.from_pretrained(output_dir, trust_remote_code=True)`; the adapter (LoRA plus the trained
        hyper-encoders) loads onto the untrained zip2zip model with `PeftModel.from_pretrained`.
        """
        from peft import PeftModel

        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            unwrapped = self.accelerator.unwrap_model(self.model)
            if isinstance(unwrapped, PeftModel):
                if save_adapter:
                    unwrapped.save_pretrained(os.path.join(output_dir, "adapter"))
                merged = copy.deepcopy(unwrapped).merge_and_unload()
            else:
                merged = unwrapped
            # TRL patches `forward` on the instance (fused LM head); the saved model must not carry it.
            merged.__dict__.pop("forward", None)
            merged.save_pretrained(output_dir, safe_serialization=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))
        self.accelerator.wait_for_everyone()


def _as_zip2zip_config(args: Any, model: Any) -> Zip2ZipSFTConfig:
    if isinstance(args, Zip2ZipSFTConfig):
        return args
    if args is None:
        name = (
            model
            if isinstance(model, (str, os.PathLike))
            else getattr(model.config, "_name_or_path", "") or "model"
        )
        return Zip2ZipSFTConfig(f"{os.path.basename(os.fspath(name).rstrip('/')) or 'model'}-zip2zip")
    if isinstance(args, TrainingArguments):
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
        known = {f.name for f in dataclasses.fields(Zip2ZipSFTConfig) if f.init}
        return Zip2ZipSFTConfig(**{k: v for k, v in values.items() if k in known})
    raise TypeError(
        f"args must be a Zip2ZipSFTConfig, SFTConfig or TrainingArguments, got {type(args).__name__}"
    )


def _load_model(path: str, tokenizer: Any, args: Zip2ZipSFTConfig) -> tuple[PreTrainedModel, Any]:
    """A zip2zip repo loads as it is; any other causal LM is converted with `from_base`."""
    config = AutoConfig.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    kwargs = dict(args.model_init_kwargs or {})
    if config.model_type == "zip2zip":
        kwargs.setdefault("trust_remote_code", args.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
        return model, tokenizer
    model, zip_tokenizer = zip2zip_from_base(
        path, tokenizer=tokenizer, dtype=kwargs.get("dtype"), **(args.zip2zip_settings or {})
    )
    return model, zip_tokenizer


def _as_zip2zip_tokenizer(tokenizer: Any, model: Any) -> Any:
    from .tokenization_zip2zip import Zip2ZipTokenizer

    if tokenizer is None:
        path = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
        if not path:
            raise ValueError(
                "processing_class is required when the model has no path to load its tokenizer from"
            )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    if getattr(tokenizer, "codec", None) is None:
        tokenizer = Zip2ZipTokenizer.from_base(tokenizer, model.config)
    check = getattr(tokenizer, "check_compatible", None)
    if check is not None:
        check(model.config)
    return tokenizer


def iter_text_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Every file under `paths` (files are taken as they are, folders walked in sorted order)."""
    files: list[str] = []
    for path in paths:
        path = os.fspath(path)
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                files.extend(os.path.join(root, n) for n in sorted(names) if not n.startswith("."))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"training data path {path!r} does not exist")
    return files
