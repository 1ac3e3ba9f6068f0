"""The hyper-encoders of a zip2zip model and its reconstruction head (the modules; no model logic).

A hypertoken's input embedding is the input hyper-encoder applied to the base embeddings of its
constituents; its output (unembedding) vector is the output hyper-encoder applied to their LM-head rows.
The encoders are context-free: an entry's vectors depend on its base ids alone, so equal entries share one
vector (:func:`encode_distinct`).

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from .configuration_zip2zip import Zip2ZipConfig

__all__ = [
    "Zip2ZipEncoderLayer",
    "Zip2ZipHyperEncoder",
    "Zip2ZipReconstructionHead",
    "encode_distinct",
]


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

    def forward(
        self, constituents: torch.Tensor, lengths: torch.Tensor, group_by_length: bool = True
    ) -> torch.Tensor:
        """Encode entries.

        Args:
            constituents: `(N, M, hidden)` vectors of each entry's constituents; slots past an entry's
                length are ignored (their values do not matter).
            lengths: `(N,)` number of constituents of each entry (1..M).
            group_by_length: eagerly, group entries by length and encode each group without padding (the
                encoder cost then follows the number of real constituents). `False`, and always under
                `torch.compile`, runs one padded, masked pass instead (static shapes; for a handful of
                entries of mixed lengths it is one read of the encoder weights instead of one per length).
                Both give the same result.

        Returns:
            `(N, hidden)` one vector per entry.
        """
        n = constituents.shape[0]
        if n == 0 or not group_by_length or torch.compiler.is_compiling():
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


def encode_distinct(entries: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``encode(entries)`` computed once per distinct entry (rows of ``entries``), then gathered back."""
    unique, inverse = torch.unique(entries, dim=0, return_inverse=True)
    if unique.shape[0] == entries.shape[0]:
        return encode(entries)
    return encode(unique)[inverse]
