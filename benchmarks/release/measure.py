"""The measurements of a release run: bits per byte, generation, multiple choice and long context."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import generation, long_context
from benchmarks.common import DOMAINS, heldout_ids, heldout_texts, load_prompts
from benchmarks.release.control import carry_long_context_control, check_carried_control
from benchmarks.release.settings import (
    GENERATION_DOMAINS,
    LONG_CONTEXT_DOMAINS,
    MC_DOMAINS,
    MC_MAX_LENGTH,
    MC_TASKS,
    TASKS_DIR,
)


def measure_bits_per_byte(models: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Section 1: strict bits per byte of both models (and the control, if loaded) per domain on the same
    texts and windows, plus compression on the whole split."""
    from zip2zip.corpora.store import load_corpus
    from zip2zip.evaluation.scoring import compare_on_domains, compression_statistics

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
    tokenizer = models["base_tokenizer"]
    prompts = {
        domain: load_prompts(tokenizer, domain, settings["prompts"], settings["prompt_tokens"])
        for domain in GENERATION_DOMAINS
    }
    for domain, found in prompts.items():
        if len(found) < settings["prompts"]:
            raise SystemExit(
                f"only {len(found)} held-out {domain} documents have {settings['prompt_tokens']} + 16 base "
                "tokens; use fewer --prompts"
            )
    measured = generation.measure(
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
    measured["file_continuations"] = file_continuations(
        tokenizer, models["zip_tokenizer"].codec, prompts, settings["new_tokens"]
    )
    return measured


def file_continuations(
    tokenizer: Any, codec: Any, prompts: dict[str, list[list[int]]], new_tokens: int
) -> dict[str, dict[str, float]]:
    """Per domain, what the held-out files themselves write after the generation prompts (up to ``new_tokens``
    base tokens of each), LZW-encoded after the prompt: the output compression text of that kind allows."""
    found = {}
    for domain, domain_prompts in prompts.items():
        length = len(domain_prompts[0])
        documents = heldout_ids(tokenizer, domain, len(domain_prompts), length + 16)
        base_tokens = codes = 0
        for prompt, document in zip(domain_prompts, documents, strict=True):
            if document[:length] != prompt:
                raise ValueError(f"the {domain} prompts are not the starts of the held-out documents")
            continuation = document[length : length + new_tokens]
            base_tokens += len(continuation)
            codes += generation.encoded_codes(codec, prompt, continuation)
        found[domain] = {"base_tokens": base_tokens, "codes": codes, "compression": base_tokens / codes}
    return found


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

    from zip2zip.evaluation.harness import Zip2ZipLM

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


def measure_long_context(models: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Section 5, with ``benchmarks/long_context.py``'s measurements: bits per byte by window on whole long
    held-out documents (base, zip2zip and the control when loaded or carried), the time for new base tokens after
    a long code prompt and the KV-cache bytes it leaves, and greedy continuations of code files cut mid-file."""
    import torch

    pairs = {
        "base": (models["base"], models["base_tokenizer"]),
        "zip2zip": (models["zip"], models["zip_tokenizer"]),
    }
    if models.get("control") is not None:
        pairs["control"] = (models["control"], models["control_tokenizer"])
    args = argparse.Namespace(
        domains=LONG_CONTEXT_DOMAINS,
        windows=settings["long_windows"],
        documents=settings["long_documents"],
        chars=settings["long_chars"],
        new_tokens=settings["long_new_tokens"],
        repeats=settings["long_repeats"],
        eos_prompts=settings["long_endings"],
        eos_chars=settings["long_ending_chars"],
        token_healing=False,  # the bar is about generate's defaults
    )
    prompt = long_context.code_ids(models["base_tokenizer"])[: settings["long_prompt_tokens"]]
    if len(prompt) < settings["long_prompt_tokens"]:
        raise SystemExit(
            f"the long held-out code file has only {len(prompt)} base tokens; use --long-prompt-tokens "
            f"{len(prompt)} or fewer"
        )
    quality = long_context.measure_quality(pairs, args)
    if models.get("carried_control") is not None:
        for reason in carry_long_context_control(quality, models["carried_control"]):
            print(f"warning: the carried control's long-context score is left out: {reason}", file=sys.stderr)
    continuation = long_context.continuation_time(pairs, prompt, args)
    codes = models["zip_tokenizer"].codec.encode(prompt)
    kv_cache = {
        "prompt_base_tokens": len(prompt),
        "prompt_codes": len(codes),
        "base": long_context.kv_cache_bytes(models["base"], torch.tensor([prompt])),
        "zip2zip": long_context.kv_cache_bytes(models["zip"], torch.tensor([codes])),
    }
    endings = long_context.measure_endings(pairs, args)
    return {"quality": quality, "continuation": continuation, "kv_cache": kv_cache, "endings": endings}
