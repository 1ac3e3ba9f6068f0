"""The models the demo shows: a zip2zip model, its tokenizer, and the base model it was made from.

:func:`load_models` is the one place the demo loads models, through the package's shared loader
(:mod:`zip2zip.loading`). Without arguments it uses what the package ships: the trained zip2zip model
(``zip2zip.bundled.shipped.shipped_zip2zip_path()``) and the embedded SmolLM2-135M-Instruct base, offline. Given a
local folder or a Hub repo id of a zip2zip model it loads that (``trust_remote_code``) and its base model.
"""

from __future__ import annotations

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
    """Load a zip2zip model (default: the shipped one) and its base model (default: the one it was made from).

    ``model`` is a local folder or a Hub repo id of a zip2zip model; ``base`` a folder or Hub id of the base
    causal LM. Both go through the package's shared loader (:mod:`zip2zip.loading`), so the demo, the command
    line and the evaluation see the same models; the embedded SmolLM2 is used whenever the zip2zip model was
    made from SmolLM2-135M-Instruct, so the default needs no network.
    """
    from zip2zip.bundled import base as bundled_base
    from zip2zip.loading import load_base_model, load_zip2zip

    loaded = load_zip2zip(model)
    if model is not None:
        name = model
    elif loaded.trained:
        name = "zip2zip-SmolLM2-135M (shipped with the package)"
    else:
        name = "zip2zip-SmolLM2-135M (UNTRAINED: no trained model ships)"
    comparison = load_base_model(loaded.model, base)
    if comparison is None:
        comparison = load_base_model(loaded.model, bundled_base.default_base_path())
    base_model, base_tok = comparison
    return DemoModels(
        loaded.model.eval(),
        loaded.tokenizer,
        base_model.eval(),
        base_tok,
        name=name,
        base_name=base or bundled_base.HUB_MODEL_ID,
        trained=loaded.trained,
    )
