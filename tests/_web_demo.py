"""Helpers of the web-demo tests: import the app from spaces/zip2zip-demo and build tiny models for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import tiny_bpe_tokenizer

APP_DIR = Path(__file__).resolve().parent.parent / "spaces" / "zip2zip-demo"
REPETITIVE = "the cat sat on the mat. the cat sat on the hat. the cat sat on the mat. " * 3


def import_app():
    """The app module (skips the test where gradio is not installed: `pip install -e .[demo]`)."""
    pytest.importorskip("gradio", reason="the web demo needs gradio (pip install -e '.[demo]')")
    if str(APP_DIR) not in sys.path:
        sys.path.insert(0, str(APP_DIR))
    import app

    return app


def tiny_demo_models(seed: int = 0):
    """A DemoModels of a tiny random Llama and its zip2zip model (perturbed encoders), same base weights."""
    import_app()
    from demo_models import DemoModels

    from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer

    base_tok = tiny_bpe_tokenizer()
    z_model = Zip2ZipForCausalLM.from_base(
        tiny_base_model("llama", vocab_size=len(base_tok), seed=seed),
        tokenizer=base_tok,
        max_codebook_size=64,
        max_subtokens=4,
        encoder_hidden_size=16,
        encoder_num_heads=2,
        encoder_intermediate_size=32,
    )
    torch.manual_seed(seed + 1)
    with torch.no_grad():
        for p in z_model.input_encoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        z_model.output_encoder.out_proj.weight.normal_(0.0, 2.0)  # loud: hypertokens get emitted
    z_tok = Zip2ZipTokenizer.from_base(base_tok, z_model.config)
    base = tiny_base_model("llama", vocab_size=len(base_tok), seed=seed)
    return DemoModels(z_model.eval(), z_tok, base, base_tok, name="tiny zip2zip", base_name="tiny llama")
