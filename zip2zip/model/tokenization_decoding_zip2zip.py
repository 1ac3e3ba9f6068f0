"""The decoding side of :class:`Zip2ZipTokenizer`: codes back to base ids, tokens and text.

A hypertoken id means something only within the sequence that defined it, so everything here LZW-decodes the
*whole* sequence first (a lone hypertoken id is refused with an explanation). Split from
``tokenization_zip2zip.py`` to keep that file to the tokenizer's setup and encoding; copied into exported Hub
repos with it (standard library, transformers and sibling files only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .tokenization_utils_zip2zip import input_ids_of

__all__ = ["Zip2ZipDecodingMixin"]


class Zip2ZipDecodingMixin:
    """``decode``, ``batch_decode``, ``decode_to_base_ids`` and the id-to-token conversions of a tokenizer that
    has ``codec`` (an :class:`LZWCodec`) and ``base`` (the base tokenizer)."""

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < self.codec.base_vocab_size:
            return self.base.convert_ids_to_tokens(index)
        if self.codec.base_vocab_size <= index < self.codec.vocab_size:
            raise ValueError(self._lone_hypertoken_message(index))
        raise ValueError(
            f"id {index} is not an id of this tokenizer: ids are base ids 0..{self.codec.base_vocab_size - 1} and "
            f"hypertoken slots {self.codec.base_vocab_size}..{self.codec.vocab_size - 1}"
            + (
                " (a negative id is often a label's ignore index -100 or a padding placeholder)"
                if index < 0
                else ""
            )
        )

    def _lone_hypertoken_message(self, index: int) -> str:
        return (
            f"id {index} is a hypertoken slot (ids {self.codec.base_vocab_size}..{self.codec.vocab_size - 1}): "
            "it means something only within the sequence that defined it. Convert or decode the whole "
            "sequence, prompt included."
        )

    def convert_ids_to_tokens(
        self, ids: int | list[int], skip_special_tokens: bool = False
    ) -> str | list[str]:
        """Token strings; for a sequence, each hypertoken becomes the concatenation of its base tokens."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            return self._convert_id_to_token(ids)
        special = set(self.all_special_ids) if skip_special_tokens else set()
        tokens = []
        for code, phrase in zip(ids, self._phrases(ids)):
            if code in special:
                continue
            tokens.append("".join(self.base.convert_ids_to_tokens(list(phrase))))
        return tokens

    def _phrases(self, codes: Iterable[int]) -> list[tuple[int, ...]]:
        """The base ids of each code (LZW-decoding the whole sequence)."""
        decoder = self.codec.new_decoder()
        try:
            return [step.phrase for step in decoder.feed_many(codes)]
        except ValueError as error:
            raise ValueError(f"{error} {self._decode_hint()}") from None

    def _decode_hint(self) -> str:
        return (
            f"(Zip2ZipTokenizer: base_vocab_size={self.codec.base_vocab_size}, "
            f"max_codebook_size={self.codec.max_codebook_size}; if these ids came from a model, check "
            "tokenizer.check_compatible(model.config).)"
        )

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str | list[str]:
        """Text of a sequence of codes, or a list of texts for a batch; also takes what ``tok(...)`` and
        ``apply_chat_template`` return (a ``BatchEncoding``: its ``input_ids`` are decoded), as the base does."""
        return super().decode(input_ids_of(token_ids), skip_special_tokens=skip_special_tokens, **kwargs)

    def batch_decode(self, sequences: Any, *args: Any, **kwargs: Any) -> list[str]:
        return super().batch_decode(input_ids_of(sequences), *args, **kwargs)

    def decode_to_base_ids(self, token_ids: Iterable[int]) -> list[int]:
        """LZW-decode a whole sequence of codes into base ids (ValueError names any undecodable id)."""
        token_ids = input_ids_of(token_ids)
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        try:
            return self.codec.decode(token_ids)
        except ValueError as error:
            raise ValueError(f"{error} {self._decode_hint()}") from None

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """LZW-decode the whole sequence, then base-decode: equals the base tokenizer's decode of the base ids."""
        base_ids = self.decode_to_base_ids(token_ids)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.base.decode(
            base_ids,
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )
