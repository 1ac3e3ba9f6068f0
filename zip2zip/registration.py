"""Registering zip2zip with transformers' Auto classes.

Once registered, ``AutoConfig``, ``AutoModelForCausalLM``, ``AutoModel`` and ``AutoTokenizer`` resolve
``model_type="zip2zip"`` to this package's classes, so a local zip2zip folder loads without
``trust_remote_code``. Registering imports torch and transformers (seconds), which ``import zip2zip`` and
``zip2zip --help`` should not pay, so it happens at the first of: ``import zip2zip`` when transformers' Auto
classes are already imported, the first use of a model, config or tokenizer class through ``zip2zip.<name>``,
any loader of :mod:`zip2zip.loading`, or an explicit :func:`register`.
"""

from __future__ import annotations

import sys

__all__ = ["is_registered", "register", "register_if_transformers_loaded"]

AUTO_MODULE = "transformers.models.auto"
_state = {"registered": False}


def register() -> None:
    """Register the zip2zip config, model and tokenizer with the Auto classes (imports torch); idempotent."""
    if _state["registered"]:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    from zip2zip.model.configuration_zip2zip import Zip2ZipConfig
    from zip2zip.model.modeling_zip2zip import Zip2ZipForCausalLM
    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    AutoConfig.register("zip2zip", Zip2ZipConfig, exist_ok=True)
    AutoModelForCausalLM.register(Zip2ZipConfig, Zip2ZipForCausalLM, exist_ok=True)
    # No headless zip2zip class: AutoModel gives the whole model (Zip2ZipForCausalLM.save_pretrained says why).
    AutoModel.register(Zip2ZipConfig, Zip2ZipForCausalLM, exist_ok=True)
    AutoTokenizer.register(Zip2ZipConfig, tokenizer_class=Zip2ZipTokenizer, exist_ok=True)
    _state["registered"] = True


def is_registered() -> bool:
    """Whether the Auto classes know model_type "zip2zip" yet."""
    return _state["registered"]


def register_if_transformers_loaded() -> None:
    """Register now if the program has already imported transformers' Auto classes (then it costs little)."""
    if AUTO_MODULE in sys.modules:
        register()
