"""Configuration of a zip2zip model: a base causal LM (``text_config``) plus codec and hyper-encoder settings.

It also holds the two rules a tokenizer and a model must share, so that both build the same codebooks:
which base ids are never merged (:func:`default_disabled_ids`) and whether two sets of codec settings agree
(:func:`codec_mismatches`, which reads config objects, tokenizers and saved JSON dicts alike), including
which base vocabulary both were built from (:func:`vocab_fingerprint`).

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only the standard
library, transformers and the codec's seed checks (``lzw_seed.py``).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from typing import Any, Literal

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .lzw_seed import check_initial_codebook

__all__ = [
    "CODEC_SETTINGS",
    "TRAINED_CODEC_SETTINGS",
    "Zip2ZipConfig",
    "codec_mismatch_message",
    "codec_mismatches",
    "default_disabled_ids",
    "describe_codec_mismatches",
    "folder_mismatch_message",
    "missing_fingerprint_message",
    "read_setting",
    "trained_codec_changes",
    "trained_codec_message",
    "vocab_fingerprint",
    "whitespace_ids",
]

# The codec settings, with these exact names, on the tokenizer, in tokenizer_config.json and on the model
# config. A tokenizer and a model whose settings differ build different codebooks from the same ids.
CODEC_SETTINGS = (
    "base_vocab_size",
    "max_codebook_size",
    "max_subtokens",
    "disabled_ids",
    "protect_digits",
    "protect_whitespace",
    "initial_codebook",
)

# What the weights were trained with and mean nothing without (recorded in `trained_codec` when `trained` is set):
# the vocabulary layout, which runs merge, and where each code sits.
TRAINED_CODEC_SETTINGS = (
    "base_vocab_size",
    "max_codebook_size",
    "max_subtokens",
    "disabled_ids",
    "position_mode",
    "initial_codebook",
)

_POOLINGS = ("mean", "first", "last")
_INITS = ("residual", "mean", "random")
_POSITION_MODES = ("compressed", "base")
# Hypertoken ids must stay inside int32: tokenizers, collators and exported graphs commonly carry ids as int32.
_MAX_ID = 2**31 - 1


class Zip2ZipConfig(PreTrainedConfig):
    r"""
    Configuration of [`Zip2ZipForCausalLM`]: a base causal LM that reads and writes LZW hypertokens.

    The base model's own configuration lives in `text_config`, so `get_text_config()`, the KV caches of
    `generate()` and TRL all see the decoder they expect. Everything else describes the vocabulary extension.

    Args:
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Configuration of the base causal LM (any `AutoModelForCausalLM` architecture). Defaults to Llama.
        base_vocab_size (`int`, *optional*):
            `V`: the number of base ids, i.e. the base model's embedding rows. Defaults to
            `text_config.vocab_size`. Hypertoken ids are `V .. V + max_codebook_size - 1`.
        max_codebook_size (`int`, *optional*, defaults to 2048):
            `C`: the most hypertokens one sequence can create. Logits have the fixed width `V + C`.
        max_subtokens (`int`, *optional*, defaults to 4):
            `M`: the most base tokens one hypertoken stands for. `1` disables merging: the model is then
            exactly the base model.
        disabled_ids (`list[int]`, *optional*):
            Base ids that are never merged (pad, bos/eos, special and chat tokens, digits when
            `protect_digits`, whitespace when `protect_whitespace`). Must match the tokenizer's, or codebooks
            disagree.
        protect_digits (`bool`, *optional*, defaults to `True`):
            Whether digit tokens were added to `disabled_ids` (zip2zip++ finding: arithmetic improves when
            numbers are never merged). Recorded for the tokenizer; the ids themselves are in `disabled_ids`
            (see [`default_disabled_ids`]).
        protect_whitespace (`bool`, *optional*, defaults to `True`):
            Whether whitespace-only tokens (spaces, tabs, newlines and their runs) were added to `disabled_ids`.
            Indentation is layout: how deep the next line sits depends on nesting the model has to infer, and a
            merged run of it ("newline + two tabs + `if`") makes the model choose that depth and the following
            word in one code. It costs compression (benchmarks/README.md, "Codec settings at inference"); on Go,
            tab-indented and unseen in training, it brought the shipped model closest to its base. Recorded for
            the tokenizer, like `protect_digits`.
        initial_codebook (`list[list[int]]`, *optional*):
            A seed: runs of 2..`max_subtokens` base ids that every sequence knows before its first token, so short
            texts compress from the start. Entry `k` is hypertoken `V + k`; the entries a sequence creates come
            after it, and `max_codebook_size` counts both. Prefix-closed (every prefix of 2 or more ids is an
            earlier entry), free of disabled ids. The seed needs no weights (the hyper-encoders embed any entry
            from its constituents), and its vectors are computed once per model, not per sequence. Must match
            the tokenizer's. `None`: every codebook starts empty.
        base_vocab_fingerprint (`str`, *optional*):
            [`vocab_fingerprint`] of the base tokenizer the model was built with (`from_base` records it): the
            tokenizer records its own, and loading, `generate(tokenizer=...)` and training refuse a tokenizer
            whose base vocabulary differs. `None` (models saved before it existed) skips that check.
        encoder_num_layers (`int`, *optional*, defaults to 2):
            Transformer layers of each hyper-encoder (the paper uses 2; 4 was worse in zip2zip++).
        encoder_num_heads (`int`, *optional*):
            Attention heads of each hyper-encoder. Defaults to the largest of the base model's head count
            and its divisors that divides `encoder_hidden_size`.
        encoder_hidden_size (`int`, *optional*):
            Width of the hyper-encoders. `None` = half the base model's hidden size, rounded down to a
            multiple of the head count (`encoder_num_heads` when given, else the base model's), e.g. 288 with
            9 heads for SmolLM2's 576: the recipe's measured choice (a third of the full-width encoder
            weights, and it learned faster). A width below the model's adds an input projection (and the
            output projection maps back to the model width). Pass the base hidden size for full width.
        encoder_intermediate_size (`int`, *optional*):
            MLP width of the hyper-encoder layers. Defaults to `encoder_hidden_size`: the encoders then cost
            about a tenth of a forward pass (they run over every codebook entry and every candidate), which
            keeps the compressed forward well below the base model's cost per base token. The paper's
            encoders used four times the width; raise it when training budget matters more than speed.
        encoder_learned_positions (`bool`, *optional*, defaults to `True`):
            Add a learned embedding per constituent slot (1..M), so the encoder knows the constituents' order.
        encoder_pooling (`str`, *optional*, defaults to `"mean"`):
            How the encoder's per-constituent states become one vector: `"mean"` (over the real
            constituents), `"first"` or `"last"`.
        tie_encoders (`bool`, *optional*, defaults to `False`):
            Use one hyper-encoder for input embeddings and output (unembedding) vectors. zip2zip++ found
            untied encoders better, because the two roles learn different structure.
        encoder_init (`str`, *optional*, defaults to `"mean"`):
            `"mean"`: a hypertoken vector is the mean of its constituents' vectors plus a correction from the
            encoder whose output projection starts at zero; `"residual"`: the first constituent's vector plus
            that correction (zip2zip++); `"random"`: the encoder output alone, randomly initialised. The first
            two make an untrained model behave sensibly; with `"residual"` an untrained hypertoken's logit
            ties exactly with its first constituent's, so greedy decoding is decided by float noise.
        encoder_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the hyper-encoder MLPs.
        encoder_layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the hyper-encoder layer norms.
        position_mode (`str`, *optional*, defaults to `"compressed"`):
            `"compressed"`: each code takes the next position; `"base"`: each code sits at the base-stream
            index of its last constituent (zip2zip++), so relative distances mean what they meant in
            pretraining.
        canonical_mask (`bool`, *optional*, defaults to `False`):
            Also give `-inf` to every code that would make the stream non-canonical: after a code `c`, any code
            starting with a base id `x` for which `c + x` is in the codebook (the LZW encoder would have emitted
            that entry instead). The model then puts no probability on streams the encoder never writes, so the
            strict likelihood of a text is its exact likelihood, and generation writes canonical streams. Not
            applied to the first code after a prompt or context (it starts a new segment), nor where a label
            breaks the rule (segment boundaries inside training rows).
        reconstruction_loss_weight (`float`, *optional*, defaults to 0.0):
            Weight of the auxiliary reconstruction loss (paper Eq. 3, lambda = 0.1 there): a small decoder
            predicts each hypertoken's constituents from its input embedding. `0` builds no decoder.
        reconstruction_max_entries (`int`, *optional*, defaults to 512):
            At most this many distinct codebook entries per batch enter the reconstruction loss (an evenly
            spaced subset), which bounds its `(entries, M, V)` logits.
        initializer_range (`float`, *optional*):
            Standard deviation of the hyper-encoder initialisation. Defaults to the base model's.
        trained (`bool`, *optional*, defaults to `False`):
            Whether the hyper-encoders (and any adapters) were trained: set by `Zip2ZipSFTTrainer.save_model` and
            by the shipped checkpoint's assembly, carried by export. `from_base` makes untrained models; tools
            (the command line, the demo, model cards) read this field and nothing else to say which a model is.
        trained_codec (`dict`, *optional*):
            The codec settings the weights were trained with ([`TRAINED_CODEC_SETTINGS`]), recorded with `trained`
            by [`~Zip2ZipConfig.mark_trained`]. Loading a config whose settings differ from it warns, naming each
            field: the weights then read and write codes under settings they never learned (reading a trained
            model under other settings on purpose is the package's `change_codec`; training again records
            the new settings).
    """

    model_type = "zip2zip"
    sub_configs_defaults = {"text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")}  # noqa: RUF012

    text_config: dict | PreTrainedConfig | None = None
    base_vocab_size: int | None = None
    max_codebook_size: int = 2048
    max_subtokens: int = 4
    disabled_ids: list[int] | None = None
    protect_digits: bool = True
    protect_whitespace: bool = True
    initial_codebook: list[list[int]] | None = None
    base_vocab_fingerprint: str | None = None
    encoder_num_layers: int = 2
    encoder_num_heads: int | None = None
    encoder_hidden_size: int | None = None
    encoder_intermediate_size: int | None = None
    encoder_learned_positions: bool = True
    encoder_pooling: Literal["mean", "first", "last"] = "mean"
    tie_encoders: bool = False
    encoder_init: Literal["residual", "mean", "random"] = "mean"
    encoder_hidden_act: str = "gelu"
    encoder_layer_norm_eps: float = 1e-5
    position_mode: Literal["compressed", "base"] = "compressed"
    canonical_mask: bool = False
    reconstruction_loss_weight: float = 0.0
    reconstruction_max_entries: int = 512
    initializer_range: float | None = None
    trained: bool = False
    trained_codec: dict | None = None

    def __post_init__(self, **kwargs):
        # The base class sets the attention implementation on every sub-config (None when not given): keep
        # the one a ready base config already carries.
        text_attn = getattr(self.text_config, "_attn_implementation_internal", None)
        super().__post_init__(**kwargs)
        if kwargs.get("attn_implementation") is None and text_attn is not None:
            self.text_config._attn_implementation = text_attn
        text = self.text_config
        if self.base_vocab_size is None:
            self.base_vocab_size = getattr(text, "vocab_size", None)
        self.disabled_ids = sorted({int(i) for i in (self.disabled_ids or [])})
        hidden = getattr(text, "hidden_size", None)
        base_heads = getattr(text, "num_attention_heads", 1) or 1
        if self.encoder_hidden_size is None and hidden is not None:
            self.encoder_hidden_size = _default_width(hidden, self.encoder_num_heads or base_heads)
        if self.encoder_intermediate_size is None and self.encoder_hidden_size is not None:
            self.encoder_intermediate_size = self.encoder_hidden_size
        if self.encoder_num_heads is None and self.encoder_hidden_size is not None:
            self.encoder_num_heads = _default_heads(base_heads, self.encoder_hidden_size)
        if self.initializer_range is None:
            self.initializer_range = getattr(text, "initializer_range", 0.02) or 0.02
        self.validate_zip2zip()

    def validate_zip2zip(self) -> None:
        """Check every zip2zip field; raise ValueError naming the field, its value and the fix."""

        def integer(name: str, low: int) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"Zip2ZipConfig.{name} must be an int >= {low}, got {value!r} ({type(value).__name__}); in a "
                    f"saved folder, write {name} in config.json as a JSON number (the value the weights were made with)"
                )
            return value

        if self.base_vocab_size is None:
            raise ValueError(
                "Zip2ZipConfig.base_vocab_size is None and text_config has no vocab_size: pass "
                "base_vocab_size (the base model's number of embedding rows)"
            )
        V = integer("base_vocab_size", 1)
        C = integer("max_codebook_size", 0)
        integer("max_subtokens", 1)
        if V + C - 1 > _MAX_ID:
            raise ValueError(
                f"Zip2ZipConfig.max_codebook_size={C} with base_vocab_size={V} gives hypertoken ids up to "
                f"{V + C - 1}, beyond the int32 id range ({_MAX_ID}); lower max_codebook_size to at most {_MAX_ID + 1 - V}"
            )
        bad = [i for i in self.disabled_ids if not 0 <= i < V]
        if bad:
            raise ValueError(
                f"Zip2ZipConfig.disabled_ids contains {bad[:5]}, outside the base vocabulary [0, {V}); "
                "disabled ids must be base token ids"
            )
        seed = check_initial_codebook(
            self.initial_codebook,
            V,
            C,
            self.max_subtokens,
            self.disabled_ids,
            "Zip2ZipConfig.initial_codebook",
        )
        # Plain lists of ints (JSON), whatever sequences were given; None when empty, as before seeds existed.
        self.initial_codebook = [list(entry) for entry in seed] or None
        for name, allowed in (
            ("encoder_pooling", _POOLINGS),
            ("encoder_init", _INITS),
            ("position_mode", _POSITION_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Zip2ZipConfig.{name}={getattr(self, name)!r} is not one of {allowed}")
        integer("encoder_num_layers", 0)
        if self.encoder_hidden_size is not None:
            width = integer("encoder_hidden_size", 1)
            heads = integer("encoder_num_heads", 1)
            integer("encoder_intermediate_size", 1)
            if width % heads:
                raise ValueError(
                    f"Zip2ZipConfig.encoder_hidden_size={width} is not divisible by encoder_num_heads={heads}; "
                    "pick a head count that divides the encoder width"
                )
        if not isinstance(self.canonical_mask, bool):
            raise ValueError(
                f"Zip2ZipConfig.canonical_mask must be True or False, got {self.canonical_mask!r}"
            )
        weight = self.reconstruction_loss_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"Zip2ZipConfig.reconstruction_loss_weight must be a float >= 0, got {weight!r}")
        integer("reconstruction_max_entries", 1)
        if self.trained_codec is not None and not isinstance(self.trained_codec, Mapping):
            raise ValueError(
                f"Zip2ZipConfig.trained_codec must be a dict of the settings the weights were trained with "
                f"{TRAINED_CODEC_SETTINGS}, got {self.trained_codec!r}"
            )

    def mark_trained(self) -> None:
        """Record that the weights were trained, and with which codec settings (``trained_codec``)."""
        self.trained = True
        self.trained_codec = {name: _plain(getattr(self, name)) for name in TRAINED_CODEC_SETTINGS}

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """As transformers' ``from_pretrained``; warns when the codec settings differ from ``trained_codec``."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        where = f"{pretrained_model_name_or_path} (config.json)"
        changes = trained_codec_changes(config.trained_codec, config)
        if changes:
            warnings.warn(trained_codec_message(where, changes), stacklevel=2)
        elif config.trained and config.trained_codec is None:
            warnings.warn(
                f"{pretrained_model_name_or_path}: config.json marks the model trained but records no trained_codec, "
                "so its codec settings cannot be checked against the ones its weights learned. If they are "
                "unchanged since training, record them: config.mark_trained(), then config.save_pretrained(folder).",
                stacklevel=2,
            )
        return loaded

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """As transformers' `from_dict`; a field held wrongly is named with the file it comes from (config.json)."""
        try:
            return super().from_dict(config_dict, **kwargs)
        except ValueError as error:
            if str(error).startswith("Zip2ZipConfig."):
                raise ValueError(f"config.json: {error}") from None
            raise

    @property
    def codebook_vocab_size(self) -> int:
        """`V + C`: the width of the model's logits (base ids, then every hypertoken slot)."""
        return self.base_vocab_size + self.max_codebook_size


def _default_width(hidden: int, heads: int) -> int:
    """Half of ``hidden``, rounded down to a multiple of ``heads`` (never below one head's width of 1)."""
    half = max(int(hidden) // 2, 1)
    if isinstance(heads, int) and not isinstance(heads, bool) and 0 < heads <= half:
        return half - half % heads
    return half


def _default_heads(base_heads: int, width: int) -> int:
    """The largest divisor of ``base_heads`` that divides ``width`` (heads of a narrowed encoder)."""
    for heads in range(base_heads, 0, -1):
        if base_heads % heads == 0 and width % heads == 0:
            return heads
    return 1


# ----------------------------------------------------------------------------- rules shared with the tokenizer

# Markers a vocabulary puts in front of a word-initial piece (byte-level BPE, SentencePiece, plain space).
_WORD_START_MARKERS = ("Ġ", "▁", " ")


def never_merged_ids(
    text_config: Any,
    base_tokenizer: Any = None,
    protect_digits: bool | None = None,
    protect_whitespace: bool | None = None,
) -> list[int]:
    """The ids a model built on ``text_config`` keeps from merging: [`default_disabled_ids`] of the tokenizer, or,
    without one, only the config's bos/eos/pad ids (with a warning: chat markers would merge)."""
    if protect_digits is None:
        protect_digits = Zip2ZipConfig.protect_digits
    if protect_whitespace is None:
        protect_whitespace = Zip2ZipConfig.protect_whitespace
    if base_tokenizer is not None:
        return default_disabled_ids(base_tokenizer, bool(protect_digits), bool(protect_whitespace))
    ids = []
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(text_config, name, None)
        ids.extend([] if value is None else [value] if isinstance(value, int) else [int(v) for v in value])
    warnings.warn(
        "from_base got a model object without `tokenizer=` or `disabled_ids=`: only the config's "
        f"bos/eos/pad ids {sorted(set(ids))} are kept from merging; pass the base tokenizer so "
        "special and chat tokens are protected too",
        stacklevel=3,
    )
    return ids


def default_disabled_ids(
    base_tokenizer: Any, protect_digits: bool = False, protect_whitespace: bool = False
) -> list[int]:
    """The base ids that must never be merged into hypertokens, sorted.

    Every special and added token (chat markers, pad, bos/eos, unk): a merged eos could not stop generation,
    a merged pad would change the codebook of a padded row, and a merged chat marker would hide turn
    boundaries. With ``protect_digits`` also every vocabulary token made only of ASCII digits, optionally
    behind one word-start marker (``Ġ12``, ``▁7``): numbers are then never merged, which the zip2zip++
    experiments found to help arithmetic. (SmolLM2 splits numbers into single digits, so that adds the ten
    ids ``0``..``9``; Llama-3 vocabularies hold every 1-3 digit piece.) With ``protect_whitespace`` also every
    token whose text is only whitespace (``" "``, ``"\\t\\t"``, ``"\\n    "``: 166 of SmolLM2's ids).

    `Zip2ZipForCausalLM.from_base` and `Zip2ZipTokenizer` both call this, so a model and a tokenizer built
    from the same base agree.
    """
    ids: set[int] = set(getattr(base_tokenizer, "all_special_ids", None) or [])
    ids.update(getattr(base_tokenizer, "added_tokens_decoder", None) or {})
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(base_tokenizer, name, None)
        ids.update(value if isinstance(value, (list, tuple)) else [value])
    if protect_digits:
        for token, index in base_tokenizer.get_vocab().items():
            body = token[1:] if token[:1] in _WORD_START_MARKERS else token
            if body and body.isascii() and body.isdigit():
                ids.add(index)
    if protect_whitespace:
        ids.update(whitespace_ids(base_tokenizer))
    return sorted(i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i >= 0)


def whitespace_ids(base_tokenizer: Any) -> list[int]:
    """The ids of the vocabulary tokens whose text is only whitespace (spaces, tabs, newlines, their runs)."""
    ids = sorted(base_tokenizer.get_vocab().values())
    texts = [
        base_tokenizer.convert_tokens_to_string([token])
        for token in base_tokenizer.convert_ids_to_tokens(ids)
    ]
    return [index for index, text in zip(ids, texts, strict=True) if text and not text.strip()]


def read_setting(settings: Any, name: str) -> Any:
    """``settings[name]`` for a mapping, ``settings.name`` for an object, None when absent or for None.

    Duck typing on purpose: the remote-code loader can create two copies of the config class, so isinstance
    would lie."""
    if settings is None:
        return None
    if isinstance(settings, Mapping):
        return settings.get(name)
    return getattr(settings, name, None)


def vocab_fingerprint(tokenizer_or_vocab: Any) -> str:
    """A stable hash of a base vocabulary: ``"sha256:"`` + sha256 of its ``[[id, token], ...]`` pairs sorted by id.

    Takes a tokenizer (its ``get_vocab()``, added tokens included) or a ``{token: id}`` mapping. Two
    vocabularies with the same fingerprint map every id to the same token, so a model and a tokenizer that
    record the same fingerprint read ids the same way.
    """
    vocab = tokenizer_or_vocab if isinstance(tokenizer_or_vocab, Mapping) else tokenizer_or_vocab.get_vocab()
    pairs = sorted((int(index), str(token)) for token, index in vocab.items())
    payload = json.dumps(pairs, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


def codec_mismatches(model: Any, tokenizer: Any) -> dict[str, tuple[Any, Any]]:
    """The settings on which a model and a tokenizer disagree: ``{name: (model's, tokenizer's)}``.

    Both sides are anything that carries the settings: a `Zip2ZipConfig`, a `Zip2ZipTokenizer`, or the
    dicts of a saved ``config.json`` / ``tokenizer_config.json``. Compared: the codec settings
    (:data:`CODEC_SETTINGS`; `disabled_ids` as sets, returned sorted; `initial_codebook` entry by entry, in
    order, as lists of tuples) and `base_vocab_fingerprint`. A setting either side lacks (a base tokenizer, a
    folder saved before the fingerprint existed) is not compared, except the initial codebook: where both
    sides carry codec settings, a side without one has none (a seed on one side only changes every code).
    Empty when the two build the same codebooks from the same base vocabulary.
    """
    mismatches: dict[str, tuple[Any, Any]] = {}
    for name in ("base_vocab_size", "max_codebook_size", "max_subtokens"):
        mine, theirs = read_setting(model, name), read_setting(tokenizer, name)
        if mine is not None and theirs is not None and int(mine) != int(theirs):
            mismatches[name] = (int(mine), int(theirs))
    mine, theirs = read_setting(model, "disabled_ids"), read_setting(tokenizer, "disabled_ids")
    if mine is not None and theirs is not None:
        mine, theirs = {int(i) for i in mine}, {int(i) for i in theirs}
        if mine != theirs:
            mismatches["disabled_ids"] = (sorted(mine), sorted(theirs))
    if (
        read_setting(model, "max_subtokens") is not None
        and read_setting(tokenizer, "max_subtokens") is not None
    ):
        mine, theirs = _seed_of(model), _seed_of(tokenizer)
        if mine != theirs:
            mismatches["initial_codebook"] = (mine, theirs)
    for name, kind in (
        ("protect_digits", bool),
        ("protect_whitespace", bool),
        ("base_vocab_fingerprint", str),
    ):
        mine, theirs = read_setting(model, name), read_setting(tokenizer, name)
        if mine is not None and theirs is not None and kind(mine) != kind(theirs):
            mismatches[name] = (kind(mine), kind(theirs))
    return mismatches


def _seed_of(settings: Any) -> list[tuple[int, ...]]:
    """The initial codebook a side carries, as a list of id tuples (empty when it has none)."""
    seed = read_setting(settings, "initial_codebook") or ()
    try:
        return [tuple(int(i) for i in entry) for entry in seed]
    except (TypeError, ValueError):
        return [("<not a list of base-id runs>",)]


def describe_codec_mismatches(
    mismatches: Mapping[str, tuple[Any, Any]], model: str = "model", tokenizer: str = "tokenizer"
) -> list[str]:
    """One line per mismatch of :func:`codec_mismatches`, naming the field and both sides' values."""
    lines = []
    for name, (theirs, mine) in mismatches.items():
        if name == "disabled_ids":
            only_mine, only_theirs = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
            lines.append(
                f"disabled_ids: {len(mine)} in the {tokenizer} vs {len(theirs)} in the {model}; only in the "
                f"{tokenizer}: {_abbreviate(only_mine)}, only in the {model}: {_abbreviate(only_theirs)}"
            )
        elif name == "initial_codebook":
            first = next(
                (k for k, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs))
            )
            shown = [list(side[first]) if first < len(side) else "none" for side in (mine, theirs)]
            lines.append(
                f"initial_codebook: {len(mine)} entries in the {tokenizer} vs {len(theirs)} in the {model}; "
                f"first difference at entry {first}: {shown[0]} vs {shown[1]} (hypertoken ids would name other runs)"
            )
        elif name == "base_vocab_fingerprint":
            lines.append(
                f"base_vocab_fingerprint: {tokenizer} {_short(mine)} vs {model} {_short(theirs)} (the two were "
                "built from different base vocabularies, so the same id means a different token)"
            )
        else:
            lines.append(f"{name}: {tokenizer} {mine} vs {model} {theirs}")
    return lines


def codec_mismatch_message(
    mismatches: Mapping[str, tuple[Any, Any]],
    model: str = "model",
    tokenizer: str = "tokenizer",
    fix: str | None = None,
) -> str:
    """The ValueError text for a non-empty :func:`codec_mismatches`: what differs, then how to fix it."""
    if fix is None:
        fix = (
            "Rebuild the tokenizer with Zip2ZipTokenizer.from_base(base_tokenizer, model.config), or load both "
            "from the same saved folder."
        )
    if "base_vocab_fingerprint" in mismatches:
        fix += (
            " The base tokenizer must be the one the model was built from (its vocabulary fingerprint is "
            "recorded as base_vocab_fingerprint in config.json and tokenizer_config.json)."
        )
    return (
        f"the {tokenizer} and the {model} use different codec settings, so they would build different codebooks "
        "from the same ids:\n  "
        + "\n  ".join(describe_codec_mismatches(mismatches, model, tokenizer))
        + "\n"
        + fix
    )


def folder_mismatch_message(folder: Any, mismatches: Mapping[str, tuple[Any, Any]]) -> str:
    """The ValueError text for a saved folder whose config.json and tokenizer files disagree."""
    fix = (
        "Restore the folder's original files, or re-save the tokenizer from the model's settings: "
        f"Zip2ZipTokenizer.from_base(base_tokenizer, model.config).save_pretrained({str(folder)!r}), with the "
        "base tokenizer the model was made from."
    )
    return f"{folder}: " + codec_mismatch_message(
        mismatches,
        "model config (config.json)",
        "tokenizer files (tokenizer_config.json, base_tokenizer.json)",
        fix,
    )


def trained_codec_changes(trained_codec: Any, settings: Any) -> dict[str, tuple[Any, Any]]:
    """``{name: (trained, now)}`` for each recorded setting ``settings`` holds with another value (empty when
    ``trained_codec`` is None). ``settings`` is a config, a tokenizer or a saved dict; `disabled_ids` compare as sets."""
    changes: dict[str, tuple[Any, Any]] = {}
    if not isinstance(trained_codec, Mapping):
        return changes
    for name in TRAINED_CODEC_SETTINGS:
        trained, now = trained_codec.get(name), read_setting(settings, name)
        if trained is None or now is None:
            continue
        if name == "disabled_ids":
            trained, now = sorted({int(i) for i in trained}), sorted({int(i) for i in now})
        elif name == "initial_codebook":
            trained, now = [list(map(int, e)) for e in trained], [list(map(int, e)) for e in now]
        if trained != now:
            changes[name] = (trained, now)
    return changes


def trained_codec_message(where: str, changes: Mapping[str, tuple[Any, Any]]) -> str:
    """The warning for :func:`trained_codec_changes`: each field, trained vs now, and what to do."""
    lines = []
    for name, (trained, now) in changes.items():
        if name == "disabled_ids":
            trained, now = set(trained), set(now)
            lines.append(
                f"disabled_ids: {len(now)} now vs {len(trained)} in training; now merged: "
                f"{_abbreviate(sorted(trained - now))}, now never merged: {_abbreviate(sorted(now - trained))}"
            )
        else:
            lines.append(f"{name}: {now!r} now vs {trained!r} in training")
    return (
        f"{where}: the codec settings differ from the ones the weights were trained with (trained_codec), so the "
        "model reads and writes codes under settings it never learned and its outputs change:\n  "
        + "\n  ".join(lines)
        + "\nRestore these fields from trained_codec (in config.json and tokenizer_config.json), or, to read the "
        "model under other settings on purpose, keep them (the zip2zip package's change_codec); training again "
        "records the new settings."
    )


def missing_fingerprint_message(folder: Any) -> str:
    """The ValueError text for a folder whose model config records no base vocabulary to check the tokenizer by."""
    return (
        f"{folder}: config.json has no base_vocab_fingerprint, so the base vocabulary of the tokenizer saved there "
        "(base_tokenizer.json) cannot be checked against the one the model was built with: an edited or replaced "
        "base tokenizer would make ids mean other tokens, silently. Restore the folder's original config.json, or, "
        "if base_tokenizer.json is the model's own base tokenizer, record it: set base_vocab_fingerprint in "
        "config.json to vocab_fingerprint(base tokenizer) (configuration_zip2zip.py; the tokenizer's "
        "base_vocab_fingerprint attribute), then save or export the folder again. Models made with "
        "Zip2ZipForCausalLM.from_base(..., tokenizer=base_tokenizer) record it."
    )


def _plain(value: Any) -> Any:
    """A setting as JSON keeps it: an id set sorted, a list of runs (the initial codebook) as lists, in order."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return [[int(i) for i in entry] for entry in value]
    return sorted(int(i) for i in value) if isinstance(value, (list, tuple, set, frozenset)) else value


def _short(fingerprint: Any) -> str:
    text = str(fingerprint)
    return text if len(text) <= 23 else text[:23] + "..."


def _abbreviate(ids: list[int], limit: int = 12) -> str:
    if len(ids) <= limit:
        return str(ids)
    return f"[{', '.join(map(str, ids[:limit]))}, ... ({len(ids) - limit} more)]"


Zip2ZipConfig.register_for_auto_class()


class _Zip2ZipForCausalLMByAutoClass:
    """Stands in for `Zip2ZipForCausalLM` in the `transformers` namespace: loads through `AutoModelForCausalLM`.

    `transformers serve` looks a checkpoint's architecture up as ``getattr(transformers, architectures[0])``,
    where remote-code classes never are; this name lets it load a zip2zip repo (the real class comes back).
    """

    @staticmethod
    def from_pretrained(pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)


def _name_architecture_in_transformers() -> None:
    """Name the stand-in in `transformers` as the server's model manager sees it: its own `transformers` global
    can be another module object than ``sys.modules["transformers"]`` (transformers re-creates its lazy module)."""
    import sys

    manager = sys.modules.get("transformers.cli.serving.model_manager")
    for namespace in (sys.modules.get("transformers"), getattr(manager, "transformers", None)):
        if namespace is not None and "Zip2ZipForCausalLM" not in vars(namespace):
            namespace.Zip2ZipForCausalLM = _Zip2ZipForCausalLMByAutoClass


_name_architecture_in_transformers()
