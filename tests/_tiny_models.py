"""Tiny random base causal LMs built in-process (no download): Llama (SmolLM2 shape), Qwen2, GPT-2, Gemma3.

Each has a small vocabulary and width so a test runs in well under a second on two CPU cores. ``tied``
selects tied or untied input/output embeddings.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPT2Config, LlamaConfig, Qwen2Config

VOCAB = 96
HIDDEN = 32
ARCHITECTURES = ("llama", "qwen2", "gpt2", "gemma3")


def tiny_config(arch: str = "llama", tied: bool = False, vocab_size: int = VOCAB):
    common = {
        "vocab_size": vocab_size,
        "tie_word_embeddings": tied,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
    }
    if arch == "llama":
        return LlamaConfig(
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            **common,
        )
    if arch == "qwen2":
        return Qwen2Config(
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            **common,
        )
    if arch == "gpt2":
        return GPT2Config(n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=512, **common)
    if arch == "gemma3":
        return Gemma3TextConfig(
            hidden_size=HIDDEN,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=8,
            max_position_embeddings=512,
            sliding_window=16,
            final_logit_softcapping=30.0,
            **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; choose one of {ARCHITECTURES}")


def tiny_base_model(arch: str = "llama", tied: bool = False, seed: int = 0, vocab_size: int = VOCAB):
    """A random tiny causal LM in eval mode (deterministic for a given seed)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, tied, vocab_size))
    return model.eval()


SMALL_ENCODERS = {"encoder_hidden_size": 16, "encoder_num_heads": 2, "encoder_intermediate_size": 32}


def tiny_zip2zip(
    *,
    seed: int = 0,
    arch: str = "llama",
    tokenizer: bool = True,
    max_subtokens: int = 4,
    max_codebook_size: int = 64,
    tied: bool = False,
    tie_encoders: bool | None = None,
    loud_hypertokens: bool = False,
    perturb: float = 0.05,
    extra_vocab: int = 0,
    encoders: dict | None = None,
    **settings,
):
    """A tiny zip2zip model over a random base of ``arch`` and its tokenizer (the tiny BPE), in eval mode.

    Every tiny zip2zip model of the tests comes from here, so they differ only by the arguments. It goes
    through `zip2zip_from_base`, the users' conversion. `tokenizer=False` skips the tokenizer: the base then has
    the :data:`VOCAB` ids of the other tiny models, ``settings`` name its never-merged ids, and the second item
    returned is None. `tied` ties the base's embeddings; `tie_encoders` (default: `tied`) shares one encoder.

    The untrained encoders start as exact means of their constituents; `perturb` adds noise of that scale so
    hypertokens have vectors of their own. `loud_hypertokens` gives the output encoder large random weights:
    hypertoken logits then dwarf base logits, so sampling emits hypertokens often. `extra_vocab` adds
    embedding rows beyond the tokenizer's (as checkpoints padded to a multiple do). `encoders` defaults to small
    encoders (:data:`SMALL_ENCODERS`); `{}` keeps the config's defaults.
    """
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip import Zip2ZipForCausalLM
    from zip2zip.conversion import zip2zip_from_base

    settings = {
        "max_codebook_size": max_codebook_size,
        "max_subtokens": max_subtokens,
        "tie_encoders": tied if tie_encoders is None else tie_encoders,
        **(SMALL_ENCODERS if encoders is None else encoders),
        **settings,
    }
    if tokenizer:
        base_tok = tiny_bpe_tokenizer()
        base = tiny_base_model(arch, tied=tied, vocab_size=len(base_tok) + extra_vocab, seed=seed)
        model, tok = zip2zip_from_base(base, tokenizer=base_tok, **settings)
    else:
        base = tiny_base_model(arch, tied=tied, vocab_size=VOCAB + extra_vocab, seed=seed)
        model, tok = Zip2ZipForCausalLM.from_base(base, **settings), None
    if perturb or loud_hypertokens:
        torch.manual_seed(seed + 1)
        output_encoder = model.output_encoder if model.output_encoder is not None else model.input_encoder
        with torch.no_grad():
            for encoder in dict.fromkeys([model.input_encoder, output_encoder]):  # each once, in order
                for p in encoder.parameters():
                    p.add_(torch.randn_like(p) * perturb)
            if loud_hypertokens:
                output_encoder.out_proj.weight.normal_(0.0, 2.0)
    if tok is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.eos_token_id = tok.eos_token_id
    return model.eval(), tok
