"""zip2zip: inference-time adaptive tokenization for Hugging Face causal language models.

Every public name is imported on first use, so ``import zip2zip`` (and the ``zip2zip`` command's ``--help``)
imports neither torch nor transformers. The first use of a model, config or tokenizer class through
``zip2zip.<name>`` registers them with transformers' Auto classes (:mod:`zip2zip.registration`), as does
:func:`register`; so does ``import zip2zip`` itself when transformers' Auto classes are already imported.

Layout, bottom to top (imports point down): ``model/`` (the code every exported Hub repo carries), ``utils/``,
``recipe``, ``conversion``, ``corpora/``, ``bundled/`` (the embedded base and the shipped model) and ``seeding``
(initial codebooks from the corpora), ``loading``,
``evaluation/`` and ``hub/``, ``trainer/``, ``cli/``.
"""

from typing import TYPE_CHECKING

from zip2zip.model.lzw import LZWCodec
from zip2zip.model.lzw_decoder import LZWDecoder
from zip2zip.model.lzw_state import Codebook, DecodeTrace
from zip2zip.registration import register, register_if_transformers_loaded

if TYPE_CHECKING:
    from zip2zip.bundled.base import default_base_path
    from zip2zip.bundled.shipped import shipped_zip2zip_path
    from zip2zip.conversion import change_codec, zip2zip_from_base
    from zip2zip.evaluation.scoring import bits_per_byte, compare_on_domains
    from zip2zip.hub.export import export_repo, push_repo
    from zip2zip.loading import load_adapter, load_model_and_tokenizer, load_zip2zip
    from zip2zip.model.configuration_zip2zip import Zip2ZipConfig
    from zip2zip.model.modeling_zip2zip import Zip2ZipCausalLMOutputWithPast, Zip2ZipForCausalLM
    from zip2zip.model.tokenization_zip2zip import (
        Zip2ZipTextIteratorStreamer,
        Zip2ZipTextStreamer,
        Zip2ZipTokenizer,
        default_disabled_ids,
    )
    from zip2zip.seeding import Seed, apply_seed, build_seed, seed_from_corpora
    from zip2zip.trainer.data import Zip2ZipDataCollator
    from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
    from zip2zip.utils.peft import default_lora_config

__all__ = [
    "Codebook",
    "DecodeTrace",
    "LZWCodec",
    "LZWDecoder",
    "Seed",
    "Zip2ZipCausalLMOutputWithPast",
    "Zip2ZipConfig",
    "Zip2ZipDataCollator",
    "Zip2ZipForCausalLM",
    "Zip2ZipSFTConfig",
    "Zip2ZipSFTTrainer",
    "Zip2ZipTextIteratorStreamer",
    "Zip2ZipTextStreamer",
    "Zip2ZipTokenizer",
    "apply_seed",
    "bits_per_byte",
    "build_seed",
    "change_codec",
    "compare_on_domains",
    "default_base_path",
    "default_disabled_ids",
    "default_lora_config",
    "export_repo",
    "load_adapter",
    "load_model_and_tokenizer",
    "load_zip2zip",
    "push_repo",
    "register",
    "seed_from_corpora",
    "shipped_zip2zip_path",
    "zip2zip_from_base",
]
__version__ = "0.1.0"

_LAZY_NAMES = {
    "Zip2ZipConfig": "model.configuration_zip2zip",
    "Zip2ZipCausalLMOutputWithPast": "model.modeling_zip2zip",
    "Zip2ZipForCausalLM": "model.modeling_zip2zip",
    "Zip2ZipTextIteratorStreamer": "model.tokenization_zip2zip",
    "Zip2ZipTextStreamer": "model.tokenization_zip2zip",
    "Zip2ZipTokenizer": "model.tokenization_zip2zip",
    "default_disabled_ids": "model.tokenization_zip2zip",
    "Zip2ZipDataCollator": "trainer.data",
    "Zip2ZipSFTConfig": "trainer.sft_config",
    "Zip2ZipSFTTrainer": "trainer.sft_trainer",
    "default_lora_config": "utils.peft",
    "change_codec": "conversion",
    "zip2zip_from_base": "conversion",
    "default_base_path": "bundled.base",
    "shipped_zip2zip_path": "bundled.shipped",
    "Seed": "seeding",
    "apply_seed": "seeding",
    "build_seed": "seeding",
    "seed_from_corpora": "seeding",
    "load_adapter": "loading",
    "load_model_and_tokenizer": "loading",
    "load_zip2zip": "loading",
    "bits_per_byte": "evaluation.scoring",
    "compare_on_domains": "evaluation.scoring",
    "export_repo": "hub.export",
    "push_repo": "hub.export",
}
# Names whose use registers the Auto classes: they are what a program hands to transformers.
_REGISTERING = {"Zip2ZipConfig", "Zip2ZipForCausalLM", "Zip2ZipTokenizer", "Zip2ZipSFTTrainer"}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"zip2zip.{_LAZY_NAMES[name]}"), name)
        if name in _REGISTERING:
            register()
        return value
    raise AttributeError(f"module 'zip2zip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


register_if_transformers_loaded()
