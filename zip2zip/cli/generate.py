"""``zip2zip generate``: generate from a prompt or a chat message, streaming, hypertokens optionally shown."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from zip2zip.cli.models import load_zip2zip_or_exit
from zip2zip.cli.options import display_options, model_options, threads_options
from zip2zip.cli.output import note, view_format

__all__ = ["DEFAULT_MAX_NEW_BASE_TOKENS", "register", "run"]

DEFAULT_MAX_NEW_BASE_TOKENS = 128


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "generate",
        parents=[model_options(), threads_options(), display_options()],
        help="generate from a prompt or a chat message, streaming, hypertokens optionally shown",
        description=(
            "Generate with a zip2zip model (default: the trained model shipped with the package). The text "
            "streams to standard output as it is decoded; --show-hypertokens then prints the prompt and the "
            "answer with every hypertoken highlighted. Decoding statistics go to standard error. Length: "
            "--max-new-tokens counts decoding steps (codes, as generate(max_new_tokens=) does), "
            f"--max-new-base-tokens counts the text's base tokens (default {DEFAULT_MAX_NEW_BASE_TOKENS} when "
            "neither is given); with both, the first limit reached stops."
        ),
    )
    p.add_argument("prompt", nargs="?", default=None, help="the prompt ('-' or nothing reads standard input)")
    p.add_argument("--chat", action="store_true", help="send the prompt as a user message (chat template)")
    p.add_argument("--system", default=None, help="system message for --chat")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        metavar="STEPS",
        help="decoding steps at most: generated codes, each a base token or a hypertoken (the API's "
        "max_new_tokens)",
    )
    p.add_argument(
        "--max-new-base-tokens",
        type=int,
        default=None,
        metavar="N",
        help="generated text budget in base tokens, cut exactly (the API's max_new_base_tokens; default "
        f"{DEFAULT_MAX_NEW_BASE_TOKENS} when --max-new-tokens is not given)",
    )
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--token-healing",
        action="store_true",
        help="let the answer start inside the prompt's last token (a prompt cut at a line end or mid-word is "
        "continued as the whole text would be; generate(token_healing=True)); not with --chat",
    )
    p.add_argument("--no-stream", action="store_true", help="print the answer at the end only")
    p.add_argument(
        "--show-hypertokens", action="store_true", help="highlight hypertokens in prompt and answer"
    )
    p.set_defaults(func=run)


def length_settings(args: argparse.Namespace) -> dict[str, int]:
    """The `generate` keywords for ``--max-new-tokens`` / ``--max-new-base-tokens``."""
    for flag in ("max_new_tokens", "max_new_base_tokens"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise SystemExit(f"zip2zip generate: --{flag.replace('_', '-')} must be >= 1, got {value}")
    if args.max_new_tokens is None and args.max_new_base_tokens is None:
        return {"max_new_base_tokens": DEFAULT_MAX_NEW_BASE_TOKENS}
    settings = {"max_new_tokens": args.max_new_tokens, "max_new_base_tokens": args.max_new_base_tokens}
    return {name: value for name, value in settings.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    import time

    import torch

    from zip2zip.utils.hardware import set_cpu_threads

    prompt = args.prompt
    if prompt is None or prompt == "-":
        prompt = sys.stdin.read()
    if not prompt.strip():
        raise SystemExit("zip2zip generate: empty prompt; pass PROMPT or pipe text on standard input")
    settings: dict[str, Any] = {**length_settings(args), "do_sample": args.sample}
    if args.sample:
        settings.update(temperature=args.temperature, top_p=args.top_p)
    if args.token_healing:
        if args.chat:
            raise SystemExit(
                "zip2zip generate: --token-healing continues a raw prompt's text, but --chat ends the prompt with "
                "the chat template's assistant header; drop one of the two"
            )
        settings["token_healing"] = True
    set_cpu_threads(args.threads)
    model, tok, _ = load_zip2zip_or_exit("generate", args)
    if args.chat:
        messages = [{"role": "system", "content": args.system}] if args.system else []
        messages.append({"role": "user", "content": prompt})
        enc = tok.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(args.seed)
    skip_chars = 0
    if args.token_healing:
        settings["tokenizer"] = tok  # healing reads which tokens extend the prompt's last one
        # A healed prompt gives up its last token, which the answer writes again: print past the prompt's text.
        skip_chars = len(tok.decode(enc["input_ids"][0], skip_special_tokens=True))
    streamer = None if args.no_stream else _AnswerStreamer(tok, skip_chars)
    start = time.perf_counter()
    out = model.generate(
        **enc, **settings, streamer=streamer, return_dict_in_generate=True, pad_token_id=tok.pad_token_id
    )
    seconds = time.perf_counter() - start
    if args.no_stream:
        print(answer_text(tok, out.sequences[0], enc["input_ids"].shape[1], skip_chars))
    stats = out.generation_stats
    if args.show_hypertokens:
        print("\n== prompt and answer, hypertokens highlighted")
        print(tok.visualize(out.codes[0], format=view_format(args), skip_special_tokens=True))
    base_prompt, positions = len(tok.decode_to_base_ids(enc["input_ids"][0])), enc["input_ids"].shape[1]
    note(
        f"\n[prompt: {base_prompt} base tokens in {positions} positions; answer: {sum(stats.base_tokens)} base "
        f"tokens in {stats.steps} decoding steps ({stats.compression:.2f} base tokens per step, "
        f"{stats.hypertoken_rate:.0%} hypertokens); {seconds:.1f} s]"
    )
    return 0


def answer_text(tok: Any, row: Any, prompt_len: int, skip_chars: int) -> str:
    """The answer in a row of `generate`'s output: what follows the prompt's codes, or, after token healing
    (``skip_chars`` > 0), what follows the prompt's text (the healed prompt is shorter than the one given)."""
    if not skip_chars:
        return tok.decode(row[prompt_len:], skip_special_tokens=True)
    return tok.decode(row, skip_special_tokens=True)[skip_chars:]


class _AnswerStreamer:
    """Prints the answer as it is decoded: the stock `TextStreamer`, told to skip the prompt, or after token
    healing to skip the prompt's first ``skip_chars`` characters of text (the last prompt token comes again)."""

    def __init__(self, tok: Any, skip_chars: int) -> None:
        from transformers import TextStreamer

        self.skip_chars = skip_chars
        self.streamer = TextStreamer(tok, skip_prompt=not skip_chars, skip_special_tokens=True)
        self.streamer.on_finalized_text = self._print

    def put(self, value: Any) -> None:
        self.streamer.put(value)

    def end(self) -> None:
        self.streamer.end()

    def _print(self, text: str, stream_end: bool = False) -> None:
        cut = min(self.skip_chars, len(text))
        self.skip_chars -= cut
        print(text[cut:], flush=True, end="" if not stream_end else None)
