"""Prompt-lookup decoding for zip2zip models: propose codes copied from the row's own text, verify them at once.

`generate(..., prompt_lookup_num_tokens=k)` (the name transformers uses) runs :func:`prompt_lookup_decoding`
instead of transformers' assisted-decoding loop. Each iteration:

1. **Propose** up to `k` codes (:class:`Zip2ZipCodeLookup`): find the longest recent suffix of the row's text
   (prompt and output so far, as base tokens) that occurred earlier, take the base tokens that followed it and
   encode them with the row's *current* codebook, longest entry first, so one proposed code can stand for up
   to `max_subtokens` base tokens. Which hypertokens it uses adapts to the model: entries the stream has
   already used and entries never used yet are two classes, and a class is only proposed while the model
   takes its hypertokens at least as often as it splits them into shorter codes. How many codes it proposes
   adapts too: verifying a code costs part of a forward pass (about 0.15 of one on CPU), so it proposes the
   number with the most expected accepted codes per unit of cost, from the acceptance so far after suffix
   matches of similar length (on text with little to copy it mostly proposes nothing).
2. **Verify** them with one forward pass over the KV cache. The per-row LZW state is fed the proposed codes
   one by one before the pass, so each position gets exactly the accept limit, `KwKwK` candidate, position id
   and hypertoken vectors it would get if the codes had been generated one at a time.
3. **Accept** position by position, as the loop without lookup would: the logits processors see the sequence
   up to that position, the next code is chosen (greedy, or sampled), the stopping criteria and the streamer
   get it; a proposed code is kept while it equals the choice, and the first choice that differs (or the one
   after the last proposal) ends the iteration. The KV cache is cropped and the LZW state restored to the
   accepted prefix, so the rest of the generation never sees the rejected codes.

Greedy output is therefore the output without lookup, code for code. Sampling is exact too: each position's
code is drawn from the model's processed distribution given the accepted prefix, and a proposal is kept only
when the draw equals it; for a proposal that puts all its mass on one code this is the speculative-sampling
acceptance rule (accept with probability `p(x)`, otherwise draw from `p` without `x`).

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.generation.utils import GenerateDecoderOnlyOutput

from .generation_state_zip2zip import Zip2ZipGenerationState

__all__ = ["LOOKUP_MATCH_MODES", "Zip2ZipCodeLookup", "prompt_lookup_decoding"]

LOOKUP_MATCH_MODES = ("base", "codes")
"""What the suffix match runs on: base tokens (re-encoded with the current codebook) or the code stream."""

# Earlier occurrences of the suffix's last two tokens examined per proposal, newest first (bounds the cost).
_MAX_OCCURRENCES = 64
# The longest suffix match looked for, in tokens (a longer one would not change the proposal).
_MAX_MATCH = 32
# Suffix matches are sorted by length into buckets (shorter than 4 tokens, than 12, longer), each with its own
# estimate of how often a proposed code is accepted, starting from these (accepted, rejected) counts.
_MATCH_BUCKETS = (4, 12)
_PRIOR_COUNTS = ((1, 2), (2, 2), (3, 1))
# What verifying one more code costs, as a share of a one-code forward pass: measured about 0.15 for
# SmolLM2-135M on CPU (11 codes take 2.6x one); accelerators verify a few codes almost for free.
_COST_PER_CODE = {"cpu": 0.15}
_COST_PER_CODE_ACCELERATOR = 0.03
# After this many passes without a proposal in a bucket, propose one code to keep the estimate current.
_EXPLORE_EVERY = 8


@dataclass
class _Proposed:
    """One proposed code and, where a hypertoken started at its text position, the longest one."""

    code: int
    length: int  # base tokens the proposed code stands for
    text: tuple[int, ...]  # the proposal's base tokens from this code's position on (for the split test)
    fresh: bool = False  # the proposed code is a hypertoken the stream has not used yet
    longest: int | None = None  # the longest existing entry there (None: no hypertoken started there)
    longest_length: int = 1
    longest_fresh: bool = False


class Zip2ZipCodeLookup:
    """Proposes the codes that may follow in one row of a generation, copied from the row's own text.

    Args:
        state: the generation's per-row codebook state.
        row: the row to propose for.
        num_codes: the most codes one proposal holds (`prompt_lookup_num_tokens`).
        match: `"base"` (default) matches the text as base tokens and encodes what followed with the current
            codebook; `"codes"` matches the code stream itself and copies the codes that followed.
        max_ngram: the longest suffix looked for (`max_matching_ngram_size`), in tokens of the matched stream.
        cost_per_code: the cost of verifying one more code, as a share of a forward pass over one code (default:
            by device type). How many codes are proposed (up to `num_codes`) is chosen to maximize the expected
            codes per unit of cost, from how often codes proposed after a suffix match of similar length were
            accepted in this row so far; `0` always proposes `num_codes`.
    """

    def __init__(
        self,
        state: Zip2ZipGenerationState,
        row: int = 0,
        num_codes: int = 10,
        match: str = "base",
        max_ngram: int | None = None,
        cost_per_code: float | None = None,
    ) -> None:
        if match not in LOOKUP_MATCH_MODES:
            raise ValueError(f"prompt_lookup_match must be one of {LOOKUP_MATCH_MODES}, got {match!r}")
        if isinstance(num_codes, bool) or not isinstance(num_codes, int) or num_codes < 1:
            raise ValueError(f"prompt_lookup_num_tokens must be a positive int, got {num_codes!r}")
        self.state = state
        self.row = row
        self.num_codes = num_codes
        self.match = match
        self.max_ngram = max(1, min(int(max_ngram), _MAX_MATCH)) if max_ngram else _MAX_MATCH
        self._pairs: dict[tuple[int, int], list[int]] = {}  # (s[j-1], s[j]) -> every end position j
        self._last: dict[int, int] = {}  # token -> its latest position
        self._indexed = 0
        self._phrases: dict[tuple[int, ...], int] = {}  # entry -> hypertoken id, for the row's codebook
        self._known = 0
        self._used: set[int] = set()  # every code the row's stream holds
        self._seen_columns = 0
        # took / split counts of [used entries, fresh entries], starting in favour of hypertokens.
        self._took = [1, 1]
        self._split = [0, 0]
        if cost_per_code is None:
            device = getattr(getattr(state.model, "device", None), "type", "cpu")
            cost_per_code = _COST_PER_CODE.get(device, _COST_PER_CODE_ACCELERATOR)
        self.cost_per_code = float(cost_per_code)
        self._accepted = [a for a, _ in _PRIOR_COUNTS]
        self._rejected = [r for _, r in _PRIOR_COUNTS]
        self._idle = [0] * len(_PRIOR_COUNTS)
        self._bucket: int | None = None  # the bucket of the latest proposal

    # ---------------------------------------------------------------- proposing

    def propose(
        self, max_codes: int, max_base_tokens: int | None = None, stop_ids: set[int] | frozenset = frozenset()
    ) -> list[_Proposed]:
        """Up to `min(num_codes, max_codes)` codes, each acceptable where it would stand; `[]` if no match.

        The proposal ends before a code in `stop_ids` (end of sequence) and once its codes stand for
        `max_base_tokens` base tokens.
        """
        limit = min(self.num_codes, max_codes)
        if limit < 1:
            return []
        self._catch_up()
        stream = self._stream()
        found, matched = self._find(stream)
        self._bucket = None
        if found is None:
            return []
        bucket = sum(matched >= edge for edge in _MATCH_BUCKETS)
        limit = self._worth_proposing(bucket, limit)
        if limit < 1:
            return []
        self._bucket = bucket
        if self.match == "codes":
            proposal = self._copy_codes(_following(stream, found, limit))
        else:
            proposal = self._encode(_following(stream, found, (limit + 1) * self.state.M), limit)
        kept = []
        base = 0
        for item in proposal:
            if item.code in stop_ids or (max_base_tokens is not None and base >= max_base_tokens):
                break
            kept.append(item)
            base += item.length
        return kept

    def _worth_proposing(self, bucket: int, limit: int) -> int:
        """The proposal length (0 .. limit) with the most expected codes per unit of cost.

        With acceptance rate `a` per code (each accepted only if the ones before it were), `n` proposed codes
        give `1 + a + ... + a^n` codes for a pass costing `1 + cost_per_code * n`.
        """
        accepted, rejected = self._accepted[bucket], self._rejected[bucket]
        rate = accepted / (accepted + rejected)
        best, best_value, gain, term = 0, 1.0, 1.0, 1.0
        for n in range(1, limit + 1):
            term *= rate
            gain += term
            value = gain / (1.0 + self.cost_per_code * n)
            if value > best_value:
                best, best_value = n, value
        if best == 0:
            self._idle[bucket] += 1
            if self._idle[bucket] >= _EXPLORE_EVERY:
                self._idle[bucket] = 0
                best = 1
        return best

    def _stream(self) -> list[int]:
        """The row's accepted stream the match runs on: base tokens, or codes (left padding left out)."""
        state, b = self.state, self.row
        if self.match == "codes":
            return [code for code, phrase in zip(state.codes[b], state.phrases[b]) if phrase]
        return state.decoders[b].base_ids

    def _catch_up(self) -> None:
        """Index what the row's accepted stream gained since the last proposal (it only ever grows)."""
        state, b = self.state, self.row
        entries = state.entries[b]
        V = state.V
        for slot in range(self._known, len(entries)):
            self._phrases.setdefault(entries[slot], V + slot)
        self._known = len(entries)
        codes = state.codes[b]
        self._used.update(codes[self._seen_columns :])
        self._seen_columns = len(codes)

    def _find(self, stream: list[int]) -> tuple[int | None, int]:
        """End position of the longest (then latest) earlier occurrence of the stream's suffix, and its length."""
        end = len(stream) - 1
        pairs, last = self._pairs, self._last
        for j in range(max(self._indexed, 1), end):  # every position but the suffix's own end
            pairs.setdefault((stream[j - 1], stream[j]), []).append(j)
        for j in range(self._indexed, end):
            last[stream[j]] = j
        self._indexed = max(end, 0)
        if end < 1:
            return None, 0
        occurrences = pairs.get((stream[end - 1], stream[end]))
        if not occurrences:
            return last.get(stream[end]), 1
        best, best_length = None, 0
        for j in reversed(occurrences[-_MAX_OCCURRENCES:]):
            length = 2
            while length < self.max_ngram and j - length >= 0 and stream[j - length] == stream[end - length]:
                length += 1
            if length > best_length:
                best, best_length = j, length
                if length >= self.max_ngram:
                    break
        return best, best_length

    def _copy_codes(self, codes: list[int]) -> list[_Proposed]:
        """The codes as they are, cut at the first one the row's decoder could not accept now."""
        state = self.state
        limit = state.V + state.decoders[self.row].accept_limit
        entries = state.entries[self.row]
        proposal = []
        for code in codes:
            if code >= limit:
                break
            length = len(entries[code - state.V]) if code >= state.V else 1
            proposal.append(_Proposed(code, length, ()))
        return proposal

    def _encode(self, ids: list[int], limit: int) -> list[_Proposed]:
        """Up to `limit` codes for base `ids`: the longest entry of a class the model takes, else shorter."""
        M = self.state.M
        phrases, used = self._phrases, self._used
        allowed = [self._took[c] >= self._split[c] for c in (0, 1)]
        proposal: list[_Proposed] = []
        i, n = 0, len(ids)
        while i < n and len(proposal) < limit:
            item = None
            longest = None
            for length in range(min(M, n - i), 1, -1):
                code = phrases.get(tuple(ids[i : i + length]))
                if code is None:
                    continue
                fresh = code not in used
                if longest is None:
                    longest = (code, length, fresh)
                if allowed[fresh]:
                    item = _Proposed(code, length, tuple(ids[i:]), fresh)
                    break
            if item is None:
                item = _Proposed(ids[i], 1, tuple(ids[i:]))
            if longest is not None:
                item.longest, item.longest_length, item.longest_fresh = longest
            proposal.append(item)
            i += item.length
        return proposal

    # ---------------------------------------------------------------- learning from the verification

    def observe(self, proposal: list[_Proposed], choices: list[int]) -> None:
        """Count how many proposed codes were accepted, and, where a hypertoken was available, whether the
        model took it or split it into shorter codes.

        `choices[i]` is the model's code at the position of `proposal[i]` (only checked positions).
        """
        if self._bucket is not None and proposal:
            accepted = 0
            while (
                accepted < min(len(proposal), len(choices)) and choices[accepted] == proposal[accepted].code
            ):
                accepted += 1
            self._accepted[self._bucket] += accepted
            self._rejected[self._bucket] += accepted < min(len(proposal), len(choices))
        state, b = self.state, self.row
        V, entries = state.V, state.entries[b]
        for item, choice in zip(proposal, choices):
            if choice < V:
                phrase = (choice,)
            elif choice - V < len(entries):
                phrase = entries[choice - V]
            else:
                continue  # an entry the restored state does not hold (created by a rejected code)
            if item.text[: len(phrase)] != phrase:
                continue  # the text went another way: nothing learnt about hypertokens
            if item.code >= V:  # a proposed hypertoken: taken, or split into shorter codes
                self._count(item.fresh, choice == item.code, len(phrase) < item.length)
            if item.longest is not None and item.longest != item.code:  # a longer one held back
                self._count(item.longest_fresh, choice == item.longest, len(phrase) < item.longest_length)

    def _count(self, fresh: bool, took: bool, split: bool) -> None:
        if took:
            self._took[fresh] += 1
        elif split:
            self._split[fresh] += 1


def _following(stream: list[int], found: int, count: int) -> list[int]:
    """The `count` tokens that followed position `found`, copied on past the stream's end as LZ77 copies
    overlap: a suffix that matched one period back predicts the period again and again."""
    following = stream[found + 1 : found + 1 + count]
    period = len(stream) - 1 - found
    while len(following) < count and period > 0:
        following.append(following[len(following) - period])
    return following


def prompt_lookup_decoding(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    streamer: Any = None,
    match: str = "base",
    **model_kwargs: Any,
) -> GenerateDecoderOnlyOutput | torch.LongTensor:
    """The decoding loop of `generate(prompt_lookup_num_tokens=k)` for a zip2zip model (batch 1).

    Takes what transformers' `generate` prepares for its decoding methods (logits processors, stopping
    criteria, the generation config, the model kwargs with the cache and the `zip2zip_state`) and returns what
    `_sample` returns: the codes, or a `GenerateDecoderOnlyOutput` with one score / logits tensor per code.
    """
    state: Zip2ZipGenerationState = model_kwargs["zip2zip_state"]
    name = type(model).__name__
    k = generation_config.prompt_lookup_num_tokens
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"{name}.generate with prompt_lookup_num_tokens={k} supports one sequence at a time (each row would "
            f"accept a different number of codes), but got {input_ids.shape[0]} rows; generate them one by one "
            "or drop prompt_lookup_num_tokens"
        )
    if generation_config.output_attentions or generation_config.output_hidden_states:
        raise ValueError(
            f"{name}.generate with prompt_lookup_num_tokens does not return attentions or hidden states; drop "
            "output_attentions / output_hidden_states, or prompt_lookup_num_tokens"
        )
    cache = model_kwargs.get("cache")
    if cache is None or not model_kwargs.get("use_cache", True):
        raise ValueError(
            f"{name}.generate with prompt_lookup_num_tokens needs the KV cache (use_cache=True): the proposed "
            "codes are verified against it and it is cropped after a rejection"
        )
    if hasattr(cache, "activate_past_recording"):
        cache.activate_past_recording()

    do_sample = generation_config.do_sample
    return_dict = generation_config.return_dict_in_generate
    scores = () if return_dict and generation_config.output_scores else None
    raw_logits = () if return_dict and generation_config.output_logits else None
    eos = getattr(generation_config, "_eos_token_tensor", None)
    stop_ids = frozenset(eos.reshape(-1).tolist()) if eos is not None else frozenset()
    max_length = generation_config.max_length
    attention_mask = model_kwargs.get("attention_mask")
    state.sync(input_ids, attention_mask)
    lookup = Zip2ZipCodeLookup(
        state, 0, int(k), match=match, max_ngram=getattr(generation_config, "max_matching_ngram_size", None)
    )
    state.forward_passes = 0
    first = True
    unfinished = torch.ones(1, dtype=torch.long, device=input_ids.device)
    while True:
        cur = input_ids.shape[1]
        room_base = None
        if state.max_new_base_tokens is not None:
            room_base = state.max_new_base_tokens - state.generated_base_before(0, cur)
        max_codes = max_length - cur - 1 if max_length is not None else k
        proposal = lookup.propose(max_codes, room_base, stop_ids)
        codes = [item.code for item in proposal]
        n = len(codes)
        snapshot = state.snapshot() if n else None
        candidate_ids = input_ids
        if n:
            extra = torch.tensor([codes], dtype=input_ids.dtype, device=input_ids.device)
            candidate_ids = torch.cat([input_ids, extra], dim=-1)
        step_kwargs = dict(model_kwargs)
        if attention_mask is not None:
            step_kwargs["attention_mask"] = _extend(attention_mask, n)
        model_inputs = model.prepare_inputs_for_generation(
            candidate_ids,
            next_sequence_length=candidate_ids.shape[1] - cache.get_seq_length(),
            is_first_iteration=first,
            **step_kwargs,
        )
        if "logits_to_keep" in model_inputs:
            model_inputs["logits_to_keep"] = n + 1
        outputs = model(**model_inputs, return_dict=True)
        state.forward_passes += 1
        state.proposed_codes += n
        if first and not getattr(outputs.cache, "is_croppable", True):
            raise ValueError(
                f"{name}.generate with prompt_lookup_num_tokens needs a KV cache that can be cropped"
            )
        first = False
        logits = outputs.logits[:, -(n + 1) :].to(dtype=torch.float32, device=input_ids.device)
        del outputs

        choices: list[int] = []
        finished = bonus = False
        for i in range(n + 1):
            prefix = candidate_ids[:, : cur + i]
            next_logits = logits[:, i].clone()
            next_scores = logits_processor(prefix, next_logits)
            if scores is not None:
                scores += (next_scores,)
            if raw_logits is not None:
                raw_logits += (logits[:, i].clone(),)
            if do_sample:
                probs = torch.nn.functional.softmax(next_scores, dim=-1)
                token = torch.multinomial(probs, num_samples=1).squeeze(1)
            else:
                token = torch.argmax(next_scores, dim=-1)
            choice = int(token[0])
            choices.append(choice)
            if i < n and choice == codes[i]:
                input_ids = candidate_ids[:, : cur + i + 1]
                state.accepted_codes += 1
            else:
                if snapshot is not None:
                    state.restore(snapshot)  # the rejected codes leave no trace
                    snapshot = None
                    state.sync(prefix)
                input_ids = torch.cat([prefix, token[:, None].to(prefix.dtype)], dim=-1)
                bonus = True
            unfinished = unfinished & ~stopping_criteria(input_ids, scores)
            if streamer is not None:
                streamer.put(token.cpu())
            finished = bool(unfinished.max() == 0)
            if finished or bonus:
                break
        lookup.observe(proposal, choices)
        if snapshot is not None and state.columns > input_ids.shape[1]:
            # Stopped on an accepted code: forget the proposals after it.
            state.restore(snapshot)
            state.sync(input_ids)
        # The cache holds every column but the newest code, as after a step of the loop without lookup.
        cache.crop(-(cache.get_seq_length() - (input_ids.shape[1] - 1)))
        if attention_mask is not None:
            attention_mask = _extend(attention_mask, input_ids.shape[1] - cur)
            model_kwargs["attention_mask"] = attention_mask
        if finished:
            break
        state.sync(input_ids)

    if streamer is not None:
        streamer.end()
    if not return_dict:
        return input_ids
    return GenerateDecoderOnlyOutput(
        sequences=input_ids,
        scores=scores,
        logits=raw_logits,
        attentions=None,
        hidden_states=None,
        cache=cache,
    )


def _extend(mask: torch.Tensor, columns: int) -> torch.Tensor:
    if columns <= 0:
        return mask
    return torch.cat([mask, mask.new_ones((mask.shape[0], columns))], dim=-1)
