"""Serving zip2zip models with transformers' own OpenAI-compatible server (`transformers serve`).

The app, its endpoints, request parsing, SSE streaming and the per-model inference thread are transformers'
(``transformers.cli.serving``); this module only plugs zip2zip into its seams, by subclassing:

* :class:`Zip2ZipModelManager` loads the model (zip2zip or a plain causal LM) and its tokenizer, and lists the
  model under the name clients use.
* :class:`Zip2ZipGenerateManager` keeps transformers' queue (one inference thread per model, requests one after
  another, so rows' codebooks never mix) and, in that thread, applies the request's seed and keeps the
  request's own ``last_generation_stats``; the stream's end is sent after them.
* :class:`Zip2ZipChatCompletionHandler` and :class:`Zip2ZipCompletionHandler` check requests (a 4xx naming what
  was wrong), make ``max_tokens`` a budget of *base tokens* of text (``max_new_base_tokens``) and add zip2zip's
  counts to ``usage``; with ``--token-healing``, text completions are healed and the reply's text (streamed or
  not) starts after the prompt's text.

What is rewritten rather than subclassed (no seam upstream) is pinned by tests/test_serving.py against the
pinned transformers version.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from transformers.cli.serving.chat_completion import ChatCompletionHandler
from transformers.cli.serving.completion import CompletionHandler
from transformers.cli.serving.model_manager import ModelManager
from transformers.cli.serving.server import build_server
from transformers.cli.serving.utils import (
    DirectStreamer,
    GenerateManager,
    GenerationState,
    _GenerationCancelled,
    _StreamError,
    split_revision,
)

from zip2zip.model.stopping_zip2zip import GREEDY_BY_MODES

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ServeSettings",
    "Zip2ZipChatCompletionHandler",
    "Zip2ZipCompletionHandler",
    "Zip2ZipGenerateManager",
    "Zip2ZipGenerationState",
    "Zip2ZipModelManager",
    "build_app",
    "refuse_unsupported_modes",
]

# A reply's base tokens when the request sets no max_tokens (transformers serve's own default), cut to the context.
DEFAULT_MAX_TOKENS = 1024
# Characters of prompt per position of context above which a prompt cannot fit (checked before tokenizing).
_CHARS_PER_POSITION = 64
_ROLES = ("system", "developer", "user", "assistant", "tool")
# Per-request bookkeeping is dropped past this many entries (requests whose client went away).
_MAX_PENDING = 4096


@dataclass
class ServeSettings:
    """zip2zip's generation options for every request (server flags)."""

    prompt_lookup_num_tokens: int | None = None
    prompt_lookup_match: str = "base"
    max_prompt_chars: int | None = None
    greedy_by: Literal["code", "prefix"] = "code"
    token_healing: bool = False  # text completions only: a chat prompt ends with the template's header

    def __post_init__(self) -> None:
        if self.greedy_by not in GREEDY_BY_MODES:
            raise ValueError(f"greedy_by must be one of {GREEDY_BY_MODES}, got {self.greedy_by!r}")
        if self.token_healing and self.prompt_lookup_num_tokens:
            raise ValueError(
                "token healing and prompt lookup cannot be combined: healing constrains the first new code, and "
                "prompt lookup proposes several codes per pass; turn one of them off"
            )


def refuse_unsupported_modes(continuous_batching: bool = False, compile: bool = False) -> None:
    """Raise ValueError for the server modes a zip2zip model cannot run (checked before anything loads)."""
    if continuous_batching:
        raise ValueError(
            "continuous batching is not supported: its paged-attention loop drives the model without generate(), "
            "so no per-row LZW codebook is kept and hypertokens would be decoded wrong. Leave it off: requests are "
            "queued and answered one at a time"
        )
    if compile:
        raise ValueError(
            "--compile is not supported: it switches generation to a static KV cache, which the zip2zip loop "
            "(variable positions per code, prompt-lookup rollback) does not use. Leave it off"
        )


def _is_zip2zip(model: Any) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "zip2zip"


def _http_error(status: int, message: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=message)


def _context_length(model: Any) -> int | None:
    """Positions the model can attend over (the base model's), or None when its config does not say."""
    configs = [model.config, getattr(model.config, "text_config", None)]
    for config in configs:
        for name in ("max_position_embeddings", "n_positions"):
            value = getattr(config, name, None) if config is not None else None
            if isinstance(value, int) and value > 0:
                return value
    return None


def _bounded_put(table: OrderedDict, key: str, value: Any) -> None:
    table[key] = value
    while len(table) > _MAX_PENDING:
        table.popitem(last=False)


# ----------------------------------------------------------------------------------------- models


class Zip2ZipModelManager(ModelManager):
    """transformers' model manager, loading zip2zip models through the Auto classes and listing the model under
    ``served_name`` (the name clients send as ``model``)."""

    def __init__(self, model: str, served_name: str | None = None, **kwargs: Any) -> None:
        self.served_name = served_name or model
        kwargs.setdefault("trust_remote_code", True)
        super().__init__(force_model=model, **kwargs)

    def _load_processor(self, model_id_and_revision: str, gguf_file: str | None = None) -> Any:
        from transformers import AutoTokenizer

        model_id, revision = split_revision(model_id_and_revision)
        return AutoTokenizer.from_pretrained(
            model_id, revision=revision, trust_remote_code=self.trust_remote_code
        )

    def _load_model(self, model_id_and_revision: str, tqdm_class: Any = None, **kwargs: Any) -> Any:
        """A causal LM through `AutoModelForCausalLM` (transformers' manager looks the architecture up in its own
        namespace, where remote-code classes are not)."""
        from transformers import AutoModelForCausalLM

        model_id, revision = split_revision(model_id_and_revision)
        model = AutoModelForCausalLM.from_pretrained(
            model_id,
            revision=revision,
            dtype=self.dtype,
            device_map=self.device,
            attn_implementation=self.attn_implementation,
            trust_remote_code=self.trust_remote_code,
        )
        return model.eval()

    def list_models(self, cache_dir: str | None = None) -> list[dict]:
        return [
            {"id": self.served_name, "object": "model", "created": 0, "owned_by": "local", **status}
            for status in ({"status": {"value": "loaded" if self.loaded_models else "unloaded"}},)
        ]


# ----------------------------------------------------------------------------------------- generation


def healed_tail(given: list[int], read: list[int]) -> list[int]:
    """The base ids at the end of the ``given`` prompt that a healed prompt (``read``, what generate() read)
    gave up, which the reply writes again; none when the prompt was not healed."""
    if len(read) < len(given) and given[: len(read)] == read:
        return given[len(read) :]
    return []


@dataclass
class HealedPrompt:
    """The prompt a request's generate() read after token healing."""

    codes: int  # its codes (the usage's prompt_codes)
    base_tokens: int  # its base tokens (the usage's prompt_tokens)
    removed: list[int]  # the given prompt's last base ids it gave up, which start the reply's text again


class _EndLater:
    """Holds back the streamer's end-of-stream until the request's statistics are stored."""

    def __init__(self, streamer: DirectStreamer) -> None:
        self.streamer = streamer

    def put(self, value: Any) -> None:
        self.streamer.put(value)

    def end(self) -> None:
        pass


class _FlushingStreamer(DirectStreamer):
    """transformers' streamer, which at the end also sends what its ``DecodeStream`` still holds back, and which
    after token healing leaves out the text of the prompt tokens the reply writes again.

    ``DecodeStream`` waits for the rest of an incomplete UTF-8 sequence and never flushes it, where the full
    decode shows U+FFFD; sending the difference makes the streamed text equal the non-streamed one.
    """

    def __init__(self, *args: Any, prompt_base_ids: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids: list[int] = []
        self._sent: list[str] = []
        self._prompt_base_ids = prompt_base_ids  # given when the prompt may be healed
        self._skip = self._skip_total = 0

    def put(self, value: Any) -> None:
        first = self._first
        if first and self._prompt_base_ids is not None:
            # The first put is the prompt generate() read: the given one, or the healed one, shorter.
            removed = healed_tail(self._prompt_base_ids, value.reshape(-1).tolist())
            self._skip = self._skip_total = len(self._tokenizer.decode(removed, skip_special_tokens=True))
        super().put(value)
        if not first:
            self._ids.extend(int(i) for i in value.reshape(-1).tolist())

    def _enqueue(self, item: Any) -> None:
        if type(item) is str:
            cut = min(self._skip, len(item))
            self._skip -= cut
            item = item[cut:]
            if not item:
                return
            self._sent.append(item)
        super()._enqueue(item)

    def flush(self) -> None:
        if self._parser is not None:
            return
        full = self._tokenizer.decode(self._ids, skip_special_tokens=True)[self._skip_total :]
        sent = "".join(self._sent)
        if len(full) > len(sent) and full.startswith(sent):
            self._skip = 0
            self._enqueue(full[len(sent) :])


class Zip2ZipGenerateManager(GenerateManager):
    """transformers' sequential manager (one inference thread per model: requests are queued), which applies the
    request's seed and keeps its zip2zip statistics in the thread that generates."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: OrderedDict[str, Any] = OrderedDict()
        self.seeds: OrderedDict[str, int] = OrderedDict()
        self.healed: OrderedDict[str, HealedPrompt] = OrderedDict()

    def _generate(self, model: Any, request_id: str, **kwargs: Any) -> Any:
        import torch

        seed = self.seeds.pop(request_id, None)
        if seed is not None:
            # Here, not when the request arrives: requests queue, and another one's sampling would consume it.
            torch.manual_seed(seed)
        if _is_zip2zip(model):
            model.last_generation_stats = None
        output = model.generate(**kwargs)
        stats = getattr(model, "last_generation_stats", None)
        if stats is not None:
            _bounded_put(self.stats, request_id, stats)
            if getattr(kwargs.get("generation_config"), "token_healing", False):
                _bounded_put(self.healed, request_id, _healed_prompt(kwargs, output, stats))
        return output

    def generate_streaming(
        self,
        model: Any,
        processor: Any,
        inputs: dict,
        gen_config: Any,
        request_id: str,
        response_parser: Any = None,
    ) -> tuple[asyncio.Queue, DirectStreamer]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        rust_tokenizer = getattr(processor, "tokenizer", processor)._tokenizer
        prompt_base_ids = None
        if getattr(gen_config, "token_healing", False):
            prompt_base_ids = processor.decode_to_base_ids(inputs["input_ids"][0])
        streamer = _FlushingStreamer(
            rust_tokenizer, loop, queue, response_parser=response_parser, prompt_base_ids=prompt_base_ids
        )
        kwargs = {
            **inputs,
            "streamer": _EndLater(streamer),
            "generation_config": gen_config,
            "tokenizer": processor,
        }

        def run() -> None:
            try:
                self._generate(model, request_id, **kwargs)
            except _GenerationCancelled:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except Exception as error:
                loop.call_soon_threadsafe(queue.put_nowait, _StreamError(str(error)))
            else:
                streamer.flush()
                streamer.end()

        self.submit(run)
        return queue, streamer

    async def generate_non_streaming(
        self, model: Any, processor: Any, inputs: dict, gen_config: Any, request_id: str
    ) -> tuple[str, int, Any]:
        kwargs = {**inputs, "generation_config": gen_config, "tokenizer": processor}
        sequences = await self.async_submit(self._generate, model, request_id, **kwargs)
        input_len = inputs["input_ids"].shape[-1]
        healed = self.healed.get(request_id)
        generated_ids = sequences[0, input_len if healed is None else healed.codes :]
        if _is_zip2zip(model):
            # One row: no right padding; the ids are base ids, so the count is the base tokens'.
            generated_ids = generated_ids[: sum(self.stats[request_id].base_tokens)]
        text = processor.decode(generated_ids, skip_special_tokens=True)
        if healed is not None:
            text = text[len(processor.decode(healed.removed, skip_special_tokens=True)) :]
        return text, input_len, generated_ids


def _healed_prompt(kwargs: dict, output: Any, stats: Any) -> HealedPrompt:
    """What a healed generate() read as its prompt: its output's columns before the reply's base ids."""
    tokenizer, sequences = kwargs["tokenizer"], getattr(output, "sequences", output)
    read = sequences[0, : sequences.shape[-1] - sum(stats.base_tokens)].tolist()
    read_base = tokenizer.decode_to_base_ids(read)
    given_base = tokenizer.decode_to_base_ids(kwargs["input_ids"][0])
    return HealedPrompt(len(read), len(read_base), healed_tail(given_base, read_base))


class Zip2ZipGenerationState(GenerationState):
    """transformers' generation state with :class:`Zip2ZipGenerateManager` per model (no continuous batching)."""

    def __init__(self) -> None:
        super().__init__(continuous_batching=False, compile=False)

    def get_manager(self, model_id: str, use_cb: bool = False) -> Zip2ZipGenerateManager:
        if model_id not in self._generate_managers:
            self._generate_managers[model_id] = Zip2ZipGenerateManager()
        return self._generate_managers[model_id]  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------- requests


class _Zip2ZipHandlerMixin:
    """Request checks, base-token budgets and zip2zip's usage counts for transformers' handlers."""

    settings: ServeSettings
    model_manager: Zip2ZipModelManager
    generation_state: Zip2ZipGenerationState
    heals_prompts = False  # --token-healing applies to this endpoint's prompts

    def __init__(self, *args: Any, settings: ServeSettings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings or ServeSettings()
        self._prompts: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._budget_given: OrderedDict[str, bool] = OrderedDict()

    # ----- checks

    def _prompt_text(self, body: dict) -> str:
        raise NotImplementedError

    def _check_body(self, body: dict) -> None:
        requested = body.get("model")
        if requested is not None and requested not in (
            self.model_manager.served_name,
            self.model_manager.force_model,
        ):
            raise _http_error(
                404,
                f"model {requested!r} is not served here; this server serves {self.model_manager.served_name!r} "
                "(GET /v1/models lists it): send that name as `model`",
            )
        for field in ("max_tokens", "max_completion_tokens"):
            value = body.get(field)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise _http_error(
                    400, f"{field} must be a positive integer (base tokens of the reply), got {value!r}"
                )
        for field, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
            value = body.get(field)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high
            ):
                raise _http_error(400, f"{field} must be a number in [{low}, {high}], got {value!r}")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise _http_error(400, f"seed must be a non-negative integer, got {seed!r}")
        stop = body.get("stop")
        if stop is not None and not (
            isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop))
        ):
            raise _http_error(400, f"stop must be a string or a list of non-empty strings, got {stop!r}")
        text = self._prompt_text(body)
        limit = self._max_prompt_chars()
        if limit is not None and len(text) > limit:
            raise _http_error(
                400,
                f"the prompt has {len(text)} characters; this server takes at most {limit} (more cannot fit the "
                "model's context). Send a shorter prompt",
            )

    def _max_prompt_chars(self) -> int | None:
        if self.settings.max_prompt_chars is not None:
            return self.settings.max_prompt_chars
        for timed in list(self.model_manager.loaded_models.values()):
            context = _context_length(timed.model) if timed.model is not None else None
            if context is not None:
                return context * _CHARS_PER_POSITION
        return None

    async def handle_request(self, body: dict, request_id: str) -> Any:
        if not isinstance(body, dict):
            raise _http_error(400, "the request body must be a JSON object")
        self._check_body(body)
        # Internal bookkeeping is per request: a client reusing an X-Request-ID must not share it.
        request_id = f"{request_id}-{uuid.uuid4().hex[:8]}"
        _bounded_put(
            self._budget_given,
            request_id,
            any(body.get(f) is not None for f in ("max_tokens", "max_completion_tokens")),
        )
        if body.get("seed") is not None:
            model_id = self.model_manager.process_model_name(self.model_manager.force_model)
            _bounded_put(self.generation_state.get_manager(model_id).seeds, request_id, int(body["seed"]))
        return await super().handle_request(body, request_id)  # type: ignore[misc]

    def _resolve_model(self, body: dict) -> tuple[str, Any, Any]:
        body["model"] = self.model_manager.force_model
        model_id, model, processor = super()._resolve_model(body)  # type: ignore[misc]
        return model_id, model, processor

    def _build_generation_config(self, body: dict, model_generation_config: Any, use_cb: bool = False) -> Any:
        config = super()._build_generation_config(body, model_generation_config, use_cb=use_cb)  # type: ignore[misc]
        temperature = body.get("temperature")
        if temperature is not None and float(temperature) > 0:
            config.do_sample = True  # what an OpenAI client means by a temperature above 0
        if body.get("stop") is not None and isinstance(body["stop"], str):
            config.stop_strings = [body["stop"]]
        return config

    # ----- generation

    def _prepare(self, request_id: str, model: Any, processor: Any, inputs: dict, gen_config: Any) -> None:
        """Fit the budget to the context, make it count base tokens, apply the server's zip2zip options."""
        codes = [int(c) for c in inputs["input_ids"][0].tolist()]
        base = len(codes)
        if _is_zip2zip(model):
            decoder = processor.codec.new_decoder()
            base = sum(len(decoder.feed(code).phrase) for code in codes)
        positions = base if getattr(model.config, "position_mode", "compressed") == "base" else len(codes)
        context = _context_length(model)
        budget = int(gen_config.max_new_tokens or DEFAULT_MAX_TOKENS)
        if context is not None:
            room = context - positions
            if room < 1:
                raise _http_error(
                    400,
                    f"the prompt takes {positions} positions, which leaves no room in the model's context of "
                    f"{context}: send a shorter prompt",
                )
            if budget > room:
                if self._budget_given.get(request_id):
                    raise _http_error(
                        400,
                        f"max_tokens={budget} does not fit: the prompt takes {positions} of the model's {context} "
                        f"positions, so at most {room} base tokens can follow. Send max_tokens <= {room}",
                    )
                budget = room
        gen_config.max_new_tokens = budget
        if _is_zip2zip(model):
            gen_config.max_new_base_tokens = (
                budget  # codes never outnumber base tokens, so this one stops first
            )
            if self.settings.greedy_by != "code" and not gen_config.do_sample:
                gen_config.greedy_by = self.settings.greedy_by  # greedy requests only (temperature 0)
            if self.settings.prompt_lookup_num_tokens:
                gen_config.prompt_lookup_num_tokens = self.settings.prompt_lookup_num_tokens
                gen_config.prompt_lookup_match = self.settings.prompt_lookup_match
            if self.settings.token_healing and self.heals_prompts:
                gen_config.token_healing = True
        _bounded_put(self._prompts, request_id, {"codes": len(codes), "base_tokens": base})

    def _usage(self, request_id: str, usage: Any) -> Any:
        """Standard fields in base tokens (the unit of max_tokens); zip2zip's counts under ``zip2zip``."""
        from openai.types.completion_usage import CompletionUsage

        prompt = self._prompts.pop(request_id, None)
        self._budget_given.pop(request_id, None)
        manager = self.generation_state.get_manager(
            self.model_manager.process_model_name(self.model_manager.force_model)
        )
        stats = manager.stats.pop(request_id, None)
        healed = manager.healed.pop(request_id, None)
        if prompt is None or stats is None:
            return usage
        if healed is not None:  # the prompt generate() read; its given last token is counted in the reply
            prompt = {"codes": healed.codes, "base_tokens": healed.base_tokens}
        completion = sum(stats.base_tokens)
        return CompletionUsage.model_validate(
            {
                "prompt_tokens": prompt["base_tokens"],
                "completion_tokens": completion,
                "total_tokens": prompt["base_tokens"] + completion,
                "zip2zip": {
                    "prompt_codes": prompt["codes"],
                    "completion_codes": sum(stats.codes),
                    "completion_hypertokens": sum(stats.hypertokens),
                    "completion_base_tokens": completion,
                    "steps": stats.steps,
                    "forward_passes": stats.forward_passes,
                },
            }
        )

    def _streaming(
        self,
        request_id: str,
        model: Any,
        processor: Any,
        model_id: str,
        inputs: dict,
        gen_config: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self._prepare(request_id, model, processor, inputs, gen_config)
        return super()._streaming(
            request_id, model, processor, self.model_manager.served_name, inputs, gen_config, *args, **kwargs
        )  # type: ignore[misc]

    async def _non_streaming(
        self,
        request_id: str,
        model: Any,
        processor: Any,
        model_id: str,
        inputs: dict,
        gen_config: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        from fastapi.responses import JSONResponse

        self._prepare(request_id, model, processor, inputs, gen_config)
        response = await super()._non_streaming(
            request_id, model, processor, self.model_manager.served_name, inputs, gen_config, *args, **kwargs
        )  # type: ignore[misc]
        payload = json.loads(response.body)
        usage = self._usage(request_id, None)
        if usage is not None:
            payload["usage"] = usage.model_dump(exclude_none=True)
        return JSONResponse(payload)

    def _build_chunk_sse(self, *args: Any, **kwargs: Any) -> str:
        if kwargs.get("usage") is not None:
            kwargs["usage"] = self._usage(args[0] if args else kwargs["request_id"], kwargs["usage"])
        return super()._build_chunk_sse(*args, **kwargs)  # type: ignore[misc]


class Zip2ZipChatCompletionHandler(_Zip2ZipHandlerMixin, ChatCompletionHandler):
    """``/v1/chat/completions``: transformers' handler, with messages checked before the chat template."""

    def _prompt_text(self, body: dict) -> str:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _http_error(
                400, f"messages must be a non-empty list of {{role, content}} objects, got {messages!r:.80}"
            )
        parts = []
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _http_error(
                    400,
                    f"messages[{index}] must be an object with a role among {list(_ROLES)}, got {message!r:.80}",
                )
            content = message.get("content")
            if content is None and message.get("tool_calls"):
                continue
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list) and all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                for p in content
            ):
                parts.extend(p["text"] for p in content)
            else:
                raise _http_error(
                    400,
                    f"messages[{index}].content must be a string or a list of {{type: 'text', text}} parts "
                    f"(this model reads text only), got {content!r:.80}",
                )
        return "".join(parts)


class Zip2ZipCompletionHandler(_Zip2ZipHandlerMixin, CompletionHandler):
    """``/v1/completions``: transformers' handler, with the prompt checked before tokenizing."""

    heals_prompts = True

    def _prompt_text(self, body: dict) -> str:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _http_error(400, f"prompt must be a non-empty string, got {prompt!r:.80}")
        return prompt


class _NotServed:
    """An endpoint of transformers' server that zip2zip does not serve: a 404 that says which ones it does."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        raise _http_error(
            404,
            f"{self.endpoint} is not served by zip2zip serve; use /v1/chat/completions or /v1/completions",
        )


# ----------------------------------------------------------------------------------------- the app


def _error_body(status: int, message: str) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}


def build_app(
    model: str,
    served_name: str | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    attn_implementation: str | None = None,
    settings: ServeSettings | None = None,
    chat_template_kwargs: dict | None = None,
    enable_cors: bool = False,
) -> Any:
    """transformers' FastAPI app serving ``model`` (loaded now) with zip2zip's handlers.

    Errors are OpenAI-shaped JSON (``{"error": {"message", "type", "code"}}``), so clients show the message.
    """
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    manager = Zip2ZipModelManager(
        model, served_name=served_name, device=device, dtype=dtype, attn_implementation=attn_implementation
    )
    state = Zip2ZipGenerationState()
    settings = settings or ServeSettings()
    common = {"model_manager": manager, "generation_state": state, "settings": settings}
    app = build_server(
        manager,
        Zip2ZipChatCompletionHandler(chat_template_kwargs=chat_template_kwargs, **common),
        completion_handler=Zip2ZipCompletionHandler(**common),
        response_handler=_NotServed("/v1/responses"),  # type: ignore[arg-type]
        transcription_handler=_NotServed("/v1/audio/transcriptions"),  # type: ignore[arg-type]
        systemone_handler=_NotServed("/v1/systemone"),  # type: ignore[arg-type]
        generation_state=state,
        enable_cors=enable_cors,
    )

    @app.middleware("http")
    async def require_utf8(request: Request, call_next: Any) -> Any:
        if request.method == "POST":
            body = await request.body()
            try:
                body.decode("utf-8")
            except UnicodeDecodeError as error:
                return JSONResponse(
                    _error_body(
                        400,
                        f"the request body is not UTF-8 (byte {body[error.start]:#04x} at offset {error.start}): "
                        "send JSON encoded as UTF-8",
                    ),
                    status_code=400,
                )
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_error_body(error.status_code, str(error.detail)), status_code=error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{e.get('msg')}{' (' + str(e['ctx'].get('error')) + ')' if e.get('ctx') else ''}"
            for e in error.errors()
        )
        return JSONResponse(
            _error_body(400, f"the request body is not a valid JSON object: {problems}"), status_code=400
        )

    @app.exception_handler(Exception)
    async def server_error(_request: Request, error: Exception) -> JSONResponse:
        return JSONResponse(_error_body(500, f"{type(error).__name__}: {error}"), status_code=500)

    app.state.model_manager = manager
    return app


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Run ``app`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level)


def default_served_name(model: str) -> str:
    """The name clients send as ``model``: a folder's name, or the Hub id."""
    return os.path.basename(os.path.normpath(model)) if os.path.isdir(model) else model
