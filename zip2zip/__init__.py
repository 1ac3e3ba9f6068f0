"""zip2zip: inference-time adaptive tokenization for Hugging Face causal language models."""

from .lzw import Codebook, DecodeTrace, LZWCodec, LZWDecoder

__all__ = ["Codebook", "DecodeTrace", "LZWCodec", "LZWDecoder"]
__version__ = "0.1.0"
