"""The zip2zip paper's numbers, quoted in the report beside ours for scale only."""

from __future__ import annotations

import math

# arXiv 2506.01084 (zip2zip), for other and larger models on other data; quoted beside ours for scale only.
PAPER_TOKENIZERS = ("Llama-3-128K", "Qwen-2-150K", "Phi-4-200K", "Gemma-3-256K")
PAPER_REDUCTION = {  # Table 9: sequence-length reduction (%); our prose is compared with the paper's web column
    "code": (34.9, 35.5, 34.9, 41.1),
    "math": (32.5, 37.8, 34.1, 37.8),
    "prose": (14.8, 15.4, 13.0, 16.7),
    "multilingual": (19.1, 19.6, 16.4, 18.5),
}
PAPER_BYTES_PER_TOKEN = {  # Table 2, Llama-3-128K row: base -> with zip2zip
    "code": (4.1, 6.3),
    "math": (2.7, 4.0),
    "prose": (4.6, 5.4),
    "multilingual": (3.8, 4.7),
}
PAPER_BYTE_PPL = {  # Table 3, byte-level perplexity (1024-token window): (base, zip2zip) per corpus
    "Phi-3.5-4B": {"Wiki": (1.58, 1.69), "Pile": (1.79, 1.95), "mC4": (1.88, 2.00), "dC4": (1.74, 1.82)},
    "Phi-3-14B": {"Wiki": (1.43, 1.56), "Pile": (1.72, 1.90), "mC4": (1.82, 1.96), "dC4": (1.67, 1.75)},
}
PAPER_MC = {  # Table 3, Phi-3.5-4B, 2-shot accuracy: (base, zip2zip)
    "ARC-c": (0.60, 0.57),
    "ARC-e": (0.83, 0.83),
    "HellaSwag": (0.66, 0.61),
    "OBQA": (0.46, 0.46),
    "PIQA": (0.79, 0.82),
    "WinoGrande": (0.75, 0.75),
}
PAPER_DECODE_GAIN = {  # Table 5, decode tokens/s relative to the base model, contexts 256 / 512 / 1024 / 2048
    "Phi-3.5-4B, Apple M1": "+7.5% / +34.8% / +3.9% / +7.5%",
    "Phi-3.5-4B, H100": "+9.3% / +46.6% / +16.6% / +16.5%",
    "Phi-3-14B, H100": "+23.0% / +39.5% / +48.1% / +9.6%",
}


def byte_ppl_ratio(pair: tuple[float, float]) -> float:
    """zip2zip / base bits per byte from a (base, zip2zip) pair of byte perplexities (bits = log2 PPL)."""
    return math.log2(pair[1]) / math.log2(pair[0])
