"""Measuring zip2zip models the way their base models are measured: bits per byte, compression, lm-eval.

Token counts differ between a base model and its zip2zip model, so quality is compared *per byte* of text
and speed per byte, never per token. Everything here works for plain Hugging Face causal LMs too (their
"codec" is the identity), so a base model and its zip2zip model are scored by one function on the same bytes.

Scoring conventions (one set, used by :func:`bits_per_byte`, ``zip2zip eval`` and the lm-eval class):

* **Tokens.** A text becomes base ids with the base tokenizer and ``add_special_tokens=False``. Every scored
  sequence starts with one *prefix token*: the base tokenizer's bos token, else its eos token. The prefix is
  never scored; it only gives the first real token something to be predicted from (lm-eval does the same in
  ``loglikelihood_rolling``). Special tokens are never merged by the codec, so the prefix is a single code.
* **Windows (rolling scheme).** The base ids are cut into consecutive, non-overlapping windows of
  ``max_length - 1`` base tokens. Each window is scored on its own: input = prefix + the window's codes, and
  every code of the window is scored (the first given the prefix only). For a zip2zip model the window is
  LZW-compressed on its own (a fresh codebook per window, as the model would see it as a fresh prompt); for a
  base model the codes are the base ids. Both models therefore read exactly the same base tokens in the same
  windows, and a zip2zip window never needs more than ``max_length`` positions.
* **Strict likelihood.** A zip2zip model can spell a text with many code streams (a hypertoken, or its
  constituents one by one). We score only the *canonical* stream, the one the LZW encoder produces, with
  the model's full ``V + C`` softmax (slots the decoder could not accept are ``-inf``). The probability of
  the text is at least that of its canonical stream, so the bits per byte reported here are an upper bound
  for the zip2zip model and exact for the base model. A model with ``canonical_mask`` puts no probability on
  any other stream, so for it the bound is exact too.
* **Bits per byte** of a set of texts = (sum over texts of ``-log2 p``) / (sum of their UTF-8 bytes): the
  same aggregation as lm-eval's ``bits_per_byte`` metric, so ``zip2zip eval`` and lm-eval agree.
* **Continuation probability** (lm-eval ``loglikelihood(context, continuation)``): context and continuation
  are tokenized as lm-eval's own Hugging Face model does (trailing spaces of the context move to the
  continuation; the continuation's ids are those that follow the context's ids in the tokenization of the
  whole text), prefixed with the prefix token, then compressed as two *segments* sharing one codebook
  (:meth:`LZWCodec.encode_segments`): no code spans the boundary, so the continuation is covered by whole
  codes that stand for exactly its base ids. Its log-probability is the sum of the log-probabilities of
  those codes given everything before them, and ``is_greedy`` means every one of them is the argmax of the
  model's (masked) distribution. The context's codes are the ones it gets alone, as in generation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from zip2zip.loading import is_zip2zip_model

DEFAULT_MAX_LENGTH = 1024
"""Positions per scored window (prefix included) when nothing else is said; both CLI and lm-eval use it."""


@dataclass
class TextScore:
    """Log-likelihood and counts of some text under one model (sums over texts and windows)."""

    logprob: float = 0.0
    """Natural-log probability of every scored code (<= 0)."""
    bytes: int = 0
    base_tokens: int = 0
    codes: int = 0
    """Scored codes (the prefix tokens are not counted): base tokens for a base model."""
    hypertokens: int = 0
    windows: int = 0
    texts: int = 0

    @property
    def bits_per_byte(self) -> float:
        return -self.logprob / math.log(2) / self.bytes if self.bytes else float("nan")

    @property
    def compression(self) -> float:
        """Base tokens per code (1.0 for a base model)."""
        return self.base_tokens / self.codes if self.codes else 1.0

    @property
    def positions(self) -> int:
        """Model positions the scoring used (codes plus one prefix per window)."""
        return self.codes + self.windows

    def __add__(self, other: TextScore) -> TextScore:
        names = ("logprob", "bytes", "base_tokens", "codes", "hypertokens", "windows", "texts")
        return TextScore(**{name: getattr(self, name) + getattr(other, name) for name in names})

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "bits_per_byte": self.bits_per_byte,
            "compression": self.compression,
            "positions": self.positions,
        }


class Scorer:
    """Scores code streams of a base or zip2zip model; the one implementation behind every number here.

    Args:
        model: a causal LM (`AutoModelForCausalLM`) or a zip2zip model.
        tokenizer: its tokenizer. For a zip2zip model, a Zip2ZipTokenizer (a base tokenizer is wrapped with
            the model's codec settings); its codec settings must match the model config's.
        max_length: positions per scored sequence, prefix included. Defaults to
            ``min(DEFAULT_MAX_LENGTH, the model's max_position_embeddings)``.
        batch_size: sequences per forward pass (1 gives numbers that do not depend on batching at all).
    """

    def __init__(
        self, model: Any, tokenizer: Any, max_length: int | None = None, batch_size: int = 1
    ) -> None:
        self.model = model
        self.is_zip2zip = is_zip2zip_model(model)
        if self.is_zip2zip:
            if getattr(tokenizer, "codec", None) is None:
                from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

                tokenizer = Zip2ZipTokenizer.from_base(tokenizer, model.config)
            tokenizer.check_compatible(model.config)
            self.codec = tokenizer.codec
        else:
            self.codec = None
        self.tokenizer = tokenizer
        self.base_tokenizer = tokenizer.base if getattr(tokenizer, "codec", None) is not None else tokenizer
        base = self.base_tokenizer
        prefix = base.bos_token_id if base.bos_token_id is not None else base.eos_token_id
        if prefix is None:
            raise ValueError(
                f"the tokenizer {getattr(base, 'name_or_path', '') or type(base).__name__} has neither a bos nor an "
                "eos token, so there is no prefix token to start scored sequences with; set tokenizer.bos_token"
            )
        self.prefix_id = int(prefix)
        limit = self.model_context()
        if max_length is None:
            max_length = min(DEFAULT_MAX_LENGTH, limit) if limit else DEFAULT_MAX_LENGTH
        max_length = int(max_length)
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: a scored sequence needs at least 2 positions")
        if limit and max_length > limit:
            raise ValueError(
                f"max_length={max_length} exceeds the model's context ({limit} positions, "
                f"max_position_embeddings in config.json); use max_length <= {limit}"
            )
        self.max_length = max_length
        self.batch_size = max(1, int(batch_size))
        vocab = self.codec.base_vocab_size if self.codec else None
        self.base_vocab_size = vocab

    # ------------------------------------------------------------------ tokens and codes

    def model_context(self) -> int | None:
        config = self.model.config
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(text, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def base_ids(self, text: str) -> list[int]:
        return list(self.base_tokenizer(text, add_special_tokens=False)["input_ids"])

    def compress(self, segments: Sequence[Sequence[int]]) -> list[int]:
        """Codes of consecutive base-id segments (one shared codebook, no code across a boundary)."""
        if self.codec is None:
            return [i for segment in segments for i in segment]
        if len(segments) == 1:
            return self.codec.encode(segments[0])
        return self.codec.encode_segments(segments)

    def _is_hyper(self, code: int) -> bool:
        return self.codec is not None and code >= self.codec.base_vocab_size

    # ------------------------------------------------------------------ the model

    @torch.inference_mode()
    def score(self, sequences: Sequence[Sequence[int]], starts: Sequence[int]) -> list[tuple[float, bool]]:
        """For each sequence, the log-probability of its codes from ``starts[i]`` on, and whether all are greedy."""
        results: list[tuple[float, bool]] = [(0.0, True)] * len(sequences)
        order = sorted(
            (i for i in range(len(sequences)) if starts[i] < len(sequences[i])),
            key=lambda i: -len(sequences[i]),
        )
        device = self.model.device
        for first in range(0, len(order), self.batch_size):
            chunk = order[first : first + self.batch_size]
            width = max(len(sequences[i]) for i in chunk)
            ids = torch.full((len(chunk), width), self.prefix_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(sequences[i])] = torch.tensor(sequences[i], dtype=torch.long)
                mask[row, : len(sequences[i])] = 1
            for i in chunk:
                if starts[i] < 1:
                    raise ValueError(
                        "the first code of a sequence has nothing to be predicted from (start >= 1)"
                    )
            ids, mask = ids.to(device), mask.to(device)
            extra = self._segment_start_exclusions(ids, mask, [int(starts[i]) for i in chunk])
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False, **extra).logits
            for row, i in enumerate(chunk):
                start, end = int(starts[i]), len(sequences[i])
                logprobs = torch.log_softmax(logits[row, start - 1 : end - 1].float(), dim=-1)
                targets = ids[row, start:end]
                picked = logprobs.gather(-1, targets[:, None]).squeeze(-1)
                greedy = bool((logprobs.argmax(-1) == targets).all())
                results[i] = (float(picked.double().sum()), greedy)
        return results

    def _segment_start_exclusions(
        self, ids: torch.Tensor, mask: torch.Tensor, starts: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        """For a model with ``canonical_mask``: its codebook state, with the exclusions lifted where the scored
        codes begin (handed to the model, which then does not rebuild it).

        A continuation is compressed apart from its context (a new segment), so its first code may start a
        phrase the context's last code could extend; the model must not rule that code out.
        """
        config = self.model.config
        if not (self.is_zip2zip and getattr(config, "canonical_mask", False)):
            return {}
        state = self.model.prepare_codebook(ids, mask)
        for row, start in enumerate(starts):
            state["excluded_codes"][row, start - 1] = -1
        return state

    # ------------------------------------------------------------------ texts (bits per byte)

    def windows(self, text: str) -> tuple[list[list[int]], list[list[int]]]:
        """The text's base-id windows and the scored sequence of each (prefix + codes)."""
        ids = self.base_ids(text)
        size = self.max_length - 1
        windows = [ids[i : i + size] for i in range(0, len(ids), size)]
        return windows, [[self.prefix_id, *self.compress([w])] for w in windows]

    def score_texts(self, texts: Iterable[str], progress: bool = False) -> TextScore:
        """Sum of the log-likelihoods of ``texts`` under the rolling scheme (see the module docstring)."""
        return sum(self.score_each(texts, progress), TextScore())

    def score_each(
        self, texts: Iterable[str], progress: bool = False, desc: str = "scoring"
    ) -> list[TextScore]:
        """One :class:`TextScore` per text."""
        texts = list(texts)
        sequences: list[list[int]] = []
        owners: list[int] = []
        scores = []
        for t, text in enumerate(texts):
            windows, seqs = self.windows(text)
            score = TextScore(bytes=len(text.encode("utf-8")), texts=1, windows=len(windows))
            score.base_tokens = sum(map(len, windows))
            score.codes = sum(len(s) - 1 for s in seqs)
            score.hypertokens = sum(self._is_hyper(c) for s in seqs for c in s[1:])
            scores.append(score)
            sequences.extend(seqs)
            owners.extend([t] * len(seqs))
        step = self.batch_size * 4
        bar = _progress(len(sequences), desc, progress)
        for first in range(0, len(sequences), step):
            part = sequences[first : first + step]
            for owner, (logprob, _) in zip(owners[first : first + step], self.score(part, [1] * len(part))):
                scores[owner].logprob += logprob
            bar.update(len(part))
        bar.close()
        return scores

    # ------------------------------------------------------------------ context / continuation

    def pair(self, context: str, continuation: str) -> tuple[list[int], int]:
        """Codes of prefix + context + continuation, and the index of the continuation's first code."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        context_ids = self.base_ids(context) if context else []
        whole = self.base_ids(context + continuation)
        if whole[: len(context_ids)] == context_ids:
            continuation_ids = whole[len(context_ids) :]
        else:  # the context's last token merged with the continuation's first: tokenize them apart
            continuation_ids = self.base_ids(continuation)
        head = [self.prefix_id, *context_ids]
        codes = self.compress([head, continuation_ids])
        start = len(self.compress([head]))
        return codes, start

    def loglikelihood(
        self, pairs: Sequence[tuple[str, str]], progress: bool = False
    ) -> list[tuple[float, bool]]:
        """lm-eval's ``loglikelihood``: ``(log p(continuation | context), is_greedy)`` for each pair."""
        sequences, starts = [], []
        for n, (context, continuation) in enumerate(pairs):
            codes, start = self.pair(context, continuation)
            if len(codes) > self.max_length:
                raise ValueError(
                    f"loglikelihood request {n}: prefix + context + continuation is {len(codes)} codes but "
                    f"max_length={self.max_length}. Raise max_length (model argument max_length=..., at most "
                    f"the model's {self.model_context()} positions) or use fewer few-shot examples."
                )
            sequences.append(codes)
            starts.append(start)
        results: list[tuple[float, bool]] = []
        step = self.batch_size * 4
        bar = _progress(len(sequences), "loglikelihood", progress)
        for first in range(0, len(sequences), step):
            results.extend(self.score(sequences[first : first + step], starts[first : first + step]))
            bar.update(min(step, len(sequences) - first))
        bar.close()
        return results


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def bits_per_byte(
    model: Any,
    tokenizer: Any,
    texts: Iterable[str],
    max_length: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
) -> TextScore:
    """Bits per byte (and counts) of ``model`` on ``texts``; see the module docstring for the exact scheme.

    Works for base models and zip2zip models alike; ``result.bits_per_byte`` is the number to compare.
    """
    return Scorer(model, tokenizer, max_length, batch_size).score_texts(texts, progress)


def compare_on_domains(
    texts_by_domain: dict[str, Sequence[str]],
    model: Any,
    tokenizer: Any,
    base_model: Any = None,
    base_tokenizer: Any = None,
    max_length: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    """Bits per byte and compression of a zip2zip model (and optionally its base) per domain, on the same bytes.

    Returns ``{"max_length", "description", "domains": {domain: {"zip2zip": ..., "base": ...}}, "overall": ...}``
    where each entry is a :meth:`TextScore.to_dict`; ``overall`` sums every domain (bytes-weighted). This is
    what ``zip2zip eval --json`` writes and what ``zip2zip export --measurements`` reads for the model card.
    """
    scorer = Scorer(model, tokenizer, max_length, batch_size)
    base_scorer = (
        Scorer(base_model, base_tokenizer, scorer.max_length, batch_size) if base_model is not None else None
    )
    domains: dict[str, Any] = {}
    totals = {"zip2zip": TextScore(), "base": TextScore()}
    for domain, texts in texts_by_domain.items():
        entry = {}
        for key, which in (("zip2zip", scorer), ("base", base_scorer)):
            if which is None:
                continue
            score = which.score_texts(texts, progress)
            totals[key] = totals[key] + score
            entry[key] = score.to_dict()
        domains[domain] = entry
    overall = {"zip2zip": totals["zip2zip"].to_dict()}
    if base_scorer is not None:
        overall["base"] = totals["base"].to_dict()
    return {
        "max_length": scorer.max_length,
        "description": description,
        "domains": domains,
        "overall": overall,
    }


def compression_statistics(
    tokenizer: Any, texts: Iterable[str], max_length: int = DEFAULT_MAX_LENGTH
) -> dict:
    """LZW compression of ``texts`` in the windows :func:`bits_per_byte` uses (``max_length - 1`` base tokens).

    ``tokenizer`` is a Zip2ZipTokenizer. Returns bytes, base tokens, codes, hypertokens, the compression
    ratio (base tokens per code) and bytes per code.
    """
    if getattr(tokenizer, "codec", None) is None:
        raise TypeError(
            f"compression_statistics needs a Zip2ZipTokenizer (with a codec), got {type(tokenizer).__name__}; "
            "wrap a base tokenizer with Zip2ZipTokenizer.from_base(base, settings)"
        )
    size = max(1, int(max_length) - 1)
    totals = {"texts": 0, "bytes": 0, "base_tokens": 0, "codes": 0, "hypertokens": 0, "windows": 0}
    V = tokenizer.codec.base_vocab_size
    for text in texts:
        ids = tokenizer.base(text, add_special_tokens=False)["input_ids"]
        totals["texts"] += 1
        totals["bytes"] += len(text.encode("utf-8"))
        totals["base_tokens"] += len(ids)
        for i in range(0, len(ids), size):
            codes = tokenizer.codec.encode(ids[i : i + size])
            totals["windows"] += 1
            totals["codes"] += len(codes)
            totals["hypertokens"] += sum(c >= V for c in codes)
    codes = totals["codes"]
    totals["compression"] = totals["base_tokens"] / codes if codes else 1.0
    totals["hypertoken_share"] = totals["hypertokens"] / codes if codes else 0.0
    totals["bytes_per_code"] = totals["bytes"] / codes if codes else 0.0
    return totals
