"""zip2zip models in lm-evaluation-harness: the model class registered as ``zip2zip``."""

from __future__ import annotations

import os
from typing import Any

from zip2zip.evaluation.scoring import Scorer, _progress
from zip2zip.loading import load_model_and_tokenizer

try:  # lm-eval is optional (the `bench`/`dev` extras); without it the rest of this module still works.
    # lm-eval loads its built-in models ("hf", ...) only while its registry is empty: load them before
    # registering ours, or `simple_evaluate(model="hf")` no longer finds them.
    import lm_eval.models  # noqa: F401
    from lm_eval.api.model import LM as _LM
    from lm_eval.api.registry import register_model as _register_model
except ImportError:  # pragma: no cover - exercised only without lm-eval
    _LM = None


if _LM is not None:

    @_register_model("zip2zip")
    class Zip2ZipLM(_LM):
        """lm-evaluation-harness model ``zip2zip``: base and zip2zip models scored by the same :class:`Scorer`.

        ``import zip2zip.evaluation`` registers it; then
        ``lm_eval.simple_evaluate(model="zip2zip", model_args="pretrained=FOLDER", tasks=[...])`` or pass an
        instance (``Zip2ZipLM(pretrained=model, tokenizer=tok)``). Model arguments: ``pretrained`` (folder or
        model object), ``tokenizer``, ``max_length`` (positions per scored sequence, default
        :data:`DEFAULT_MAX_LENGTH`), ``batch_size``, ``device``, ``dtype``, ``max_gen_toks`` (default 256).

        * ``loglikelihood``: the continuation is compressed as its own segment after the context (see the
          module docstring for the exact definition).
        * ``loglikelihood_rolling``: the rolling scheme of :func:`bits_per_byte`, so lm-eval's
          ``bits_per_byte`` equals ``zip2zip eval``'s on the same texts.
        * ``generate_until``: greedy ``generate``; the *whole* output is decoded and the decoded prompt is
          stripped from its front (slicing tokens would cut hypertokens apart), then the text is cut at the
          first stop string. Stop strings are checked on decoded text during generation too.
        """

        def __init__(
            self,
            pretrained: Any,
            tokenizer: Any = None,
            max_length: int | str | None = None,
            batch_size: int | str | None = 1,
            max_batch_size: int | None = None,
            device: str | None = None,
            dtype: str | None = None,
            max_gen_toks: int | str = 256,
            trust_remote_code: bool | str = True,
            **kwargs: Any,
        ) -> None:
            super().__init__()
            if isinstance(pretrained, (str, os.PathLike)):
                model, loaded = load_model_and_tokenizer(
                    pretrained, device=device, dtype=dtype, trust_remote_code=_as_bool(trust_remote_code)
                )
                if isinstance(tokenizer, (str, os.PathLike)):
                    from transformers import AutoTokenizer

                    tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=True)
                tokenizer = tokenizer or loaded
            else:
                model = pretrained.eval()
                if device is not None:
                    model.to(device)
                if tokenizer is None:
                    raise ValueError("Zip2ZipLM(pretrained=<model object>) needs tokenizer= as well")
            try:
                size = int(batch_size) if batch_size not in (None, "auto") else 1
            except (TypeError, ValueError):
                size = 1
            self.scorer = Scorer(
                model, tokenizer, int(max_length) if max_length not in (None, "") else None, size
            )
            self.model = model
            self.tokenizer = self.scorer.tokenizer
            self.max_gen_toks = int(max_gen_toks)
            self._device = model.device

        # ------------------------------------------------------------------ properties lm-eval reads

        @property
        def max_length(self) -> int:
            return self.scorer.max_length

        @property
        def tokenizer_name(self) -> str:
            return (getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__).replace(
                "/", "__"
            )

        @property
        def device(self) -> Any:
            return self._device

        # ------------------------------------------------------------------ requests

        def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
            pairs = [tuple(request.args) for request in requests]
            results = self.scorer.loglikelihood(pairs, progress=not disable_tqdm)
            for pair, result in zip(pairs, results):
                self.cache_hook.add_partial("loglikelihood", pair, result)
            return results

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            texts = [request.args[0] for request in requests]
            scores = self.scorer.score_each(texts, progress=not disable_tqdm, desc="loglikelihood_rolling")
            for text, score in zip(texts, scores):
                self.cache_hook.add_partial("loglikelihood_rolling", (text,), score.logprob)
            return [score.logprob for score in scores]

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            out = []
            bar = _progress(len(requests), "generate_until", not disable_tqdm)
            for n, request in enumerate(requests):
                context, gen_kwargs = request.args
                text = self._generate(n, context, dict(gen_kwargs or {}))
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
                out.append(text)
                bar.update(1)
            bar.close()
            return out

        def _generate(self, n: int, context: str, gen_kwargs: dict[str, Any]) -> str:
            until = gen_kwargs.pop("until", None) or []
            if isinstance(until, str):
                until = [until]
            max_new = int(gen_kwargs.pop("max_gen_toks", self.max_gen_toks))
            gen_kwargs.setdefault("do_sample", False)
            if not gen_kwargs["do_sample"]:
                for name in ("temperature", "top_p", "top_k"):
                    gen_kwargs.pop(name, None)
            tokenizer = self.tokenizer
            enc = tokenizer(context, add_special_tokens=False, return_tensors="pt")
            prompt_len = enc["input_ids"].shape[1]
            if prompt_len + max_new > self.max_length:
                raise ValueError(
                    f"generate_until request {n}: the prompt is {prompt_len} codes and max_gen_toks={max_new}, "
                    f"more than max_length={self.max_length} positions. Raise max_length (model argument, at most "
                    f"the model's {self.scorer.model_context()}), lower max_gen_toks, or use fewer few-shot examples."
                )
            base = self.scorer.base_tokenizer
            pad_id = base.pad_token_id if base.pad_token_id is not None else base.eos_token_id
            output = self.model.generate(
                input_ids=enc["input_ids"].to(self.device),
                attention_mask=enc["attention_mask"].to(self.device),
                max_new_tokens=max_new,
                stop_strings=[s for s in until if s] or None,
                tokenizer=tokenizer if self.scorer.is_zip2zip else base,
                pad_token_id=pad_id,
                **({"max_new_base_tokens": max_new} if self.scorer.is_zip2zip else {}),
                **gen_kwargs,
            )
            full = tokenizer.decode(output[0], skip_special_tokens=True)
            prompt = tokenizer.decode(enc["input_ids"][0], skip_special_tokens=True)
            if full.startswith(prompt):
                text = full[len(prompt) :]
            else:  # the prompt's last characters changed with what followed (a split character): decode apart
                text = tokenizer.decode(output[0][prompt_len:], skip_special_tokens=True)
            for stop in until:
                if stop:
                    text = text.split(stop)[0]
            return text

        def apply_chat_template(
            self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
        ) -> str:
            return self.tokenizer.apply_chat_template(
                chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
            )


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
