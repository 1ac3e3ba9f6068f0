"""``zip2zip serve``: an OpenAI-compatible server (transformers' own, see :mod:`zip2zip.serving`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from zip2zip.cli.options import threads_options

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve",
        parents=[threads_options()],
        help="serve a zip2zip model over an OpenAI-compatible HTTP API (transformers serve)",
        description=(
            "Serve a zip2zip model (default: the trained model shipped with the package) with transformers' "
            "OpenAI-compatible server: POST /v1/chat/completions and /v1/completions (streaming with "
            '"stream": true), GET /v1/models and /health. max_tokens counts base tokens of the reply (its text '
            "in the base tokenizer's tokens), as it would with the base model; usage counts base tokens too, "
            "and adds zip2zip's codes and hypertokens under usage.zip2zip. Requests are answered one at a time, "
            "in the order they arrive."
        ),
    )
    p.add_argument(
        "model",
        nargs="?",
        default=None,
        metavar="MODEL",
        help="zip2zip model folder or Hub id; a plain causal LM works too (default: the shipped model)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument(
        "--served-model-name",
        default=None,
        metavar="NAME",
        help="the name clients send as `model` (default: the folder's name, or the Hub id)",
    )
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default="auto", help="torch dtype, or 'auto' for the saved one (default: auto)")
    p.add_argument("--attn-implementation", default=None, help="attention implementation (e.g. sdpa, eager)")
    p.add_argument(
        "--prompt-lookup",
        type=int,
        default=0,
        metavar="K",
        help="prompt-lookup decoding: verify up to K codes copied from the text in one forward pass (same "
        "output, fewer passes on repetitive text); 0 turns it off (default)",
    )
    p.add_argument(
        "--prompt-lookup-match",
        choices=("base", "codes"),
        default="base",
        help="what prompt lookup matches: the text's base tokens (default) or the code stream",
    )
    p.add_argument(
        "--greedy-by",
        choices=("code", "prefix"),
        default="code",
        help="greedy requests (temperature 0): take the likeliest code (default), or the likeliest next base "
        "token summed over the codes that start with it, then the longest run that stays likeliest",
    )
    p.add_argument(
        "--token-healing",
        action="store_true",
        help="text completions: let the reply start inside the prompt's last token, so a prompt cut at a line "
        "end or mid-word is continued as the whole text would be (generate(token_healing=True)); the reply "
        "still starts after the prompt's text, and usage counts the prompt without its last base token, the "
        "reply with the token that replaced it. Not with --prompt-lookup",
    )
    p.add_argument(
        "--max-prompt-chars",
        type=int,
        default=None,
        metavar="N",
        help="refuse longer prompts before tokenizing them (default: 64 characters per position of context)",
    )
    p.add_argument(
        "--chat-template-kwargs",
        default=None,
        metavar="JSON",
        help="default keyword arguments of apply_chat_template, as a JSON object",
    )
    p.add_argument("--enable-cors", action="store_true", help="allow every origin (CORS)")
    p.add_argument(
        "--log-level", default="warning", help="uvicorn and transformers log level (default: warning)"
    )
    p.add_argument(
        "--continuous-batching",
        action="store_true",
        help="refused: zip2zip keeps a codebook per row in generate()",
    )
    p.add_argument("--compile", action="store_true", help="refused: zip2zip does not use a static KV cache")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zip2zip.serving import ServeSettings, refuse_unsupported_modes

    try:
        refuse_unsupported_modes(args.continuous_batching, args.compile)
    except ValueError as error:
        raise SystemExit(f"zip2zip serve: {error}") from None
    if args.prompt_lookup < 0:
        raise SystemExit(
            f"zip2zip serve: --prompt-lookup must be >= 0 (0 turns it off), got {args.prompt_lookup}"
        )
    if args.max_prompt_chars is not None and args.max_prompt_chars < 1:
        raise SystemExit(f"zip2zip serve: --max-prompt-chars must be >= 1, got {args.max_prompt_chars}")
    chat_template_kwargs = None
    if args.chat_template_kwargs:
        try:
            chat_template_kwargs = json.loads(args.chat_template_kwargs)
        except json.JSONDecodeError as error:
            raise SystemExit(f"zip2zip serve: --chat-template-kwargs is not JSON ({error})") from None
        if not isinstance(chat_template_kwargs, dict):
            raise SystemExit("zip2zip serve: --chat-template-kwargs must be a JSON object")

    import torch
    from transformers.utils import logging as hf_logging

    from zip2zip.serving import build_app, default_served_name, serve
    from zip2zip.utils.hardware import set_cpu_threads

    set_cpu_threads(args.threads)
    hf_logging.get_logger("transformers").setLevel(hf_logging.log_levels[args.log_level.lower()])
    model, served_name = args.model, args.served_model_name
    if model is None:
        from zip2zip.bundled.shipped import SHIPPED_MODEL_NAME, shipped_zip2zip_path

        model = shipped_zip2zip_path()
        if model is None:
            raise SystemExit(
                "zip2zip serve: no trained model ships with this package; pass a model folder or Hub id"
            )
        served_name = served_name or SHIPPED_MODEL_NAME
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        settings = ServeSettings(
            prompt_lookup_num_tokens=args.prompt_lookup or None,
            prompt_lookup_match=args.prompt_lookup_match,
            max_prompt_chars=args.max_prompt_chars,
            greedy_by=args.greedy_by,
            token_healing=args.token_healing,
        )
    except ValueError as error:
        raise SystemExit(f"zip2zip serve: {error}") from None
    try:
        app = build_app(
            model,
            served_name=served_name or default_served_name(model),
            device=device,
            dtype=args.dtype,
            attn_implementation=args.attn_implementation,
            settings=settings,
            chat_template_kwargs=chat_template_kwargs,
            enable_cors=args.enable_cors,
        )
    except (OSError, ValueError) as error:
        raise SystemExit(f"zip2zip serve: cannot load {model!r}: {error}") from None
    name = app.state.model_manager.served_name
    print(f"zip2zip serve: {name!r} on http://{args.host}:{args.port}/v1 (Ctrl-C stops)", flush=True)
    serve(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
