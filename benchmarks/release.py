"""Release benchmark: a trained zip2zip model against its base model (SmolLM2-135M-Instruct), in one run.

Regenerates ``benchmarks/RESULTS.md`` and, beside it, ``results/release/`` (plots, the raw
``results.json`` and the multiple-choice items ``next_line.jsonl``). Everything is measured side by side in
the same process, on the same held-out text, with the same thread count:

1. **Bits per byte and input compression per held-out domain** (code, prose, math, multilingual of
   ``zip2zip.corpora``, and the unseen ``go``, split ``heldout``): the first ``--eval-chars`` characters of
   each domain's held-out documents (whole documents in the corpus's fixed order, the last one cut), scored
   with ``zip2zip.evaluation.compare_on_domains`` (strict: the canonical LZW stream only, so an upper bound
   for zip2zip; windows of ``--max-length`` positions, a fresh codebook per window). With ``--control
   FOLDER`` the no-compression control (the same recipe and tokens with ``max_subtokens=1``, so no
   hypertokens) is scored on the same texts and windows: zip2zip / control is the quality compression costs
   on top of what fine-tuning alone does. Input compression is also counted on the whole held-out split.
2. **Generation** (``benchmarks/generation.py``'s :func:`measure`): greedy, batch 1, CPU, continuations of
   held-out code and prose prompts (``--prompt-tokens`` base tokens; zip2zip reads their LZW codes), by
   ``--new-tokens`` base tokens, for the base model, the base model with prompt-lookup decoding and zip2zip,
   with the share of repeated 8-grams of each continuation (greedy LZW output can loop cheaply).
3. **Multiple choice through lm-eval**: "which of four candidates is the true next line (code) / next
   sentence (prose) of this held-out document?", the distractors being lines / sentences of similar length
   from other held-out documents; the items are built here (deterministic, ``--seed``) and evaluated with
   the tasks in ``benchmarks/tasks/`` for zip2zip (lm-eval model ``zip2zip``), the base model (lm-eval's
   ``hf``) and the base model through the ``zip2zip`` class (the same scoring conventions as zip2zip).
4. **The long run's curves** (``--run FOLDER``, the training run's ``--output``): held-out bits per byte per
   domain against the base tokens seen (``heldout.json``), the training batches' bits per byte (the newest
   checkpoint's ``trainer_state.json``), and a fit ``a + b * tokens^(-c)`` of the pooled held-out curve with
   its extrapolation to 2x and 4x the tokens seen. What was read is kept in ``results.json``; ``--run``
   naming such a ``results.json`` reuses its curves.
5. **Plots** of the above (matplotlib, Agg).

The bars (the release issue's, for one run and the same windows for base and zip2zip):

- strict bits per byte zip2zip / base <= 1.10x on code, <= 1.05x on prose, <= 1.20x on the unseen ``go``;
- own greedy continuations of code: >= 1.20 base tokens per generated code and hypertokens >= 15% of the
  emitted codes; repeated-8-gram share of zip2zip's continuations at most the base model's + 10 points
  (code and prose);
- lm-eval next-line accuracy (``acc``) at most 5 points below the base model's (lm-eval's ``hf`` run), code
  and prose;
- time for the same new base tokens of code continuation <= 0.85x the base model's.

When it measures the shipped model (no ``--model``, not ``--quick``) it also writes a compact summary (the bars
with their verdicts, bits per byte per domain, generation, multiple choice) into the shipped checkpoint folder
(``release_results.json``), which ``zip2zip export shipped`` renders into the model card.

Run (about 20 minutes on two cores, half of it the multiple-choice part; the sizes are flags):
``python benchmarks/release.py [--model FOLDER] [--control FOLDER] [--run FOLDER] [--threads 1]``.
``--quick`` is a smoke run of about two minutes whose numbers mean nothing (write it elsewhere with ``--out``).
``--render-only`` redraws the report from ``results.json`` (with ``--run``, after re-reading the run's curves).
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import functools
import itertools
import json
import math
import os
import platform
import random
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS_DIR = HERE / "tasks"
# Run from a checkout: import the package next to this folder rather than whatever is installed.
sys.path.insert(0, str(ROOT))

# The training domains, then the unseen one (the Go standard library: no training mix contains Go).
DOMAINS = ("code", "prose", "math", "multilingual", "go")
GENERATION_DOMAINS = ("code", "prose")
MC_DOMAINS = ("code", "prose")
MC_TASKS = {domain: f"next_line_{domain}" for domain in MC_DOMAINS}
MC_MAX_LENGTH = 1024  # positions lm-eval's zip2zip class may use per request; the items need a few hundred

UNSEEN_DOMAIN = "go"
BPB_BARS = {"code": 1.10, "prose": 1.05, UNSEEN_DOMAIN: 1.20}  # strict bits per byte zip2zip / base, at most
GENERATION_COMPRESSION_BAR = (
    1.20  # base tokens per generated code, own greedy continuations of code, at least
)
HYPERTOKEN_SHARE_BAR = 0.15  # hypertokens among the codes zip2zip emits on code, at least
REPEATED_NGRAM = 8  # n of the repeated-n-gram share of the continuations
REPEAT_POINTS_BAR = 10.0  # zip2zip's repeated-8-gram share minus the base model's, percentage points, at most
MC_POINTS_BAR = 5.0  # next-line accuracy: zip2zip at most this many points below the base (lm-eval ``hf``)
MC_BASE_RUN = "base (hf)"
SAME_WORK_TIME_BAR = 0.85  # zip2zip / base time for the same new base tokens of code continuation, at most
BAR_TOLERANCE = 1e-9  # a value that equals its bar up to float rounding meets it

# Rows of 660 base tokens hold the text of the release run's 512 codes (its compression, 1.29): the same base tokens.
CONTROL_COMMAND = (
    "python examples/train_smollm2.py --preset cpu-long --max-subtokens 1 --max-length 660 --output RUN"
)
MIN_FIT_POINTS = 4  # held-out points (with tokens seen > 0) a three-parameter curve fit needs

FULL = {
    "eval_chars": 8_000,
    # greedy loops are all-or-nothing per prompt: two prompts per domain made the repeated-8-gram bar a coin flip
    "prompts": 8,
    "prompt_tokens": 384,
    "new_tokens": 128,
    "repeats": 1,
    "mc_items": 60,
    "max_length": 1024,
}
QUICK = {
    "eval_chars": 1_500,
    "prompts": 1,
    "prompt_tokens": 96,
    "new_tokens": 16,
    "repeats": 1,
    "mc_items": 4,
    "max_length": 256,
}

# ------------------------------------------------------------------------------ the paper's numbers
# arXiv 2506.01084 (zip2zip), for other and larger models on other data; quoted beside ours for scale only.
PAPER_TOKENIZERS = ("Llama-3-128K", "Qwen-2-150K", "Phi-4-200K", "Gemma-3-256K")
PAPER_REDUCTION = {  # Table 9: sequence-length reduction (%); our prose is compared with the paper's web column
    "code": (34.9, 35.5, 34.9, 41.1),
    "math": (32.5, 37.8, 34.1, 37.8),
    "prose": (14.8, 15.4, 13.0, 16.7),
    "multilingual": (19.1, 19.6, 16.4, 18.5),
}
PAPER_BYTES_PER_TOKEN = {  # Table 2, Llama-3-128K row: base -> with zip2zip
    "code": (4.1, 6.3),
    "math": (2.7, 4.0),
    "prose": (4.6, 5.4),
    "multilingual": (3.8, 4.7),
}
PAPER_BYTE_PPL = {  # Table 3, byte-level perplexity (1024-token window): (base, zip2zip) per corpus
    "Phi-3.5-4B": {"Wiki": (1.58, 1.69), "Pile": (1.79, 1.95), "mC4": (1.88, 2.00), "dC4": (1.74, 1.82)},
    "Phi-3-14B": {"Wiki": (1.43, 1.56), "Pile": (1.72, 1.90), "mC4": (1.82, 1.96), "dC4": (1.67, 1.75)},
}
PAPER_MC = {  # Table 3, Phi-3.5-4B, 2-shot accuracy: (base, zip2zip)
    "ARC-c": (0.60, 0.57),
    "ARC-e": (0.83, 0.83),
    "HellaSwag": (0.66, 0.61),
    "OBQA": (0.46, 0.46),
    "PIQA": (0.79, 0.82),
    "WinoGrande": (0.75, 0.75),
}
PAPER_DECODE_GAIN = {  # Table 5, decode tokens/s relative to the base model, contexts 256 / 512 / 1024 / 2048
    "Phi-3.5-4B, Apple M1": "+7.5% / +34.8% / +3.9% / +7.5%",
    "Phi-3.5-4B, H100": "+9.3% / +46.6% / +16.6% / +16.5%",
    "Phi-3-14B, H100": "+23.0% / +39.5% / +48.1% / +9.6%",
}


# ============================================================================== multiple-choice items


def unit_spans(text: str, domain: str) -> list[tuple[int, int]]:
    """Character spans of the units a next-unit item is made of: non-blank lines (code) or sentences (prose).

    A code line keeps its indentation (the span starts at the line start), so what separates two units is
    only newlines; a sentence starts at its first non-space character.
    """
    if domain == "code":
        return [(m.start(), m.end()) for m in re.finditer(r"^[^\n]*\S[^\n]*$", text, flags=re.M)]
    spans = []
    for paragraph in re.finditer(r"[^\n]+", text):
        start = paragraph.start()
        body = paragraph.group()
        cuts = [m.end() for m in re.finditer(r"[.!?][\"”)]?\s+(?=[A-Z\"“(])", body)]
        for a, b in zip([0, *cuts], [*cuts, len(body)]):
            piece = body[a:b]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((start + a + lead, start + a + len(piece.rstrip())))
    return spans


def build_next_line_items(
    docs_by_domain: dict[str, Sequence[str]],
    per_domain: int,
    seed: int = 0,
    context_units: int = 4,
    min_chars: int = 16,
    max_chars: int = 240,
) -> list[dict[str, Any]]:
    """Four-way "which comes next?" items from held-out documents, the same for the same arguments.

    For each domain, ``per_domain`` positions are drawn (``seed``) among the units (see :func:`unit_spans`)
    of ``min_chars`` to ``max_chars`` characters that follow at least ``context_units`` units of their own
    document. The context is the text of those preceding units; each choice is the separator that really
    precedes the true unit (newlines, a space) followed by a candidate: the true unit, or one of three units
    from *other* documents of the domain, of the closest lengths, each different from the true unit and
    from one another. The gold choice sits at a drawn index (``label``), so position says nothing.
    """
    items: list[dict[str, Any]] = []
    for domain, docs in docs_by_domain.items():
        rng = random.Random(f"next-line:{domain}:{seed}")
        units = [[(a, b) for a, b in unit_spans(doc, domain)] for doc in docs]
        by_length: dict[int, list[tuple[int, str]]] = {}
        for d, (doc, spans) in enumerate(zip(docs, units)):
            for a, b in spans:
                text = doc[a:b]
                if min_chars <= len(text.strip()) and len(text) <= max_chars:
                    by_length.setdefault(len(text), []).append((d, text))
        lengths = sorted(by_length)
        positions = [
            (d, j)
            for d, spans in enumerate(units)
            for j in range(context_units, len(spans))
            if min_chars <= len(docs[d][spans[j][0] : spans[j][1]].strip())
            and spans[j][1] - spans[j][0] <= max_chars
        ]
        if len(positions) < per_domain:
            raise ValueError(
                f"{domain}: only {len(positions)} eligible positions in {len(docs)} documents for "
                f"{per_domain} items; use fewer items (--mc-items) or more documents"
            )
        for n, (d, j) in enumerate(rng.sample(positions, per_domain)):
            doc, spans = docs[d], units[d]
            context = doc[spans[j - context_units][0] : spans[j - 1][1]]
            separator = doc[spans[j - 1][1] : spans[j][0]]
            answer = doc[spans[j][0] : spans[j][1]]
            distractors = _distractors(by_length, lengths, d, answer, rng)
            label = rng.randrange(4)
            candidates = distractors[:label] + [answer] + distractors[label:]
            items.append(
                {
                    "id": f"{domain}-{n}",
                    "domain": domain,
                    "doc": d,
                    "unit": j,
                    "context": context,
                    "choices": [separator + c for c in candidates],
                    "label": label,
                    "answer": answer,
                }
            )
    return items


def _distractors(
    by_length: dict[int, list[tuple[int, str]]], lengths: list[int], doc: int, answer: str, rng: random.Random
) -> list[str]:
    """Three distinct units of the closest lengths to ``answer``'s, from documents other than ``doc``."""
    target = len(answer)
    pool: list[str] = []
    seen = {answer.strip()}
    lo = bisect.bisect_left(lengths, target)
    hi = lo
    while len(pool) < 12 and (lo > 0 or hi < len(lengths)):  # widen the length window one length at a time
        below = target - lengths[lo - 1] if lo > 0 else math.inf
        above = lengths[hi] - target if hi < len(lengths) else math.inf
        if below <= above:
            lo -= 1
            group = by_length[lengths[lo]]
        else:
            group = by_length[lengths[hi]]
            hi += 1
        for d, text in group:
            if d != doc and text.strip() not in seen:
                seen.add(text.strip())
                pool.append(text)
    if len(pool) < 3:
        raise ValueError("fewer than three distractor candidates from other documents; use more documents")
    return rng.sample(pool, 3)


def write_items(items: list[dict[str, Any]], path: Path) -> None:
    """The items as JSONL, the file the lm-eval tasks in ``benchmarks/tasks/`` read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


# ============================================================================== inputs and models


def resolve_model(folder: str | None) -> str:
    """The zip2zip model folder: ``--model``, else the one the project ships, else a clear error."""
    if folder:
        if not Path(folder).is_dir():
            raise SystemExit(
                f"--model {folder}: no such folder; pass a zip2zip model folder (a trust_remote_code repo)"
            )
        return str(folder)
    import zip2zip.defaults

    shipped = getattr(zip2zip.defaults, "shipped_zip2zip_path", lambda: None)()
    if shipped and Path(shipped).is_dir():
        return str(shipped)
    raise SystemExit(
        "no trained zip2zip model ships with this checkout; pass one with --model FOLDER (a folder saved by "
        "Zip2ZipSFTTrainer.save_model or `zip2zip export`)"
    )


def heldout_texts(domain: str, chars: int, skip: int = 0) -> list[str]:
    """Whole held-out documents in the corpus's fixed order until ``chars`` characters, the last one cut;
    ``skip`` passes over the documents that ``heldout_texts(domain, skip)`` reads (whole, the last one too)."""
    from zip2zip.corpora import load_corpus

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


def load_models(folder: str) -> dict[str, Any]:
    """The base model and tokenizer and the zip2zip model and tokenizer, checked to share one vocabulary.

    The prompts and items are made with the base tokenizer and handed to zip2zip as LZW codes of the same
    base ids, so a zip2zip model built on another vocabulary would read other text: that is refused.
    """
    from zip2zip.defaults import default_base_path, load_default_base_model, load_default_tokenizer

    base_tokenizer = load_default_tokenizer()
    zip_model, zip_tokenizer = load_generation_module().load_zip2zip(folder, base_tokenizer)
    return {
        "base": load_default_base_model(),
        "base_tokenizer": base_tokenizer,
        "base_path": default_base_path(),
        "zip": zip_model,
        "zip_tokenizer": zip_tokenizer,
    }


def load_control(folder: str, base_tokenizer: Any) -> tuple[Any, Any]:
    """The no-compression control: a zip2zip model trained like the shipped one but with ``max_subtokens=1``.

    With M = 1 the LZW codebook never merges, so the control reads and writes base tokens through the same
    architecture, recipe and data: what it loses against the base model is the fine-tuning's doing, and what
    zip2zip loses against it is the compression's. Any other M would not isolate that, so it is refused.
    """
    if not Path(folder).is_dir():
        raise SystemExit(f"--control {folder}: no such folder; pass the --output folder of the control run")
    model, tokenizer = load_generation_module().load_zip2zip(folder, base_tokenizer)
    subtokens = getattr(model.config, "max_subtokens", None)
    if subtokens != 1:
        raise SystemExit(
            f"--control {folder}: max_subtokens={subtokens}, but the control must have max_subtokens=1 (no "
            f"hypertokens); train it with `{CONTROL_COMMAND}` and pass RUN"
        )
    return model, tokenizer


def read_carried_control(path: str) -> dict[str, Any]:
    """The control's scores from an earlier ``results.json`` (``--control FILE``), for when its folder is gone.

    The control's weights do not change with the zip2zip model, so its scores on the same texts and windows
    stay true; :func:`check_carried_control` checks that they are the same before they are shown.
    """
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
        scores, run = earlier["bits_per_byte"]["control"], earlier["run"]["control"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"--control {path}: not a results.json with the control's scores ({error!r}); pass the control's "
            "folder or a results.json of a run that measured it"
        ) from None
    when = f"{earlier['run'].get('date')}, commit {earlier['run'].get('commit')}"
    carried_from = run.get("carried_from") or f"{path} (measured {when})"
    return {"scores": scores, "run": {**run, "carried_from": carried_from}}


def check_carried_control(carried: dict[str, Any], compared: dict[str, Any]) -> dict[str, Any]:
    """The carried control's scores, once every domain is shown to cover the bytes and base tokens this run's
    base model read, in windows of the same length."""
    scores = carried["scores"]
    if scores.get("max_length") != compared["max_length"]:
        raise SystemExit(
            f"--control: the control was scored in windows of {scores.get('max_length')} positions, this run "
            f"uses {compared['max_length']}; measure it again (pass its folder) or use the same --max-length"
        )
    for domain, entry in compared["domains"].items():
        base = entry["base"]
        mine = (scores["domains"].get(domain) or {}).get("zip2zip") or {}
        same = all(mine.get(key) == base.get(key) for key in ("bytes", "base_tokens", "texts"))
        if not same:
            raise SystemExit(
                f"--control: on {domain} the carried control read {mine.get('bytes')} bytes / "
                f"{mine.get('base_tokens')} base tokens, this run {base['bytes']} / {base['base_tokens']}: other "
                "texts; measure the control again (pass its folder)"
            )
    return {**scores, "carried_from": carried["run"]["carried_from"]}


@functools.cache
def load_generation_module() -> Any:
    """``benchmarks/generation.py``, imported as a sibling module (this folder is on ``sys.path``)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import generation

    return generation


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


# ============================================================================== the measurements


def measure_bits_per_byte(models: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Section 1: strict bits per byte of both models (and the control, if loaded) per domain on the same
    texts and windows, plus compression on the whole split."""
    from zip2zip.corpora import load_corpus
    from zip2zip.evaluation import compare_on_domains, compression_statistics

    texts = {domain: heldout_texts(domain, settings["eval_chars"]) for domain in DOMAINS}
    compared = compare_on_domains(
        texts,
        models["zip"],
        models["zip_tokenizer"],
        base_model=models["base"],
        base_tokenizer=models["base_tokenizer"],
        max_length=settings["max_length"],
        progress=True,
        description=f"first {settings['eval_chars']} characters of each domain's held-out split",
    )
    result = {"compared": compared}
    if models.get("control") is not None:
        result["control"] = compare_on_domains(
            texts,
            models["control"],
            models["control_tokenizer"],
            max_length=settings["max_length"],
            progress=True,
            description=f"the no-compression control on {compared['description']}",
        )
    elif models.get("carried_control") is not None:
        result["control"] = check_carried_control(models["carried_control"], compared)
    whole = {}
    for domain in DOMAINS:
        docs = texts[domain] if settings["quick"] else load_corpus(domain, split="heldout")
        whole[domain] = compression_statistics(models["zip_tokenizer"], docs, settings["max_length"])
    result["heldout_compression"] = whole
    return result


def measure_generation(models: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Section 2: the generation benchmark's measuring part on held-out code and prose prompts."""
    generation = load_generation_module()
    tokenizer = models["base_tokenizer"]
    prompts = {
        domain: generation.load_prompts(tokenizer, domain, settings["prompts"], settings["prompt_tokens"])
        for domain in GENERATION_DOMAINS
    }
    for domain, found in prompts.items():
        if len(found) < settings["prompts"]:
            raise SystemExit(
                f"only {len(found)} held-out {domain} documents have {settings['prompt_tokens']} + 16 base "
                "tokens; use fewer --prompts"
            )
    return generation.measure(
        models["base"],
        models["zip"],
        tokenizer,
        prompts,
        new_tokens=settings["new_tokens"],
        pld_tokens=settings["pld_tokens"],
        repeats=settings["repeats"],
        codec=models["zip_tokenizer"].codec,
        progress=True,
    )


def measure_multiple_choice(
    models: dict[str, Any], folder: str, items_path: Path, settings: dict[str, Any]
) -> dict[str, Any]:
    """Section 3: the next-line tasks through lm-eval for zip2zip, the base (``hf``) and the base (``zip2zip``).

    zip2zip and the base model in lm-eval's own ``hf`` class are what a user of the harness would run; the
    base model through the ``zip2zip`` class scores with exactly zip2zip's conventions (prefix token,
    tokenization of context and continuation), so it isolates what compression changes.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    from zip2zip.evaluation import Zip2ZipLM

    manager = TaskManager(
        include_path=str(TASKS_DIR), include_defaults=False, metadata={"items": str(items_path)}
    )
    tasks = [MC_TASKS[d] for d in MC_DOMAINS]
    length = MC_MAX_LENGTH
    runs = {  # model arguments as dicts: a folder name with a comma would break lm-eval's "a=b,c=d" strings
        "zip2zip": {"model": "zip2zip", "model_args": {"pretrained": folder, "max_length": length}},
        "base (hf)": {"model": "hf", "model_args": {"pretrained": models["base_path"], "dtype": "float32"}},
        "base (zip2zip class)": {
            "model": Zip2ZipLM(
                pretrained=models["base"], tokenizer=models["base_tokenizer"], max_length=length
            )
        },
    }
    out = {}
    for name, spec in runs.items():
        print(f"lm-eval: {name}", file=sys.stderr)
        start = time.perf_counter()
        result = lm_eval.simple_evaluate(
            **spec,
            tasks=tasks,
            task_manager=manager,
            batch_size=1,
            device="cpu",
            verbosity="ERROR",
            log_samples=False,
        )
        out[name] = {
            "seconds": time.perf_counter() - start,
            "tasks": {
                task: {
                    "acc": result["results"][task]["acc,none"],
                    "acc_stderr": result["results"][task].get("acc_stderr,none"),
                    "acc_norm": result["results"][task]["acc_norm,none"],
                    "acc_norm_stderr": result["results"][task].get("acc_norm_stderr,none"),
                    "items": int(result["n-samples"][task]["effective"]),
                }
                for task in tasks
            },
        }
    return out


# ============================================================================== the long run's curves


def read_training_run(folder: str | Path, option: str = "--run", key: str = "training_run") -> dict[str, Any]:
    """The held-out and training-batch curves of a training run's ``--output`` folder, and the fit.

    ``heldout.json`` holds one entry per held-out evaluation (base tokens seen, pooled and per-domain strict
    bits per byte); the newest readable ``checkpoint-N/trainer_state.json`` carries the whole log history of
    the training batches. Only the numbers are kept, so ``--render-only`` can redraw without the folder.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".json":
        return _curves_of_earlier_report(folder, option, key)
    path = folder / "heldout.json"
    if not path.is_file():
        raise SystemExit(
            f"{option} {folder}: no heldout.json there; pass the --output folder of examples/train_smollm2.py "
            "(it writes heldout.json at every held-out evaluation)"
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(
            f"{option} {folder}: {path} is not valid JSON ({error}); rerun once it is rewritten"
        ) from None
    heldout = sorted(
        (
            {
                k: v
                for k, v in entry.items()
                if k in ("step", "base_tokens_seen") or k.startswith("heldout_bpb")
            }
            for entry in entries
            if "heldout_bpb" in entry and "base_tokens_seen" in entry
        ),
        key=lambda entry: entry["base_tokens_seen"],
    )
    if not heldout:
        raise SystemExit(f"{option} {folder}: {path} has no entry with base_tokens_seen and heldout_bpb")
    checkpoint, train = _training_batches(folder)
    warm_start = _warm_start(folder)
    offset = int((warm_start or {}).get("base_tokens_seen") or 0)
    for entry in heldout:
        entry["base_tokens_seen"] += offset
    for row in train:
        row["base_tokens"] += offset
    return {
        "folder": str(folder),
        "read": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "checkpoint": checkpoint,
        "warm_start": warm_start,
        "heldout": heldout,
        "train": train,
        "fit": fit_power_law(
            [entry["base_tokens_seen"] for entry in heldout], [entry["heldout_bpb"] for entry in heldout]
        ),
    }


def _warm_start(folder: Path) -> dict[str, Any] | None:
    """``warm_start.json`` of a run that continued from a trained model (``train_smollm2.py --init-from``):
    its curves then count the base tokens that model had seen before the run."""
    path = folder / "warm_start.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(f"--run {folder}: {path} is not valid JSON ({error})") from None
    return record if isinstance(record, dict) else None


def read_control_run(args: argparse.Namespace) -> dict[str, Any] | None:
    """The control run's curves (``--control-run``, else ``--control``'s folder when it has ``heldout.json``);
    ``--control-run`` may also name an earlier results.json, whose control curves are kept."""
    folder = args.control_run
    if folder is None and args.control and (Path(args.control) / "heldout.json").is_file():
        folder = args.control
    if folder is None:
        return None
    if Path(folder).is_file():
        return read_training_run(folder, "--control-run", "control_run")
    curves = read_training_run(folder, "--control-run" if args.control_run else "--control")
    curves["planned_steps"] = _planned_steps(Path(folder))
    return curves


def _warn_without_run(report: dict[str, Any]) -> None:
    if not report.get("training_run"):
        print(
            "warning: the control's curve is kept but not shown: section 4 compares it with the long run's curve, "
            "which this report lacks (add --run FOLDER or --run results.json)",
            file=sys.stderr,
        )


def _planned_steps(folder: Path) -> int | None:
    """The run's total steps (``max_steps`` of its newest checkpoint), to say how far a running control is."""
    found = sorted(
        (int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    )
    for _, checkpoint in reversed(found):
        try:
            return int(
                json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["max_steps"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def at_equal_tokens(curve: list[dict[str, Any]], tokens: float, key: str) -> float | None:
    """``key`` of a held-out curve at ``tokens`` base tokens seen, linear between its points (None outside)."""
    points = [(e["base_tokens_seen"], e[key]) for e in curve if key in e]
    if len(points) == 1 and points[0][0] == tokens:
        return points[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= tokens <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (tokens - t0) / (t1 - t0)
    return None


def _curves_of_earlier_report(path: Path, option: str, key: str) -> dict[str, Any]:
    """The curves an earlier report kept (its ``key``), for when the run's folder is gone."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(f"{option} {path}: not valid JSON ({error})") from None
    curves = report.get(key) if isinstance(report, dict) else None
    if not isinstance(curves, dict) or not curves.get("heldout"):
        raise SystemExit(
            f"{option} {path}: no {key} curves in it; pass a results.json that this script wrote with "
            f"{option} FOLDER, or the run's --output folder"
        )
    return curves


def _training_batches(folder: Path) -> tuple[str | None, list[dict[str, float]]]:
    """The newest readable checkpoint's name and its logged training batches (a checkpoint being written is
    skipped for the one before it)."""
    states = sorted(
        folder.glob("checkpoint-*/trainer_state.json"),
        key=lambda p: int(p.parent.name.split("-")[-1]) if p.parent.name.split("-")[-1].isdigit() else -1,
    )
    for state in reversed(states):
        try:
            history = json.loads(state.read_text(encoding="utf-8"))["log_history"]
        except (OSError, ValueError, KeyError):
            continue
        rows = [
            {
                "step": entry["step"],
                "base_tokens": entry["num_base_tokens"],
                "bits_per_byte": entry["bits_per_byte"],
                **{k: entry[k] for k in ("loss", "compression_ratio") if k in entry},
            }
            for entry in history
            if "loss" in entry and "bits_per_byte" in entry and "num_base_tokens" in entry
        ]
        return state.parent.name, rows
    return None, []


def power_law(tokens: Any, a: float, b: float, c: float) -> Any:
    """``a + b * tokens^(-c)``, tokens in millions (the fitted curve; numpy arrays or floats)."""
    return a + b * tokens ** (-c)


def fit_power_law(tokens: Sequence[float], values: Sequence[float]) -> dict[str, Any] | None:
    """Least-squares fit of ``values = a + b * (tokens / 1e6)^(-c)`` and its extrapolation to 2x and 4x.

    Points with no tokens seen (the untrained start) are left out: the curve is infinite there. Three
    parameters need at least :data:`MIN_FIT_POINTS` points, else None. scipy's ``curve_fit`` refines the best
    point of a grid over ``c`` (``a`` and ``b`` are linear least squares for each ``c``); without scipy the
    grid's best point is the fit. ``c`` is kept in [0.01, 3]; ``at_bound`` says when the fit sits on a bound,
    which means the data do not pin the exponent down.
    """
    import numpy as np

    points = [(t / 1e6, v) for t, v in zip(tokens, values) if t > 0 and math.isfinite(v)]
    if len(points) < MIN_FIT_POINTS:
        return None
    x = np.array([t for t, _ in points], dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    low, high = 0.01, 3.0
    best = None
    for c in np.linspace(low, high, 300):
        design = np.stack([np.ones_like(x), x ** (-c)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        error = float(np.sum((power_law(x, a, b, c) - y) ** 2))
        if best is None or error < best[0]:
            best = (error, float(a), float(b), float(c))
    _, a, b, c = best
    method = "numpy grid over c, least squares for a and b"
    try:
        from scipy.optimize import curve_fit

        (a, b, c), _ = curve_fit(
            power_law,
            x,
            y,
            p0=(a, b, c),
            bounds=([-np.inf, -np.inf, low], [np.inf, np.inf, high]),
            maxfev=20000,
        )
        a, b, c = float(a), float(b), float(c)
        method = "scipy.optimize.curve_fit"
    except ImportError:
        pass
    except (RuntimeError, ValueError):  # no convergence: keep the grid's best point
        pass
    seen = float(x.max())
    residual = float(np.sqrt(np.mean((power_law(x, a, b, c) - y) ** 2)))
    return {
        "a": a,
        "b": b,
        "c": c,
        "points": len(points),
        "tokens_seen": seen * 1e6,
        "first_tokens": float(x.min()) * 1e6,
        "rms_residual": residual,
        "method": method,
        "at_bound": bool(min(c - low, high - c) < 1e-3),
        "at_seen": float(power_law(seen, a, b, c)),
        "extrapolated": {f"{k}x": float(power_law(k * seen, a, b, c)) for k in (2, 4)},
    }


# ============================================================================== report


def describe_run(
    args: argparse.Namespace, folder: str, settings: dict[str, Any], models: dict[str, Any]
) -> dict:
    """What a reader needs to reproduce or trust the numbers: command, date, versions, machine, model (and
    for the shipped model the digest of the weights it was assembled from, so a card never shows numbers of
    other weights), the control."""
    import lm_eval
    import torch
    import transformers

    def git(*words: str) -> str:
        return subprocess.run(
            ["git", "-C", str(ROOT), *words], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        commit += (
            " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    config = models["zip"].config
    marker = assembled_marker(folder) if args.model is None else {}
    return {
        "command": "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "model": folder,
        "shipped": args.model is None,
        "model_digest": marker.get("source_digest"),
        "delta_scale": marker.get("delta_scale"),
        "model_settings": model_settings(config),
        "control": (
            {"folder": args.control, "model_settings": model_settings(models["control"].config)}
            if models.get("control") is not None
            else models.get("carried_control", {}).get("run")
        ),
        "base": f"SmolLM2-135M-Instruct (embedded), {models['base_path']}",
        "threads": torch.get_num_threads(),
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores",
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "lm_eval": getattr(lm_eval, "__version__", "?"),
        },
        "settings": settings,
    }


def model_settings(config: Any) -> dict[str, Any]:
    """The zip2zip settings a reader needs to tell two models apart (M above all: the control has M = 1)."""
    names = ("max_codebook_size", "max_subtokens", "encoder_num_layers", "position_mode", "encoder_init")
    return {name: getattr(config, name) for name in names if getattr(config, name, None) is not None}


def assembled_marker(folder: str) -> dict[str, Any]:
    """The marker of an assembled shipped model (what it was built from), or {} for any other folder."""
    from zip2zip.defaults import MARKER_FILENAME

    try:
        marker = json.loads((Path(folder) / MARKER_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def assembled_digest(folder: str) -> str | None:
    """The digest of the shipped files an assembled shipped model was built from (its marker), or None."""
    return assembled_marker(folder).get("source_digest")


def backfill_delta_scale(run: dict[str, Any]) -> bool:
    """A report written before ``delta_scale`` was recorded: read it from the measured assembly's marker, if
    that folder is still the one measured (same digest). True when it filled it in."""
    if "delta_scale" in run or not run.get("model_digest"):
        return False
    marker = assembled_marker(run["model"])
    if marker.get("source_digest") != run["model_digest"] or "delta_scale" not in marker:
        return False
    run["delta_scale"] = marker["delta_scale"]
    return True


def verdict(ok: bool | None) -> str:
    """A bar's verdict in bold; ``None`` (the run did not measure it) is neither a pass nor a miss."""
    return "**not measured**" if ok is None else "**PASS**" if ok else "**MISS**"


def byte_ppl_ratio(pair: tuple[float, float]) -> float:
    """zip2zip / base bits per byte from a (base, zip2zip) pair of byte perplexities (bits = log2 PPL)."""
    return math.log2(pair[1]) / math.log2(pair[0])


def render(report: dict[str, Any], out: Path, assets: Path) -> str:
    """RESULTS.md from the raw report (also what ``results.json`` holds)."""
    run, s = report["run"], report["run"]["settings"]
    link = lambda name: os.path.relpath(assets / name, out.parent)  # noqa: E731
    lines = ["# zip2zip release results", ""]
    if s["quick"]:
        lines += ["> **Smoke run (`--quick`)**: sizes far too small for these numbers to mean anything.", ""]
    lines += [
        f"Regenerated with `{run['command']}` on {run['date']} (commit {run['commit']}), "
        f"{report['seconds'] / 60:.1f} minutes. Everything below was measured in that one run, side by side, "
        f"on CPU with {run['threads']} torch thread(s).",
        "",
        "| | |",
        "|---|---|",
        f"| zip2zip model | `{run['model']}` ({', '.join(f'{k}={v}' for k, v in run['model_settings'].items())})"
        + _scale_words(run.get("delta_scale"))
        + " |",
        f"| base model | {run['base']} |",
        f"| machine | {run['cpu']}; load average at start {_load(run['load_average'])} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in run['versions'].items())} |",
        f"| bits per byte | first {s['eval_chars']:,} characters of each held-out domain, windows of "
        f"{s['max_length']} positions |",
        f"| generation | {s['prompts']} prompt(s) of {s['prompt_tokens']} base tokens per domain, "
        f"{s['new_tokens']} new base tokens, greedy, batch 1, {s['repeats']} repeat(s), prompt lookup "
        f"{s['pld_tokens']} tokens |",
        f"| multiple choice | {s['mc_items']} items per domain, {s['mc_context']} units of context, seed {s['seed']} |",
        f"| control (M = 1) | {_control_cell(run.get('control'))} |",
        f"| training run | {_run_cell(report.get('training_run'))} |",
        f"| raw data | [`results.json`]({link('results.json')}), items [`next_line.jsonl`]({link('next_line.jsonl')}) |",
        "",
    ]
    lines += _summary(report)
    lines += _bpb_section(report, link)
    lines += _generation_section(report, link)
    lines += _mc_section(report, link)
    lines += _curves_section(report, link)
    return "\n".join(lines) + "\n"


def _scale_words(scale: float | None) -> str:
    if scale is None or scale == 1.0:
        return ""
    return f"; its low-rank delta applied at scale {scale} (`delta_scale`, see benchmarks/README.md)"


def _control_cell(control: dict[str, Any] | None) -> str:
    if not control:
        return "not measured"
    settings = ", ".join(f"{k}={v}" for k, v in control["model_settings"].items())
    carried = f"; its scores carried from {control['carried_from']}" if control.get("carried_from") else ""
    return f"`{control['folder']}` ({settings}){carried}"


def _run_cell(curves: dict[str, Any] | None) -> str:
    if not curves:
        return "not read (`--run FOLDER`)"
    return f"`{curves['folder']}`, read {curves['read']}, {len(curves['heldout'])} held-out evaluations"


def _load(value: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in value) if value else "unknown"


class Bar(NamedTuple):
    """One release bar: what it compares, the measured value (None: not in this run), the limit, the unit.

    ``at_most`` says which side passes. Units: ``"x"`` a ratio, ``""`` a plain number, ``"%"`` a share
    (stored as a fraction), ``"points"`` a difference of percentages.
    """

    name: str
    value: float | None
    limit: float
    at_most: bool
    unit: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.at_most:
            return self.value <= self.limit + BAR_TOLERANCE
        return self.value >= self.limit - BAR_TOLERANCE

    def show(self, value: float) -> str:
        if self.unit == "%":
            return f"{value:.1%}"
        if self.unit == "points":
            return f"{value:+.1f} points"
        return f"{value:.3f}{self.unit}"

    @property
    def measured(self) -> str:
        return "not measured" if self.value is None else self.show(self.value)

    @property
    def missed_by(self) -> str:
        """How far a missed bar is from its limit, in its unit; empty unless missed."""
        if self.met is not False:
            return ""
        gap = abs(self.value - self.limit)
        if self.unit == "%":
            return f"{100 * gap:.1f} points"
        if self.unit == "points":
            return f"{gap:.1f} points"
        return f"{gap:.3f}{self.unit}"


def _bars(report: dict[str, Any]) -> list[Bar]:
    """Every bar of the release with its measured value (None where this report lacks the measurement)."""
    domains = report["bits_per_byte"]["compared"]["domains"]
    bars = []
    for domain, limit in BPB_BARS.items():
        label = f"{domain} (unseen)" if domain == UNSEEN_DOMAIN else domain
        ratio = _bpb_ratio(domains.get(domain))
        bars.append(
            Bar(f"strict bits per byte zip2zip / base, {label} <= {limit:.2f}x", ratio, limit, True, "x")
        )
    rows = {row["domain"]: row for row in report["generation"]["rows"]}
    code = rows.get("code", {}).get("zip2zip", {})
    bars.append(
        Bar(
            f"own greedy continuations of code: base tokens per generated code >= {GENERATION_COMPRESSION_BAR:.2f}",
            code.get("compression"),
            GENERATION_COMPRESSION_BAR,
            False,
            "",
        )
    )
    bars.append(
        Bar(
            f"own greedy continuations of code: hypertokens >= {HYPERTOKEN_SHARE_BAR:.0%} of emitted codes",
            code.get("hypertoken_rate"),
            HYPERTOKEN_SHARE_BAR,
            False,
            "%",
        )
    )
    results = report["generation"]["results"]
    for domain in GENERATION_DOMAINS:
        shares = repeated_shares(results.get(domain, {}))
        gap = 100 * (shares["zip2zip"] - shares["base"]) if "zip2zip" in shares and "base" in shares else None
        bars.append(
            Bar(
                f"repeated {REPEATED_NGRAM}-grams of the continuations, {domain}: zip2zip - base <= "
                f"+{REPEAT_POINTS_BAR:.0f} points",
                gap,
                REPEAT_POINTS_BAR,
                True,
                "points",
            )
        )
    mc = report["multiple_choice"]
    for domain in MC_DOMAINS:
        task = MC_TASKS[domain]
        try:
            gap = 100 * (mc["zip2zip"]["tasks"][task]["acc"] - mc[MC_BASE_RUN]["tasks"][task]["acc"])
        except KeyError:
            gap = None
        bars.append(
            Bar(
                f"lm-eval {task} accuracy zip2zip - base ({MC_BASE_RUN.split()[-1].strip('()')}) >= "
                f"-{MC_POINTS_BAR:.0f} points",
                gap,
                -MC_POINTS_BAR,
                False,
                "points",
            )
        )
    time_ratio = _same_work_ratios(results).get("code", {}).get("time")
    new_tokens = report["run"]["settings"]["new_tokens"]
    bars.append(
        Bar(
            f"time for the same {new_tokens} new base tokens of code continuation zip2zip / base <= "
            f"{SAME_WORK_TIME_BAR:.2f}x",
            time_ratio,
            SAME_WORK_TIME_BAR,
            True,
            "x",
        )
    )
    return bars


def _bpb_ratio(entry: dict[str, Any] | None, key: str = "base") -> float | None:
    """zip2zip / ``key`` (base or control) bits per byte of one domain's entry, None when either is missing."""
    if not entry or key not in entry or "zip2zip" not in entry:
        return None
    return entry["zip2zip"]["bits_per_byte"] / entry[key]["bits_per_byte"]


def repeated_shares(configs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Per generation config, the mean over its runs of :func:`repeated_ngram_share` of the continuation."""
    shares = {}
    for config, runs in configs.items():
        values = [repeated_ngram_share(run["output"], REPEATED_NGRAM) for run in runs if "output" in run]
        if values:
            shares[config] = sum(values) / len(values)
    return shares


def _summary(report: dict[str, Any]) -> list[str]:
    bars = _bars(report)
    judged = [bar for bar in bars if bar.met is not None]
    lines = ["## Bars", "", "| bar | measured | | missed by |", "|---|---:|---|---:|"]
    lines += [f"| {bar.name} | {bar.measured} | {verdict(bar.met)} | {bar.missed_by} |" for bar in bars]
    missed = [bar for bar in judged if not bar.met]
    lines += [
        "",
        f"{len(judged) - len(missed)} of {len(judged)} measured bars met"
        + (f" ({len(bars) - len(judged)} not measured in this run)" if len(judged) < len(bars) else "")
        + (
            "; missed: " + "; ".join(f"{bar.name} by {bar.missed_by} ({bar.measured})" for bar in missed)
            if missed
            else ""
        )
        + ".",
        "",
    ]
    return lines


def bpb_domains(report: dict[str, Any]) -> list[str]:
    """The domains this report scored, in :data:`DOMAINS` order (an older report may lack the unseen one)."""
    scored = report["bits_per_byte"]["compared"]["domains"]
    return [d for d in DOMAINS if d in scored] + [d for d in scored if d not in DOMAINS]


def _bpb_table(report: dict[str, Any]) -> list[str]:
    """Table 1: base, control (when measured) and zip2zip bits per byte, the ratios and the per-domain bar."""
    compared = report["bits_per_byte"]["compared"]
    control = report["bits_per_byte"].get("control")
    head = "| domain | bytes | bits/byte base |"
    rule = "|---|---:|---:|"
    if control:
        head += " bits/byte control (M = 1) |"
        rule += "---:|"
    head += " bits/byte zip2zip | zip2zip / base | bar |"
    rule += "---:|---:|---|"
    if control:
        head += " zip2zip / control |"
        rule += "---:|"
    head += " base tokens per code | fewer positions | hypertokens |"
    rule += "---:|---:|---:|"
    lines = [head, rule]
    for domain in [*bpb_domains(report), "overall"]:
        entry = compared["overall"] if domain == "overall" else compared["domains"][domain]
        z, b = entry["zip2zip"], entry["base"]
        ratio = z["bits_per_byte"] / b["bits_per_byte"]
        limit = BPB_BARS.get(domain)
        bar = f"{verdict(ratio <= limit + BAR_TOLERANCE)} (<= {limit:.2f}x)" if limit else ""
        cells = [domain, f"{z['bytes']:,}", f"{b['bits_per_byte']:.4f}"]
        c = None
        if control:
            c = (control["overall"] if domain == "overall" else control["domains"].get(domain, {})).get(
                "zip2zip"
            )
            cells.append(f"{c['bits_per_byte']:.4f}" if c else "")
        cells += [f"{z['bits_per_byte']:.4f}", f"{ratio:.3f}x", bar]
        if control:
            cells.append(f"{z['bits_per_byte'] / c['bits_per_byte']:.3f}x" if c else "")
        cells += [
            f"{z['compression']:.3f}",
            f"{1 - z['positions'] / b['positions']:.1%}",
            f"{z['hypertokens'] / max(1, z['codes']):.1%}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _control_note(report: dict[str, Any]) -> str:
    """One line on the no-compression control: what it is and the run's, or how to produce it."""
    control = report["run"].get("control")
    if report["bits_per_byte"].get("control") and control:
        return (
            f"The control (`{control['folder']}`, max_subtokens=1) is the same recipe and tokens without "
            "hypertokens: zip2zip / control is the quality the compression costs beyond fine-tuning itself."
        )
    return (
        "The no-compression control (the same recipe and tokens with max_subtokens=1) was not measured in this "
        f"run: train it with `{CONTROL_COMMAND}` and pass `--control RUN`."
    )


def _bpb_section(report: dict[str, Any], link: Any) -> list[str]:
    compared = report["bits_per_byte"]["compared"]
    whole = report["bits_per_byte"]["heldout_compression"]
    lines = [
        "## 1. Bits per byte and input compression per held-out domain",
        "",
        "Strict bits per byte (`zip2zip.evaluation.compare_on_domains`): the canonical LZW code stream's "
        "likelihood, an upper bound for zip2zip (any other spelling of the same text adds probability); base "
        f"and zip2zip read the same bytes in the same windows of {compared['max_length']} positions, a fresh "
        "codebook per window. Compression = base tokens per code; fewer positions = 1 - zip2zip positions / "
        "base positions (one prefix token per window included).",
        "",
    ]
    lines += _bpb_table(report)
    lines += ["", _control_note(report)]
    lines += [
        "",
        f"![bits per byte per domain]({link('bpb.png')})",
        "",
        "Input compression on each domain's **whole** held-out split (LZW only, no model; windows of "
        f"{compared['max_length'] - 1} base tokens), next to the paper's numbers. **The paper's numbers are for "
        "other, larger tokenizers (128K-256K vocabularies against SmolLM2's 49K) on other data (The Stack v2, "
        "NuminaMath, FineWeb-edu, FineWeb-2) with unstated M, C and context**; our prose is compared with its "
        "web column.",
        "",
        "| domain | texts | base tokens | base tokens per code | reduction | bytes/token -> bytes/code | "
        "paper reduction (Table 9, four tokenizers) | paper bytes/token (Table 2, Llama-3-128K) |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for domain in [d for d in bpb_domains(report) if d in whole]:
        w = whole[domain]
        paper = PAPER_REDUCTION.get(domain)
        bpt = PAPER_BYTES_PER_TOKEN.get(domain)
        lines.append(
            f"| {domain} | {w['texts']} | {w['base_tokens']:,} | {w['compression']:.3f} | "
            f"{1 - w['codes'] / max(1, w['base_tokens']):.1%} | {w['bytes'] / max(1, w['base_tokens']):.2f} -> "
            f"{w['bytes_per_code']:.2f} | {f'{min(paper):.1f}-{max(paper):.1f}%' if paper else 'none'} | "
            f"{f'{bpt[0]} -> {bpt[1]}' if bpt else 'none'} |"
        )
    ratios = {
        model: {corpus: byte_ppl_ratio(pair) for corpus, pair in corpora.items()}
        for model, corpora in PAPER_BYTE_PPL.items()
    }
    lines += [
        "",
        "For the quality bar, the paper's own zip2zip models (Table 3, byte perplexity with a 1024-token "
        "window, converted to a bits-per-byte ratio as log2 PPL zip2zip / log2 PPL base) sit at: "
        + "; ".join(
            f"{model} " + ", ".join(f"{corpus} {r:.3f}x" for corpus, r in corpora.items())
            for model, corpora in ratios.items()
        )
        + ". Those are Phi models (3.8B and 14B) continually pretrained on about 0.1-0.26B tokens, "
        "not SmolLM2-135M.",
        "",
    ]
    return lines


def _generation_section(report: dict[str, Any], link: Any) -> list[str]:
    s = report["run"]["settings"]
    rows = report["generation"]["rows"]
    lines = [
        "## 2. Generation (greedy, batch 1, CPU)",
        "",
        f"Continuations of {s['prompts']} held-out prompt(s) per domain of {s['prompt_tokens']} base tokens, "
        f"{s['new_tokens']} new base tokens each (`benchmarks/generation.py`'s `measure`): the base model, the "
        f"base model with prompt-lookup decoding (`prompt_lookup_num_tokens={s['pld_tokens']}`, lossless under "
        "greedy decoding) and zip2zip on the LZW codes of the same base-token prompt "
        "(`max_new_base_tokens`). End of sequence is suppressed (`min_new_tokens`) so that every "
        "configuration writes its full budget; bytes/s are UTF-8 bytes of the text actually generated over the "
        "wall time of the whole `generate` call (prefill included), best of the repeats. Decoding steps are "
        "forward calls after the prefill, summed over prompts; ms/step is the median time per loop iteration. "
        "Output compression is zip2zip's own: base tokens per generated code (`model.last_generation_stats`). "
        f"Repeated {REPEATED_NGRAM}-grams: the share of the continuation's base-token {REPEATED_NGRAM}-grams that "
        "already occurred earlier in it (mean over prompts; greedy output that loops scores high).",
        "",
        "| domain | config | decoding steps | ms/step (median) | bytes/s | vs base bytes/s | output base tokens "
        f"per code | hypertokens | repeated {REPEATED_NGRAM}-grams |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results = report["generation"]["results"]
    names = {
        "base": "base",
        "pld": "base + prompt lookup",
        "zip2zip": "zip2zip",
        "lookup": "zip2zip + lookup",
    }
    for row in rows:
        shares = repeated_shares(results.get(row["domain"], {}))
        for config in [c for c in names if c in row]:
            repeats = f"{shares[config]:.1%}" if config in shares else ""
            v = row[config]
            name = names[config]
            speed = v["bytes_per_s"] / row["base"]["bytes_per_s"]
            compression = f"{v['compression']:.3f}" if "compression" in v else ""
            hyper = f"{v['hypertoken_rate']:.1%}" if "hypertoken_rate" in v else ""
            lines.append(
                f"| {row['domain']} | {name} | {v['steps']} | {v['ms_per_step']:.1f} | {v['bytes_per_s']:.1f} | "
                f"{speed:.3f}x | {compression} | {hyper} | {repeats} |"
            )
    mismatches = report["generation"]["pld_mismatches"]
    same_work = _same_work_ratios(report["generation"]["results"])
    lines += [
        "",
        "The models write different text, and bytes/s also counts how many bytes that text has per base token. "
        "For the same number of new base tokens, zip2zip / base: "
        + "; ".join(
            f"{domain}: time {r['time']:.3f}x, bytes written {r['bytes']:.3f}x"
            for domain, r in same_work.items()
        )
        + ".",
        "",
        "Per-step time zip2zip / base: "
        + ", ".join(f"{row['domain']} {row['ratio']:.3f}" for row in rows)
        + ". Prompt lookup "
        + (
            "reproduced the base output on every prompt."
            if not mismatches
            else f"differed from base on {mismatches}."
        ),
        "",
        f"![generation]({link('generation.png')})",
        "",
        "For scale, the paper's decode throughput against its base models (Table 5, relative tokens/s, batch "
        "and prompt domain unstated): "
        + "; ".join(f"{k}: {v}" for k, v in PAPER_DECODE_GAIN.items())
        + ". The zip2zip++ models report a generation compression of 1.25-1.26 base tokens per code (about 1.4 "
        "called healthy in their evaluation notes). Other, larger models on GPUs and an M1.",
        "",
        "<details><summary>First characters of the first continuation per domain</summary>",
        "",
    ]
    results = report["generation"]["results"]
    for domain in results:
        for config in ("base", "zip2zip"):
            text = results[domain][config][0]["text"][:300]
            lines += [f"{domain}, {config}:", "", "```", text.replace("```", "'''"), "```", ""]
    lines += ["</details>", ""]
    return lines


def _same_work_ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per domain, zip2zip / base wall time and UTF-8 bytes over the same prompts (best run of each prompt).

    Every run writes the same number of new base tokens, so the time ratio is the speed-up for equal work,
    apart from what bytes/s adds by counting bytes of different texts.
    """
    ratios = {}
    for domain, configs in results.items():
        totals = {}
        for config in ("base", "zip2zip"):
            best: dict[Any, dict] = {}
            for run in configs.get(config, []):
                if run["prompt"] not in best or run["seconds"] < best[run["prompt"]]["seconds"]:
                    best[run["prompt"]] = run
            totals[config] = (
                sum(r["seconds"] for r in best.values()),
                sum(len(r["text"].encode()) for r in best.values()),
            )
        if totals["base"][0] and totals["base"][1]:
            ratios[domain] = {
                "time": totals["zip2zip"][0] / totals["base"][0],
                "bytes": totals["zip2zip"][1] / totals["base"][1],
            }
    return ratios


def _mc_section(report: dict[str, Any], link: Any) -> list[str]:
    s = report["run"]["settings"]
    mc = report["multiple_choice"]
    lines = [
        "## 3. Multiple choice through lm-eval: next line (code) and next sentence (prose)",
        "",
        f"Which of four candidates comes next after {s['mc_context']} lines (code) or sentences (prose) of a "
        "held-out document? The distractors are lines / sentences of the closest lengths from other held-out "
        f"documents of the domain (seed {s['seed']}); tasks `{MC_TASKS['code']}` and `{MC_TASKS['prose']}` in "
        "`benchmarks/tasks/`, items in "
        f"[`next_line.jsonl`]({link('next_line.jsonl')}), zero-shot, chance = 25%. acc_norm divides each "
        "choice's log-likelihood by its length in bytes. `base (zip2zip class)` is the base model scored by "
        "the same lm-eval class as zip2zip (same prefix token and tokenization), `base (hf)` by lm-eval's own "
        "`hf` model.",
        "",
        "| task | model | items | acc | acc_norm |",
        "|---|---|---:|---:|---:|",
    ]
    for domain in MC_DOMAINS:
        task = MC_TASKS[domain]
        for name, run in mc.items():
            t = run["tasks"][task]
            lines.append(
                f"| {task} | {name} | {t['items']} | {_pct(t['acc'], t['acc_stderr'])} | "
                f"{_pct(t['acc_norm'], t['acc_norm_stderr'])} |"
            )
    lines += [
        "",
        f"![multiple choice]({link('next_line.png')})",
        "",
        "For scale, the paper's Phi-3.5-4B (Table 3, 2-shot) moves by "
        + ", ".join(f"{k} {b:.2f} -> {z:.2f}" for k, (b, z) in PAPER_MC.items())
        + " from base to zip2zip (standard benchmarks, a 3.8B model).",
        "",
    ]
    return lines


def _curves_section(report: dict[str, Any], link: Any) -> list[str]:
    """Section 4: the long run's held-out curve per domain, the table of its points and the fit, honestly."""
    lines = ["## 4. The long run's curves", ""]
    curves = report.get("training_run")
    if not curves:
        return [
            *lines,
            "The training run's curves were not read in this run: pass its output folder with `--run FOLDER` "
            "(it works with `--render-only` too).",
            "",
        ]
    heldout = curves["heldout"]
    domains = heldout_domains(heldout)
    lines += [
        f"Read from `{curves['folder']}` on {curves['read']}: {len(heldout)} held-out evaluation(s) "
        f"(`heldout.json`) and {len(curves['train'])} logged training batches (the newest checkpoint, "
        f"`{curves['checkpoint']}`). The held-out numbers are the run's own: strict bits per byte on its own "
        "held-out texts and windows, not section 1's, so they show the trend, not the bars.",
        "",
        *_warm_start_lines(curves.get("warm_start")),
        "| step | base tokens seen | pooled | " + " | ".join(domains) + " |",
        "|---:|---:|---:|" + "---:|" * len(domains),
    ]
    for entry in heldout:
        cells = [f"{entry['heldout_bpb_' + d]:.4f}" if "heldout_bpb_" + d in entry else "" for d in domains]
        lines.append(
            f"| {entry.get('step', '')} | {entry['base_tokens_seen']:,} | {entry['heldout_bpb']:.4f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", fit_sentence(curves["fit"], heldout), ""]
    lines += _control_curve_lines(report.get("control_run"), heldout, domains)
    lines += [f"![training curves]({link('training_curves.png')})", ""]
    return lines


def _warm_start_lines(record: dict[str, Any] | None) -> list[str]:
    """What a continued run started from; its steps are its own, its base tokens count the earlier ones."""
    if not record:
        return []
    seen = record.get("base_tokens_seen")
    before = (
        f"{seen:,} base tokens, {record.get('global_step')} steps"
        if seen
        else "an unrecorded number of tokens"
    )
    changes = (
        ", ".join(f"`{k}={v}`" for k, v in (record.get("changes") or {}).items()) or "no setting changed"
    )
    return [
        f"The run continued from a trained model (`--init-from {record.get('init_from')}`: {before}, trained with "
        f"`{record.get('command') or 'an unrecorded command'}`), with {changes}, on a new learning-rate schedule. "
        "Steps count from the continuation's start; base tokens seen include the earlier run's, so the curves "
        "sit where the weights' training was. The earlier run's own curves are in `first_run_curves.json` beside "
        "this report's plots when it was measured before.",
        "",
    ]


def _control_curve_lines(
    control: dict[str, Any] | None, heldout: list[dict[str, Any]], domains: list[str]
) -> list[str]:
    """The control's held-out points beside the long run's at the same base tokens (its curve interpolated)."""
    if not control:
        return []
    points = control["heldout"]
    last = points[-1].get("step", "?")
    planned = control.get("planned_steps")
    if planned is None:
        progress = f"last point at step {last}; its planned length was not found"
    elif isinstance(last, int) and last >= planned:
        progress = f"finished, {planned} steps"
    else:
        progress = f"at step {last} of {planned}, still training when read"
    keys = ["heldout_bpb"] + [f"heldout_bpb_{d}" for d in domains]
    lines = [
        "### Beside the no-compression control (M = 1)",
        "",
        f"The control's own held-out curve, read from `{control['folder']}` on {control['read']} ({progress}): "
        "the same recipe, texts and base tokens per step with `max_subtokens=1`, scored on the same held-out "
        "texts. Each cell is zip2zip / control at the control's base tokens seen (zip2zip's curve interpolated "
        "between its points), so the ratio is what compression costs at equal training; below 1 it gains.",
        "",
        "| control step | base tokens seen | pooled | " + " | ".join(domains) + " |",
        "|---:|---:|---:|" + "---:|" * len(domains),
    ]
    for entry in points:
        cells = []
        for key in keys:
            ours = at_equal_tokens(heldout, entry["base_tokens_seen"], key)
            theirs = entry.get(key)
            cells.append(
                f"{ours / theirs:.3f}x ({ours:.3f} / {theirs:.3f})" if ours is not None and theirs else ""
            )
        lines.append(
            f"| {entry.get('step', '')} | {entry['base_tokens_seen']:,} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def heldout_domains(heldout: list[dict[str, Any]]) -> list[str]:
    """The per-domain curves present in the held-out entries, in first-seen order."""
    return list(
        dict.fromkeys(
            k.removeprefix("heldout_bpb_") for e in heldout for k in e if k.startswith("heldout_bpb_")
        )
    )


def fit_sentence(fit: dict[str, Any] | None, heldout: list[dict[str, Any]]) -> str:
    """What the fit of the pooled held-out curve says, with its number of points and its limits, or why none."""
    if fit is None:
        usable = sum(1 for e in heldout if e["base_tokens_seen"] > 0)
        return (
            f"No fit: {usable} held-out point(s) after the untrained start, fewer than the {MIN_FIT_POINTS} a "
            "three-parameter curve needs; more evaluations of the run will allow one."
        )
    seen = fit["tokens_seen"]
    last = heldout[-1]["heldout_bpb"]
    text = (
        f"Fit of the pooled held-out curve over {fit['points']} points ({fit['first_tokens']:,.0f} to "
        f"{seen:,.0f} base tokens; the untrained start left out): bits per byte = {fit['a']:.4f} + "
        f"{fit['b']:.4f} * (tokens / 1M)^-{fit['c']:.3f} ({fit['method']}; RMS residual {fit['rms_residual']:.4f}). "
        f"Extended beyond the data it gives {fit['extrapolated']['2x']:.4f} at 2x the tokens seen "
        f"({2 * seen / 1e6:.2f}M) and {fit['extrapolated']['4x']:.4f} at 4x ({4 * seen / 1e6:.2f}M), against "
        f"{last:.4f} measured last, with an asymptote of {fit['a']:.4f}. That is a three-parameter curve "
        f"through {fit['points']} noisy points: a guess at the direction, not a measurement."
    )
    if fit["at_bound"]:
        text += " The exponent sits at the edge of its range, so the data do not pin it down."
    return text


def _pct(value: float, stderr: float | None) -> str:
    if stderr is None or (isinstance(stderr, float) and math.isnan(stderr)) or isinstance(stderr, str):
        return f"{value:.1%}"
    return f"{value:.1%} ± {stderr:.1%}"


def plot(report: dict[str, Any], assets: Path) -> None:
    """bpb.png (per domain: base, control, zip2zip), generation.png (steps, ms/step, bytes/s), next_line.png
    (acc) and, when the run's curves were read, training_curves.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_bits_per_byte(report, assets / "bpb.png")
    s = report["run"]["settings"]
    load_generation_module().plot(
        report["generation"]["rows"],
        str(assets / "generation.png"),
        title=f"Greedy generation of {s['new_tokens']} new base tokens, SmolLM2-135M, CPU, batch 1",
    )
    plt.close("all")

    mc = report["multiple_choice"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / max(1, len(mc))
    for ax, metric in zip(axes, ("acc", "acc_norm")):
        for k, (name, run) in enumerate(mc.items()):
            xs = [i + (k - (len(mc) - 1) / 2) * width for i in range(len(MC_DOMAINS))]
            ax.bar(xs, [run["tasks"][MC_TASKS[d]][metric] for d in MC_DOMAINS], width, label=name)
        ax.axhline(0.25, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(MC_DOMAINS)), [MC_TASKS[d] for d in MC_DOMAINS])
        ax.set_title(metric)
    axes[0].set_ylabel("accuracy (chance 0.25)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(assets / "next_line.png", dpi=110)
    plt.close(fig)

    if report.get("training_run"):
        plot_training_curves(
            report["training_run"], assets / "training_curves.png", control=report.get("control_run")
        )


def plot_bits_per_byte(report: dict[str, Any], path: Path) -> None:
    """Bars of strict bits per byte per domain: the base model, the control when measured, and zip2zip."""
    import matplotlib.pyplot as plt

    domains = bpb_domains(report)
    compared = report["bits_per_byte"]["compared"]["domains"]
    series = {"base": [compared[d]["base"]["bits_per_byte"] for d in domains]}
    control = report["bits_per_byte"].get("control")
    if control:
        series["control (M = 1)"] = [
            control["domains"].get(d, {}).get("zip2zip", {}).get("bits_per_byte", math.nan) for d in domains
        ]
    series["zip2zip"] = [compared[d]["zip2zip"]["bits_per_byte"] for d in domains]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(domains))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=6)
    ax.set_xticks(range(len(domains)), [f"{d} (unseen)" if d == UNSEEN_DOMAIN else d for d in domains])
    ax.set_ylabel("bits per byte (strict, lower is better)")
    title = "base, control" if control else "base"
    ax.set_title(f"Held-out bits per byte, SmolLM2-135M: {title} and zip2zip")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(curves: dict[str, Any], path: Path, control: dict[str, Any] | None = None) -> None:
    """Left: held-out bits per byte per domain and pooled against base tokens seen. Middle: the pooled curve,
    the training batches' bits per byte and the fit extended to 4x the tokens seen. Right, with the control's
    curves: pooled and unseen-domain curves of both runs."""
    import matplotlib.pyplot as plt
    import numpy as np

    heldout = curves["heldout"]
    tokens = [e["base_tokens_seen"] / 1e6 for e in heldout]
    pooled = [e["heldout_bpb"] for e in heldout]
    if control:
        fig, (left, right, beside) = plt.subplots(1, 3, figsize=(17, 4))
        for run, label, style in ((heldout, "zip2zip", "-"), (control["heldout"], "control (M = 1)", "--")):
            for key, name, color in (
                ("heldout_bpb", "pooled", "black"),
                (f"heldout_bpb_{UNSEEN_DOMAIN}", f"{UNSEEN_DOMAIN} (unseen)", "tab:red"),
            ):
                points = [(e["base_tokens_seen"] / 1e6, e[key]) for e in run if key in e]
                beside.plot(
                    [t for t, _ in points],
                    [v for _, v in points],
                    style,
                    color=color,
                    marker=".",
                    label=f"{label}, {name}",
                )
        beside.set_title("zip2zip against the no-compression control")
        axes = (left, right, beside)
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
        axes = (left, right)
    for domain in heldout_domains(heldout):
        points = [
            (e["base_tokens_seen"] / 1e6, e["heldout_bpb_" + domain])
            for e in heldout
            if "heldout_bpb_" + domain in e
        ]
        style = "--" if domain == UNSEEN_DOMAIN else "-"
        label = f"{domain} (unseen)" if domain == UNSEEN_DOMAIN else domain
        left.plot([t for t, _ in points], [v for _, v in points], style, marker=".", label=label)
    left.plot(tokens, pooled, color="black", linewidth=2, marker="o", label="pooled")
    left.set_title("held-out strict bits per byte per domain")
    right.plot(tokens, pooled, color="black", marker="o", linestyle="", label="held-out, pooled")
    if curves["train"]:
        right.plot(
            [r["base_tokens"] / 1e6 for r in curves["train"]],
            [r["bits_per_byte"] for r in curves["train"]],
            color="grey",
            alpha=0.6,
            label="training batches",
        )
    fit = curves.get("fit")
    if fit:
        xs = np.linspace(fit["first_tokens"] / 1e6, 4 * fit["tokens_seen"] / 1e6, 200)
        right.plot(
            xs,
            power_law(xs, fit["a"], fit["b"], fit["c"]),
            "--",
            color="tab:red",
            label=f"fit a + b t^-c ({fit['points']} points)",
        )
        for k in (2, 4):
            right.plot(k * fit["tokens_seen"] / 1e6, fit["extrapolated"][f"{k}x"], "x", color="tab:red")
            right.annotate(
                f"{k}x: {fit['extrapolated'][f'{k}x']:.3f}",
                (k * fit["tokens_seen"] / 1e6, fit["extrapolated"][f"{k}x"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 6),
            )
    right.set_title("pooled held-out curve, training batches and fit")
    for ax in axes:
        ax.set_xlabel("base tokens seen (millions)")
        ax.set_ylabel("bits per byte")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ============================================================================== the model card's summary


def release_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The compact part of the report the shipped model's card shows (``zip2zip.hub`` renders it): the bars
    with their measured values and verdicts, bits per byte per domain (base, zip2zip, control), generation
    compression, speed and repetition, next-line accuracies, and when and on which weights it was measured.
    """
    from zip2zip.hub import RELEASE_SUMMARY_FORMAT

    run = report["run"]
    compared = report["bits_per_byte"]["compared"]
    control = report["bits_per_byte"].get("control") or {}
    domains = {}
    for domain in [*bpb_domains(report), "overall"]:
        entry = compared["overall"] if domain == "overall" else compared["domains"][domain]
        c = (
            control.get("overall") if domain == "overall" else control.get("domains", {}).get(domain, {})
        ) or {}
        domains[domain] = {
            "base": round(entry["base"]["bits_per_byte"], 4),
            "zip2zip": round(entry["zip2zip"]["bits_per_byte"], 4),
            "control": round(c["zip2zip"]["bits_per_byte"], 4) if "zip2zip" in c else None,
            "compression": round(entry["zip2zip"]["compression"], 3),
            "bar": BPB_BARS.get(domain),
        }
    results = report["generation"]["results"]
    same_work = _same_work_ratios(results)
    generation = {}
    for row in report["generation"]["rows"]:
        z, domain = row["zip2zip"], row["domain"]
        shares = repeated_shares(results.get(domain, {}))
        generation[domain] = {
            "compression": round(z.get("compression", 1.0), 3),
            "hypertoken_share": round(z.get("hypertoken_rate", 0.0), 4),
            "time_ratio": round(same_work[domain]["time"], 3) if domain in same_work else None,
            "bytes_per_s_ratio": round(z["bytes_per_s"] / row["base"]["bytes_per_s"], 3),
            "repeated_ngrams": {k: round(shares[k], 4) for k in ("base", "zip2zip") if k in shares},
        }
    mc = report["multiple_choice"]
    accuracy = {
        MC_TASKS[d]: {name: round(run_["tasks"][MC_TASKS[d]]["acc"], 4) for name, run_ in mc.items()}
        for d in MC_DOMAINS
    }
    fit = (report.get("training_run") or {}).get("fit")
    return {
        "format": RELEASE_SUMMARY_FORMAT,
        "date": run["date"],
        "commit": run["commit"],
        "command": run["command"],
        "model_digest": run.get("model_digest"),
        "quick": bool(run["settings"]["quick"]),
        "bars": [
            {"bar": bar.name, "measured": bar.measured, "met": bar.met, "missed_by": bar.missed_by}
            for bar in _bars(report)
        ],
        "bits_per_byte": {
            "texts": f"first {run['settings']['eval_chars']:,} characters of each held-out domain",
            "window": compared["max_length"],
            "unseen": UNSEEN_DOMAIN,
            "domains": domains,
            "control": run.get("control"),
        },
        "generation": {
            "new_base_tokens": run["settings"]["new_tokens"],
            "prompts": run["settings"]["prompts"],
            "ngram": REPEATED_NGRAM,
            "domains": generation,
        },
        "multiple_choice": {"items": run["settings"]["mc_items"], "accuracy": accuracy},
        "training": (
            {
                "base_tokens_seen": report["training_run"]["heldout"][-1]["base_tokens_seen"],
                "fit": fit,
                "delta_scale": run.get("delta_scale"),
            }
            if report.get("training_run")
            else None
        ),
    }


def write_release_summary(report: dict[str, Any], folder: Path) -> Path:
    """``release_results.json`` in ``folder`` (the shipped checkpoint folder, package data), for the card."""
    from zip2zip.hub import RELEASE_SUMMARY_FILENAME

    path = folder / RELEASE_SUMMARY_FILENAME
    path.write_text(
        json.dumps(release_summary(report), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def summary_folder(report: dict[str, Any]) -> Path | None:
    """Where the card's summary goes: the shipped checkpoint folder when this report measured the shipped
    weights in a full run, else nowhere (a smoke run or another model must not speak for the shipped one)."""
    run = report["run"]
    if run["settings"]["quick"] or not run.get("shipped") or not run.get("model_digest"):
        return None
    from zip2zip.shipped import shipped_checkpoint_dir

    return shipped_checkpoint_dir()


# ============================================================================== main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="zip2zip model folder (default: the shipped one)")
    parser.add_argument(
        "--control",
        default=None,
        metavar="FOLDER",
        help="the no-compression control (same recipe and tokens, max_subtokens=1), scored beside base and "
        f"zip2zip; train it with `{CONTROL_COMMAND}`; or a results.json this script wrote earlier, whose control "
        "scores are kept when the control's folder is gone (checked to be on the same texts and windows)",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="FOLDER",
        help="the long training run's output folder (heldout.json, checkpoint-*/): its curves and their fit; "
        "or a results.json this script wrote earlier, whose curves are kept (when the folder is gone)",
    )
    parser.add_argument(
        "--control-run",
        default=None,
        metavar="FOLDER",
        help="the control's training output folder: its held-out curve beside the long run's, compared at equal "
        "base tokens (default: --control's folder when it holds heldout.json; works with --render-only, also "
        "while the control still trains)",
    )
    parser.add_argument("--out", default=str(HERE / "RESULTS.md"), help="the Markdown report to write")
    parser.add_argument(
        "--assets", default=None, help="folder of plots and raw data (default: results/release beside --out)"
    )
    parser.add_argument(
        "--eval-chars", type=int, help=f"held-out characters per domain ({FULL['eval_chars']:,})"
    )
    parser.add_argument("--prompts", type=int, help=f"generation prompts per domain ({FULL['prompts']})")
    parser.add_argument("--prompt-tokens", type=int, help=f"base tokens per prompt ({FULL['prompt_tokens']})")
    parser.add_argument(
        "--new-tokens", type=int, help=f"new base tokens per generation ({FULL['new_tokens']})"
    )
    parser.add_argument(
        "--repeats", type=int, help=f"generation runs per prompt and config ({FULL['repeats']})"
    )
    parser.add_argument("--mc-items", type=int, help=f"multiple-choice items per domain ({FULL['mc_items']})")
    parser.add_argument("--max-length", type=int, help=f"positions per scored window ({FULL['max_length']})")
    parser.add_argument("--mc-context", type=int, default=4, help="lines / sentences of context per item")
    parser.add_argument(
        "--pld-tokens", type=int, default=10, help="prompt_lookup_num_tokens of prompt lookup"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the multiple-choice items")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every part)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few minutes")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report and plots from results.json, measure nothing",
    )
    return parser.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes given on the command line, else the full (or, with --quick, the tiny) defaults."""
    defaults = QUICK if args.quick else FULL
    settings = {
        name: getattr(args, name) if getattr(args, name) is not None else value
        for name, value in defaults.items()
    }
    settings.update(
        quick=args.quick,
        mc_context=args.mc_context,
        pld_tokens=args.pld_tokens,
        seed=args.seed,
        threads=args.threads,
    )
    for name in ("eval_chars", "prompts", "prompt_tokens", "new_tokens", "repeats", "mc_items", "mc_context"):
        if settings[name] < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1 (got {settings[name]})")
    if settings["max_length"] < 16:
        raise SystemExit(f"--max-length must be at least 16 positions (got {settings['max_length']})")
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = Path(args.out).resolve()
    assets = Path(args.assets).resolve() if args.assets else out.parent / "results" / "release"
    if args.render_only:
        render_only(args, out, assets)
        return
    settings = resolve_settings(args)
    folder = resolve_model(args.model)
    curves = read_training_run(args.run) if args.run else None  # fail on a wrong folder before measuring
    control_curves = read_control_run(args)
    assets.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from zip2zip.corpora import load_corpus

    items = build_next_line_items(
        {d: load_corpus(d, split="heldout") for d in MC_DOMAINS},
        settings["mc_items"],
        settings["seed"],
        settings["mc_context"],
    )
    items_path = assets / "next_line.jsonl"
    write_items(items, items_path)

    models = load_models(folder)
    if args.control and Path(args.control).is_file():
        models["carried_control"] = read_carried_control(args.control)
    elif args.control:
        models["control"], models["control_tokenizer"] = load_control(args.control, models["base_tokenizer"])
    report: dict[str, Any] = {"run": describe_run(args, folder, settings, models), "timings": {}}
    if curves:
        report["training_run"] = curves
    if control_curves:
        report["control_run"] = control_curves
        _warn_without_run(report)
    sections = (
        ("bits_per_byte", lambda: measure_bits_per_byte(models, settings)),
        ("generation", lambda: measure_generation(models, settings)),
        ("multiple_choice", lambda: measure_multiple_choice(models, folder, items_path, settings)),
    )
    for name, work in sections:
        print(f"== {name}", file=sys.stderr)
        start = time.perf_counter()
        report[name] = work()
        report["timings"][name] = time.perf_counter() - start
    generation = report["generation"]
    generation["pld_mismatches"] = [
        f"{domain} prompt {base['prompt']}"
        for domain, runs in generation["results"].items()
        for base, pld in zip(runs["base"], runs["pld"])
        if base["output"] != pld["output"]
    ]
    report["seconds"] = time.perf_counter() - started

    (assets / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    write_outputs(report, out, assets)
    print(f"wrote {out} and {assets}/ in {report['seconds'] / 60:.1f} minutes", file=sys.stderr)


def render_only(args: argparse.Namespace, out: Path, assets: Path) -> None:
    """Redraw the report from ``results.json``; with ``--run`` / ``--control-run``, re-read those curves first."""
    if args.control:
        raise SystemExit(
            f"--control {args.control} needs a measuring run (the control is scored beside the others); drop "
            "--render-only or --control"
        )
    path = assets / "results.json"
    if not path.is_file():
        raise SystemExit(
            f"--render-only: {path} does not exist; run the benchmark once without --render-only"
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    filled = backfill_delta_scale(report["run"])
    if args.run:
        report["training_run"] = read_training_run(args.run)
    control_curves = read_control_run(args)
    if control_curves:
        report["control_run"] = control_curves
        _warn_without_run(report)
    if args.run or control_curves or filled:
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    write_outputs(report, out, assets)
    print(f"rewrote {out} from {path}", file=sys.stderr)


def write_outputs(report: dict[str, Any], out: Path, assets: Path) -> None:
    """The plots, RESULTS.md and, for a full run of the shipped model, the model card's summary."""
    plot(report, assets)
    out.write_text(render(report, out, assets), encoding="utf-8")
    folder = summary_folder(report)
    if folder is not None:
        print(f"wrote {write_release_summary(report, folder)}", file=sys.stderr)


if __name__ == "__main__":
    main()
