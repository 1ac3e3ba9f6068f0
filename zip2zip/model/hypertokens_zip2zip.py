"""The hypertoken side of a zip2zip model: codebook entries in, input embeddings and logit slots out.

:class:`Zip2ZipHypertokenMixin` holds the methods of `Zip2ZipForCausalLM` that deal with hypertokens: the
input embedding of compressed ids (base rows, or the input hyper-encoder over a hypertoken's constituents),
the output vectors of codebook entries and the `V + C` logits with the exact decoder-time mask, the
reconstruction loss, base-stream positions, and the checks on a given codebook. :class:`Zip2ZipEntryCache`
keeps the vectors of entries that generation has already encoded, so each is computed once per call, and the
vectors of the initial codebook (the seed every sequence starts with) are computed once per model and kept until
the weights change (:meth:`Zip2ZipHypertokenMixin.initial_codebook_vectors`).

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers, the standard library and its sibling files, with flat relative imports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .encoders_zip2zip import encode_distinct

__all__ = ["Zip2ZipEntryCache", "Zip2ZipHypertokenMixin"]

# Up to this many entries, `encode_entries` encodes in one padded pass instead of one pass per length.
_PADDED_PASS_MAX_ENTRIES = 8


class Zip2ZipEntryCache:
    """Input and output vectors of codebook entries, each computed once, for the lifetime of the cache.

    Generation keeps one per `generate()` call: rows of a batch (and `num_return_sequences` copies) share
    prompt entries, and an entry's vector is needed at every step once it exists. Entries are tuples of base
    ids; :meth:`vectors` encodes the ones not cached yet in one call of the model's
    `encode_entries`. With one encoder over tied embeddings an entry's input and output vectors are equal,
    so one store serves both sides (and the input side then costs no encoder pass at all).
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._output: dict[tuple[int, ...], torch.Tensor] = {}
        tied = getattr(model, "output_encoder", None) is None and (
            model.get_input_embeddings().weight is model.get_output_embeddings().weight
        )
        self._input = self._output if tied else {}

    def vectors(
        self, entries: Sequence[tuple[int, ...]], *, output: bool, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """`(len(entries), hidden)`: the input (or output) vector of each entry, in order."""
        store = self._output if output else self._input
        missing = list(dict.fromkeys(entry for entry in entries if entry not in store))
        if missing:
            width = max(len(entry) for entry in missing)  # pad to the longest entry, not to M: fewer rows
            table = torch.tensor(
                [list(entry) + [-1] * (width - len(entry)) for entry in missing],
                dtype=torch.long,
                device=device,
            )
            store.update(zip(missing, self.model.encode_entries(table, output=output)))
        return torch.stack([store[entry] for entry in entries])


class Zip2ZipHypertokenMixin:
    """Hypertoken methods of [`Zip2ZipForCausalLM`].

    The model provides `config` (a `Zip2ZipConfig`), `input_encoder`, `output_encoder` (None when tied),
    `reconstruction_head` (None without the reconstruction loss), `get_input_embeddings()` and
    `get_output_embeddings()`.
    """

    # ---------------------------------------------------------------- the initial codebook (seed)

    def initial_codebook_table(self, device: torch.device | str | None = None) -> torch.Tensor:
        """`(S, M)` base ids of the initial codebook's entries, `-1` padded (`S = 0` without a seed)."""
        M = self.config.max_subtokens
        seed = self.codec.initial_codebook
        cached = self.__dict__.get("_initial_codebook_table")
        if cached is None or cached[0] != (seed, M):
            rows = [list(entry) + [-1] * (M - len(entry)) for entry in seed]
            table = torch.tensor(rows, dtype=torch.long).reshape(len(seed), M)
            cached = self.__dict__["_initial_codebook_table"] = ((seed, M), {})
            cached[1][None] = table
        if device is None:
            return cached[1][None]
        device = torch.device(device)
        if device not in cached[1]:
            cached[1][device] = cached[1][None].to(device)
        return cached[1][device]

    def initial_codebook_vectors(self, *, output: bool) -> torch.Tensor | None:
        """`(S, hidden)` input (or output) vectors of the initial codebook's entries; None without a seed.

        Every sequence starts with the same seed and the encoders are context-free, so the vectors are the same
        for every row and step: outside training (eval mode, no gradients) they are computed once and kept until
        the seed, a weight of the embeddings or the encoders, its dtype or its device changes. In training they
        are computed afresh at each call (the gradient flows through them).
        """
        seed = self.codec.initial_codebook
        if not seed:
            return None
        caching = not self.training and not torch.is_grad_enabled()
        key = None
        if caching:
            modules = [self.get_input_embeddings(), self.get_output_embeddings(), self.input_encoder]
            if self.output_encoder is not None:
                modules.append(self.output_encoder)
            key = (
                seed,
                *((p.data_ptr(), p._version, p.dtype, p.device) for m in modules for p in m.parameters()),
            )
            cache = self.__dict__.get("_initial_codebook_cache")
            if cache is not None and cache[0] == key and output in cache[1]:
                return cache[1][output]
        device = self.get_input_embeddings().weight.device
        table = self.initial_codebook_table(device)
        vectors = self.unembed_hypertokens(table) if output else self.embed_hypertokens(table)
        if caching:
            cache = self.__dict__.get("_initial_codebook_cache")
            stored = dict(cache[1]) if cache is not None and cache[0] == key else {}
            stored[output] = vectors
            self.__dict__["_initial_codebook_cache"] = (key, stored)
        return vectors

    def _seed_rows(self, codebook: torch.Tensor | None) -> int:
        """`S` when every row of `codebook` starts with the initial codebook and the cached vectors may be used
        for its first `S` slots, else 0 (training, no seed, or a codebook built without it)."""
        S = len(self.codec.initial_codebook)
        if not S or codebook is None or codebook.shape[1] < S or self.training or torch.is_grad_enabled():
            return 0
        table = self.initial_codebook_table(codebook.device)
        return S if bool((codebook[:, :S] == table).all()) else 0

    def _hypertoken_mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Where `input_ids` holds a hypertoken. Padding may hold anything (pad id, -100): never a hypertoken."""
        is_hyper = input_ids >= self.config.base_vocab_size
        if attention_mask is not None and attention_mask.shape == input_ids.shape:
            is_hyper = is_hyper & attention_mask.bool()
        return is_hyper

    def _embed_codes(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        codebook: torch.Tensor | None,
        codebook_input_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        """Input embeddings of compressed ids: base rows for base ids, the input encoder for hypertokens."""
        V = self.config.base_vocab_size
        is_hyper = self._hypertoken_mask(input_ids, attention_mask)
        inputs_embeds = self.get_input_embeddings()(
            torch.where(is_hyper | (input_ids < 0) | (input_ids >= V), 0, input_ids)
        )
        if not bool(is_hyper.any()):
            return inputs_embeds
        rows, cols = is_hyper.nonzero(as_tuple=True)
        slots = input_ids[rows, cols] - V
        if codebook_input_embeds is not None:
            vectors = codebook_input_embeds[rows, slots]
        elif self._seed_rows(codebook):
            # Seed entries take the vectors kept for the model; only entries the rows created are encoded.
            entries = self._entries_at(codebook, rows, slots)
            seeded = slots < len(self.codec.initial_codebook)
            seed_vectors = self.initial_codebook_vectors(output=False)
            vectors = seed_vectors.new_empty(slots.shape[0], seed_vectors.shape[-1])
            vectors[seeded] = seed_vectors[slots[seeded]]
            if bool((~seeded).any()):
                vectors[~seeded] = encode_distinct(entries[~seeded], self.embed_hypertokens).to(vectors.dtype)
        else:
            vectors = encode_distinct(self._entries_at(codebook, rows, slots), self.embed_hypertokens)
        return inputs_embeds.index_put((rows, cols), vectors.to(inputs_embeds.dtype))

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

    def _input_constituents(self, entries: torch.Tensor) -> torch.Tensor:
        return self.get_input_embeddings()(entries.clamp(min=0))

    def _output_constituents(self, entries: torch.Tensor) -> torch.Tensor:
        return self.get_output_embeddings().weight[entries.clamp(min=0)]

    def _output_encoder(self) -> nn.Module:
        return self.output_encoder if self.output_encoder is not None else self.input_encoder

    def embed_hypertokens(self, entries: torch.Tensor) -> torch.Tensor:
        """Input embeddings of entries `(N, M)` (base ids, `-1` padded) -> `(N, hidden)`."""
        lengths = (entries >= 0).sum(-1)
        return self.input_encoder(self._input_constituents(entries), lengths)

    def unembed_hypertokens(self, entries: torch.Tensor) -> torch.Tensor:
        """Output (unembedding) vectors of entries `(N, M)` (base ids, `-1` padded) -> `(N, hidden)`."""
        lengths = (entries >= 0).sum(-1)
        return self._output_encoder()(self._output_constituents(entries), lengths)

    def embed_codebook(self, codebook: torch.Tensor) -> torch.Tensor:
        """Input embeddings of every entry of a `(B, K, M)` codebook -> `(B, K, hidden)` (zeros for empty slots)."""
        return self._per_entry(codebook, self.embed_hypertokens)

    def unembed_codebook(self, codebook: torch.Tensor) -> torch.Tensor:
        """Output vectors of every entry of a `(B, K, M)` codebook -> `(B, K, hidden)` (zeros for empty slots)."""
        return self._per_entry(codebook, self.unembed_hypertokens)

    def _per_entry(
        self, codebook: torch.Tensor, encode: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        B, K, _ = codebook.shape
        valid = codebook[..., 0] >= 0
        vectors = encode_distinct(codebook[valid], encode)
        out = vectors.new_zeros(B, K, vectors.shape[-1])
        return out.index_put((valid,), vectors) if vectors.shape[0] else out

    def encode_entries(self, entries: torch.Tensor, *, output: bool = False) -> torch.Tensor:
        """Vectors of a few new codebook entries: input embeddings, or output vectors with `output=True`.

        `entries` is `(N, L)` base ids, `-1` padded (`L <= M`) -> `(N, hidden)`. This is what generation
        calls for each step's new entries and candidates (through a [`Zip2ZipEntryCache`]): up to 8 entries
        of mixed lengths go through the encoder in one padded, masked pass, where
        [`~Zip2ZipForCausalLM.embed_hypertokens`] / [`~Zip2ZipForCausalLM.unembed_hypertokens`] group
        entries by length, which costs one pass (a read of all encoder weights) per distinct length. More
        entries (a prompt's codebook) are grouped by length. Both ways give the same vectors. (Packing the
        real rows into one sequence with block-diagonal attention instead of padding measured slower.)
        """
        if entries.shape[0] > _PADDED_PASS_MAX_ENTRIES:
            return self.unembed_hypertokens(entries) if output else self.embed_hypertokens(entries)
        lengths = (entries >= 0).sum(-1)
        if output:
            return self._output_encoder()(self._output_constituents(entries), lengths, group_by_length=False)
        return self.input_encoder(self._input_constituents(entries), lengths, group_by_length=False)

    def new_entry_cache(self) -> Zip2ZipEntryCache:
        """An empty [`Zip2ZipEntryCache`] of this model's entry vectors (generation keeps one per call)."""
        return Zip2ZipEntryCache(self)

    def _entries_at(self, codebook: torch.Tensor, rows: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """The entries `codebook[rows, slots]`, checked to exist."""
        V, K = self.config.base_vocab_size, codebook.shape[1]
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
        return entries

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
        encode_table = use_codebook and codebook_output_embeds is None
        seeded = self._seed_rows(codebook) if encode_table else 0
        table, candidate_vectors = self._output_vectors(
            codebook[:, seeded:] if encode_table and codebook.shape[1] > seeded else None,
            candidates[rows, cols] if rows is not None else None,
            hidden_states.dtype,
        )
        if seeded:
            # The seed's slots take the vectors kept for the model: the cost of a forward does not grow with it.
            seed_vectors = self.initial_codebook_vectors(output=True).to(hidden_states.dtype)
            seed_table = seed_vectors.expand(codebook.shape[0], -1, -1)
            table = seed_table if table is None else torch.cat([seed_table, table], dim=1)
        if encode_table:
            codebook_output_embeds = table
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

    def _output_vectors(
        self, codebook: torch.Tensor | None, candidate_entries: torch.Tensor | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Output vectors of a `(B, K, M)` codebook's entries (`(B, K, hidden)`, zeros for empty slots) and
        of `(N, M)` candidate entries, from one output-encoder pass over the distinct entries of both (the
        encoder is context-free, so equal entries share one vector). Either input may be None."""
        groups = []
        if codebook is not None:
            valid = codebook[..., 0] >= 0
            groups.append(codebook[valid])
        if candidate_entries is not None:
            groups.append(candidate_entries)
        if not groups:
            return None, None
        vectors = encode_distinct(torch.cat(groups), self.unembed_hypertokens).to(dtype)
        table = None
        if codebook is not None:
            B, K = codebook.shape[:2]
            table = vectors.new_zeros(B, K, vectors.shape[-1]).index_put(
                (valid,), vectors[: groups[0].shape[0]]
            )
        candidate_vectors = None
        if candidate_entries is not None:
            candidate_vectors = vectors[vectors.shape[0] - candidate_entries.shape[0] :]
        return table, candidate_vectors

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
