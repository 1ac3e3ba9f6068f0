"""Turning any Hugging Face causal LM into an untrained zip2zip model, and recognising zip2zip models.

Converting and loading never need TRL, so this sits below the trainer: the demo, evaluation and the first
assembly of the shipped model import it alone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel

from zip2zip.utils.peft import core_model

logger = logging.getLogger(__name__)


def zip2zip_from_base(
    base_model_or_path: str | os.PathLike | PreTrainedModel,
    tokenizer: Any = None,
    dtype: torch.dtype | str | None = None,
    **settings: Any,
) -> tuple[PreTrainedModel, Any]:
    """Turn any Hugging Face causal LM (object or local path) into an untrained zip2zip model and its tokenizer.

    `settings` are [`Zip2ZipConfig`] fields (`max_codebook_size`, `max_subtokens`, `encoder_num_layers`,
    `reconstruction_loss_weight`, ...). The tokenizer defaults to the one saved with the base model; its special
    and added tokens become the codec's never-merged ids.
    """
    from zip2zip.model.modeling_zip2zip import Zip2ZipForCausalLM
    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    if tokenizer is None:
        if not isinstance(base_model_or_path, (str, os.PathLike)):
            raise ValueError(
                "zip2zip_from_base needs tokenizer= when given a model object (it cannot find the base tokenizer)"
            )
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(base_model_or_path))
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer))
    model = Zip2ZipForCausalLM.from_base(base_model_or_path, tokenizer=tokenizer, dtype=dtype, **settings)
    ensure_zero_init(model)
    return model, Zip2ZipTokenizer.from_base(tokenizer, model.config)


# The codec settings a trained model can be read (or further trained) under without new weights: fewer base
# tokens per hypertoken (the hyper-encoders know every shorter length), other never-merged ids, and an initial
# codebook (the hyper-encoders embed any entry from its constituents). The rest shape the weights: the codebook
# size fixes the logits' width.
READING_SETTINGS = ("max_subtokens", "protect_digits", "protect_whitespace", "initial_codebook")


def change_codec(model: Any, base_tokenizer: Any, **changes: Any) -> Any:
    """Change a zip2zip model's codec settings in place and return the `Zip2ZipTokenizer` that matches them.

    ``changes`` are :data:`READING_SETTINGS`: ``max_subtokens`` up to the model's own, ``protect_digits``,
    ``protect_whitespace``, ``initial_codebook`` (a list of base-id runs, a :class:`zip2zip.seeding.Seed`, or
    None for none). A smaller ``max_subtokens`` is for reading: set it back before saving, since the
    saved weights keep the slots of :func:`built_max_subtokens`. The never-merged ids are recomputed from
    ``base_tokenizer`` (the model's base tokenizer), so the model and the returned tokenizer build the same
    codebooks; a seed the model already has loses the entries the new settings cannot hold (with a warning), a
    seed given here must fit them. Use it to read a trained model with less compression
    (``benchmarks.codec_settings``), to give it a seed, or to continue training it under another codec
    (``examples/train_smollm2.py --init-from``).
    """
    from zip2zip.model.configuration_zip2zip import default_disabled_ids, vocab_fingerprint
    from zip2zip.model.lzw import LZWCodec
    from zip2zip.model.lzw_seed import restrict_initial_codebook
    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    config = core_model(model).config
    unknown = sorted(set(changes) - set(READING_SETTINGS))
    if unknown:
        raise ValueError(
            f"change_codec cannot change {unknown}: they shape the trained weights; only {list(READING_SETTINGS)} "
            "can change after training"
        )
    built = built_max_subtokens(model)
    subtokens = changes.get("max_subtokens", config.max_subtokens)
    if isinstance(subtokens, bool) or not isinstance(subtokens, int) or not 1 <= subtokens <= built:
        raise ValueError(
            f"max_subtokens={subtokens!r}: the model was built for hypertokens of at most {built} base tokens, "
            f"so pass an int in 1..{built}"
        )
    fingerprint = getattr(config, "base_vocab_fingerprint", None)
    if fingerprint is not None and fingerprint != vocab_fingerprint(base_tokenizer):
        raise ValueError(
            f"base_tokenizer's vocabulary (fingerprint {vocab_fingerprint(base_tokenizer)}) is not the model's "
            f"({fingerprint}); pass the base tokenizer the model was made from"
        )
    given_seed = "initial_codebook" in changes
    seed = changes.pop("initial_codebook", None) if given_seed else config.initial_codebook
    seed = _seed_runs(seed, fingerprint)
    disabled = default_disabled_ids(
        base_tokenizer,
        bool(changes.get("protect_digits", config.protect_digits)),
        bool(changes.get("protect_whitespace", config.protect_whitespace)),
    )
    if given_seed:  # refused, naming the entry, before anything changes
        LZWCodec(config.base_vocab_size, config.max_codebook_size, subtokens, disabled, initial_codebook=seed)
    else:
        kept = restrict_initial_codebook(seed, subtokens, disabled)
        if len(kept) < len(seed):
            logger.warning(
                "%d of the %d initial codebook entries are longer than max_subtokens=%d or hold a never-merged id "
                "under the new settings; they were dropped",
                len(seed) - len(kept),
                len(seed),
                subtokens,
            )
        seed = kept
    for name, value in changes.items():
        setattr(config, name, value)
    config.disabled_ids = disabled
    config.initial_codebook = [list(entry) for entry in seed] or None
    return Zip2ZipTokenizer.from_base(base_tokenizer, config)


def _seed_runs(seed: Any, fingerprint: str | None) -> list[tuple[int, ...]]:
    """The runs of a seed given as runs or as a `Seed` (whose base vocabulary must be the model's)."""
    if seed is None:
        return []
    entries = getattr(seed, "entries", None)
    if entries is None:
        return [tuple(entry) for entry in seed]
    built_for = getattr(seed, "base_vocab_fingerprint", None)
    if fingerprint is not None and built_for is not None and built_for != fingerprint:
        raise ValueError(
            f"initial_codebook: the seed was built for a base vocabulary of fingerprint {built_for}, but the model's "
            f"is {fingerprint} (base_vocab_fingerprint): its ids would name other tokens. Build the seed with the "
            "model's base tokenizer (zip2zip seed --tokenizer ...)"
        )
    return [tuple(entry) for entry in entries]


def built_max_subtokens(model: Any) -> int:
    """The longest hypertoken a model's weights know: its input encoder's constituent slots (the config's ``M``
    when the encoder has no per-slot embedding). A model read with a smaller ``M`` must be saved with this one."""
    core = core_model(model)
    slots = getattr(getattr(core, "input_encoder", None), "slot_embeddings", None)
    return int(slots.num_embeddings) if slots is not None else int(core.config.max_subtokens)


def ensure_zero_init(model: nn.Module) -> None:
    """Make an untrained hypertoken start at its first (or mean) constituent, as `encoder_init` promises.

    With `encoder_init="residual"` or `"mean"`, a hyper-encoder's output projection must start at zero (the
    zip2zip++ fix: otherwise the random correction dwarfs the constituent and the first steps see losses of
    50+ nats instead of about the base model's). Training depends on it, so it is checked (and enforced) here.
    """
    if getattr(model.config, "encoder_init", "random") == "random":
        return
    for name in ("input_encoder", "output_encoder"):
        encoder = getattr(model, name, None)
        projection = getattr(encoder, "out_proj", None)
        if projection is None:
            continue
        if projection.weight.detach().abs().max() > 0 or (
            projection.bias is not None and projection.bias.detach().abs().max() > 0
        ):
            logger.warning(
                "%s.out_proj was not zero-initialised; zeroing it (encoder_init=%r)",
                name,
                model.config.encoder_init,
            )
            with torch.no_grad():
                projection.weight.zero_()
                if projection.bias is not None:
                    projection.bias.zero_()
