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
