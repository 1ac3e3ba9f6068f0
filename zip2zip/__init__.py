"""zip2zip: inference-time adaptive tokenization for Hugging Face causal language models."""

from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from .configuration_zip2zip import Zip2ZipConfig
from .lzw import Codebook, DecodeTrace, LZWCodec, LZWDecoder
from .modeling_zip2zip import Zip2ZipCausalLMOutputWithPast, Zip2ZipForCausalLM
from .tokenization_zip2zip import (
    Zip2ZipTextIteratorStreamer,
    Zip2ZipTextStreamer,
    Zip2ZipTokenizer,
    default_disabled_ids,
)

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

# Imported on first use: training pulls in TRL (seconds), evaluation registers the lm-eval model class.
_LAZY_MODULES = {
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


def __getattr__(name: str):
    if name in _LAZY_MODULES:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY_MODULES[name]}", __name__), name)
    raise AttributeError(f"module 'zip2zip' has no attribute {name!r}")


# Local use without remote code: the Auto classes resolve model_type "zip2zip" to these classes.
AutoConfig.register("zip2zip", Zip2ZipConfig, exist_ok=True)
AutoModelForCausalLM.register(Zip2ZipConfig, Zip2ZipForCausalLM, exist_ok=True)
AutoTokenizer.register(Zip2ZipConfig, tokenizer_class=Zip2ZipTokenizer, exist_ok=True)
