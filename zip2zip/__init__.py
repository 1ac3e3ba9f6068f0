"""zip2zip: inference-time adaptive tokenization for Hugging Face causal language models.

Every public name is imported on first use, so ``import zip2zip`` (and the ``zip2zip`` command's ``--help``)
does not import torch or transformers. The Auto classes still resolve model_type "zip2zip" to these classes:
:mod:`zip2zip.registration` registers them as soon as the program imports transformers' Auto classes.
"""

from typing import TYPE_CHECKING

from .lzw import Codebook, DecodeTrace, LZWCodec, LZWDecoder
from .registration import register_when_transformers_loads

if TYPE_CHECKING:
    from .configuration_zip2zip import Zip2ZipConfig
    from .conversion import zip2zip_from_base
    from .data import Zip2ZipDataCollator
    from .evaluation import bits_per_byte, compare_on_domains
    from .hub import export_repo, push_repo
    from .modeling_zip2zip import Zip2ZipCausalLMOutputWithPast, Zip2ZipForCausalLM
    from .peft_utils import default_lora_config
    from .sft_config import Zip2ZipSFTConfig
    from .tokenization_zip2zip import (
        Zip2ZipTextIteratorStreamer,
        Zip2ZipTextStreamer,
        Zip2ZipTokenizer,
        default_disabled_ids,
    )
    from .trainer import Zip2ZipSFTTrainer

__all__ = [
    "Codebook",
    "DecodeTrace",
    "LZWCodec",
    "LZWDecoder",
    "Zip2ZipCausalLMOutputWithPast",
    "Zip2ZipConfig",
    "Zip2ZipDataCollator",
    "Zip2ZipForCausalLM",
    "Zip2ZipSFTConfig",
    "Zip2ZipSFTTrainer",
    "Zip2ZipTextIteratorStreamer",
    "Zip2ZipTextStreamer",
    "Zip2ZipTokenizer",
    "bits_per_byte",
    "compare_on_domains",
    "default_disabled_ids",
    "default_lora_config",
    "export_repo",
    "push_repo",
    "zip2zip_from_base",
]
__version__ = "0.1.0"

_LAZY_NAMES = {
    "Zip2ZipConfig": "configuration_zip2zip",
    "Zip2ZipCausalLMOutputWithPast": "modeling_zip2zip",
    "Zip2ZipForCausalLM": "modeling_zip2zip",
    "Zip2ZipTextIteratorStreamer": "tokenization_zip2zip",
    "Zip2ZipTextStreamer": "tokenization_zip2zip",
    "Zip2ZipTokenizer": "tokenization_zip2zip",
    "default_disabled_ids": "tokenization_zip2zip",
    "Zip2ZipDataCollator": "data",
    "Zip2ZipSFTConfig": "sft_config",
    "Zip2ZipSFTTrainer": "trainer",
    "default_lora_config": "peft_utils",
    "zip2zip_from_base": "conversion",
    "bits_per_byte": "evaluation",
    "compare_on_domains": "evaluation",
    "export_repo": "hub",
    "push_repo": "hub",
}
# Submodules that `import zip2zip` used to load eagerly stay reachable as attributes.
_LAZY_SUBMODULES = ("configuration_zip2zip", "generation_zip2zip", "modeling_zip2zip", "tokenization_zip2zip")


def __getattr__(name: str):
    import importlib

    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'zip2zip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_LAZY_SUBMODULES})


register_when_transformers_loads()
