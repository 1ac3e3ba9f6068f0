"""zip2zip: a Hugging Face causal LM that reads and writes LZW hypertokens.

A zip2zip model wraps a base causal LM. Its vocabulary is the base vocabulary (ids ``0 .. V-1``) plus
``C`` per-sequence hypertoken slots (ids ``V .. V+C-1``) that an online LZW compressor fills as the text
goes (see ``lzw.py``). Each hypertoken stands for 2 to ``M`` base tokens:

* its *input embedding* is the input hyper-encoder applied to the base embeddings of its constituents;
* its *output vector* (unembedding row) is the output hyper-encoder applied to the LM-head rows of its
  constituents.

Logits have the fixed width ``V + C``: the base logits, then one score per codebook slot. A slot is
``-inf`` wherever the LZW decoder at that position could not accept it (the codec's accept-sets), so
training, evaluation and generation share one exact mask, and no canonical target is ever masked.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_zip2zip import Zip2ZipConfig
from .generation_zip2zip import Zip2ZipGenerationMixin
from .lzw import LZWCodec

logger = logging.getLogger(__name__)

__all__ = [
    "Zip2ZipCausalLMOutputWithPast",
    "Zip2ZipForCausalLM",
    "Zip2ZipHyperEncoder",
    "Zip2ZipPreTrainedModel",
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


# --------------------------------------------------------------------------------------------- modules


class Zip2ZipEncoderLayer(nn.Module):
    """A pre-LayerNorm bidirectional transformer block over the (at most ``M``) constituents of entries."""

    def __init__(self, config: Zip2ZipConfig) -> None:
        super().__init__()
        width = config.encoder_hidden_size
        self.num_heads = config.encoder_num_heads
        self.head_dim = width // self.num_heads
        self.input_layernorm = nn.LayerNorm(width, eps=config.encoder_layer_norm_eps)
        self.qkv_proj = nn.Linear(width, 3 * width)
        self.o_proj = nn.Linear(width, width)
        self.post_attention_layernorm = nn.LayerNorm(width, eps=config.encoder_layer_norm_eps)
        self.fc1 = nn.Linear(width, config.encoder_intermediate_size)
        self.act = ACT2FN[config.encoder_hidden_act]
        self.fc2 = nn.Linear(config.encoder_intermediate_size, width)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, length, width = hidden_states.shape
        qkv = self.qkv_proj(self.input_layernorm(hidden_states))
        q, k, v = qkv.view(n, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        hidden_states = hidden_states + self.o_proj(attn.transpose(1, 2).reshape(n, length, width))
        return hidden_states + self.fc2(self.act(self.fc1(self.post_attention_layernorm(hidden_states))))


class Zip2ZipHyperEncoder(nn.Module):
    """Turns the vectors of a hypertoken's constituents into one vector of the model width.

    ``output = base + out_proj(pool(encoder(in_proj(constituents) + slot_positions)))`` where ``base``
    is the first constituent (``encoder_init="residual"``), the mean of the constituents (``"mean"``)
    or nothing (``"random"``). With the first two, ``out_proj`` starts at zero, so an untrained
    hypertoken already behaves like its first (or average) constituent; ``out_proj`` exists even at
    full width so that zero initialisation always takes effect (the zip2zip++ fix).
    """

    def __init__(self, config: Zip2ZipConfig) -> None:
        super().__init__()
        model_width = config.text_config.hidden_size
        width = config.encoder_hidden_size
        self.init_mode = config.encoder_init
        self.pooling = config.encoder_pooling
        self.in_proj = nn.Linear(model_width, width) if width != model_width else None
        self.slot_embeddings = (
            nn.Embedding(config.max_subtokens, width) if config.encoder_learned_positions else None
        )
        self.layers = nn.ModuleList(Zip2ZipEncoderLayer(config) for _ in range(config.encoder_num_layers))
        self.norm = nn.LayerNorm(width, eps=config.encoder_layer_norm_eps)
        self.out_proj = nn.Linear(width, model_width)
        self.out_proj.zero_init = self.init_mode != "random"

    def forward(self, constituents: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encode entries.

        Args:
            constituents: `(N, M, hidden)` vectors of each entry's constituents; slots past an entry's
                length are ignored (their values do not matter).
            lengths: `(N,)` number of constituents of each entry (1..M).

        Returns:
            `(N, hidden)` one vector per entry.

        Eagerly, entries are grouped by length and encoded without padding (the encoder cost then follows
        the number of real constituents); under `torch.compile` one padded, masked pass keeps shapes static.
        Both give the same result.
        """
        n = constituents.shape[0]
        if n == 0 or torch.compiler.is_compiling():
            return self._encode(constituents, lengths)
        groups = []
        order = []
        for length in lengths.unique().tolist():
            index = (lengths == length).nonzero().squeeze(1)
            groups.append(self._encode(constituents[index, :length], None))
            order.append(index)
        if len(groups) == 1:
            return groups[0]
        return torch.cat(groups)[torch.argsort(torch.cat(order))]

    def _encode(self, constituents: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Encode `(N, L, hidden)`; `lengths=None` means every slot is a real constituent."""
        n, width = constituents.shape[0], constituents.shape[1]
        if lengths is None:
            valid = None
            attention_mask = None
        else:
            valid = torch.arange(width, device=constituents.device) < lengths[:, None]
            attention_mask = valid[:, None, None, :]
        if self.init_mode == "residual":
            base = constituents[:, 0]
        elif self.init_mode == "mean":
            base = _masked_mean(constituents, valid)
        else:
            base = None
        hidden = self.in_proj(constituents) if self.in_proj is not None else constituents
        if self.slot_embeddings is not None:
            hidden = hidden + self.slot_embeddings.weight[:width]
        for layer in self.layers:
            hidden = layer(hidden, attention_mask)
        hidden = self.norm(hidden)
        if self.pooling == "mean":
            pooled = _masked_mean(hidden, valid)
        elif self.pooling == "first":
            pooled = hidden[:, 0]
        elif valid is None:
            pooled = hidden[:, -1]
        else:
            pooled = hidden[torch.arange(n, device=hidden.device), lengths - 1]
        out = self.out_proj(pooled)
        return out if base is None else base + out


class Zip2ZipReconstructionHead(nn.Module):
    """The reconstruction decoder f_psi of the paper's Eq. 3: one state per constituent slot.

    From a hypertoken's input embedding it produces ``M`` hidden states, one per constituent slot; the
    base LM head scores them over the base vocabulary.
    """

    def __init__(self, config: Zip2ZipConfig) -> None:
        super().__init__()
        hidden = config.text_config.hidden_size
        self.slot_embeddings = nn.Embedding(config.max_subtokens, hidden)
        self.norm = nn.LayerNorm(hidden, eps=config.encoder_layer_norm_eps)
        self.fc1 = nn.Linear(hidden, config.encoder_intermediate_size)
        self.act = ACT2FN[config.encoder_hidden_act]
        self.fc2 = nn.Linear(config.encoder_intermediate_size, hidden)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        hidden = embeddings[:, None, :] + self.slot_embeddings.weight[None]
        return hidden + self.fc2(self.act(self.fc1(self.norm(hidden))))


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    if valid is None:
        return values.mean(1)
    weights = valid.to(values.dtype)[..., None]
    return (values * weights).sum(1) / weights.sum(1)


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


class Zip2ZipForCausalLM(Zip2ZipPreTrainedModel, Zip2ZipGenerationMixin):
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
      [`~Zip2ZipForCausalLM.unembed_codebook`]), so generation embeds each new entry once.
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
        key = (
            config.base_vocab_size,
            config.max_codebook_size,
            config.max_subtokens,
            tuple(config.disabled_ids),
        )
        if self._codec is None or self._codec_key != key:
            self._codec = LZWCodec(*key[:3], disabled_ids=key[3])
            self._codec_key = key
        return self._codec

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
            tokenizer: the base tokenizer, used to find the ids that must never merge (special, added,
                pad/bos/eos/unk tokens, and digits with `protect_digits=True`). Loaded from the path when
                a path is given.
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
            if tokenizer is None and disabled_ids is None:
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
        protect_digits = bool(zip2zip_settings.get("protect_digits", False))
        if disabled_ids is None:
            if tokenizer is not None:
                disabled_ids = _tokenizer_disabled_ids(tokenizer, protect_digits)
            else:
                text = base.config
                disabled_ids = [
                    i
                    for name in ("bos_token_id", "eos_token_id", "pad_token_id")
                    for i in _as_id_list(getattr(text, name, None))
                ]
                warnings.warn(
                    "from_base got a model object without `tokenizer=` or `disabled_ids=`: only the config's "
                    f"bos/eos/pad ids {sorted(set(disabled_ids))} are kept from merging; pass the base tokenizer so "
                    "special and chat tokens are protected too",
                    stacklevel=2,
                )
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

        Returns a dict with `codebook` `(B, K, M)`, `accept_limits` `(B, T)` and `candidates` `(B, T, M)`
        (see the class docstring), aligned to `input_ids` (padding positions get limit 0, no candidate).
        Raises ValueError naming the row, position and id of a code the decoder cannot accept.
        """
        codec = self.codec
        M = codec.max_subtokens
        B, T = input_ids.shape
        ids = input_ids.tolist()
        masks = attention_mask.bool().tolist() if attention_mask is not None else None
        limits = [[0] * T for _ in range(B)]
        cand_rows: list[int] = []
        cand_cols: list[int] = []
        cand_entries: list[list[int]] = []
        tables: list[list[list[int]]] = []
        for b in range(B):
            positions = [t for t, keep in enumerate(masks[b]) if keep] if masks is not None else range(T)
            codes = [ids[b][t] for t in positions] if masks is not None else ids[b]
            try:
                trace = codec.trace(codes)
            except ValueError as error:
                raise ValueError(f"row {b} of input_ids (attended codes only): {error}") from None
            row_limits = limits[b]
            for j, t in enumerate(positions):
                row_limits[t] = trace.accept_limits[j + 1]
                candidate = trace.candidates[j + 1]
                if candidate is not None:
                    cand_rows.append(b)
                    cand_cols.append(t)
                    cand_entries.append(list(candidate) + [-1] * (M - len(candidate)))
            tables.append(trace.codebook.table())
        K = max((len(t) for t in tables), default=0)
        codebook = torch.full((B, K, M), -1, dtype=torch.long)
        for b, table in enumerate(tables):
            if table:
                codebook[b, : len(table)] = torch.tensor(table, dtype=torch.long)
        candidates = torch.full((B, T, M), -1, dtype=torch.long)
        if cand_entries:
            candidates[cand_rows, cand_cols] = torch.tensor(cand_entries, dtype=torch.long)
        device = input_ids.device
        return {
            "codebook": codebook.to(device),
            "accept_limits": torch.tensor(limits, dtype=torch.long, device=device),
            "candidates": candidates.to(device),
        }

    def _input_constituents(self, entries: torch.Tensor) -> torch.Tensor:
        return self.get_input_embeddings()(entries.clamp(min=0))

    def _output_constituents(self, entries: torch.Tensor) -> torch.Tensor:
        return self.get_output_embeddings().weight[entries.clamp(min=0)]

    def embed_hypertokens(self, entries: torch.Tensor) -> torch.Tensor:
        """Input embeddings of entries `(N, M)` (base ids, `-1` padded) -> `(N, hidden)`."""
        lengths = (entries >= 0).sum(-1)
        return self.input_encoder(self._input_constituents(entries), lengths)

    def unembed_hypertokens(self, entries: torch.Tensor) -> torch.Tensor:
        """Output (unembedding) vectors of entries `(N, M)` (base ids, `-1` padded) -> `(N, hidden)`."""
        encoder = self.output_encoder if self.output_encoder is not None else self.input_encoder
        lengths = (entries >= 0).sum(-1)
        return encoder(self._output_constituents(entries), lengths)

    def embed_codebook(self, codebook: torch.Tensor) -> torch.Tensor:
        """Input embeddings of every entry of a `(B, K, M)` codebook -> `(B, K, hidden)` (zeros for empty slots)."""
        return self._per_entry(codebook, self.embed_hypertokens)

    def unembed_codebook(self, codebook: torch.Tensor) -> torch.Tensor:
        """Output vectors of every entry of a `(B, K, M)` codebook -> `(B, K, hidden)` (zeros for empty slots)."""
        return self._per_entry(codebook, self.unembed_hypertokens)

    def _per_entry(self, codebook: torch.Tensor, encode) -> torch.Tensor:
        B, K, _ = codebook.shape
        valid = codebook[..., 0] >= 0
        vectors = _encode_distinct(codebook[valid], encode)
        out = vectors.new_zeros(B, K, vectors.shape[-1])
        return out.index_put((valid,), vectors) if vectors.shape[0] else out

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
        if cache is None:
            cache = past_key_values
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config = self.config
        V, C = config.base_vocab_size, config.max_codebook_size
        if input_ids is None:
            raise ValueError(
                "Zip2ZipForCausalLM needs input_ids (compressed ids): hypertoken embeddings depend on each row's "
                "codebook, which inputs_embeds does not carry"
            )
        if inputs_embeds is not None:
            raise ValueError(
                "pass either input_ids or inputs_embeds, not both; Zip2ZipForCausalLM embeds input_ids itself"
            )
        past_length = cache.get_seq_length() if cache is not None else 0
        self._check_ids(input_ids, attention_mask)
        # Padding positions may hold anything (pad id, -100): they are neither embedded as hypertokens nor looked up.
        is_hyper = input_ids >= V
        if attention_mask is not None and attention_mask.shape == input_ids.shape:
            is_hyper = is_hyper & attention_mask.bool()
        has_hyper = bool(is_hyper.any())

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
            codebook, accept_limits, candidates = (
                state["codebook"],
                state["accept_limits"],
                state["candidates"],
            )
        elif accept_limits.shape != input_ids.shape:
            raise ValueError(
                f"accept_limits has shape {tuple(accept_limits.shape)}, expected {tuple(input_ids.shape)} "
                "(one limit per input position)"
            )
        elif has_hyper and codebook is None and codebook_input_embeds is None:
            raise ValueError(
                "input_ids contain hypertoken ids but no codebook= was passed with accept_limits="
            )

        # --- input embeddings: base rows for base ids, the input encoder for hypertokens
        embed_tokens = self.get_input_embeddings()
        inputs_embeds = embed_tokens(torch.where(is_hyper | (input_ids < 0) | (input_ids >= V), 0, input_ids))
        if has_hyper:
            rows, cols = is_hyper.nonzero(as_tuple=True)
            slots = input_ids[rows, cols] - V
            if codebook_input_embeds is not None:
                vectors = codebook_input_embeds[rows, slots]
            else:
                K = codebook.shape[1]
                if int(slots.max()) >= K:
                    raise ValueError(
                        f"hypertoken id {int(slots.max()) + V} has no entry in the given codebook ({K} slots per row)"
                    )
                entries = codebook[rows, slots]
                empty = entries[:, 0] < 0
                if bool(empty.any()):
                    i = int(empty.nonzero()[0])
                    raise ValueError(
                        f"hypertoken id {int(slots[i]) + V} in row {int(rows[i])} has an empty codebook slot; the "
                        "codebook does not match input_ids (rebuild it with the same tokenizer settings)"
                    )
                vectors = _encode_distinct(entries, self.embed_hypertokens)
            inputs_embeds = inputs_embeds.index_put((rows, cols), vectors.to(inputs_embeds.dtype))

        # --- positions
        if position_ids is None and past_length == 0:
            position_ids = self._position_ids(input_ids, attention_mask, codebook)
        elif position_ids is None and config.position_mode == "base":
            raise ValueError(
                "position_mode='base' with a non-empty cache needs position_ids (the base-stream index of each "
                "new code's last constituent)"
            )

        outputs = self.get_decoder()(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
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
            hidden_states = hidden_states[:, keep]
            accept_limits = accept_limits[:, keep]
            candidates = candidates[:, keep] if candidates is not None else None
        logits = self.compute_logits(
            hidden_states, codebook, accept_limits, candidates, codebook_output_embeds
        )

        loss = lm_loss = reconstruction_loss = None
        if labels is not None:
            lm_loss = self.loss_function(logits=logits, labels=labels, vocab_size=V + C, **kwargs)
            loss = lm_loss
            if self.reconstruction_head is not None and codebook is not None:
                reconstruction_loss = self.reconstruction_loss(codebook)
                if reconstruction_loss is not None:
                    loss = lm_loss + config.reconstruction_loss_weight * reconstruction_loss

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

    def compute_logits(
        self,
        hidden_states: torch.Tensor,
        codebook: torch.Tensor | None,
        accept_limits: torch.Tensor,
        candidates: torch.Tensor | None = None,
        codebook_output_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits `(B, T, V + C)` from final hidden states and the codebook state at those positions.

        Slot `k` of row `b` at position `t` scores `hidden . output_vector(entry k)` if `k < accept_limits[b, t]`
        and is `-inf` otherwise; where `candidates[b, t]` holds an entry, slot `accept_limits[b, t] - 1`
        scores that entry instead (it does not exist yet and may differ from what the slot later holds).
        """
        config = self.config
        C = config.max_codebook_size
        B, T, _ = hidden_states.shape
        base_logits = self.get_output_embeddings()(hidden_states)
        hyper_logits = hidden_states.new_full((B, T, C), float("-inf"), dtype=base_logits.dtype)
        K = codebook.shape[1] if codebook is not None else 0
        if codebook_output_embeds is not None:
            K = codebook_output_embeds.shape[1]
        use_codebook = K > 0 and T > 0 and bool((accept_limits > 0).any())
        rows = cols = None
        if candidates is not None:
            has_candidate = candidates[..., 0] >= 0
            if bool(has_candidate.any()):
                rows, cols = has_candidate.nonzero(as_tuple=True)
        # One output-encoder pass over the distinct entries (codebook entries of every row, then the KwKwK
        # candidates): the encoder is context-free, so equal entries share one vector.
        groups = []
        if use_codebook and codebook_output_embeds is None:
            valid = codebook[..., 0] >= 0
            groups.append(codebook[valid])
        if rows is not None:
            groups.append(candidates[rows, cols])
        if groups:
            vectors = _encode_distinct(torch.cat(groups), self.unembed_hypertokens).to(hidden_states.dtype)
            if use_codebook and codebook_output_embeds is None:
                codebook_output_embeds = vectors.new_zeros(B, K, vectors.shape[-1]).index_put(
                    (valid,), vectors[: groups[0].shape[0]]
                )
            candidate_vectors = (
                vectors[vectors.shape[0] - groups[-1].shape[0] :] if rows is not None else None
            )
        if use_codebook:
            scores = torch.bmm(hidden_states, codebook_output_embeds.to(hidden_states.dtype).transpose(1, 2))
            allowed = torch.arange(K, device=scores.device) < accept_limits[..., None]
            hyper_logits[..., :K] = scores.to(base_logits.dtype).masked_fill(~allowed, float("-inf"))
        if rows is not None:
            scores = (hidden_states[rows, cols] * candidate_vectors).sum(-1)
            hyper_logits[rows, cols, accept_limits[rows, cols] - 1] = scores.to(hyper_logits.dtype)
        cap = getattr(config.text_config, "final_logit_softcapping", None)
        if cap:
            # The base model caps its logits; cap the slot scores alike but keep masked slots at -inf.
            base_logits = torch.tanh(base_logits / cap) * cap
            hyper_logits = torch.where(
                hyper_logits.isneginf(), hyper_logits, torch.tanh(hyper_logits / cap) * cap
            )
        return torch.cat([base_logits, hyper_logits], dim=-1)

    def reconstruction_loss(self, codebook: torch.Tensor) -> torch.Tensor | None:
        """Cross-entropy of the reconstruction decoder over the distinct entries of the batch's codebooks."""
        M = self.config.max_subtokens
        entries = codebook.reshape(-1, M)
        entries = entries[entries[:, 0] >= 0]
        if entries.shape[0] == 0:
            return None
        entries = torch.unique(entries, dim=0)
        limit = self.config.reconstruction_max_entries
        if entries.shape[0] > limit:
            pick = torch.linspace(0, entries.shape[0] - 1, limit, device=entries.device).long()
            entries = entries[pick]
        states = self.reconstruction_head(self.embed_hypertokens(entries))
        logits = self.get_output_embeddings()(states).float()
        targets = entries.masked_fill(entries < 0, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    # ---------------------------------------------------------------- helpers

    def _position_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, codebook: torch.Tensor | None
    ) -> torch.LongTensor | None:
        """Compressed positions (`cumsum(mask) - 1`) or base-stream positions (`cumsum(spans * mask) - 1`)."""
        V = self.config.base_vocab_size
        mask = attention_mask.long() if attention_mask is not None else torch.ones_like(input_ids)
        if self.config.position_mode == "compressed":
            if attention_mask is None:
                return None
            steps = mask
        else:
            spans = torch.ones_like(input_ids)
            is_hyper = input_ids >= V
            if codebook is not None and bool(is_hyper.any()):
                lengths = (codebook >= 0).sum(-1)  # (B, K)
                slots = (input_ids - V).clamp(min=0, max=max(codebook.shape[1] - 1, 0))
                spans = torch.where(is_hyper, torch.gather(lengths, 1, slots), spans)
            steps = spans * mask
        return (steps.cumsum(-1) - 1).clamp(min=0)

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

    def _check_codebook(self, codebook: torch.Tensor, name: str) -> None:
        config = self.config
        if codebook.dim() != 3 or codebook.shape[-1] != config.max_subtokens:
            raise ValueError(
                f"{name} has shape {tuple(codebook.shape)}, expected (batch, entries, max_subtokens={config.max_subtokens}); "
                "the tokenizer and the model must use the same max_subtokens"
            )
        if codebook.shape[1] > config.max_codebook_size:
            raise ValueError(
                f"{name} has {codebook.shape[1]} entries per row but the model's max_codebook_size is "
                f"{config.max_codebook_size}; the tokenizer and the model must use the same max_codebook_size"
            )

    def _check_same_codebook(self, given: torch.Tensor, rebuilt: torch.Tensor) -> None:
        K = max(given.shape[1], rebuilt.shape[1])
        a = F.pad(given.to(rebuilt.device), (0, 0, 0, K - given.shape[1]), value=-1)
        b = F.pad(rebuilt, (0, 0, 0, K - rebuilt.shape[1]), value=-1)
        if a.shape[0] != b.shape[0] or not torch.equal(a, b):
            raise ValueError(
                "the codebook passed to forward differs from the one the model's codec rebuilds from input_ids: "
                "the tokenizer and the model disagree on base_vocab_size, max_codebook_size, max_subtokens or "
                f"disabled_ids (model: V={self.config.base_vocab_size}, C={self.config.max_codebook_size}, "
                f"M={self.config.max_subtokens}, {len(self.config.disabled_ids)} disabled ids)"
            )


def _encode_distinct(entries: torch.Tensor, encode) -> torch.Tensor:
    """``encode(entries)`` computed once per distinct entry (rows of ``entries``), then gathered back."""
    unique, inverse = torch.unique(entries, dim=0, return_inverse=True)
    if unique.shape[0] == entries.shape[0]:
        return encode(entries)
    return encode(unique)[inverse]


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


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def _tokenizer_disabled_ids(tokenizer: Any, protect_digits: bool) -> list[int]:
    """Ids never to merge: special and added tokens, pad/bos/eos/unk, and digit tokens when asked."""
    try:
        # Looked up at run time: from_base runs in the installed package, where the tokenizer module lives.
        module = importlib.import_module(".tokenization_zip2zip", __package__)
        helper = module.default_disabled_ids
    except (ImportError, AttributeError, TypeError):
        helper = None
    if helper is not None:
        parameters = inspect.signature(helper).parameters
        if "protect_digits" in parameters:
            return list(helper(tokenizer, protect_digits=protect_digits))
        ids = set(helper(tokenizer))
    else:
        ids = set(getattr(tokenizer, "all_special_ids", []) or [])
        ids.update(
            (tokenizer.get_added_vocab() or {}).values() if hasattr(tokenizer, "get_added_vocab") else ()
        )
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
            ids.update(_as_id_list(getattr(tokenizer, name, None)))
    if protect_digits:
        ids.update(_digit_ids(tokenizer))
    return sorted(ids)


def _digit_ids(tokenizer: Any) -> Sequence[int]:
    """Ids of tokens made only of digits (after the word-boundary marker), e.g. "7", " 42", "▁2024"."""
    vocab = tokenizer.get_vocab()
    return [i for token, i in vocab.items() if token.lstrip("Ġ▁ ").isdigit()]


Zip2ZipForCausalLM.register_for_auto_class("AutoModelForCausalLM")
