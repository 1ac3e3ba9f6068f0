"""`evaluate` measurement: bits per byte of a causal LM (base or zip2zip) on texts, strict and per byte.

Load it by path (it works offline; nothing is fetched from the Hub)::

    import evaluate
    bpb = evaluate.load("measurements/zip2zip_bits_per_byte", module_type="measurement")
    bpb.compute(data=texts, model=model, tokenizer=tok)   # or model="folder"

The number is ``zip2zip.evaluation.scoring.bits_per_byte``: the canonical code stream's log-likelihood (the base ids
for a base model) in non-overlapping windows of ``max_length`` positions, each started by the bos (else eos)
token, summed over texts and divided by their UTF-8 bytes. A base model and its zip2zip model are thus
compared on exactly the same bytes; lm-eval's ``bits_per_byte`` with the ``zip2zip`` model class agrees.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

_DESCRIPTION = "Bits per byte of a base or zip2zip causal LM on texts (strict canonical-stream likelihood)."
_KWARGS_DESCRIPTION = """
Args:
    data (`list[str]`): the texts.
    model (`PreTrainedModel` or `str`): the model, or a local folder to load it from (`trust_remote_code=True`).
    tokenizer (optional): its tokenizer; loaded from the folder when `model` is a folder.
    max_length (`int`, optional): positions per window (default `min(1024, the model's context)`).
    batch_size (`int`, defaults to 1): windows per forward pass.
Returns:
    `bits_per_byte`, `logprob` (natural log), `bytes`, `base_tokens`, `codes`, `hypertokens`, `windows`,
    `compression`, `positions`, `texts`.
"""
_CITATION = """zip2zip: Inference-Time Adaptive Tokenization via Online Compression, arXiv:2506.01084"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Zip2ZipBitsPerByte(evaluate.Measurement):
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
        model: Any = None,
        tokenizer: Any = None,
        max_length: int | None = None,
        batch_size: int = 1,
    ) -> dict[str, Any]:
        from zip2zip.evaluation.scoring import bits_per_byte
        from zip2zip.loading import load_model_and_tokenizer

        if model is None:
            raise ValueError("zip2zip_bits_per_byte needs model= (a model object or a local folder)")
        if isinstance(model, str):
            model, loaded = load_model_and_tokenizer(model)
            tokenizer = tokenizer or loaded
        if tokenizer is None:
            raise ValueError("zip2zip_bits_per_byte needs tokenizer= when model is an object")
        return bits_per_byte(model, tokenizer, data, max_length=max_length, batch_size=batch_size).to_dict()
