"""Loading the models every zip2zip entry point works with: the command line, evaluation and the demo app.

One place decides what "the zip2zip model" is when none is named (the trained model the package ships, else
an untrained one of the embedded base built with the recipe's settings), whether a model was trained, and
which base model it is compared with. Nothing here imports torch or transformers before a function is
called, so a command line can import it and still answer ``--help`` at once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import torch

from zip2zip.bundled import base as bundled_base
from zip2zip.bundled import shipped
from zip2zip.recipe import ZIP2ZIP_SETTINGS
from zip2zip.registration import register

logger = logging.getLogger(__name__)

__all__ = [
    "LoadedZip2Zip",
    "base_model_path",
    "is_trained",
    "is_zip2zip_model",
    "load_adapter",
    "load_base_model",
    "load_model_and_tokenizer",
    "load_untrained_zip2zip",
    "load_zip2zip",
    "load_zip2zip_tokenizer",
    "zip2zip_settings",
]


class LoadedZip2Zip(NamedTuple):
    """A zip2zip model (eval mode), its tokenizer, and whether its hyper-encoders were trained."""

    model: Any
    tokenizer: Any
    trained: bool


def is_zip2zip_model(model: Any) -> bool:
    """Duck-typed (a model loaded with remote code is a different class object than ours)."""
    return getattr(getattr(model, "config", None), "model_type", None) == "zip2zip" and hasattr(
        model, "prepare_codebook"
    )


def is_trained(path_or_model: str | os.PathLike | Any) -> bool:
    """Whether a zip2zip model (a folder, or a model object) was trained: its config's ``trained`` field.

    Training (`Zip2ZipSFTTrainer.save_model`) and the shipped model's assembly set it; export carries it. A
    folder without it (saved before the field existed, or never trained) counts as untrained.
    """
    if isinstance(path_or_model, (str, os.PathLike)):
        config_file = Path(path_or_model) / "config.json"
        if not config_file.is_file():
            return False
        import json

        return bool(json.loads(config_file.read_text(encoding="utf-8")).get("trained", False))
    return bool(getattr(getattr(path_or_model, "config", None), "trained", False))


def zip2zip_settings(**overrides: Any) -> dict[str, Any]:
    """The recipe's zip2zip settings (:data:`zip2zip.recipe.ZIP2ZIP_SETTINGS`) with ``overrides`` applied;
    ``None`` values are ignored, so unset command-line flags can be passed as they are."""

    unknown = sorted(set(overrides) - set(ZIP2ZIP_SETTINGS))
    if unknown:
        from zip2zip.model.configuration_zip2zip import Zip2ZipConfig

        known = set(Zip2ZipConfig.__annotations__) - {"text_config", "base_vocab_size"}
        unknown = sorted(set(unknown) - known)
        if unknown:
            raise ValueError(f"unknown zip2zip settings {unknown}; Zip2ZipConfig's are {sorted(known)}")
    return {**ZIP2ZIP_SETTINGS, **{k: v for k, v in overrides.items() if v is not None}}


def load_model_and_tokenizer(
    path_or_id: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    trust_remote_code: bool = True,
) -> tuple[Any, Any]:
    """Load any causal LM (a base model or a zip2zip model) and its tokenizer from a folder or a Hub id, in
    eval mode. A Hub id loads from the local Hugging Face cache when the machine is offline."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    register()

    path = os.fspath(path_or_id)
    if not os.path.isdir(path) and not _looks_like_hub_id(path):
        raise FileNotFoundError(
            f"model folder {path!r} does not exist; pass a local folder holding config.json, the weights and "
            "the tokenizer files, or a Hub id such as 'org/name'"
        )
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, dtype=dtype)
    except OSError as error:
        if os.path.isdir(path):
            raise
        raise FileNotFoundError(
            f"cannot load {path!r}: it is no local folder, and as a Hub id it is neither in the local cache nor "
            f"downloadable here ({error})"
        ) from error
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer


def load_untrained_zip2zip(
    base: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **settings: Any,
) -> LoadedZip2Zip:
    """A fresh zip2zip model of ``base`` (default: the embedded SmolLM2) with the recipe's settings overridden
    by ``settings``: hyper-encoders initialised, not trained."""
    from zip2zip.conversion import zip2zip_from_base

    base = os.fspath(base) if base is not None else bundled_base.default_base_path()
    model, tokenizer = zip2zip_from_base(base, dtype=dtype, **zip2zip_settings(**settings))
    if device is not None:
        model.to(device)
    return LoadedZip2Zip(model.eval(), tokenizer, False)


def load_zip2zip(
    path_or_id: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **settings: Any,
) -> LoadedZip2Zip:
    """Load a zip2zip model: from ``path_or_id`` (a folder or a Hub id), or by default the trained model the
    package ships, or an untrained one of the embedded base (:func:`load_untrained_zip2zip`) if none ships.

    ``settings`` (``max_codebook_size``, ``max_subtokens``, ...) shape the untrained model; a saved model keeps
    its own, and a warning names any that differ. Raises ``ValueError`` when the model is not a zip2zip model.
    """

    if path_or_id is None:
        path_or_id = shipped.shipped_zip2zip_path()
        if path_or_id is None:
            return load_untrained_zip2zip(device=device, dtype=dtype, **settings)
    model, tokenizer = load_model_and_tokenizer(path_or_id, device=device, dtype=dtype)
    if not is_zip2zip_model(model):
        raise ValueError(
            f"{os.fspath(path_or_id)!r} has model_type {model.config.model_type!r}, not a zip2zip model: make one "
            "with `zip2zip train` or Zip2ZipForCausalLM.from_base, or use it as the base model"
        )
    _warn_about_ignored_settings(model.config, settings, os.fspath(path_or_id))
    return LoadedZip2Zip(model, tokenizer, is_trained(model))


def load_adapter(
    adapter_dir: str | os.PathLike,
    base: str | os.PathLike | None = None,
    merge: bool = True,
    dtype: torch.dtype | str | None = None,
) -> LoadedZip2Zip:
    """A trained zip2zip model from a PEFT adapter alone: the supported way to use an adapter the PEFT way.

    A zip2zip adapter (LoRA on the base projections plus the hyper-encoders in `modules_to_save`) belongs to a
    zip2zip model, not to the plain base model, so `PeftModel.from_pretrained(plain_base, adapter)` finds no
    module to adapt and `AutoPeftModelForCausalLM` (which loads the base it names from the Hub) cannot build it.
    This builds the untrained zip2zip model of ``base`` (default: the embedded SmolLM2) with the adapter's
    zip2zip settings, then applies the adapter with `PeftModel.from_pretrained`; ``merge`` folds LoRA in.

    The settings are read from ``zip2zip_settings.json`` beside the adapter (the shipped checkpoint's layout,
    ``zip2zip/checkpoints/...``) or from ``config.json`` one folder up (a training run's ``OUT/adapter``).
    """
    import json

    from peft import PeftModel

    from zip2zip.conversion import zip2zip_from_base

    folder = Path(adapter_dir)
    if not (folder / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder} has no adapter_config.json: pass a PEFT adapter folder")
    if (folder / "zip2zip_settings.json").is_file():
        settings = dict(json.loads((folder / "zip2zip_settings.json").read_text(encoding="utf-8"))["zip2zip"])
    elif (folder.parent / "config.json").is_file():
        config = json.loads((folder.parent / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type") != "zip2zip":
            raise ValueError(
                f"{folder.parent / 'config.json'} is not a zip2zip config (model_type "
                f"{config.get('model_type')!r}); the adapter's zip2zip settings are unknown"
            )
        from zip2zip.model.configuration_zip2zip import Zip2ZipConfig

        own = set(Zip2ZipConfig.__annotations__) - {
            "text_config",
            "base_vocab_size",
            "trained",
            "trained_codec",
        }
        settings = {key: value for key, value in config.items() if key in own}
    else:
        raise FileNotFoundError(
            f"no zip2zip settings for the adapter in {folder}: expected zip2zip_settings.json beside it or a "
            "zip2zip config.json in its parent folder (the layouts the shipped checkpoint and training write)"
        )
    base = os.fspath(base) if base is not None else bundled_base.default_base_path()
    model, tokenizer = zip2zip_from_base(base, dtype=dtype, **settings)
    adapted = PeftModel.from_pretrained(model, os.fspath(folder))
    if merge:
        adapted = adapted.merge_and_unload()
        adapted.config.mark_trained()
    return LoadedZip2Zip(adapted.eval(), tokenizer, True)


def load_zip2zip_tokenizer(path_or_id: str | os.PathLike | None = None, **settings: Any) -> Any:
    """A Zip2ZipTokenizer without loading any weights: a saved zip2zip tokenizer as it is, or a base tokenizer
    (default: the embedded SmolLM2's) wrapped with the recipe's codec settings overridden by ``settings``."""
    from transformers import AutoTokenizer

    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    register()
    path = os.fspath(path_or_id) if path_or_id is not None else bundled_base.default_base_path()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    if hasattr(tokenizer, "codec"):  # a zip2zip tokenizer (ours or its remote-code copy)
        _warn_about_ignored_settings(tokenizer, settings, path)
        return tokenizer
    return Zip2ZipTokenizer.from_base(tokenizer, zip2zip_settings(**settings))


def base_model_path(model: Any) -> str | None:
    """The local folder of the base model ``model`` (a zip2zip model or its config) was made from, if known:
    the embedded default's folder when it is the base, else the folder recorded in the config if it exists."""

    config = getattr(model, "config", model)
    text_config = getattr(config, "text_config", None)
    name = str(getattr(text_config, "_name_or_path", "") or "")
    if not name:
        return None
    if bundled_base.DEFAULT_MODEL_DIRNAME in name or name == bundled_base.HUB_MODEL_ID:
        return bundled_base.default_base_path()
    return name if os.path.isfile(os.path.join(name, "config.json")) else None


def load_base_model(
    model: Any,
    path_or_id: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[Any, Any] | None:
    """The base model and tokenizer to compare ``model`` with: ``path_or_id``, or :func:`base_model_path`;
    ``None`` when neither names one."""
    path_or_id = path_or_id if path_or_id is not None else base_model_path(model)
    if path_or_id is None:
        return None
    return load_model_and_tokenizer(path_or_id, device=device, dtype=dtype)


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and not os.path.exists(name)


def _warn_about_ignored_settings(config: Any, settings: dict[str, Any], where: str) -> None:
    differing = {
        key: value
        for key, value in settings.items()
        if value is not None and getattr(config, key, value) != value
    }
    if differing:
        logger.warning(
            "%s keeps its own zip2zip settings; ignored: %s (they shape an untrained model only)",
            where,
            ", ".join(f"{key}={value!r}" for key, value in sorted(differing.items())),
        )
