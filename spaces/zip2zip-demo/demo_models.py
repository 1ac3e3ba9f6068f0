"""The models the demo shows: a zip2zip model, its tokenizer, and the base model it was made from.

:func:`load_models` is the one place the demo loads models, so it can later switch to a shared loader of
the package. Without arguments it uses what the package ships: the trained zip2zip model
(``zip2zip.defaults.shipped_zip2zip_path()``) and the embedded SmolLM2-135M-Instruct base, offline. Given a
local folder or a Hub repo id of a zip2zip model it loads that (``trust_remote_code``) and its base model.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DemoModels:
    """What the page needs; ``lock`` serialises generation (two visitors never share a model's state)."""

    zip2zip_model: Any
    zip2zip_tokenizer: Any
    base_model: Any
    base_tokenizer: Any
    name: str = "zip2zip model"
    base_name: str = "base model"
    trained: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def load_models(model: str | None = None, base: str | None = None) -> DemoModels:
    """Load a zip2zip model (default: the shipped one) and its base model (default: the one it names).

    ``model`` is a local folder or a Hub repo id of a zip2zip model; ``base`` a folder or Hub id of the base
    causal LM. The embedded SmolLM2 is used whenever the zip2zip model was made from SmolLM2-135M-Instruct,
    so the default needs no network.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zip2zip import defaults
    from zip2zip.evaluation import is_zip2zip_model

    trained = True
    if model is None:
        shipped = defaults.shipped_zip2zip_path()
        if shipped is None:
            from zip2zip.trainer import zip2zip_from_base

            z_model, z_tok = zip2zip_from_base(defaults.default_base_path())
            name, trained = "zip2zip-SmolLM2-135M (UNTRAINED: no trained model ships)", False
        else:
            z_tok = AutoTokenizer.from_pretrained(shipped, trust_remote_code=True)
            z_model = AutoModelForCausalLM.from_pretrained(shipped, trust_remote_code=True)
            name = "zip2zip-SmolLM2-135M (shipped with the package)"
    else:
        z_tok = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
        z_model = AutoModelForCausalLM.from_pretrained(model, trust_remote_code=True)
        name = model
    if not is_zip2zip_model(z_model):
        raise ValueError(
            f"{model!r} is a {z_model.config.model_type!r} model, not a zip2zip model; pass a zip2zip repo "
            "(made with `zip2zip train` or Zip2ZipForCausalLM.from_base) and, if needed, its base with --base"
        )
    if base is None:
        base = _base_of(z_model.config)
    base_path = defaults.default_base_path() if base in (None, defaults.HUB_MODEL_ID) else base
    base_model = AutoModelForCausalLM.from_pretrained(base_path)
    base_tok = AutoTokenizer.from_pretrained(base_path)
    return DemoModels(
        z_model.eval(),
        z_tok,
        base_model.eval(),
        base_tok,
        name=name,
        base_name=base or defaults.HUB_MODEL_ID,
        trained=trained,
    )


def _base_of(config: Any) -> str | None:
    """The base model a zip2zip config was made from: a Hub id, the embedded default (None), or a folder."""
    from zip2zip import defaults

    name = getattr(config.get_text_config(), "_name_or_path", "") or ""
    if not name or defaults.DEFAULT_MODEL_DIRNAME in name or name == defaults.HUB_MODEL_ID:
        return None
    if os.path.isdir(name) or (name.count("/") == 1 and not os.path.isabs(name)):
        return name
    return None
