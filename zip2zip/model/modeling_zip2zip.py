"""zip2zip: a Hugging Face causal LM that reads and writes LZW hypertokens.

A zip2zip model wraps a base causal LM. Its vocabulary is the base vocabulary (ids ``0 .. V-1``) plus
``C`` per-sequence hypertoken slots (ids ``V .. V+C-1``) that an online LZW compressor fills as the text
goes (see ``lzw.py``). Each hypertoken stands for 2 to ``M`` base tokens:

* its *input embedding* is the input hyper-encoder applied to the base embeddings of its constituents;
* its *output vector* (unembedding row) is the output hyper-encoder applied to the LM-head rows of its
  constituents (the encoders live in ``encoders_zip2zip.py``).

Logits have the fixed width ``V + C``: the base logits, then one score per codebook slot. A slot is
``-inf`` wherever the LZW decoder at that position could not accept it (the codec's accept-sets), so
training, evaluation and generation share one exact mask, and no canonical target is ever masked.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers import initialization as init
from transformers.loss.loss_utils import ForCausalLMLoss
from transformers.modeling_outputs import CausalLMOutputWithPast

from .codebook_state_zip2zip import codebook_state, lift_where_labelled, mask_codes
from .configuration_zip2zip import Zip2ZipConfig, never_merged_ids, vocab_fingerprint
from .encoders_zip2zip import (
    Zip2ZipEncoderLayer,
    Zip2ZipHyperEncoder,
    Zip2ZipReconstructionHead,
)
from .generation_zip2zip import Zip2ZipGenerationMixin
from .hypertokens_zip2zip import Zip2ZipEntryCache, Zip2ZipHypertokenMixin
from .loss_zip2zip import chunked_causal_lm_loss
from .lzw import LZWCodec
from .lzw_inputs import require_int_dtype

logger = logging.getLogger(__name__)

__all__ = [
    "Zip2ZipCausalLMOutputWithPast",
    "Zip2ZipEncoderLayer",
    "Zip2ZipEntryCache",
    "Zip2ZipForCausalLM",
    "Zip2ZipHyperEncoder",
    "Zip2ZipPreTrainedModel",
    "Zip2ZipReconstructionHead",
    "codebook_state",
]


@dataclass
class Zip2ZipCausalLMOutputWithPast(CausalLMOutputWithPast):
    r"""
    Output of [`Zip2ZipForCausalLM`]: a causal-LM output whose logits have width `V + C`.

    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is provided):
        `lm_loss + reconstruction_loss_weight * reconstruction_loss`.
    logits (`torch.FloatTensor` of shape `(batch_size, sequence_length, V + C)`):
        Base logits, then one score per codebook slot; slots the decoder could not accept are `-inf`.
    lm_loss (`torch.FloatTensor` of shape `()`, *optional*):
        Cross-entropy over the compressed targets (paper Eq. 2).
    reconstruction_loss (`torch.FloatTensor` of shape `()`, *optional*):
        Cross-entropy of the reconstruction decoder over the constituents of the batch's hypertokens
        (paper Eq. 3); `None` when `reconstruction_loss_weight` is 0.
    """

    lm_loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None


# ----------------------------------------------------------------------------------------- the model


class Zip2ZipPreTrainedModel(PreTrainedModel):
    config_class = Zip2ZipConfig
    config: Zip2ZipConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module: nn.Module) -> None:
        if getattr(module, "zero_init", False):
            # The hyper-encoders' output projection: an untrained hypertoken is its first (or mean) constituent.
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)


class Zip2ZipForCausalLM(Zip2ZipHypertokenMixin, Zip2ZipPreTrainedModel, Zip2ZipGenerationMixin):
    r"""
    A base causal LM extended with LZW hypertokens: hyper-encoders for embedding and unembedding, logits
    of width `V + C` with the exact decoder-time codebook mask, compressed cross-entropy and the optional
    reconstruction loss.

    Build one from any Hugging Face decoder with [`~Zip2ZipForCausalLM.from_base`]; the base weights live
    in `language_model` and are saved with the zip2zip model.

    Codebook inputs of [`~Zip2ZipForCausalLM.forward`] (all optional; rebuilt from `input_ids` with the
    codec when `accept_limits` is absent):

    - `codebook`: `(batch, K, M)` LongTensor, row `b`'s entry `k` (hypertoken id `V + k`) as base ids
      padded with `-1`; `K <= C`. This is what the tokenizer returns with `return_codebook=True`.
    - `accept_limits`: `(batch, seq)` LongTensor: at position `t`, the next code may be a base id or a
      hypertoken id below `V + accept_limits[b, t]`.
    - `candidates`: `(batch, seq, M)` LongTensor, `-1` padded: when not all `-1`, the last acceptable slot
      (`accept_limits[b, t] - 1`) is not created yet and would stand for these base ids if used (the
      LZW `KwKwK` case); its logit scores the output encoder's vector of this entry.
    - `codebook_input_embeds` / `codebook_output_embeds`: `(batch, K, hidden)` precomputed vectors of the
      codebook entries (from [`~Zip2ZipForCausalLM.embed_codebook`] and
      [`~Zip2ZipForCausalLM.unembed_codebook`], or from [`~Zip2ZipForCausalLM.encode_entries`] through a
      [`Zip2ZipEntryCache`]), so generation embeds each new entry once.
    - `excluded_codes`: `(batch, seq, E)` LongTensor, `-1` padded: codes that get `-inf` at position `t` on top
      of that mask. With `config.canonical_mask` these are the codes that would make the stream
      non-canonical (built with the codebook state; see [`LZWDecoder.excluded_next`]); given explicitly,
      they are masked whatever the config says.

    Example:

    ```python
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer
    >>> model = Zip2ZipForCausalLM.from_base("HuggingFaceTB/SmolLM2-135M-Instruct")  # untrained, recipe settings
    >>> tokenizer = Zip2ZipTokenizer.from_base("HuggingFaceTB/SmolLM2-135M-Instruct", model.config)
    >>> batch = tokenizer(["def f(x):\n    return x\n\ndef f(x):"], return_tensors="pt")
    >>> model(**batch).logits.shape  # one row per code, base ids then every hypertoken slot
    torch.Size([1, 13, 51200])
    >>> out = model.generate(**batch, max_new_tokens=8, do_sample=False)
    >>> tokenizer.decode(out[0], skip_special_tokens=True)  # the prompt's codes, then base ids: decodes as usual
    'def f(x):\n    return x\n\ndef f(x):\n    return x * 2 + '
    >>> # a trained repo loads the usual way:
    >>> model = AutoModelForCausalLM.from_pretrained("zip2zip-repo", trust_remote_code=True)
    ```
    """

    def __init__(self, config: Zip2ZipConfig, language_model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        if language_model is None:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        else:
            # Weights given by from_base are final: keep post_init from re-initialising them.
            for module in language_model.modules():
                module._is_hf_initialized = True
        self.language_model = language_model
        if language_model.get_output_embeddings() is None:
            raise ValueError(
                f"the base model {type(language_model).__name__} has no output embedding (get_output_embeddings() "
                "is None): zip2zip scores hypertokens against LM-head rows; wrap a causal LM with an LM head"
            )
        rows = language_model.get_input_embeddings().weight.shape[0]
        if rows != config.base_vocab_size:
            raise ValueError(
                f"Zip2ZipConfig.base_vocab_size={config.base_vocab_size} but the base model has {rows} "
                f"embedding rows; set base_vocab_size={rows} (hypertoken ids start right after the base rows)"
            )
        self.input_encoder = Zip2ZipHyperEncoder(config)
        self.output_encoder = None if config.tie_encoders else Zip2ZipHyperEncoder(config)
        self.reconstruction_head = (
            Zip2ZipReconstructionHead(config) if config.reconstruction_loss_weight > 0 else None
        )
        self._codec: LZWCodec | None = None
        self._codec_key: tuple | None = None
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        """As transformers' `from_pretrained`, with the checks of a local folder, each naming the file and field:
        the weights file must be whole and shaped as config.json says; a tokenizer saved beside the model must be a
        Zip2ZipTokenizer that agrees with it (codec settings and base vocabulary, which config.json must record)."""
        from .configuration_zip2zip import (
            codec_mismatches,
            folder_mismatch_message,
            missing_fingerprint_message,
        )
        from .tokenization_utils_zip2zip import (
            BASE_TOKENIZER_FILE,
            _local_json,
            foreign_tokenizer_message,
            is_zip2zip_tokenizer_config,
            missing_tokenizer_config_message,
            saved_tokenizer_settings,
        )

        subfolder = kwargs.get("subfolder")
        folder, tokenizer_config = _local_json(
            pretrained_model_name_or_path, subfolder, "tokenizer_config.json"
        )
        if tokenizer_config is not None and not is_zip2zip_tokenizer_config(tokenizer_config):
            raise ValueError(foreign_tokenizer_message(folder, tokenizer_config))
        if (
            folder is not None
            and tokenizer_config is None
            and os.path.isfile(os.path.join(folder, BASE_TOKENIZER_FILE))
        ):  # a tokenizer saved in part: AutoTokenizer would load something else, with a misleading message
            raise ValueError(missing_tokenizer_config_message(folder))
        if folder is not None:
            _check_weight_files(
                folder, _local_json(pretrained_model_name_or_path, subfolder, "config.json")[1]
            )
        try:
            loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except RuntimeError as error:
            if folder is None or "size mismatch" not in str(error):
                raise
            raise ValueError(
                f"{folder}: the weights (model.safetensors) do not have the shapes config.json describes, so "
                "config.json was edited or belongs to other weights; restore it (the fields that shape the weights: "
                "max_subtokens, encoder_*, tie_encoders, reconstruction_loss_weight, text_config). "
                f"transformers said: {error}"
            ) from None
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        folder, settings = saved_tokenizer_settings(pretrained_model_name_or_path, subfolder)
        if settings is not None:
            mismatches = codec_mismatches(model.config, settings)
            if mismatches:
                raise ValueError(folder_mismatch_message(folder, mismatches))
            if model.config.base_vocab_fingerprint is None:
                raise ValueError(missing_fingerprint_message(folder))
        return loaded

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> Any:
        """As transformers' `save_pretrained`; ``auto_map`` also maps ``AutoModel`` to this class: there is no
        headless zip2zip model (reading and writing hypertokens needs both encoders), so it loads the whole model."""
        if self.config.trained and self.config.trained_codec is None:
            self.config.mark_trained()  # a config marked trained by hand: record the codec it is saved with
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModel", f"{__name__.rpartition('.')[2]}.{type(self).__name__}")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    # ---------------------------------------------------------------- base-model plumbing

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.language_model.set_output_embeddings(new_embeddings)

    def get_decoder(self) -> nn.Module:
        return self.language_model.base_model

    @property
    def codec(self) -> LZWCodec:
        """The LZW codec of this model's config (rebuilt when the codec fields change)."""
        config = self.config
        seed = getattr(config, "initial_codebook", None) or ()
        key = (
            config.base_vocab_size,
            config.max_codebook_size,
            config.max_subtokens,
            tuple(config.disabled_ids),
            self._seed_key(seed),
        )
        if self._codec is None or self._codec_key != key:
            self._codec = LZWCodec(*key[:3], disabled_ids=key[3], initial_codebook=key[4])
            self._codec_key = key
        return self._codec

    def _seed_key(self, seed: Any) -> tuple[tuple[int, ...], ...]:
        """The config's initial codebook as tuples, converted again only when another list is assigned."""
        source = (id(seed), len(seed))
        cached = self.__dict__.get("_seed_source")
        if cached is None or cached[0] != source or cached[2] is not seed:
            cached = (source, tuple(tuple(int(i) for i in entry) for entry in seed), seed)
            self.__dict__["_seed_source"] = cached
        return cached[1]

    # ---------------------------------------------------------------- construction from a base model

    @classmethod
    def from_base(
        cls,
        base_model_or_path: str | os.PathLike | PreTrainedModel,
        *,
        tokenizer: Any = None,
        disabled_ids: Iterable[int] | None = None,
        dtype: torch.dtype | str | None = None,
        **zip2zip_settings: Any,
    ) -> Zip2ZipForCausalLM:
        """Wrap a Hugging Face causal LM into an untrained zip2zip model.

        Args:
            base_model_or_path: a loaded causal LM, or a local folder / Hub id for
                `AutoModelForCausalLM.from_pretrained`. The weights are copied into the zip2zip model and
                saved with it.
            tokenizer: the base tokenizer, used to find the ids that must never merge
                ([`default_disabled_ids`]: special, added, pad/bos/eos/unk tokens, and digits unless
                `protect_digits=False`; whitespace with `protect_whitespace=True`). Loaded from the path when a path is given.
            disabled_ids: the never-merged ids, overriding what the tokenizer gives.
            dtype: dtype to load a base model from a path in.
            **zip2zip_settings: any [`Zip2ZipConfig`] field (`max_codebook_size`, `max_subtokens`,
                `encoder_num_layers`, `position_mode`, ...).
        """
        known = {f.name for f in fields(Zip2ZipConfig)} - {"text_config", "base_vocab_size"}
        unknown = sorted(set(zip2zip_settings) - known)
        if unknown:
            raise TypeError(
                f"from_base got unknown zip2zip settings {unknown}; valid ones are {sorted(known)}"
            )
        if isinstance(base_model_or_path, (str, os.PathLike)):
            path = os.fspath(base_model_or_path)
            base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
            if tokenizer is None:  # its never-merged ids (unless given) and its fingerprint
                try:
                    from transformers import AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(path)
                except (OSError, ValueError) as error:
                    logger.warning("could not load the base tokenizer from %s (%s)", path, error)
        else:
            base = base_model_or_path
        if not hasattr(base, "get_output_embeddings") or base.get_output_embeddings() is None:
            raise ValueError(
                f"{type(base).__name__} has no output embedding (get_output_embeddings() is None): pass a causal LM "
                "with an LM head (an AutoModelForCausalLM), not a bare decoder"
            )
        if disabled_ids is None:
            disabled_ids = never_merged_ids(
                base.config,
                tokenizer,
                zip2zip_settings.get("protect_digits"),
                zip2zip_settings.get("protect_whitespace"),
            )
        if tokenizer is not None:
            zip2zip_settings.setdefault("base_vocab_fingerprint", vocab_fingerprint(tokenizer))
        rows = base.get_input_embeddings().weight.shape[0]
        disabled = sorted({int(i) for i in disabled_ids if 0 <= int(i) < rows})
        config = Zip2ZipConfig(
            text_config=base.config,
            base_vocab_size=rows,
            disabled_ids=disabled,
            attn_implementation=base.config._attn_implementation,
            **zip2zip_settings,
        )
        model = cls(config, language_model=base)
        model.to(device=base.device, dtype=base.dtype)
        return model

    # ---------------------------------------------------------------- codebooks

    def prepare_codebook(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the LZW decoder over each row's attended codes: codebook, accept limits, candidates.

        Returns [`codebook_state`]'s dict (`codebook` `(B, K, M)`, `accept_limits` `(B, T)`, `candidates`
        `(B, T, M)`; see the class docstring) aligned to `input_ids`, on its device (padding positions get
        limit 0, no candidate). Raises ValueError naming the row, position and id of a code the decoder
        cannot accept.
        """
        codec = self.codec
        B, T = input_ids.shape
        ids = input_ids.tolist()
        masks = attention_mask.bool().tolist() if attention_mask is not None else None
        columns: list[list[int]] = []
        traces = []
        for b in range(B):
            row_columns = (
                [t for t, keep in enumerate(masks[b]) if keep] if masks is not None else list(range(T))
            )
            try:
                traces.append(
                    codec.trace([ids[b][t] for t in row_columns], exclusions=self.config.canonical_mask)
                )
            except ValueError as error:
                raise ValueError(f"row {b} of input_ids (attended codes only): {error}") from None
            columns.append(row_columns)
        state = codebook_state(codec, traces, T, columns)
        return {name: value.to(input_ids.device) for name, value in state.items()}

    # ---------------------------------------------------------------- forward

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        codebook: torch.LongTensor | None = None,
        accept_limits: torch.LongTensor | None = None,
        candidates: torch.LongTensor | None = None,
        codebook_input_embeds: torch.FloatTensor | None = None,
        codebook_output_embeds: torch.FloatTensor | None = None,
        excluded_codes: torch.LongTensor | None = None,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> Zip2ZipCausalLMOutputWithPast | tuple:
        r"""
        input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`):
            Compressed ids: base ids `< V` and hypertoken ids `V .. V+C-1` (what the zip2zip tokenizer gives).
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Compressed targets (usually `input_ids`), shifted inside; `-100` is ignored.
        logits_to_keep (`int` or 1D `torch.Tensor`, *optional*, defaults to 0):
            Compute logits only for the last `logits_to_keep` positions (0 = all), or for these positions.
        codebook, accept_limits, candidates, codebook_input_embeds, codebook_output_embeds:
            Precomputed codebook state; see the class docstring. Rebuilt from `input_ids` (and
            `attention_mask`) when `accept_limits` is not given, which needs the whole sequence (no cache).
        cache / past_key_values (`Cache`, *optional*):
            The KV cache of the base model (`past_key_values` is the older name).
        """
        cache = cache if cache is not None else past_key_values
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_inputs(input_ids, inputs_embeds, attention_mask)
        past_length = cache.get_seq_length() if cache is not None else 0
        codebook, accept_limits, candidates, excluded_codes = self._codebook_inputs(
            input_ids,
            attention_mask,
            past_length,
            codebook,
            accept_limits,
            candidates,
            codebook_input_embeds,
            excluded_codes,
        )
        inputs_embeds = self._embed_codes(input_ids, attention_mask, codebook, codebook_input_embeds)
        decoder_mask = attention_mask
        if self._runs_causal(attention_mask, position_ids, past_length, output_attentions):
            decoder_mask = position_ids = None
        else:
            position_ids = self._forward_position_ids(
                input_ids, attention_mask, position_ids, codebook, past_length
            )

        outputs = self.get_decoder()(
            inputs_embeds=inputs_embeds,
            attention_mask=decoder_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        hidden_states = outputs.last_hidden_state
        keep = _kept_positions(logits_to_keep, hidden_states.shape[1], hidden_states.device)
        if keep is not None:
            hidden_states, accept_limits = hidden_states[:, keep], accept_limits[:, keep]
            candidates = candidates[:, keep] if candidates is not None else None
        if excluded_codes is not None:
            excluded_codes = lift_where_labelled(excluded_codes, labels)
            excluded_codes = excluded_codes[:, keep] if keep is not None else excluded_codes
        logits = self.compute_logits(
            hidden_states, codebook, accept_limits, candidates, codebook_output_embeds
        )
        if excluded_codes is not None:
            logits = mask_codes(logits, excluded_codes)
        loss, lm_loss, reconstruction_loss = self._losses(logits, labels, codebook, **kwargs)

        output = Zip2ZipCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=getattr(outputs, "cache", None),
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            lm_loss=lm_loss,
            reconstruction_loss=reconstruction_loss,
        )
        return output if return_dict else output.to_tuple()

    # ---------------------------------------------------------------- the steps of forward

    def _check_inputs(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, attention_mask: Any
    ) -> None:
        if input_ids is None:
            raise ValueError(
                "Zip2ZipForCausalLM needs input_ids (compressed ids): hypertoken embeddings depend on each row's "
                "codebook, which inputs_embeds does not carry"
            )
        if inputs_embeds is not None:
            raise ValueError(
                "pass either input_ids or inputs_embeds, not both; Zip2ZipForCausalLM embeds input_ids itself"
            )
        require_int_dtype(input_ids, "input_ids")  # the codec's type rule, on the whole tensor
        self._check_ids(input_ids, attention_mask)

    def _codebook_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_length: int,
        codebook: torch.Tensor | None,
        accept_limits: torch.Tensor | None,
        candidates: torch.Tensor | None,
        codebook_input_embeds: torch.Tensor | None,
        excluded_codes: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The codebook state forward works with: the one given (checked), or rebuilt from the whole sequence."""
        if excluded_codes is not None and (
            excluded_codes.dim() != 3 or excluded_codes.shape[:2] != input_ids.shape
        ):
            raise ValueError(
                f"excluded_codes has shape {tuple(excluded_codes.shape)}, expected {tuple(input_ids.shape)} + (E,) "
                "(the codes masked at each input position, -1 padded)"
            )
        if codebook is not None:
            self._check_codebook(codebook, "codebook")
        if accept_limits is None:
            if past_length > 0:
                raise ValueError(
                    "forward with a non-empty cache needs the codebook state of the whole sequence: pass codebook=, "
                    "accept_limits= (and candidates=) for the new positions, as the generation hooks do"
                )
            state = self.prepare_codebook(input_ids, attention_mask)
            if codebook is not None:
                self._check_same_codebook(codebook, state["codebook"])
            if excluded_codes is None:
                excluded_codes = state.get("excluded_codes")
            return state["codebook"], state["accept_limits"], state["candidates"], excluded_codes
        if accept_limits.shape != input_ids.shape:
            raise ValueError(
                f"accept_limits has shape {tuple(accept_limits.shape)}, expected {tuple(input_ids.shape)} "
                "(one limit per input position)"
            )
        if (
            codebook is None
            and codebook_input_embeds is None
            and bool(self._hypertoken_mask(input_ids, attention_mask).any())
        ):
            raise ValueError(
                "input_ids contain hypertoken ids but no codebook= was passed with accept_limits="
            )
        return codebook, accept_limits, candidates, excluded_codes

    def _runs_causal(
        self,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        past_length: int,
        output_attentions: bool | None,
    ) -> bool:
        """Whether a training batch can reach the decoder without its mask and position ids (plain causal).

        With right padding and compressed positions, a real position's id is its column and it never sees a
        padded one under the causal mask alone, so dropping both leaves every real position's output (and the
        loss, whose padded labels are `-100`) exactly as it is, while attention kernels skip the blocks above
        the diagonal instead of masking a full square (on CPU, about a quarter of attention's time). Position
        ids must go too: without a mask, transformers reads position ids that restart or repeat as packed
        sequences and builds a mask again. Not with base-stream positions (they jump at hypertokens), position
        ids of the caller's, left padding, a cache or returned attentions; and only in training, where nobody
        reads the outputs at padded positions.
        """
        if attention_mask is None or position_ids is not None or not self.training:
            return False
        if past_length or output_attentions or self.config.position_mode != "compressed":
            return False
        mask = attention_mask.bool()
        return mask.dim() == 2 and not bool((mask[:, 1:] & ~mask[:, :-1]).any())

    def _forward_position_ids(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        codebook: torch.Tensor | None,
        past_length: int,
    ) -> torch.Tensor | None:
        if position_ids is not None:
            return position_ids
        if past_length == 0:
            return self._position_ids(input_ids, attention_mask, codebook)
        if self.config.position_mode == "base":
            raise ValueError(
                "position_mode='base' with a non-empty cache needs position_ids (the base-stream index of each "
                "new code's last constituent)"
            )
        return None

    def _losses(
        self, logits: torch.Tensor, labels: torch.Tensor | None, codebook: torch.Tensor | None, **kwargs: Any
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """`(loss, lm_loss, reconstruction_loss)`; all None without labels."""
        if labels is None:
            return None, None, None
        config = self.config
        vocab_size = config.base_vocab_size + config.max_codebook_size
        if self.loss_function is ForCausalLMLoss and "shift_labels" not in kwargs:
            # The same loss without a float32 copy of the V + C wide logits (see loss_zip2zip.py).
            lm_loss = chunked_causal_lm_loss(
                logits, labels, kwargs.get("num_items_in_batch"), kwargs.get("ignore_index", -100)
            )
        else:
            lm_loss = self.loss_function(logits=logits, labels=labels, vocab_size=vocab_size, **kwargs)
        reconstruction_loss = None
        if self.reconstruction_head is not None and codebook is not None:
            reconstruction_loss = self.reconstruction_loss(codebook)
        if reconstruction_loss is None:
            return lm_loss, lm_loss, None
        return lm_loss + config.reconstruction_loss_weight * reconstruction_loss, lm_loss, reconstruction_loss

    # ---------------------------------------------------------------- checks

    def _check_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        V, C = self.config.base_vocab_size, self.config.max_codebook_size
        bad = (input_ids < 0) | (input_ids >= V + C)
        if attention_mask is not None and attention_mask.shape == input_ids.shape:
            bad = bad & attention_mask.bool()
        if bool(bad.any()):
            b, t = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"input id {int(input_ids[b, t])} at row {b}, position {t} is outside [0, {V + C}) = base ids "
                f"(< {V}) and hypertoken slots (max_codebook_size={C}); the tokenizer's base_vocab_size / "
                "max_codebook_size must match the model config"
            )


def _check_weight_files(folder: str, config: dict | None) -> None:
    """Check a folder's safetensors files before transformers reads them: each one whole (its header's tensors fit
    in the file), and the constituent-slot tables as long as config.json's ``max_subtokens``. A ValueError names
    the file, the field and the fix; transformers' own errors name neither."""
    import json
    import struct

    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as handle:
            names = sorted(set(json.load(handle).get("weight_map", {}).values()))
    else:
        names = ["model.safetensors"] if os.path.isfile(os.path.join(folder, "model.safetensors")) else []
    for name in names:
        path = os.path.join(folder, name)
        size = os.path.getsize(path) if os.path.isfile(path) else -1
        damaged = (
            f"{path} is missing" if size < 0 else f"{path} is damaged or truncated ({size} bytes)"
        ) + ": download or copy the model folder again (or re-save it with model.save_pretrained)."
        try:
            with open(path, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                if not 2 <= length <= size - 8:
                    raise ValueError(f"a header of {length} bytes")
                header = json.loads(handle.read(length))
        except (OSError, struct.error, ValueError) as error:
            raise ValueError(f"{damaged} Its safetensors header could not be read ({error}).") from None
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        if 8 + length + end != size:
            raise ValueError(
                f"{damaged} Its header describes {8 + length + end} bytes of tensors and header, the file holds {size}."
            )
        M = (config or {}).get("max_subtokens")
        for key, tensor in header.items():
            if key.endswith("slot_embeddings.weight") and M is not None and tensor["shape"][0] != M:
                raise ValueError(
                    f"{folder}: max_subtokens={M!r} in config.json, but the weights ({name}: {key} has "
                    f"{tensor['shape'][0]} constituent slots) were built for max_subtokens={tensor['shape'][0]}. "
                    f"Set max_subtokens back to {tensor['shape'][0]} in config.json and tokenizer_config.json; to "
                    "read the model with shorter hypertokens, load it as saved and use "
                    "change_codec (in the zip2zip package)."
                )


def _kept_positions(logits_to_keep: int | torch.Tensor, length: int, device: torch.device) -> Any:
    """Positions whose logits to compute: `None` for all, a slice or a 1D index tensor otherwise."""
    if isinstance(logits_to_keep, torch.Tensor):
        if logits_to_keep.dim() != 1:
            raise ValueError(
                f"logits_to_keep as a tensor must be 1D positions, got shape {tuple(logits_to_keep.shape)}"
            )
        return logits_to_keep.to(device)
    if logits_to_keep == 0 or logits_to_keep >= length:
        return None
    return slice(length - logits_to_keep, None)


Zip2ZipForCausalLM.register_for_auto_class("AutoModelForCausalLM")
