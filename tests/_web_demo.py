"""Helpers of the web-demo tests: import the app from spaces/zip2zip-demo and build tiny models for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _tiny_models import tiny_base_model, tiny_zip2zip

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
    """A DemoModels of a tiny random Llama and its zip2zip model (loud hypertokens, so they get emitted), same
    base weights."""
    import_app()
    from demo_models import DemoModels

    z_model, z_tok = tiny_zip2zip(seed=seed, loud_hypertokens=True)
    base = tiny_base_model("llama", vocab_size=len(z_tok.base), seed=seed)
    return DemoModels(z_model, z_tok, base, z_tok.base, name="tiny zip2zip", base_name="tiny llama")
