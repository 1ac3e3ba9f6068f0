"""`evaluate` measurement: how much LZW hypertokens shorten texts for a zip2zip tokenizer.

Load it by path (it works offline; nothing is fetched from the Hub)::

    import evaluate
    compression = evaluate.load("measurements/zip2zip_compression", module_type="measurement")
    compression.compute(data=texts, tokenizer=tok)   # tok: a Zip2ZipTokenizer, or a folder holding one

Texts are tokenized with the base tokenizer, cut into windows of ``max_length - 1`` base tokens (one model
context each, as ``zip2zip.evaluation.scoring.bits_per_byte`` scores them), and each window is LZW-compressed on its
own. Returns the compression ratio (base tokens per code), the share of hypertokens among codes, bytes per
code, and the raw counts.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_DESCRIPTION = (
    "Compression of texts by a zip2zip tokenizer: base tokens per code, hypertoken share, bytes per code."
)
_KWARGS_DESCRIPTION = """
Args:
    data (`list[str]`): the texts.
    tokenizer (`Zip2ZipTokenizer` or `str`): a zip2zip tokenizer, or a folder to load one from
        (`AutoTokenizer.from_pretrained(folder, trust_remote_code=True)`); a plain base tokenizer is wrapped with
        `max_codebook_size` and `max_subtokens`.
    max_length (`int`, defaults to 1024): positions per window (windows hold `max_length - 1` base tokens).
    max_codebook_size (`int`, defaults to 2048), max_subtokens (`int`, defaults to 4): codec settings used only
        when `tokenizer` is a base tokenizer.
Returns:
    `compression`, `hypertoken_share`, `bytes_per_code`, `bytes`, `base_tokens`, `codes`, `hypertokens`,
    `windows`, `texts`.
"""
_CITATION = """zip2zip: Inference-Time Adaptive Tokenization via Online Compression, arXiv:2506.01084"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Zip2ZipCompression(evaluate.Measurement):
    def _info(self) -> evaluate.MeasurementInfo:
        return evaluate.MeasurementInfo(
            module_type="measurement",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"data": datasets.Value("string")}),
            reference_urls=["https://arxiv.org/abs/2506.01084"],
        )

    def _compute(
        self,
        data: list[str],
        tokenizer: Any = None,
        max_length: int = 1024,
        max_codebook_size: int = 2048,
        max_subtokens: int = 4,
    ) -> dict[str, Any]:
        from zip2zip.evaluation.scoring import compression_statistics

        if tokenizer is None:
            raise ValueError(
                "zip2zip_compression needs tokenizer= (a Zip2ZipTokenizer or a folder holding one)"
            )
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=True)
        if getattr(tokenizer, "codec", None) is None:
            from zip2zip import Zip2ZipTokenizer

            tokenizer = Zip2ZipTokenizer.from_base(
                tokenizer, {"max_codebook_size": max_codebook_size, "max_subtokens": max_subtokens}
            )
        return compression_statistics(tokenizer, data, max_length)
