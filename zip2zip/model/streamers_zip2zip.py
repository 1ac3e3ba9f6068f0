"""Streamers for zip2zip generation: every streamer sees base ids, so the printed text is the final text.

A generated hypertoken can stand for an entry created in the prompt (or before a newline a streamer has
already forgotten), so a streamer that decodes codes alone would print the wrong text. Two ways round it:

* `generate()` wraps the user's streamer in :class:`_BaseIdStreamer`, which puts the prompt's base ids, then
  each step's phrase, into it; stock `TextStreamer` and `TextIteratorStreamer` then just work.
* :class:`Zip2ZipTextStreamer` and :class:`Zip2ZipTextIteratorStreamer` expand codes themselves (one LZW
  decoder over the whole sequence), for code streams produced elsewhere; on base ids they are stock.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch,
transformers and the standard library. torch is imported where it is used, so the tokenizer file, which
imports this one, loads without it.
"""

from __future__ import annotations

from typing import Any

from transformers import TextIteratorStreamer, TextStreamer
from transformers.generation.streamers import BaseStreamer

__all__ = ["Zip2ZipTextIteratorStreamer", "Zip2ZipTextStreamer"]


class _ExpandingStreamerMixin:
    """Feeds every code (prompt included) to one LZW decoder and streams the *base* ids it yields.

    A stock streamer decodes its cached ids alone, and forgets them after each newline; a generated
    hypertoken can stand for an entry created in the prompt or before that newline, so it would not decode.
    Here each code is expanded in the context of the whole sequence, and the base tokenizer does the rest.
    """

    def __init__(self, tokenizer: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(tokenizer.base, *args, **kwargs)
        self.codec = tokenizer.codec
        self._decoder = tokenizer.codec.new_decoder()

    def put(self, value: Any) -> None:
        import torch

        if len(value.shape) > 1 and value.shape[0] > 1:
            raise ValueError(f"{type(self).__name__} only supports batch size 1, got {value.shape[0]} rows")
        base_ids = [i for code in value.reshape(-1).tolist() for i in self._decoder.feed(code).phrase]
        super().put(torch.tensor(base_ids, dtype=torch.long))

    def end(self) -> None:
        super().end()
        self._decoder = self.codec.new_decoder()  # the next generate() starts a new sequence


class Zip2ZipTextStreamer(_ExpandingStreamerMixin, TextStreamer):
    """``TextStreamer`` for compressed ids: ``model.generate(..., streamer=Zip2ZipTextStreamer(tok))``."""


class Zip2ZipTextIteratorStreamer(_ExpandingStreamerMixin, TextIteratorStreamer):
    """``TextIteratorStreamer`` for compressed ids (iterate over the text in another thread)."""


class _BaseIdStreamer(BaseStreamer):
    """Puts base ids into the user's streamer: the prompt's, then each step's phrase.

    transformers puts the prompt before the per-row state exists (it is built at the first model call, from
    the expanded prompt and its attention mask), so the prompt is held back and put right before the first
    step's ids. A stock streamer decodes what it has been given without the prompt; since it only ever sees
    base ids, hypertokens that refer to prompt entries print correctly.
    """

    def __init__(self, streamer: BaseStreamer, state: Any, pad_id: int) -> None:
        self.streamer = streamer
        self.state = state
        self.pad_id = pad_id
        self.column: int | None = None
        self.prompt_pending = False

    def put(self, value: Any) -> None:
        if self.column is None:
            self.column = value.shape[-1] if value.dim() > 1 else value.shape[0]
            self.prompt_pending = True
            return
        import torch

        self._flush_prompt()
        self.state.push(value, self.column)
        rows = [list(self.state.visible_phrase(b, self.column)) for b in range(self.state.batch_size)]
        self.column += 1
        if len(rows) == 1:
            if rows[0]:
                self.streamer.put(torch.tensor(rows[0], dtype=torch.long))
        else:
            self.streamer.put(self._pad(rows))

    def end(self) -> None:
        self._flush_prompt()
        self.streamer.end()

    def _flush_prompt(self) -> None:
        import torch

        if not self.prompt_pending or not self.state.initialized:
            return
        self.prompt_pending = False
        rows = [self.state.prompt_base_ids(b) for b in range(self.state.batch_size)]
        self.streamer.put(
            torch.tensor(rows[0], dtype=torch.long) if len(rows) == 1 else self._pad(rows, "left")
        )

    def _pad(self, rows: list[list[int]], side: str = "right") -> Any:
        import torch

        width = max(len(r) for r in rows)
        fill = [[self.pad_id] * (width - len(r)) for r in rows]
        padded = [f + r if side == "left" else r + f for r, f in zip(rows, fill)]
        return torch.tensor(padded, dtype=torch.long)
