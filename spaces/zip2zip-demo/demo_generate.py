"""The Generate tab: the base model and the zip2zip model continue one prompt, streamed step by step.

The two models run one after the other (never at the same time, so each one's time per byte is its own),
each with the same budget of new *base* tokens and greedy decoding. A :class:`StepStreamer` receives what
``generate`` streams: one chunk of base ids per decoding step (a zip2zip model streams each step's code
expanded to its base ids), so a chunk of two or more base ids is a hypertoken and can be highlighted while
the text is still arriving.
"""

from __future__ import annotations

import html
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from demo_compress import DemoInputError, check_setting, check_text, hyper_span, pane
from transformers.generation.streamers import BaseStreamer

MAX_PROMPT_CHARS = 4_000
MAX_PROMPT_TOKENS = 1_024
MAX_NEW_TOKENS = 128
"""Cap on new base tokens per model and request: keeps a CPU Space responsive (about 10 s per model)."""
DEFAULT_NEW_TOKENS = 48


class StepStreamer(BaseStreamer):
    """A ``TextIteratorStreamer`` that keeps step boundaries: iterating yields one list of base ids per step.

    The first ``put`` (the prompt) is skipped, as ``TextIteratorStreamer(skip_prompt=True)`` does.
    """

    def __init__(self, timeout: float | None = 600.0) -> None:
        self.queue: queue.Queue[list[int] | None] = queue.Queue()
        self.timeout = timeout
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if value.dim() > 1 and value.shape[0] > 1:
            raise ValueError(f"StepStreamer streams one row, got a batch of {value.shape[0]}")
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.queue.put([int(i) for i in value.reshape(-1).tolist()])

    def end(self) -> None:
        self.queue.put(None)

    def __iter__(self) -> Iterator[list[int]]:
        while (chunk := self.queue.get(timeout=self.timeout)) is not None:
            yield chunk


@dataclass
class StreamedText:
    """The text of a continuation as its steps arrive, with each step's piece of text."""

    decode: Any
    chunks: list[list[int]] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    text: str = ""

    def add(self, chunk: list[int]) -> None:
        """Append one step; its piece is what it adds to the decoded text (a split character waits)."""
        self.chunks.append(chunk)
        ids = [i for c in self.chunks for i in c]
        whole = self.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
        piece = whole[len(self.text) :] if whole.startswith(self.text) else ""
        self.pieces.append(piece)
        self.text += piece

    def finish(self, final_text: str) -> None:
        """Give any characters still held back (a split character at the very end) to the last step."""
        if final_text.startswith(self.text) and self.pieces:
            self.pieces[-1] += final_text[len(self.text) :]
            self.text = final_text

    def html(self, highlight: bool) -> str:
        out, hyper = [], 0
        for chunk, piece in zip(self.chunks, self.pieces):
            if highlight and len(chunk) > 1:
                constituents = [self.decode([i]) for i in chunk]
                out.append(hyper_span(piece, None, constituents, hyper))
                hyper += 1
            else:
                out.append(html.escape(piece))
        return pane("".join(out), "z2z-gen-pane")

    @property
    def hypertokens(self) -> int:
        return sum(len(c) > 1 for c in self.chunks)


@dataclass
class RunStats:
    """One model's side of a comparison."""

    steps: int = 0
    seconds: float = 0.0
    text: str = ""
    hypertokens: int = 0
    prompt_positions: int = 0
    done: bool = False

    @property
    def bytes(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def ms_per_byte(self) -> float:
        return 1000 * self.seconds / self.bytes if self.bytes else float("nan")


@dataclass
class Frame:
    """What the page shows at one moment of a comparison."""

    base_html: str
    zip2zip_html: str
    base: RunStats
    zip2zip: RunStats
    base_text: str
    zip2zip_text: str
    done: bool = False


def encode_prompt(tokenizer: Any, prompt: str, chat: bool) -> dict[str, torch.Tensor]:
    if chat:
        messages = [{"role": "user", "content": prompt}]
        return dict(
            tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        )
    return dict(tokenizer(prompt, return_tensors="pt"))


def _run(model: Any, inputs: dict[str, Any], settings: dict[str, Any], streamer: StepStreamer) -> dict:
    """Start ``model.generate`` in a thread; the caller iterates ``streamer``. Returns the result holder."""
    result: dict[str, Any] = {}

    def target() -> None:
        start = time.perf_counter()
        try:
            with torch.no_grad():
                result["out"] = model.generate(**inputs, **settings, streamer=streamer)
        except Exception as error:  # shown in the page; the streamer must still end
            result["error"] = error
            streamer.end()
        result["seconds"] = time.perf_counter() - start

    result["thread"] = threading.Thread(target=target, daemon=True)
    result["thread"].start()
    return result


def generate_side_by_side(models: Any, prompt: str, chat: bool, max_new_tokens: Any) -> Iterator[Frame]:
    """Continue ``prompt`` with the base model, then the zip2zip model; yield a :class:`Frame` per step.

    ``models`` is a ``DemoModels``; generation holds its lock, so two requests never share a model.
    Raises :class:`DemoInputError` for an empty or over-long prompt and an out-of-range length.
    """
    prompt = check_text(prompt, "prompt", MAX_PROMPT_CHARS)
    new_tokens = check_setting("New tokens", max_new_tokens, 1, MAX_NEW_TOKENS)
    base_tok, z_tok = models.base_tokenizer, models.zip2zip_tokenizer
    base_inputs = encode_prompt(base_tok, prompt, chat)
    z_inputs = encode_prompt(z_tok, prompt, chat)
    n_prompt = base_inputs["input_ids"].shape[1]
    if n_prompt > MAX_PROMPT_TOKENS:
        raise DemoInputError(
            f"The prompt is {n_prompt:,} base tokens long; this demo takes at most {MAX_PROMPT_TOKENS:,}."
        )
    base = RunStats(prompt_positions=n_prompt)
    zip2zip = RunStats(prompt_positions=int(z_inputs["input_ids"].shape[1]))
    base_stream = StreamedText(base_tok.decode)
    z_stream = StreamedText(z_tok.base.decode)

    def frame(done: bool = False) -> Frame:
        return Frame(
            base_stream.html(False), z_stream.html(True), base, zip2zip, base.text, zip2zip.text, done
        )

    with models.lock:
        base_pad = base_tok.pad_token_id if base_tok.pad_token_id is not None else base_tok.eos_token_id
        runs = (
            (models.base_model, base_inputs, {"max_new_tokens": new_tokens, "pad_token_id": base_pad}),
            (
                models.zip2zip_model,
                z_inputs,
                {
                    "max_new_base_tokens": new_tokens,
                    "return_dict_in_generate": True,
                    "pad_token_id": z_tok.pad_token_id,
                },
            ),
        )
        for (model, inputs, settings), stats, stream in zip(runs, (base, zip2zip), (base_stream, z_stream)):
            streamer = StepStreamer()
            result = _run(model, inputs, {"do_sample": False, **settings}, streamer)
            for chunk in streamer:
                stream.add(chunk)
                stats.steps, stats.text = len(stream.chunks), stream.text
                yield frame()
            result["thread"].join()
            if "error" in result:
                raise RuntimeError(f"generation failed: {result['error']}") from result["error"]
            out = result["out"]
            sequences = out.sequences if hasattr(out, "sequences") else out
            prompt_len = inputs["input_ids"].shape[1]
            tokenizer = z_tok if model is models.zip2zip_model else base_tok
            final = tokenizer.decode(sequences[0][prompt_len:], skip_special_tokens=True)
            stream.finish(final)
            stats.text, stats.seconds, stats.done = final, result["seconds"], True
            stats.hypertokens = stream.hypertokens
            stats.steps = out.generation_stats.steps if hasattr(out, "generation_stats") else stats.steps
    yield frame(done=True)


def comparison_markdown(frame: Frame) -> str:
    """The counts under the two panes, and the honest note on whether the texts agree."""
    b, z = frame.base, frame.zip2zip

    def cell(stats: RunStats, value: str) -> str:
        return value if stats.done else "..."

    rows = [
        "| | base model | zip2zip model |",
        "|---|---:|---:|",
        f"| prompt positions | {b.prompt_positions} | {z.prompt_positions} |",
        f"| decoding steps | {b.steps} | {z.steps} |",
        f"| hypertokens written | 0 | {z.hypertokens} |",
        f"| bytes written | {b.bytes} | {z.bytes} |",
        f"| time | {cell(b, f'{b.seconds:.2f} s')} | {cell(z, f'{z.seconds:.2f} s')} |",
        f"| time per byte | {cell(b, f'{b.ms_per_byte:.1f} ms')} | {cell(z, f'{z.ms_per_byte:.1f} ms')} |",
    ]
    notes = [
        "Decoding steps are forward passes (the prefill included); the two models ran one after the other, "
        "on the same budget of new base tokens."
    ]
    if frame.done:
        if b.text == z.text:
            notes.append("**Both models wrote the same text.**")
        else:
            same = next(
                (i for i, (x, y) in enumerate(zip(b.text, z.text)) if x != y), min(len(b.text), len(z.text))
            )
            notes.append(
                f"**The two texts differ** (they agree on the first {same} of {max(len(b.text), len(z.text))} "
                "characters): the zip2zip model is the base model adapted to read and write hypertokens, not a "
                "lossless speed-up of it, so its continuation is its own. Compare speed per byte, not per step."
            )
    return "\n".join(rows) + "\n\n" + "\n\n".join(notes)
