"""PEFT helpers: LoRA targets of a zip2zip model, and reaching the model inside a PEFT wrapper."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)


def is_peft_model(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def core_model(model: Any) -> Any:
    """The zip2zip model inside a PEFT wrapper (the model itself when unwrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) and is_peft_model(model) else model


ENCODER_MODULES: tuple[str, ...] = ("input_encoder", "output_encoder", "reconstruction_head")
"""The zip2zip modules that are new (randomly initialised) and must be trained in full and saved with the adapter."""


def lora_target_modules(model: nn.Module) -> str:
    """A PEFT `target_modules` regex matching the base model's projections and nothing else.

    PEFT's `"all-linear"` rule (every Linear/Conv1D except the LM head: Llama's `q_proj ... down_proj`, GPT-2's
    `c_attn c_proj c_fc`) applied to the base model alone. PEFT's per-architecture defaults
    (`TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING`) adapt only the attention of most families; the recipe
    adapts every projection, as the paper does. The regex is anchored on the base model's own path
    (`language_model.`), so the hyper-encoders, whose layers also have Linear projections, never get an
    adapter: they are trained in full instead (`modules_to_save`).
    """
    inner = getattr(model, "language_model", None)
    if inner is None:
        raise ValueError(
            f"{type(model).__name__} has no `language_model` attribute: lora_target_modules expects a zip2zip model "
            "(Zip2ZipForCausalLM); for a plain base model use target_modules='all-linear'"
        )
    from transformers.pytorch_utils import Conv1D

    head = inner.get_output_embeddings()
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in inner.named_modules()
        if isinstance(module, (nn.Linear, Conv1D)) and module is not head and name
    }
    chosen = sorted(names)
    if not chosen:
        raise ValueError(f"found no Linear or Conv1D layer in the base model {type(inner).__name__} to adapt")
    return r"language_model\..*\.(" + "|".join(re.escape(n) for n in chosen) + r")"


def default_lora_config(
    model: nn.Module,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.0,
    target_modules: str | list[str] | None = None,
    train_encoders: bool = True,
    **kwargs: Any,
):
    """The LoRA setup of the zip2zip recipe: adapters on the base projections, hyper-encoders trained in full.

    `task_type="CAUSAL_LM"` makes PEFT record a loadable auto mapping (with `None` it would name the remote-code
    module, which `AutoPeftModel` refuses to import). The hyper-encoders (and the reconstruction head when the
    model has one) are new, randomly initialised layers, so they go into `modules_to_save`: trained and saved
    with the adapter, not re-initialised on reload. The paper uses r=32/alpha=32 (4B) and r=16/alpha=16 (14B).
    """
    from peft import LoraConfig

    modules_to_save = (
        [name for name in ENCODER_MODULES if getattr(model, name, None) is not None]
        if train_encoders
        else None
    )
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules if target_modules is not None else lora_target_modules(model),
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
        **kwargs,
    )


def adapt_peft_config(peft_config: Any, model: nn.Module) -> Any:
    """Make a user's PEFT config fit a zip2zip model the way the recipe intends (a copy; the input is untouched).

    - `target_modules` left unset becomes :func:`lora_target_modules` (every projection of the base model).
    - `target_modules` given as names (`["q_proj", "o_proj"]`) would also match the hyper-encoders' own layers
      (they have `o_proj` and `qkv_proj` too) and put adapters on freshly initialised weights; names are turned
      into a regex anchored on the base model (`language_model.`). `"all-linear"` becomes
      :func:`lora_target_modules`. A regex string is taken as the user wrote it.
    - The hyper-encoders (and the reconstruction head) are new layers: PEFT would freeze them at their random
      initialisation and not save them, so they are added to `modules_to_save`.
    - `task_type=None` becomes `"CAUSAL_LM"`, so that the saved adapter names a loadable auto class.
    """
    config = copy.deepcopy(peft_config)
    targets = getattr(config, "target_modules", None)
    if (
        targets is None
        and hasattr(config, "target_modules")
        and not getattr(config, "target_parameters", None)
    ):
        # PEFT would look the zip2zip model type up in its per-architecture table and fail; the recipe's choice
        # is every projection of the base model.
        config.target_modules = lora_target_modules(model)
    elif targets == "all-linear":
        config.target_modules = lora_target_modules(model)
    elif isinstance(targets, (list, set, tuple)) and targets:
        names = sorted(str(t) for t in targets)
        config.target_modules = r"language_model\..*\.(" + "|".join(re.escape(n) for n in names) + r")"
    if hasattr(config, "modules_to_save"):
        wanted = [name for name in ENCODER_MODULES if getattr(model, name, None) is not None]
        present = list(config.modules_to_save or [])
        missing = [name for name in wanted if name not in present]
        if missing:
            logger.info("adding the hyper-encoder modules %s to the PEFT modules_to_save", missing)
            config.modules_to_save = present + missing
    if getattr(config, "task_type", "unset") is None:
        config.task_type = "CAUSAL_LM"
    return config
