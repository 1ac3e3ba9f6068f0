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
  encoder pass (``model.encode_entries``). Both are cached per distinct entry for the whole call by the
  model's entry cache (``model.new_entry_cache()``); with tied encoders over tied embeddings an entry's two
  vectors are equal, so one cache serves both sides.
* ``stop_strings`` are checked on decoded text (transformers' ``StopStringCriteria`` indexes tables built
  from the tokenizer vocabulary by token id, which hypertoken ids would overrun).
* ``max_new_tokens`` counts *codes* (decoding steps), as everywhere in transformers; ``max_new_base_tokens``
  (a `generate` argument or a generation-config attribute) also stops each row once its new base tokens reach
  the budget, and the returned and streamed base ids are cut to exactly that many.
* ``prompt_lookup_num_tokens=k`` runs prompt-lookup decoding (``lookup_zip2zip.py``): up to ``k`` codes copied
  from the row's own text are verified in one forward pass, and the KV cache and the per-row codebook state are
  rolled back past the rejected ones, so the output is what the loop without lookup gives (batch 1; greedy and
  sampling). Beam search and assisted decoding with a draft model are rejected up front.
* ``model.last_generation_stats`` holds the statistics of the last call *in the calling thread* (two threads
  generating on one model each read their own); the output's ``generation_stats`` is that call's.

The per-row state lives in ``generation_state_zip2zip.py``, the logits processor and stopping criteria in
``stopping_zip2zip.py``, the streamers in ``streamers_zip2zip.py``. These files are copied into every
exported Hub repo (``trust_remote_code``): they import only torch, transformers, the standard library and
their sibling files, with flat relative imports.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import GenerationMixin, LogitsProcessorList, StoppingCriteriaList
from transformers.generation import GenerationMode
from transformers.generation.streamers import BaseStreamer
from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerateDecoderOnlyOutput

from .generation_state_zip2zip import Zip2ZipGenerationState, Zip2ZipGenerationStats
from .lookup_zip2zip import LOOKUP_MATCH_MODES, prompt_lookup_decoding
from .lzw_inputs import require_int_dtype
from .stopping_zip2zip import (
    GREEDY_BY_MODES,
    Zip2ZipAcceptSetLogitsProcessor,
    Zip2ZipMaxBaseTokensCriteria,
    Zip2ZipPrefixGreedyLogitsProcessor,
    Zip2ZipStopStringCriteria,
    Zip2ZipTokenHealingLogitsProcessor,
)
from .streamers_zip2zip import Zip2ZipTextIteratorStreamer, Zip2ZipTextStreamer, _BaseIdStreamer

__all__ = [
    "Zip2ZipAcceptSetLogitsProcessor",
    "Zip2ZipGenerateOutput",
    "Zip2ZipGenerationMixin",
    "Zip2ZipGenerationState",
    "Zip2ZipGenerationStats",
    "Zip2ZipMaxBaseTokensCriteria",
    "Zip2ZipPrefixGreedyLogitsProcessor",
    "Zip2ZipStopStringCriteria",
    "Zip2ZipTextIteratorStreamer",
    "Zip2ZipTextStreamer",
]

_SUPPORTED_MODES = (GenerationMode.GREEDY_SEARCH, GenerationMode.SAMPLE)

# Each thread's latest statistics, per model (weak keys: the model can be garbage collected, deep-copied).
_THREAD_STATS = threading.local()


def _stats_of_this_thread() -> weakref.WeakKeyDictionary:
    table = getattr(_THREAD_STATS, "by_model", None)
    if table is None:
        table = _THREAD_STATS.by_model = weakref.WeakKeyDictionary()
    return table


# ----------------------------------------------------------------------------------------- outputs


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


# ----------------------------------------------------------------------------------------- the mixin


class Zip2ZipGenerationMixin(GenerationMixin):
    """`GenerationMixin` for zip2zip models: per-row LZW codebooks in transformers' generation loop.

    See the module docstring for the design. The model class must provide `codec`, `config`
    (`base_vocab_size`, `max_codebook_size`, `max_subtokens`, `position_mode`), `new_entry_cache()` (whose
    `vectors(entries, output=..., device=...)` gives each entry's input or output vector, computed once),
    `get_input_embeddings()` and a `forward` that accepts `accept_limits`, `candidates`,
    `codebook_input_embeds` and `codebook_output_embeds`.
    """

    # Assisted generation is accepted here for prompt lookup only (see `_validate_generation_mode`).
    _supported_generation_modes = (*_SUPPORTED_MODES, GenerationMode.ASSISTED_GENERATION)

    @property
    def last_generation_stats(self) -> Zip2ZipGenerationStats | None:
        """Statistics of the last `generate()` call of this model in this thread (`None` before one).

        Thread-local: with several threads generating on one model, each reads the statistics of its own
        last call. The output of `generate(return_dict_in_generate=True)` carries them too, as
        `generation_stats`.
        """
        return _stats_of_this_thread().get(self)

    @last_generation_stats.setter
    def last_generation_stats(self, stats: Zip2ZipGenerationStats | None) -> None:
        _stats_of_this_thread()[self] = stats

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
            prompt_lookup_num_tokens (`int`, *optional*):
                Prompt-lookup decoding: propose up to this many codes copied from the row's own text (prompt and
                output so far) and verify them in one forward pass. The output equals the output without it
                (greedy: code for code); one row at a time. `generation_stats` then counts forward passes and
                proposed and accepted codes. `max_matching_ngram_size` caps the suffix match (default 32).
            greedy_by (`str`, *optional*, defaults to `"code"`):
                What greedy search maximizes at each step: `"code"` the single likeliest code (transformers'
                greedy search as is), or `"prefix"` the likeliest next base token, summed over every code that
                starts with it, then the longest run of the codebook that stays the likeliest
                ([`Zip2ZipPrefixGreedyLogitsProcessor`]). Greedy search only. Also read from
                `generation_config.greedy_by`.
            token_healing (`bool`, *optional*, defaults to `False`):
                transformers' token healing, done on base tokens: each row's prompt gives up its last base token
                (unless no longer token extends it), and the first new code must start with that token or
                one that extends it, so a prompt that ends where the tokenizer would have merged on (a newline
                before an indented line, a word cut short) is continued as the whole text would be. The text
                always starts with the prompt's text; the returned prompt part is the healed prompt (decode the
                whole row). Needs `tokenizer=`; not with prompt lookup. Also read from
                `generation_config.token_healing`.
            prompt_lookup_match (`str`, *optional*, defaults to `"base"`):
                What prompt lookup matches: `"base"` the text as base tokens, re-encoded with the row's current
                codebook (a proposed code can stand for several base tokens), or `"codes"` the code stream.

        Returns:
            `torch.LongTensor` of shape `(rows, prompt_len + new_len)`: the prompt's codes (as given, left
            padding included), then each row's new base ids right-padded with the pad id, so
            `tok.decode(out[b][prompt_len:])` is the new text of row `b`. With `return_dict_in_generate=True`,
            a [`Zip2ZipGenerateOutput`] that also holds the raw `codes` and the `generation_stats`
            (also available as `model.last_generation_stats`, per thread).
        """
        tokenizer = kwargs.get("tokenizer")
        if tokenizer is not None:
            if getattr(tokenizer, "check_compatible", None) is None:
                raise ValueError(
                    f"generate got tokenizer={type(tokenizer).__name__}, which is not a zip2zip tokenizer: it reads "
                    "and writes base ids without this model's LZW codec, so its ids and text cannot belong to this "
                    "model. Pass the model's Zip2ZipTokenizer (AutoTokenizer.from_pretrained(model folder, "
                    "trust_remote_code=True)), or wrap that tokenizer: Zip2ZipTokenizer.from_base(it, model.config)."
                )
            tokenizer.check_compatible(self.config)  # a tokenizer of another codec misreads every id
        prompt = inputs if inputs is not None else kwargs.get("input_ids")
        if prompt is not None:
            require_int_dtype(prompt, "input_ids")  # the codec's type rule, on the whole tensor
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
        lookup_match = _setting("prompt_lookup_match", kwargs, configs, pop=True) or "base"
        if lookup_match not in LOOKUP_MATCH_MODES:
            raise ValueError(f"prompt_lookup_match must be one of {LOOKUP_MATCH_MODES}, got {lookup_match!r}")
        greedy_by = _setting("greedy_by", kwargs, configs, pop=True) or "code"
        if greedy_by not in GREEDY_BY_MODES:
            raise ValueError(f"greedy_by must be one of {GREEDY_BY_MODES}, got {greedy_by!r}")
        if greedy_by == "prefix" and _setting("do_sample", kwargs, configs):
            raise ValueError(
                "greedy_by='prefix' chooses codes for greedy search, but do_sample=True samples them (sampling "
                "codes already samples the text with the model's probabilities); drop one of the two"
            )
        if max_new_base_tokens is not None and not any(
            _setting(name, kwargs, configs) is not None for name in ("max_new_tokens", "max_length")
        ):
            kwargs["max_new_tokens"] = int(max_new_base_tokens)

        healing = None
        if _setting("token_healing", kwargs, configs, pop=True):
            if _setting("prompt_lookup_num_tokens", kwargs, configs):
                raise ValueError(
                    "token_healing=True and prompt_lookup_num_tokens cannot be combined: healing constrains the "
                    "first new code, and prompt lookup proposes several codes per pass; drop one of the two"
                )
            if prompt is None:
                raise ValueError(
                    "token_healing=True needs the prompt as input_ids (token ids, not embeddings)"
                )
            healed_ids, healed_mask, extensions = self._heal_prompts(
                prompt, kwargs.get("attention_mask"), tokenizer, _special_ids(self, kwargs, configs)[0]
            )
            inputs, kwargs["input_ids"], kwargs["attention_mask"] = None, healed_ids, healed_mask
            healing = (extensions, healed_ids.shape[1])
        kwargs["token_healing"] = False  # done above, on base tokens; transformers' own re-tokenizes text

        state = Zip2ZipGenerationState(self, max_new_base_tokens)
        state.lookup_match = lookup_match
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
        if healing is not None:
            processors.append(Zip2ZipTokenHealingLogitsProcessor(state, *healing))
        if greedy_by == "prefix":
            processors.append(Zip2ZipPrefixGreedyLogitsProcessor(state))
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
        self._last_sequences = (sequences, codes)  # lets compute_transition_scores take either one
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

    def _heal_prompts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, tokenizer: Any, pad_id: int
    ) -> tuple[torch.Tensor, torch.Tensor, list[frozenset[int] | None]]:
        """Each row's prompt without its last base token, re-encoded and left-padded again, with the base ids
        that extend the removed token (None where the row is kept: a one-token prompt, a special token, or a
        token that no longer token extends)."""
        if tokenizer is None:
            raise ValueError(
                "token_healing=True needs the tokenizer to find the tokens that extend each prompt's last one: pass "
                "tokenizer=tok as well"
            )
        base = getattr(tokenizer, "base", None) or tokenizer
        special = set(base.all_special_ids)
        vocab = [
            (text, i)
            for text, i in base.get_vocab().items()
            if i < self.codec.base_vocab_size and i not in special
        ]
        mask = (
            attention_mask.tolist()
            if attention_mask is not None
            else [[1] * input_ids.shape[1]] * len(input_ids)
        )
        found: dict[int, frozenset[int]] = {}
        rows, extensions = [], []
        for codes, keep in zip(input_ids.tolist(), mask, strict=True):
            codes = [c for c, k in zip(codes, keep, strict=True) if k]
            ids = self.codec.decode(codes)
            tail = ids[-1] if len(ids) > 1 and ids[-1] not in special else None
            if tail is not None and tail not in found:
                start = base.convert_ids_to_tokens(tail)
                found[tail] = frozenset(i for text, i in vocab if text.startswith(start))
            if tail is None or len(found[tail]) < 2:
                rows.append(codes)
                extensions.append(None)
            else:
                rows.append(self.codec.encode(ids[:-1]))
                extensions.append(found[tail])
        width = max(map(len, rows))
        device = input_ids.device
        healed = torch.tensor(
            [[pad_id] * (width - len(r)) + r for r in rows], dtype=input_ids.dtype, device=device
        )
        healed_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        return healed, healed_mask, extensions

    def compute_transition_scores(
        self,
        sequences: torch.Tensor,
        scores: tuple[torch.Tensor, ...],
        beam_indices: torch.Tensor | None = None,
        normalize_logits: bool = False,
    ) -> torch.Tensor:
        """The score of each generated code, as transformers' `compute_transition_scores` (greedy and sampling).

        `scores` (or `logits`) hold one `(rows, V + C)` tensor per step, that is per *code*: each transition
        score is the score of the code the step emitted. `sequences` may be the raw codes (`out.codes`, or a
        `return_codes=True` output) or the latest call's default `out.sequences` (base ids), which is mapped
        back to its codes. Returns `(rows, steps)`; log-probabilities with `normalize_logits=True`.
        """
        if beam_indices is not None:
            raise ValueError(
                f"{type(self).__name__}.compute_transition_scores takes no beam_indices: beam search is not "
                "supported, so every row is its own hypothesis"
            )
        steps = len(scores)
        last = getattr(self, "_last_sequences", None)
        if (
            last is not None
            and sequences.shape == last[0].shape
            and torch.equal(sequences, last[0].to(sequences.device))
        ):
            sequences = last[1].to(sequences.device)
        if sequences.shape[-1] < steps:
            raise ValueError(
                f"sequences has {sequences.shape[-1]} columns but scores has {steps} steps: pass out.codes (one code "
                "per step), or the out.sequences of the latest generate() call"
            )
        stacked = torch.stack(scores, dim=1)  # (rows, steps, V + C)
        if normalize_logits:
            stacked = torch.log_softmax(stacked.float(), dim=-1)
        generated = sequences[:, sequences.shape[-1] - steps :].to(stacked.device)
        return stacked.gather(-1, generated[..., None]).squeeze(-1)

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
            if state.canonical:
                # The forward rebuilds the codebook state from the whole sequence but cannot know where the
                # prompt ended (nothing is excluded after its last code).
                model_inputs["excluded_codes"] = state.excluded_codes(length, self.device)
            return model_inputs
        model_inputs.update(state.model_inputs(length, self.device))
        return model_inputs

    def _validate_generation_mode(
        self, generation_mode: Any, generation_config: Any, generation_mode_kwargs: Any
    ):
        if not _is_prompt_lookup(generation_mode, generation_config, generation_mode_kwargs):
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

    def _assisted_decoding(
        self,
        input_ids: torch.LongTensor,
        logits_processor: LogitsProcessorList,
        stopping_criteria: StoppingCriteriaList,
        generation_config: Any,
        synced_gpus: bool = False,
        streamer: BaseStreamer | None = None,
        inputs_tensor: torch.Tensor | None = None,
        assistant_model: Any = None,
        assistant_tokenizer: Any = None,
        tokenizer: Any = None,
        **model_kwargs: Any,
    ):
        """Prompt-lookup decoding with the per-row codebook (``lookup_zip2zip.py``); the only assisted mode."""
        state = model_kwargs.get("zip2zip_state")
        return prompt_lookup_decoding(
            self,
            input_ids,
            logits_processor,
            stopping_criteria,
            generation_config,
            streamer=streamer,
            match=getattr(state, "lookup_match", "base"),
            **model_kwargs,
        )

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
            f"False or True), optionally with prompt_lookup_num_tokens (no assistant_model / assistant_early_exit), "
            f"but got generation mode {name!r}{f' ({reason})' if reason else ''}. Beam search reorders the KV "
            "cache and a draft model proposes base tokens without the row's LZW codebook."
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


def _is_prompt_lookup(generation_mode: Any, generation_config: Any, generation_mode_kwargs: Any) -> bool:
    """Whether an assisted-generation request is prompt lookup alone (no draft model, no early exit)."""
    return (
        generation_mode == GenerationMode.ASSISTED_GENERATION
        and getattr(generation_config, "prompt_lookup_num_tokens", None) is not None
        and getattr(generation_config, "assistant_early_exit", None) is None
        and (generation_mode_kwargs or {}).get("assistant_model") is None
    )


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
