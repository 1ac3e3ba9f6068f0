"""Zip2ZipTokenizer: a Hugging Face tokenizer whose ids are LZW-compressed base token ids.

Users, pipelines and TRL only ever meet hypertokens through this class, so it behaves like any transformers 5
tokenizer: ``tok(text)``, ``tok(batch, padding=True, return_tensors="pt")``, ``tok.decode(ids)``,
``tok.apply_chat_template(chat)``, ``save_pretrained``/``from_pretrained`` and
``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)``.

How it works: the *base* tokenizer (a ``tokenizers``-backed Hugging Face tokenizer) turns text into base ids,
special tokens included; the LZW codec (:mod:`lzw`) compresses each sequence into codes (base ids and
hypertoken ids ``V .. V+C-1``); only then are sequences truncated (``max_length`` counts codes), padded and
turned into tensors. ``decode`` runs the other way: LZW-decode the *whole* sequence (a hypertoken is defined
by the codes before it), then base-decode. Special tokens, pad and other added tokens are *disabled ids*:
never merged, so eos stays one id at the end of a compressed stream.

The base tokenizer is saved beside this one as ``base_tokenizer.json`` (a ``tokenizers`` serialization) and
its Python-level settings in ``tokenizer_config.json`` under ``base_tokenizer_config``; the codec settings
(``base_vocab_size``, ``max_codebook_size``, ``max_subtokens``, ``disabled_ids``, ``protect_digits``,
``protect_whitespace``, ``initial_codebook``) are saved there too, under the same names the model config uses, with ``base_vocab_fingerprint`` (a hash of the
base vocabulary). Loading a folder that also holds a zip2zip ``config.json`` checks that the two agree.

This file is copied into exported Hub repos, so it imports only the standard library, transformers and its
sibling files (flat relative imports). The rules it shares with the model (:func:`default_disabled_ids`,
the codec-settings check) live in ``configuration_zip2zip.py``; the streamers, which users import from here
too, in ``streamers_zip2zip.py``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from transformers import AutoTokenizer
from transformers.tokenization_python import PythonBackend
from transformers.tokenization_utils_base import BatchEncoding, TruncationStrategy
from transformers.utils import PaddingStrategy
from transformers.utils.chat_template_utils import encode_marked_chat

from .configuration_zip2zip import (
    CODEC_SETTINGS,
    Zip2ZipConfig,
    codec_mismatch_message,
    codec_mismatches,
    default_disabled_ids,
    folder_mismatch_message,
    missing_fingerprint_message,
    read_setting,
    trained_codec_changes,
    trained_codec_message,
    vocab_fingerprint,
)
from .lzw import LZWCodec
from .lzw_inputs import check_base_ids, to_int
from .lzw_seed import restrict_initial_codebook
from .streamers_zip2zip import Zip2ZipTextIteratorStreamer, Zip2ZipTextStreamer
from .tokenization_decoding_zip2zip import Zip2ZipDecodingMixin
from .tokenization_utils_zip2zip import (
    BASE_TOKENIZER_FILE,
    base_tokenizer_settings,
    codebook_tables,
    compress_rows,
    encode_texts,
    is_ids,
    load_base_tokenizer,
    missing_tokenizer_config_message,
    pad_rows,
    saved_model_settings,
    split_batch,
    write_base_tokenizer,
)
from .visualization_zip2zip import visualize

logger = logging.getLogger(__name__)

__all__ = [
    "CODEC_SETTINGS",
    "Zip2ZipTextIteratorStreamer",
    "Zip2ZipTextStreamer",
    "Zip2ZipTokenizer",
    "default_disabled_ids",
]


# A tokenizer built without a config gets the model's defaults (the recipe's), so the two always agree.
DEFAULT_MAX_CODEBOOK_SIZE: int = Zip2ZipConfig.max_codebook_size
DEFAULT_MAX_SUBTOKENS: int = Zip2ZipConfig.max_subtokens
DEFAULT_PROTECT_DIGITS: bool = Zip2ZipConfig.protect_digits
DEFAULT_PROTECT_WHITESPACE: bool = Zip2ZipConfig.protect_whitespace


class Zip2ZipTokenizer(Zip2ZipDecodingMixin, PythonBackend):
    """A tokenizer that speaks hypertokens: base tokenization, then per-sequence LZW compression.

    Build one from a base tokenizer with :meth:`from_base`; load a saved one with ``from_pretrained`` or
    ``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)``.

    Args:
        base_tokenizer_file: path of the saved base tokenizer (``base_tokenizer.json``); set by
            ``from_pretrained``.
        base_vocab_size: ``V``, the base model's embedding rows; hypertoken ids start here. Defaults to
            ``len(base tokenizer)``.
        max_codebook_size: ``C``, the most hypertokens one sequence may create.
        max_subtokens: ``M``, the most base tokens one hypertoken stands for (1 disables merging).
        disabled_ids: base ids never merged; defaults to :func:`default_disabled_ids`. Must contain pad.
        protect_digits: with ``disabled_ids`` unset, also never merge digit tokens.
        protect_whitespace: with ``disabled_ids`` unset, also never merge whitespace-only tokens.
        initial_codebook: runs of base ids every sequence starts with (a seed; see ``Zip2ZipConfig``), or None.
        base_tokenizer_config: the base tokenizer's special tokens and Python-level settings (saved).
        base_vocab_fingerprint: the fingerprint recorded when the tokenizer was saved; a base tokenizer whose
            vocabulary has another one (an edited or replaced ``base_tokenizer.json``) is refused.
        base_tokenizer: the base tokenizer object itself (instead of ``base_tokenizer_file``).
        **kwargs: the usual tokenizer arguments (special tokens, ``chat_template``, ``padding_side``...).

    Example:

    ```python
    >>> from transformers import AutoTokenizer
    >>> from zip2zip import Zip2ZipTokenizer
    >>> tok = Zip2ZipTokenizer.from_base(AutoTokenizer.from_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct"))
    >>> ids = tok("the cat sat on the mat. the cat sat on the mat.")["input_ids"]  # 14 base tokens
    >>> ids  # ids from 49152 on are hypertokens, made from the codes before them
    [1195, 2644, 2643, 335, 260, 1171, 30, 260, 49153, 49155, 49157]
    >>> tok.decode(ids)
    'the cat sat on the mat. the cat sat on the mat.'
    ```
    """

    vocab_files_names: ClassVar[dict[str, str]] = {"base_tokenizer_file": BASE_TOKENIZER_FILE}
    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]
    padding_side = "left"  # generation pads on the left; training collators pad themselves

    def __init__(
        self,
        base_tokenizer_file: str | None = None,
        base_vocab_size: int | None = None,
        max_codebook_size: int = DEFAULT_MAX_CODEBOOK_SIZE,
        max_subtokens: int = DEFAULT_MAX_SUBTOKENS,
        disabled_ids: Sequence[int] | None = None,
        protect_digits: bool = DEFAULT_PROTECT_DIGITS,
        protect_whitespace: bool = DEFAULT_PROTECT_WHITESPACE,
        initial_codebook: Sequence[Sequence[int]] | None = None,
        base_tokenizer_config: dict[str, Any] | None = None,
        base_vocab_fingerprint: str | None = None,
        base_tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        _check_settings(
            base_vocab_size,
            max_codebook_size,
            max_subtokens,
            disabled_ids,
            protect_digits,
            protect_whitespace,
        )
        base = (
            base_tokenizer
            if base_tokenizer is not None
            else load_base_tokenizer(base_tokenizer_file, base_tokenizer_config)
        )
        self.base = base
        # Mirror the base's added tokens so that special-token lookups, control-token detection in chat
        # templates and the saved added_tokens_decoder all agree with the base vocabulary.
        self._added_tokens_decoder = dict(base.added_tokens_decoder)
        for name, value in base.special_tokens_map.items():
            kwargs.setdefault(name, value)
        if kwargs.get("pad_token") is None:
            # Batches need a pad id, and it must be a disabled id: eos (never merged) is the usual choice.
            kwargs["pad_token"] = kwargs.get("eos_token") or kwargs.get("unk_token")
        if "extra_special_tokens" not in kwargs and base.extra_special_tokens:
            kwargs["extra_special_tokens"] = list(base.extra_special_tokens)
        if "chat_template" not in kwargs and base.chat_template is not None:
            kwargs["chat_template"] = base.chat_template
        kwargs.setdefault("clean_up_tokenization_spaces", base.clean_up_tokenization_spaces)
        if base.model_max_length < int(1e29):  # a real limit, not transformers' "very large" placeholder
            kwargs.setdefault("model_max_length", base.model_max_length)
        self._base_tokenizer_config = dict(base_tokenizer_config or {}) or base_tokenizer_settings(base)
        self._ready = False
        super().__init__(
            base_vocab_size=base_vocab_size,
            max_codebook_size=max_codebook_size,
            max_subtokens=max_subtokens,
            disabled_ids=None if disabled_ids is None else [to_int(i) for i in disabled_ids],
            protect_digits=bool(protect_digits),
            protect_whitespace=bool(protect_whitespace),
            initial_codebook=initial_codebook,
            base_tokenizer_config=self._base_tokenizer_config,
            base_vocab_fingerprint=base_vocab_fingerprint,
            **kwargs,
        )
        self._protect_digits = bool(protect_digits)
        self._protect_whitespace = bool(protect_whitespace)
        if base_vocab_fingerprint is not None and base_vocab_fingerprint != self.base_vocab_fingerprint:
            raise ValueError(
                f"base_vocab_fingerprint: the tokenizer was saved with a base vocabulary of fingerprint "
                f"{base_vocab_fingerprint}, but its base tokenizer ({BASE_TOKENIZER_FILE}) holds another one "
                f"({self.base_vocab_fingerprint}, {len(base)} tokens): {BASE_TOKENIZER_FILE} was replaced or edited, "
                "so ids would map to other tokens than the model's. Restore the original file, or rebuild the "
                "tokenizer with Zip2ZipTokenizer.from_base(base_tokenizer, model.config) from the base tokenizer "
                "the model was made from."
            )

        vocab_size = base_vocab_size if base_vocab_size is not None else len(base)
        self._check_added_tokens(vocab_size)
        if vocab_size < len(base):
            raise ValueError(
                f"base_vocab_size={vocab_size} is smaller than the base tokenizer ({len(base)} tokens): ids "
                f"{vocab_size}..{len(base) - 1} would collide with hypertoken ids. Pass the base model's number "
                "of embedding rows (model.get_input_embeddings().num_embeddings), or leave it unset."
            )
        if disabled_ids is None:
            disabled = set(default_disabled_ids(base, protect_digits, protect_whitespace)) | set(
                self._special_ids()
            )
        else:
            disabled = {to_int(i) for i in disabled_ids}
        pad_id = self.pad_token_id
        if pad_id is not None and pad_id not in disabled:
            raise ValueError(
                f"the pad id {pad_id} ({self.pad_token!r}) is not in disabled_ids: padded rows would merge pad "
                "into hypertokens and decode differently from unpadded ones. Add it to disabled_ids, or leave "
                "disabled_ids unset to use default_disabled_ids(base_tokenizer)."
            )
        self.codec = LZWCodec(
            vocab_size, max_codebook_size, max_subtokens, sorted(disabled), initial_codebook=initial_codebook
        )
        self._ready = True

    def _check_added_tokens(self, vocab_size: int) -> None:
        """Every added token (``added_tokens_decoder`` of tokenizer_config.json) must be the base tokenizer's own
        token at that id: an id from ``base_vocab_size`` on is a hypertoken slot, and any other id already means
        the base token there."""
        base = self.base
        for index, token in sorted(self._added_tokens_decoder.items()):
            if 0 <= index < len(base) and base.convert_ids_to_tokens(index) == str(token):
                continue
            held = (
                f"the base tokenizer holds {base.convert_ids_to_tokens(index)!r} there"
                if 0 <= index < len(base)
                else f"the base tokenizer ({BASE_TOKENIZER_FILE}) has ids 0..{len(base) - 1}"
                + (
                    f" and ids from base_vocab_size={vocab_size} on are hypertoken slots"
                    if index >= vocab_size
                    else ""
                )
            )
            raise ValueError(
                f"added_tokens_decoder (tokenizer_config.json) maps id {index} to {str(token)!r}, but {held}: the "
                "token would get an id the model reads as something else. Remove that entry from "
                "tokenizer_config.json; to add a token, add it to the base tokenizer, resize the base model's "
                "embeddings and rebuild with Zip2ZipTokenizer.from_base(base_tokenizer, model.config)."
            )

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_base(
        cls,
        base_tokenizer_or_path: Any,
        config: Any = None,
        **overrides: Any,
    ) -> Zip2ZipTokenizer:
        """Wrap a base tokenizer (an object, a local folder or a Hub id) with the codec settings of ``config``.

        ``config`` is the model's ``Zip2ZipConfig`` or any object or dict with the codec settings
        (``base_vocab_size``, ``max_codebook_size``, ``max_subtokens``, ``disabled_ids``,
        ``protect_digits``, ``protect_whitespace``, ``initial_codebook``); ``overrides`` take precedence. Missing ``disabled_ids`` default to
        :func:`default_disabled_ids`, a missing ``base_vocab_size`` to ``len(base tokenizer)``.
        Other keyword arguments (``padding_side``, ``pad_token``...) go to the tokenizer.
        """
        base = base_tokenizer_or_path
        if isinstance(base, (str, os.PathLike)):
            base = AutoTokenizer.from_pretrained(base)
        if getattr(base, "backend_tokenizer", None) is None:
            raise TypeError(
                f"the base tokenizer must be backed by the `tokenizers` library (a TokenizersBackend), got "
                f"{type(base).__name__}; load it with AutoTokenizer.from_pretrained(...)"
            )
        settings = {name: read_setting(config, name) for name in CODEC_SETTINGS}
        settings.update({k: overrides.pop(k) for k in CODEC_SETTINGS if k in overrides})
        settings = {k: v for k, v in settings.items() if v is not None}
        if settings.get("disabled_ids") is not None:
            settings["disabled_ids"] = [int(i) for i in settings["disabled_ids"]]
        overrides.setdefault("name_or_path", getattr(base, "name_or_path", ""))
        return cls(base_tokenizer=base, **settings, **overrides)

    # ------------------------------------------------------------------ codec settings

    @property
    def base_vocab_size(self) -> int:
        """``V``: hypertoken ids start here (the base model's embedding rows)."""
        return self.codec.base_vocab_size

    @property
    def max_codebook_size(self) -> int:
        """``C``: the most hypertokens one sequence may create."""
        return self.codec.max_codebook_size

    @property
    def max_subtokens(self) -> int:
        """``M``: the most base tokens one hypertoken stands for."""
        return self.codec.max_subtokens

    @property
    def disabled_ids(self) -> list[int]:
        """Base ids that are never merged (sorted)."""
        return sorted(self.codec.disabled_ids)

    @property
    def protect_digits(self) -> bool:
        """Whether digit tokens were added to the default disabled ids."""
        return self._protect_digits

    @property
    def protect_whitespace(self) -> bool:
        """Whether whitespace-only tokens were added to the default disabled ids."""
        return self._protect_whitespace

    @property
    def initial_codebook(self) -> list[list[int]] | None:
        """The runs every sequence's codebook starts with (hypertoken ids ``V ..`` in order), or None."""
        return [list(entry) for entry in self.codec.initial_codebook] or None

    @property
    def base_vocab_fingerprint(self) -> str:
        """:func:`vocab_fingerprint` of the base tokenizer (recomputed when tokens are added)."""
        size = len(self.base)
        cached = self.__dict__.get("_fingerprint")
        if cached is None or cached[0] != size:
            cached = (size, vocab_fingerprint(self.base))
            self.__dict__["_fingerprint"] = cached
        return cached[1]

    @property
    def base_tokenizer_config(self) -> dict[str, Any]:
        """The base tokenizer's special tokens and settings, as saved in tokenizer_config.json."""
        return dict(self._base_tokenizer_config)

    def check_compatible(self, config: Any) -> None:
        """Raise ValueError naming every setting on which this tokenizer and ``config`` disagree.

        ``config`` is a model config (or dict) carrying the codec settings and the base vocabulary's
        fingerprint; settings it lacks are not checked.
        """
        mismatches = codec_mismatches(config, self)
        if mismatches:
            raise ValueError(codec_mismatch_message(mismatches))

    @property
    def _tokenizer(self) -> Any:
        """The base tokenizer's ``tokenizers`` backend, for code that decodes generated ids with it directly.

        `generate()` hands streamers base ids (see ``streamers_zip2zip.py``), so the base backend decodes them:
        `transformers serve` streams through it (``DecodeStream.step(tokenizer._tokenizer, id)``).
        """
        return self.base._tokenizer

    # ------------------------------------------------------------------ vocabulary

    @property
    def vocab_size(self) -> int:
        """The base tokenizer's vocabulary size (hypertoken ids are not vocabulary entries)."""
        return self.base.vocab_size

    def __len__(self) -> int:
        """``len(base tokenizer)``: PEFT and TRL resize embeddings when this exceeds the model's rows."""
        return len(self.base)

    def get_vocab(self) -> dict[str, int]:
        return self.base.get_vocab()

    def _convert_token_to_id(self, token: str) -> int:
        return self.base.convert_tokens_to_ids(token)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.base.convert_tokens_to_string(tokens)

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """The *base* tokens of ``text`` (hypertokens only exist as ids: see :meth:`visualize`)."""
        return self.base.tokenize(text, **kwargs)

    def _add_tokens(self, new_tokens: list[Any], special_tokens: bool = False) -> int:
        """Add tokens to the base tokenizer; new ids join the disabled ids (an added token is never merged)."""
        vocab = self.base.get_vocab()
        fresh = [t for t in new_tokens if str(t) not in vocab]
        if not fresh:
            return 0
        if self.__dict__.get("_ready") and len(self.base) + len(fresh) > self.codec.base_vocab_size:
            raise ValueError(
                f"adding {[str(t) for t in fresh]} would give ids from {len(self.base)} on, but ids from "
                f"base_vocab_size={self.codec.base_vocab_size} on are hypertokens. Add the tokens to the base "
                "tokenizer, resize the base model's embeddings, then rebuild with Zip2ZipTokenizer.from_base."
            )
        added = self.base.add_tokens(fresh, special_tokens=special_tokens)
        self._added_tokens_decoder = dict(self.base.added_tokens_decoder)
        self._added_tokens_encoder = {str(k): v for v, k in self._added_tokens_decoder.items()}
        if self.__dict__.get("_ready"):
            self._disable(self.convert_tokens_to_ids([str(t) for t in fresh]), "added token")
        return added

    def _special_ids(self) -> list[int]:
        ids = self.convert_tokens_to_ids(self.all_special_tokens)
        return [i for i in ids if i is not None and i >= 0]

    def _disable(self, ids: Iterable[int], why: str) -> None:
        """Add ids to the disabled set (rebuilding the codec), warning that the codec settings changed."""
        missing = sorted(set(ids) - self.codec.disabled_ids)
        if not missing:
            return
        for i in missing:
            if not 0 <= i < self.codec.base_vocab_size:
                raise ValueError(
                    f"{why} id {i} is outside the base vocabulary [0, {self.codec.base_vocab_size}); resize the "
                    "model's embeddings and rebuild the tokenizer with a larger base_vocab_size"
                )
        logger.warning(
            "%s id(s) %s were not disabled ids; they are now never merged. This changes the codec settings: "
            "the model must use the same disabled_ids (tokenizer.check_compatible(model.config)).",
            why,
            missing,
        )
        codec = self.codec
        disabled = codec.disabled_ids | set(missing)
        seed = restrict_initial_codebook(codec.initial_codebook, codec.max_subtokens, disabled)
        if len(seed) < len(codec.initial_codebook):
            logger.warning(
                "%d initial codebook entries hold a newly disabled id and were dropped; the model's "
                "initial_codebook must drop them too",
                len(codec.initial_codebook) - len(seed),
            )
        self.codec = LZWCodec(
            codec.base_vocab_size,
            codec.max_codebook_size,
            codec.max_subtokens,
            sorted(disabled),
            initial_codebook=seed,
        )

    def __setattr__(self, key: str, value: Any) -> None:
        super().__setattr__(key, value)
        # A special token set after construction (tok.pad_token = ..., as TRL does) must stay unmerged.
        name = key.removesuffix("_ids").removesuffix("_id") if key.endswith(("_id", "_ids")) else key
        if self.__dict__.get("_ready") and (
            name in self.SPECIAL_TOKENS_ATTRIBUTES or name == "extra_special_tokens"
        ):
            self._disable(self._special_ids(), "special token")

    # ------------------------------------------------------------------ encoding

    def _encode_plus(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: Any = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        return_codebook: bool = False,
        return_base_ids: bool = False,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Base-tokenize, compress, truncate, pad, convert: the one path behind ``__call__`` and ``encode``.

        Batches go to the base tokenizer in one call (the Rust backend parallelises it); every row is then
        compressed with its own codebook. Lists of ints are taken as *base* ids.
        """
        if return_overflowing_tokens:
            raise ValueError(
                "return_overflowing_tokens=True is not supported: each overflow window would need its own "
                "codebook. Split the text into windows first and tokenize each."
            )
        if return_offsets_mapping:
            raise ValueError(
                "return_offsets_mapping=True is not supported by Zip2ZipTokenizer (a Python tokenizer); use "
                "return_base_ids=True with the base tokenizer's offsets instead."
            )
        rows, pairs, is_batched = split_batch(text, text_pair, is_split_into_words)
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        base_rows = self._base_encode(
            rows,
            pairs,
            add_special_tokens,
            is_split_into_words,
            split_special_tokens,
            kwargs.get("sanitize_control_tokens"),
        )

        truncate = truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE and max_length is not None
        if truncate and any(p is not None for p in pairs):
            raise ValueError(
                "truncating a pair of sequences is not supported in compressed space; truncate the texts "
                "first, or join the pair into one text"
            )
        affixes = self._special_affixes() if truncate and add_special_tokens else (0, 0)
        codec = self.codec
        input_ids, codebooks = compress_rows(
            codec,
            base_rows,
            max_length if truncate else None,
            affixes,
            self.truncation_side,
            return_codebook or return_base_ids,
        )
        for codes in input_ids:
            self._eventual_warn_about_too_long_sequence(codes, max_length, verbose)

        data: dict[str, Any] = {"input_ids": input_ids}
        if return_token_type_ids:
            data["token_type_ids"] = [[0] * len(row) for row in input_ids]
        if return_special_tokens_mask:
            special = set(self.all_special_ids)
            data["special_tokens_mask"] = [[int(c in special) for c in row] for row in input_ids]
        lengths = [len(row) for row in input_ids]
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        pad_rows(
            data,
            padding_strategy,
            max_length,
            pad_to_multiple_of,
            padding_side or self.padding_side,
            self.pad_token_id,
            return_attention_mask,
        )
        if return_length:
            data["length"] = lengths
        if not is_batched:
            data = {key: value[0] for key, value in data.items()}
        encoding = BatchEncoding(data, tensor_type=return_tensors, prepend_batch_axis=not is_batched)
        if return_codebook:
            encoding["codebook"] = codebook_tables(codebooks, codec.max_subtokens, return_tensors, is_batched)
        if return_base_ids:
            encoding["base_ids"] = base_rows if is_batched or return_tensors else base_rows[0]
        return encoding

    def _base_encode(
        self,
        rows: list[Any],
        pairs: list[Any],
        add_special_tokens: bool,
        is_split_into_words: bool,
        split_special_tokens: bool,
        sanitize_control_tokens: bool | None,
    ) -> list[list[int]]:
        """Base ids (special tokens included) of every row, in one base-tokenizer call where possible."""
        out: list[list[int] | None] = [None] * len(rows)
        texts, where = [], []
        V = self.codec.base_vocab_size
        for i, (row, pair) in enumerate(zip(rows, pairs)):
            if is_ids(row) and (pair is None or is_ids(pair)):
                # The codec's type rule, positions counted in the caller's ids (before any special tokens).
                which = f" (in batch element {i})" if len(rows) > 1 else ""
                ids = check_base_ids(V, row, 0, which)[0]
                if pair is not None:
                    ids = ids + check_base_ids(V, pair, len(ids), which + " (text_pair)")[0]
                if add_special_tokens:
                    prefix, suffix = self._special_affix_ids()
                    ids = prefix + ids + suffix
                out[i] = list(ids)
            elif sanitize_control_tokens and isinstance(row, str):
                out[i] = encode_marked_chat(self.base, row)  # a chat marked by apply_chat_template
            else:
                texts.append(row if pair is None else (row, pair))
                where.append(i)
        if texts:
            encoded = encode_texts(
                self.base, texts, add_special_tokens, is_split_into_words, split_special_tokens
            )
            for i, ids in zip(where, encoded):
                out[i] = ids
        return out  # type: ignore[return-value]

    def _special_affix_ids(self) -> tuple[list[int], list[int]]:
        """The base ids the base tokenizer puts before and after a text when add_special_tokens=True."""
        probe = "a"
        plain = self._base_encode([probe], [None], False, False, False, None)[0]
        full = self._base_encode([probe], [None], True, False, False, None)[0]
        for start in range(len(full) - len(plain) + 1):
            if full[start : start + len(plain)] == plain:
                return full[:start], full[start + len(plain) :]
        return [], []

    def _special_affixes(self) -> tuple[int, int]:
        prefix, suffix = self._special_affix_ids()
        return len(prefix), len(suffix)

    def apply_chat_template(self, conversation: Any, *args: Any, **kwargs: Any) -> Any:
        """Render with the base tokenizer's chat template, then tokenize the text through the LZW path."""
        if kwargs.get("return_assistant_tokens_mask"):
            raise ValueError(
                "return_assistant_tokens_mask=True needs character offsets, which Zip2ZipTokenizer (a Python "
                "tokenizer) does not have. For assistant-only training use prompt/completion data with "
                "completion_only_loss instead of assistant_only_loss."
            )
        return super().apply_chat_template(conversation, *args, **kwargs)

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *init_inputs: Any, **kwargs: Any) -> Any:
        """As transformers' ``from_pretrained``; a local folder that also holds a zip2zip ``config.json`` must
        agree with it (codec settings, initial codebook and base vocabulary), or a ValueError names what differs.
        That config must record the base vocabulary's fingerprint; settings that differ from the ones the weights
        were trained with (its ``trained_codec``) are warned about."""
        folder, config = saved_model_settings(pretrained_model_name_or_path, kwargs.get("subfolder"))
        try:
            tokenizer = super().from_pretrained(pretrained_model_name_or_path, *init_inputs, **kwargs)
        except ValueError as error:
            if folder is not None and any(name in str(error) for name in CODEC_SETTINGS):
                # A codec setting the folder's tokenizer_config.json holds wrongly: name the file.
                raise ValueError(f"{os.path.join(folder, 'tokenizer_config.json')}: {error}") from None
            raise
        if config is not None:
            mismatches = codec_mismatches(config, tokenizer)
            if mismatches:
                raise ValueError(folder_mismatch_message(folder, mismatches))
            if config.get("base_vocab_fingerprint") is None:
                raise ValueError(missing_fingerprint_message(folder))
            changes = trained_codec_changes(config.get("trained_codec"), tokenizer)
            if changes:
                warnings.warn(
                    trained_codec_message(f"{folder} (tokenizer_config.json)", changes), stacklevel=2
                )
        return tokenizer

    @classmethod
    def _from_pretrained(
        cls,
        resolved_vocab_files: dict[str, Any],
        pretrained_model_name_or_path: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        if resolved_vocab_files.get("tokenizer_config_file") is None:
            raise ValueError(missing_tokenizer_config_message(pretrained_model_name_or_path))
        return super()._from_pretrained(resolved_vocab_files, pretrained_model_name_or_path, *args, **kwargs)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Write the base tokenizer's ``tokenizers`` serialization (its truncation and padding switched off)."""
        name = (filename_prefix + "-" if filename_prefix else "") + BASE_TOKENIZER_FILE
        return (write_base_tokenizer(self.base, os.path.join(save_directory, name)),)

    # ------------------------------------------------------------------ visualisation

    def visualize(
        self,
        ids_or_text: Any,
        format: str = "ansi",
        add_special_tokens: bool = False,
        skip_special_tokens: bool = False,
    ) -> str:
        """Show how a text (or a sequence of codes) splits into base tokens and hypertokens.

        ``format="ansi"`` colours every hypertoken's span with a background colour for terminals;
        ``"html"`` returns a ``<pre>`` block with one ``<span>`` per hypertoken (its id and base ids in the
        ``title``); ``"plain"`` brackets hypertokens: ``[the cat] sat``. Special tokens are shown dimmed.
        A batch (2-D ids or a list of texts) gives one line per row.
        """
        return visualize(self, ids_or_text, format, add_special_tokens, skip_special_tokens)


def _check_settings(
    base_vocab_size: Any,
    max_codebook_size: Any,
    max_subtokens: Any,
    disabled_ids: Any,
    protect_digits: Any,
    protect_whitespace: Any,
) -> None:
    """The codec settings' types, named as in tokenizer_config.json (where a loaded tokenizer's settings come from)."""

    def refuse(name: str, value: Any, kind: str) -> None:
        raise TypeError(
            f"{name}={value!r} ({type(value).__name__}) in tokenizer_config.json (or passed to Zip2ZipTokenizer) must "
            f"be {kind}: write it as in config.json (for {name} the model's value), or rebuild the tokenizer with "
            "Zip2ZipTokenizer.from_base(base_tokenizer, model.config)"
        )

    for name, value in (
        ("base_vocab_size", base_vocab_size),
        ("max_codebook_size", max_codebook_size),
        ("max_subtokens", max_subtokens),
    ):
        if not (value is None and name == "base_vocab_size") and to_int(value) is None:
            refuse(name, value, "an int")
    if disabled_ids is not None:
        if isinstance(disabled_ids, (str, bytes)) or not isinstance(disabled_ids, Iterable):
            refuse("disabled_ids", disabled_ids, "a list of ints")
        for value in disabled_ids:
            if to_int(value) is None:
                refuse("disabled_ids", list(disabled_ids), "a list of ints")
    for name, value in (("protect_digits", protect_digits), ("protect_whitespace", protect_whitespace)):
        if not isinstance(value, bool) and str(getattr(value, "dtype", "")) not in ("bool", "torch.bool"):
            refuse(name, value, "true or false")


# save_pretrained then copies this file (and lzw.py) and writes auto_map, so a saved folder loads with
# AutoTokenizer.from_pretrained(folder, trust_remote_code=True) without the zip2zip package.
Zip2ZipTokenizer.register_for_auto_class("AutoTokenizer")
