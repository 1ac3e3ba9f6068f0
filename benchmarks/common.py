"""What several benchmarks share: held-out texts and prompts, the models they compare, the loop measure.

They all measure on the same held-out text, against the same embedded base model, so these live in one place
rather than in whichever script first needed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The training domains, then the unseen one (the Go standard library: no training mix contains Go).
DOMAINS = ("code", "prose", "math", "multilingual", "go")
# The ``copy`` prompts end with the document's first this many base tokens again.
COPY_TOKENS = 64
CHAT_QUESTIONS = (
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the pros and cons of working from home? Explain in detail.",
    "Describe how you would plan a week-long trip through the mountains.",
)


def heldout_texts(domain: str, chars: int, skip: int = 0) -> list[str]:
    """Whole held-out documents in the corpus's fixed order until ``chars`` characters, the last one cut;
    ``skip`` passes over the documents that ``heldout_texts(domain, skip)`` reads (whole, the last one too)."""
    from zip2zip.corpora.store import load_corpus

    texts: list[str] = []
    left = chars
    for doc in load_corpus(domain, split="heldout"):
        if skip > 0:
            skip -= len(doc)
            continue
        texts.append(doc[:left])
        left -= len(texts[-1])
        if left <= 0:
            break
    return texts


def cut_at_line_end(text: str, chars: int) -> str:
    """The start of ``text`` up to its last line end within ``chars`` characters (``chars`` characters where it has
    none): a prompt cut mid-file where a line ends, the file going on after it."""
    return text[: text.rfind("\n", 0, chars) + 1 or chars]


def load_prompts(tokenizer: Any, domain: str, count: int, length: int) -> list[list[int]]:
    """The first ``length`` base ids of the first ``count`` held-out documents that are long enough; for
    ``chat``, the chat template around the first ``count`` of :data:`CHAT_QUESTIONS` (``length`` unused); for
    ``copy``, the first ``length - COPY_TOKENS`` base ids of a held-out code document, then its first
    :data:`COPY_TOKENS` again."""
    if domain == "chat":
        return [
            list(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": question}], add_generation_prompt=True, return_dict=True
                )["input_ids"]
            )
            for question in CHAT_QUESTIONS[:count]
        ]

    corpus, repeated = ("code", COPY_TOKENS) if domain == "copy" else (domain, 0)
    if length <= repeated:
        raise ValueError(
            f"copy prompts end with the document's first {repeated} base tokens again, so they need more than "
            f"{repeated} base tokens; got --prompt-tokens {length}"
        )
    return [
        ids[: length - repeated] + ids[:repeated]
        for ids in heldout_ids(tokenizer, corpus, count, length + 16)
    ]


def heldout_ids(tokenizer: Any, corpus: str, count: int, min_tokens: int) -> list[list[int]]:
    """Base ids of the first ``count`` held-out documents of ``corpus`` that have at least ``min_tokens``: the
    documents :func:`load_prompts` cuts its prompts from (``min_tokens = length + 16``), continuations and all."""
    from zip2zip.corpora.store import load_corpus

    documents = []
    for doc in load_corpus(corpus, split="heldout"):
        ids = tokenizer(doc, add_special_tokens=False)["input_ids"]
        if len(ids) >= min_tokens:
            documents.append(ids)
            if len(documents) == count:
                break
    return documents


def resolve_model(folder: str | None) -> str:
    """The zip2zip model folder: ``--model``, else the one the project ships, else a clear error."""
    if folder:
        if not Path(folder).is_dir():
            raise SystemExit(
                f"--model {folder}: no such folder; pass a zip2zip model folder (a trust_remote_code repo)"
            )
        return str(folder)
    from zip2zip import shipped_zip2zip_path

    shipped = shipped_zip2zip_path()
    if shipped and Path(shipped).is_dir():
        return str(shipped)
    raise SystemExit(
        "no trained zip2zip model ships with this checkout; pass one with --model FOLDER (a folder saved by "
        "Zip2ZipSFTTrainer.save_model or `zip2zip export`)"
    )


def load_zip2zip(folder: str, tokenizer: Any) -> tuple[Any, Any]:
    """A trained zip2zip model and its tokenizer from ``folder``, checked to share ``tokenizer``'s vocabulary.

    The prompts are base ids of the default tokenizer; a model built on another vocabulary would read them as
    different text, so that is refused rather than measured.
    """
    from zip2zip.loading import is_zip2zip_model, load_model_and_tokenizer

    model, zip_tokenizer = load_model_and_tokenizer(folder)
    if not is_zip2zip_model(model):
        raise SystemExit(f"--model {folder}: not a zip2zip model (config.json model_type is not 'zip2zip')")
    base_tokenizer = getattr(zip_tokenizer, "base", None)
    if base_tokenizer is None or base_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise SystemExit(
            f"--model {folder}: its base tokenizer differs from SmolLM2-135M-Instruct's; this benchmark compares "
            "against the embedded SmolLM2 and needs a zip2zip model made from it"
        )
    zip_tokenizer.check_compatible(model.config)
    return model, zip_tokenizer


def load_models(folder: str) -> dict[str, Any]:
    """The base model and tokenizer and the zip2zip model and tokenizer, checked to share one vocabulary.

    The prompts and items are made with the base tokenizer and handed to zip2zip as LZW codes of the same
    base ids, so a zip2zip model built on another vocabulary would read other text: that is refused.
    """
    from zip2zip.bundled.base import default_base_path, load_default_base_model, load_default_tokenizer

    base_tokenizer = load_default_tokenizer()
    zip_model, zip_tokenizer = load_zip2zip(folder, base_tokenizer)
    return {
        "base": load_default_base_model(),
        "base_tokenizer": base_tokenizer,
        "base_path": default_base_path(),
        "zip": zip_model,
        "zip_tokenizer": zip_tokenizer,
    }


def repeated_ngram_share(ids: Sequence[int], n: int = 8) -> float:
    """Share of the ``n``-grams of ``ids`` that already occurred earlier in ``ids`` (0 = no repetition).

    Greedy decoding can loop cheaply (and an LZW model loops in whole hypertokens), so generations report it
    beside the base model's on the same prompts.
    """
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    seen: set[tuple[int, ...]] = set()
    repeated = 0
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(grams) if grams else 0.0


def bootstrap_interval(
    numerators: Sequence[float], denominators: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the pooled ratio ``sum(numerators) / sum(denominators)`` over prompts resampled with
    replacement (percentile bootstrap, fixed seed): how far the figure could move with other prompts of the
    same kind. One greedy continuation that loops can carry a handful of prompts' output compression."""
    import random

    pairs = list(zip(numerators, denominators, strict=True))
    if not pairs:
        raise ValueError("bootstrap_interval needs at least one prompt")
    rng = random.Random(seed)
    ratios = []
    for _ in range(resamples):
        sample = [pairs[rng.randrange(len(pairs))] for _ in pairs]
        total = sum(d for _, d in sample)
        ratios.append(sum(n for n, _ in sample) / total if total else 0.0)
    ratios.sort()
    return ratios[int(0.025 * (resamples - 1))], ratios[int(0.975 * (resamples - 1))]
