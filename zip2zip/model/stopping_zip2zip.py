"""The logits processor and stopping criteria that zip2zip's `generate()` adds to transformers' loop.

Each reads the per-row codebook state of the call (``generation_state_zip2zip.py``): the accept-set
processor keeps undecodable hypertoken slots at `-inf` after custom processors, the stop-string criterion
checks decoded text (hypertoken ids overrun transformers' token-id tables), and the base-token budget stops
a row once its codes stand for `max_new_base_tokens` base tokens. Each looks at the last column of the
`input_ids` it is called with (not the state's newest column): prompt lookup calls them once per verified
position while the state already holds the proposed codes after it.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from .generation_state_zip2zip import Zip2ZipGenerationState

__all__ = [
    "GREEDY_BY_MODES",
    "Zip2ZipAcceptSetLogitsProcessor",
    "Zip2ZipMaxBaseTokensCriteria",
    "Zip2ZipPrefixGreedyLogitsProcessor",
    "Zip2ZipStopStringCriteria",
    "Zip2ZipTokenHealingLogitsProcessor",
]

GREEDY_BY_MODES = ("code", "prefix")


class Zip2ZipAcceptSetLogitsProcessor(LogitsProcessor):
    """Keeps every hypertoken slot a row's decoder cannot accept at `-inf`, after all other processors.

    The model's logits are masked already, and transformers' processors keep `-inf` scores at `-inf`;
    `generate` adds this one after the caller's own `logits_processor` list, so that no custom processor
    (one that shifts or clamps scores) can make an undecodable code selectable. It reads the accept limit
    after the last column of the `input_ids` it is given, so it also holds for each position prompt lookup
    verifies in one pass.
    """

    def __init__(self, state: Zip2ZipGenerationState) -> None:
        self.state = state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        state = self.state
        state.sync(input_ids)
        # The state after the last column of `input_ids` (prompt lookup scores several columns per pass).
        column = input_ids.shape[1] - 1
        limits = torch.tensor([row[column] for row in state.limits], device=scores.device)
        slots = torch.arange(scores.shape[-1] - state.V, device=scores.device)
        blocked = slots[None, :] >= limits[:, None]
        if bool(blocked.any()):
            hyper = scores[:, state.V :].masked_fill(blocked, float("-inf"))
            scores = torch.cat([scores[:, : state.V], hyper], dim=-1)
        return scores


class Zip2ZipPrefixGreedyLogitsProcessor(LogitsProcessor):
    """Greedy search over the text, not over the codes: keeps only the code that a walk down the row's
    codebook trie picks, so that a base token is not passed over because its probability is split.

    A zip2zip model spreads the probability of a next base token `t` over `t` itself and every hypertoken that
    starts with `t` (trained on LZW's longest matches, it gives `t` alone only the mass of "t, then something
    no entry continues"). Plain greedy search takes the single most likely code, so a token with many entries
    loses to one with none even when it is the likelier next token, and the model writes base tokens where its
    codebook holds the whole run. This processor picks the next base token by its total mass (every code that
    starts with it), then, one position deeper at a time, either stops (the code that ends there) or goes on
    to the likeliest next token among the codes left, and masks every other code with `-inf`. The choice is
    the code the argmax of a base-token model would write, as far as the codebook can tell.
    """

    def __init__(self, state: Zip2ZipGenerationState) -> None:
        self.state = state
        self._tables: list[torch.Tensor] = []  # per row: (entries, M) base ids of each slot, -1 padded
        self._restores = 0

    def _table(self, row: int, known: int, device: torch.device) -> torch.Tensor:
        entries = self.state.entries[row]
        # Prompt lookup rolled entries back since the last call: a slot may hold another entry now.
        if self._restores != self.state.restores:
            self._tables, self._restores = [], self.state.restores
        while len(self._tables) <= row:
            self._tables.append(torch.empty(0, self.state.M, dtype=torch.long))
        table = self._tables[row]
        if table.shape[0] < len(entries):
            M = self.state.M
            new = [list(e) + [-1] * (M - len(e)) for e in entries[table.shape[0] :]]
            table = torch.cat([table, torch.tensor(new, dtype=torch.long).reshape(-1, M)])
            self._tables[row] = table
        return table[:known].to(device)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        state = self.state
        state.sync(input_ids)
        column = input_ids.shape[1] - 1
        V = state.V
        chosen = torch.empty(scores.shape[0], dtype=torch.long)
        for b in range(scores.shape[0]):
            probs = torch.softmax(scores[b].float(), dim=-1)
            limit = state.limits[b][column]
            candidate = state.candidates[b][column]
            known = limit - (candidate is not None)
            table = self._table(b, known, scores.device)
            if candidate is not None:
                pad = [-1] * (state.M - len(candidate))
                table = torch.cat([table, torch.tensor([list(candidate) + pad], device=scores.device)])
            hyper = probs[V : V + table.shape[0]]
            # Depth 0: every base token's total mass.
            mass = probs[:V].clone().index_add_(0, table[:, 0], hyper)
            token = int(mass.argmax())
            slots = torch.nonzero(table[:, 0] == token).flatten()
            code, depth = token, 1
            while slots.numel() and depth < state.M:
                column_ids = table[slots, depth]
                slot_mass = hyper[slots]
                # The code that ends here: the base token at depth 1, else the entry of exactly `depth` ids.
                ends = column_ids < 0
                stop = float(probs[code]) if depth == 1 else float(slot_mass[ends].sum())
                going = ~ends
                if not bool(going.any()):
                    break
                next_ids = column_ids[going]
                totals = torch.zeros(int(next_ids.max()) + 1, device=scores.device).index_add_(
                    0, next_ids, slot_mass[going]
                )
                best = int(totals.argmax())
                if float(totals[best]) <= stop:
                    break
                slots = slots[going][next_ids == best]
                depth += 1
                exact = slots[table[slots, depth] < 0] if depth < state.M else slots
                if exact.numel():
                    code = V + int(exact[0])
            chosen[b] = code
        keep = torch.full_like(scores, float("-inf"))
        rows = torch.arange(scores.shape[0], device=scores.device)
        chosen = chosen.to(scores.device)
        keep[rows, chosen] = scores[rows, chosen]
        return keep


class Zip2ZipTokenHealingLogitsProcessor(LogitsProcessor):
    """Token healing's first step: a row whose prompt lost its last base token may only write a code whose text
    starts with that token's text (the token itself, or a longer token that extends it, alone or at the start of
    a hypertoken); every later step is left as it is.

    `extensions[b]` holds the base ids that extend row `b`'s removed token (None: the row was not healed), and
    `prompt_columns` the width of the healed prompt, so the first step is the one that scores after it.
    """

    def __init__(
        self, state: Zip2ZipGenerationState, extensions: Sequence[frozenset[int] | None], prompt_columns: int
    ) -> None:
        self.state = state
        self.extensions = list(extensions)
        self.prompt_columns = prompt_columns

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        column = input_ids.shape[1] - 1
        if column != self.prompt_columns - 1:
            return scores
        state = self.state
        state.sync(input_ids)
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        for b, extensions in enumerate(self.extensions):
            if extensions is None:
                allowed[b] = True
                continue
            allowed[b, sorted(extensions)] = True
            limit, candidate = state.limits[b][column], state.candidates[b][column]
            entries = state.entries[b][: limit - (candidate is not None)]
            if candidate is not None:
                entries = [*entries, candidate]
            slots = [k for k, entry in enumerate(entries) if entry[0] in extensions]
            allowed[b, [state.V + k for k in slots]] = True
        return scores.masked_fill(~allowed, float("-inf"))


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
        column = input_ids.shape[1] - 1
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
        column = input_ids.shape[1] - 1
        done = []
        for b in range(state.batch_size):
            reached = state.base_end[b][column] - state.prompt_base[b] >= self.max_new_base_tokens
            if reached and state.finished_at[b] is None:
                state.finished_at[b] = column
            done.append(reached or state.finished_at[b] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
