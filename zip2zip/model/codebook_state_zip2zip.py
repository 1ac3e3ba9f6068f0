"""The codebook-state tensors of a batch (codebook, accept limits, candidates) from each row's LZW trace.

They are what [`Zip2ZipForCausalLM`] needs beside the ids: the data collator builds them in the data loader,
the model's `prepare_codebook` builds them when they are not given. This file is copied into every exported
Hub repo (``trust_remote_code``): it imports only torch and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .lzw import LZWCodec

__all__ = ["codebook_state", "excluded_after", "lift_where_labelled", "mask_codes", "padded_table"]


def excluded_after(excluded_next: Sequence[int], ends_segment: bool) -> list[int]:
    """The codes canonical masking rules out after a code: `excluded_next` (its
    [`LZWDecoder.excluded_next`]), or none where the code ends a segment.

    The boundary rule shared by training and generation: a segment (a training row's prompt, a chat turn, the
    prompt given to `generate`) is compressed apart from the next one, so the next segment's first code may
    begin a phrase the segment's last code could extend. Training rows (the data collator, through
    [`codebook_state`]'s `segment_ends`) and generation (the generation state, after the prompt's last code)
    both apply it here, so a prompt/completion row gets one mask, whatever its labels.
    """
    return [] if ends_segment else list(excluded_next)


def codebook_state(
    codec: LZWCodec,
    traces: Sequence[Any],
    length: int,
    columns: Sequence[Sequence[int]] | None = None,
    segment_ends: Sequence[Sequence[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """The codebook-state tensors of a batch, from each row's LZW trace (``codec.trace(codes)``).

    Args:
        codec: the codec that made the traces (only its `max_subtokens` is read).
        traces: one trace per row, of the row's codes (padding left out).
        length: the padded row length `T`.
        columns: for each row, the column of each traced code (e.g. the attended positions of a left-padded
            row). Default: code `j` sits in column `j` (right padding).
        segment_ends: for each row, the indices of the codes that end a segment compressed apart from the
            next one (see [`excluded_after`]); nothing is excluded after them. Default: none (one segment).

    Returns:
        A dict of CPU LongTensors: `codebook` `(B, K, M)` (each row's entries in creation order, `-1` padded,
        `K` = most entries in the batch), `accept_limits` `(B, T)` and `candidates` `(B, T, M)` (the state
        *after* each code; see [`Zip2ZipForCausalLM`]). Columns without a code get limit 0 and no candidate.
        When the traces were made with ``exclusions=True``, also `excluded_codes` `(B, T, E)`: the codes a
        canonical stream could not have after each code, `-1` padded.
    """
    M = codec.max_subtokens
    B = len(traces)
    limits = [[0] * length for _ in range(B)]
    cand_rows: list[int] = []
    cand_cols: list[int] = []
    cand_entries: list[list[int]] = []
    tables: list[list[list[int]]] = []
    with_exclusions = bool(traces) and all(trace.excluded is not None for trace in traces)
    excluded = [[[] for _ in range(length)] for _ in range(B)] if with_exclusions else []
    for b, trace in enumerate(traces):
        ends = set(segment_ends[b]) if segment_ends is not None else set()
        n = len(trace.accept_limits) - 1
        where = columns[b] if columns is not None else range(n)
        if len(where) != n or (n and max(where) >= length):
            raise ValueError(
                f"row {b}: its trace holds {n} codes but {len(where)} columns (of {length}) were given for them; "
                "pass one column per traced code, each below length"
            )
        row_limits = limits[b]
        for j, t in enumerate(where):
            row_limits[t] = trace.accept_limits[j + 1]
            candidate = trace.candidates[j + 1]
            if candidate is not None:
                cand_rows.append(b)
                cand_cols.append(t)
                cand_entries.append(list(candidate) + [-1] * (M - len(candidate)))
            if with_exclusions:
                excluded[b][t] = excluded_after(trace.excluded[j + 1], j in ends)
        tables.append(trace.codebook.table())
    K = max((len(table) for table in tables), default=0)
    codebook = torch.full((B, K, M), -1, dtype=torch.long)
    for b, table in enumerate(tables):
        if table:
            codebook[b, : len(table)] = torch.tensor(table, dtype=torch.long)
    candidates = torch.full((B, length, M), -1, dtype=torch.long)
    if cand_entries:
        candidates[cand_rows, cand_cols] = torch.tensor(cand_entries, dtype=torch.long)
    state = {
        "codebook": codebook,
        "accept_limits": torch.tensor(limits, dtype=torch.long).reshape(B, length),
        "candidates": candidates,
    }
    if with_exclusions:
        state["excluded_codes"] = padded_table(excluded)
    return state


def padded_table(rows: Sequence[Sequence[Sequence[int]]]) -> torch.Tensor:
    """`(B, T, E)` LongTensor of `B` rows of `T` id lists each, `-1` padded to the longest list (`E`)."""
    E = max((len(ids) for row in rows for ids in row), default=0)
    T = len(rows[0]) if rows else 0
    table = torch.full((len(rows), T, E), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        for t, ids in enumerate(row):
            if ids:
                table[b, t, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return table


def lift_where_labelled(excluded_codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """`excluded_codes` without the positions whose target (the next label) is one of them.

    A row given without its segment ends (its state built by the model from `input_ids` alone) can break the
    canonical rule where one segment ends and the next begins (a prompt and its completion are compressed
    apart); its target there must keep a finite score. Rows whose state was built with `segment_ends` (the
    data collator's) need no lifting: nothing is excluded after a segment's last code (see [`excluded_after`]).
    """
    if labels is None or excluded_codes.shape[-1] == 0:
        return excluded_codes
    targets = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100).to(excluded_codes.device)
    hit = (excluded_codes == targets[..., None]).any(-1) & (targets >= 0)
    return excluded_codes.masked_fill(hit[..., None], -1) if bool(hit.any()) else excluded_codes


def mask_codes(logits: torch.Tensor, excluded_codes: torch.Tensor) -> torch.Tensor:
    """`logits` with `-inf` at every `(b, t, excluded_codes[b, t, e])` (entries `< 0` are padding)."""
    rows, cols, slots = (excluded_codes >= 0).nonzero(as_tuple=True)
    if rows.numel() == 0:
        return logits
    return logits.index_put(
        (rows, cols, excluded_codes[rows, cols, slots].to(logits.device)),
        logits.new_tensor(float("-inf")),
    )
