"""Does a model use a seeded codebook? The shipped model trained on with a seed and without, at equal CPU seconds.

A seed (``Zip2ZipConfig.initial_codebook``, :mod:`zip2zip.seeding`) gives every sequence hypertokens from its first
token on; ``benchmarks.seeding`` counted the codes it saves. Whether a model reads and writes those codes as well as
the ones a sequence creates is a matter of training. Two arms continue the shipped model
(:func:`zip2zip.bundled.shipped.shipped_zip2zip_path`, warm-started as ``examples/train_smollm2.py --init-from``
does) for the same process CPU time (``Zip2ZipSFTConfig(cpu_budget_seconds=...)``: the learning-rate schedule runs
over the budget) on the same data: the ``cpu`` preset's training mix and rows, at the learning rates the recipe
continues a trained model with (those of the ``cpu-long-context`` preset):

* ``plain``: the shipped codec, no seed;
* ``seeded``: the same codec with a seed of 1,024 entries (the ``frequency`` rule) counted on the train split of the
  domains ``zip2zip seed`` mixes by default, built for the shipped model's codec settings (``OUT/seed.json``).

Then both arms, the untouched shipped model, the shipped model given the seed without training on it
(``shipped+seed``) and the base model are scored:

* strict bits per byte (:mod:`zip2zip.evaluation.scoring`) on windows of 128 and of 1,024 positions of held-out
  Python code, prose and chat turns (:mod:`zip2zip.corpora.chat`, in the base tokenizer's chat template): the same
  bytes for every model;
* greedy continuations (:func:`benchmarks.generation.measure`: end of sequence suppressed, the base model run side by
  side) of held-out chat prompts (the first user turn of held-out conversations) and of code prompts (the first base
  tokens of held-out code documents): the base tokens per code a model writes, and its time against the base
  model's for the same new base tokens;
* decoding steps of the seeded arm with its seed and without (:func:`benchmarks.seeding.decoding_step_times`).

Bars (the issue's): (1) the seeded arm's bits per byte on 128-position windows at most 1.02x the plain arm's, and on
1,024-position windows no higher (pooled over the three domains); (2) its greedy chat answers write at least 1.15
base tokens per code and take at most 0.90x the base model's time; (3) a decoding step with the seed takes at most
1.03x one without.

Resumable: each arm keeps ``OUT/<arm>/log.json`` and its last checkpoint (its trained model goes to
``OUT/<arm>/model``, and the checkpoints are removed once it is there); rerunning the same command continues,
finished arms are skipped, and each model's scores are kept in ``OUT/scores/``. ``--report`` renders
``results.json``, ``results.md`` and ``seeded_training.png`` from those files.

    nice -n 10 python -m benchmarks.seeded_training            # the study
    python -m benchmarks.seeded_training --report
    python -m benchmarks.seeded_training --quick                # small sizes, to check the pipeline
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "seeded_training"
ARMS = ("plain", "seeded")
MODELS = ("base", "shipped", "shipped+seed", "plain", "seeded")
ZIP2ZIP_MODELS = MODELS[1:]
EVAL_DOMAINS = ("code", "prose", "chat")
GENERATION_DOMAINS = ("chat", "code")
MAX_STEPS = 10**6  # only a cap: the CPU budget ends each arm

# The bars.
SHORT_WINDOW_BAR = 1.02  # seeded / plain bits per byte on the short windows
LONG_WINDOW_BAR = 1.0  # ... on the long windows
CHAT_COMPRESSION_BAR = 1.15  # base tokens per code of the seeded arm's greedy chat answers
CHAT_TIME_BAR = 0.90  # their time / the base model's for the same new base tokens
STEP_TIME_BAR = 1.03  # a decoding step with the seed / without

# The study's sizes; --quick swaps in the second column, and any flag given wins. `None`: the `cpu` preset's value.
SIZES: dict[str, tuple[Any, Any]] = {
    "budget_seconds": (3600.0, 20.0),
    "batch": (None, 1),
    "length": (None, 128),
    "docs_per_domain": (None, 4),
    "seed_size": (1024, 1024),
    "seed_tokens": (1_000_000, 60_000),
    "eval_chars": (24_000, 1500),
    "windows": ("128,1024", "128,1024"),
    "prompts": (8, 2),
    "prompt_tokens": (128, 48),
    "new_tokens": (128, 16),
    "repeats": (2, 1),
    "step_repeats": (6, 1),
    "step_tokens": (48, 8),
}


# ============================================================================================ files


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def score_path(out: Path, name: str) -> Path:
    return out / "scores" / f"{name.replace('+', '-')}.json"


def model_folder(out: Path, arm: str) -> Path:
    return out / arm / "model"


# ============================================================================================ the seed


def study_seed(out: Path, tokenizer: Any, size: int, max_base_tokens: int) -> Any:
    """The seed of the ``seeded`` arm (``OUT/seed.json``, built on the first run): ``size`` entries by frequency
    from the train split of ``zip2zip seed``'s default domains, for ``tokenizer``'s codec."""
    from zip2zip.cli.seed import DEFAULT_DOMAINS
    from zip2zip.seeding import Seed, seed_from_corpora

    path = out / "seed.json"
    wanted = {"size": size, "window": 128, "max_base_tokens": max_base_tokens}
    if path.exists():
        seed = Seed.load(path)
        if (
            seed.settings != wanted
            or seed.domains != DEFAULT_DOMAINS
            or seed.base_vocab_fingerprint != tokenizer.base_vocab_fingerprint
        ):
            raise SystemExit(
                f"{path} was built with other settings ({seed.settings}, {seed.domains}); use another --out"
            )
        return seed
    seed = seed_from_corpora(tokenizer, DEFAULT_DOMAINS, size, max_base_tokens=max_base_tokens)
    seed = dataclasses.replace(seed, settings={**seed.settings, "max_base_tokens": max_base_tokens})
    seed.save(path)
    print(f"seed: {len(seed)} entries from {seed.counted_base_tokens:,} base tokens -> {path}", flush=True)
    return seed


def seed_digest(seed: Any) -> str:
    return hashlib.sha256(json.dumps([list(e) for e in seed.entries]).encode()).hexdigest()[:16]


# ============================================================================================ training


class StepClock(TrainerCallback):
    """Each training step's CPU seconds as the budget counts them (``CPUBudgetCallback``, first in line, has added
    the step when this runs), written to the arm's log at every checkpoint, so a resumed arm keeps its steps' costs;
    a progress line every ``every`` steps."""

    def __init__(self, log_path: Path, log: dict, every: int = 10) -> None:
        self.log_path, self.log, self.every = log_path, log, every
        self._last = 0.0

    @staticmethod
    def _spent(lr_scheduler: Any) -> float:
        return float(lr_scheduler.lr_lambdas[0].cpu_seconds)

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        del self.log["step_cpu_seconds"][state.global_step :]  # steps after the checkpoint are trained again
        self._last = self._spent(lr_scheduler)

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        spent = self._spent(lr_scheduler)
        self.log["step_cpu_seconds"].append(spent - self._last)
        self._last = spent

    def on_save(self, args, state, control, **kwargs):
        write_json(self.log_path, self.log)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and state.global_step % self.every == 0:
            print(
                f"[{self.log['arm']}] step {state.global_step}: {self._last:.0f} CPU s, loss {logs['loss']:.3f}, "
                f"bits per byte {logs.get('bits_per_byte', math.nan):.3f}",
                flush=True,
            )


def training_preset(args: argparse.Namespace) -> Any:
    """The ``cpu`` preset's mix and rows (``--batch``, ``--length`` and ``--docs-per-domain`` override them), with
    the learning rates the recipe continues a trained model at."""
    from zip2zip import recipe

    continuing = recipe.PRESETS["cpu-long-context"]
    return recipe.get_preset("cpu").replace(
        batch_size=args.batch,
        max_length=args.length,
        docs_per_domain=args.docs_per_domain,
        lr=continuing.lr,
        encoder_lr=continuing.encoder_lr,
    )


def warm_start(folder: str, base_tokenizer: Any, seed: Any) -> tuple[Any, Any]:
    """The trained zip2zip model in ``folder`` in float32, given ``seed`` (None: none), and its tokenizer: what
    ``examples/train_smollm2.py --init-from FOLDER [--seed-file FILE]`` trains on from."""
    from zip2zip.conversion import change_codec
    from zip2zip.model.modeling_zip2zip import Zip2ZipForCausalLM

    model = Zip2ZipForCausalLM.from_pretrained(folder, dtype=torch.float32)
    changes = {"initial_codebook": seed} if seed is not None else {}
    return model, change_codec(model, base_tokenizer, **changes)


def train_arm(arm: str, out: Path, args: argparse.Namespace, seed: Any, base_tokenizer: Any) -> dict:
    """Train (or resume, or skip when done) one arm; return its log."""
    from transformers.trainer_callback import PrinterCallback

    from zip2zip.trainer import presets
    from zip2zip.trainer.callbacks import SaveEveryMinutesCallback, budget_spent, last_complete_checkpoint
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    folder = out / arm
    log_path = folder / "log.json"
    preset = training_preset(args)
    settings = {
        "init_from": args.model,
        "budget_seconds": args.budget_seconds,
        "batch": preset.batch_size,
        "length": preset.max_length,
        "lr": preset.lr,
        "encoder_lr": preset.encoder_lr,
        "bf16": preset.bf16_enabled,
        "mix": preset.mix,
        "docs_per_domain": preset.docs_per_domain,
        "seed": args.seed,
        "initial_codebook": seed_digest(seed) if arm == "seeded" else None,
    }
    log = read_json(log_path) or {"arm": arm, "settings": settings, "step_cpu_seconds": []}
    if log["settings"] != settings:
        raise SystemExit(f"{log_path} was written with other settings ({log['settings']}); use another --out")
    if log.get("done"):
        print(f"[{arm}] trained already: {log['steps']} steps, {log['cpu_seconds']:.1f} CPU s", flush=True)
        return log
    torch.manual_seed(args.seed)
    model, tokenizer = warm_start(args.model, base_tokenizer, seed if arm == "seeded" else None)
    config = presets.training_config(
        preset,
        str(folder),
        max_steps=MAX_STEPS,
        cpu_budget_seconds=args.budget_seconds,
        logging_steps=1,
        save_strategy="steps",
        save_steps=MAX_STEPS,  # checkpoints by the clock and at the end of the budget instead
        save_total_limit=1,
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=True,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=presets.training_data(preset, args.seed),
        processing_class=tokenizer,
        peft_config=presets.lora_config(model, preset),
    )
    trainer.remove_callback(PrinterCallback)  # a line per step; StepClock prints every tenth
    trainer.add_callback(StepClock(log_path, log))
    trainer.add_callback(SaveEveryMinutesCallback(args.save_minutes))
    print(f"[{arm}] training for {args.budget_seconds:g} CPU seconds", flush=True)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(folder))
    trainer.save_model(str(model_folder(out, arm)))
    checkpoint = last_complete_checkpoint(folder)
    spent = budget_spent(checkpoint) if checkpoint else None
    logged = [e for e in trainer.state.log_history if "loss" in e]
    kept = ("step", "loss", "bits_per_byte", "compression_ratio", "hypertoken_share")
    log.update(
        done=True,
        steps=trainer.state.global_step,
        cpu_seconds=spent if spent is not None else sum(log["step_cpu_seconds"]),
        base_tokens_seen=next(
            (e["num_base_tokens"] for e in reversed(trainer.state.log_history) if "num_base_tokens" in e),
            None,
        ),
        train_log=[{k: e[k] for k in kept if k in e} for e in logged],
    )
    write_json(log_path, log)
    for stale in folder.glob("checkpoint-*"):  # the arm is done: its model is in OUT/<arm>/model
        shutil.rmtree(stale)
    print(f"[{arm}] {log['steps']} steps, {log['cpu_seconds']:.1f} CPU s", flush=True)
    del trainer, model
    return log


# ============================================================================================ scoring


def heldout_texts(base_tokenizer: Any, chars: int) -> dict[str, str]:
    """Per domain, held-out documents (chat: conversations in ``base_tokenizer``'s chat template) joined in the
    corpus's order and cut to ``chars`` characters: the same bytes for every model and window."""
    from zip2zip.seeding import domain_texts

    texts = {}
    for domain in EVAL_DOMAINS:
        separator = "" if domain == "chat" else "\n\n"  # a templated conversation ends with a line break
        joined = ""
        for doc in domain_texts(base_tokenizer, domain, "heldout"):
            joined += doc if not joined else separator + doc
            if len(joined) >= chars:
                break
        texts[domain] = joined[:chars]
    return texts


def chat_prompts(base_tokenizer: Any, count: int) -> list[list[int]]:
    """Base ids of the first user turn of the first ``count`` held-out conversations, in the chat template with
    the assistant's turn opened."""
    from zip2zip.corpora.chat import chat_conversations

    return [
        list(
            base_tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, return_dict=True)[
                "input_ids"
            ]
        )
        for messages in chat_conversations("heldout", max_conversations=count)
    ]


def score_bits(model: Any, tokenizer: Any, texts: dict[str, str], windows: Sequence[int]) -> dict:
    """Strict bits per byte per window length: per domain, and pooled (``all``)."""
    from zip2zip.evaluation.scoring import Scorer, TextScore

    result = {}
    for window in windows:
        scorer = Scorer(model, tokenizer, max_length=window)
        scores = {domain: scorer.score_texts([text]) for domain, text in texts.items()}
        result[str(window)] = {
            "domains": {domain: score.to_dict() for domain, score in scores.items()},
            "all": sum(scores.values(), TextScore()).to_dict(),
        }
    return result


def score_generation(
    base: Any, model: Any, base_tokenizer: Any, codec: Any, prompts: dict, args: argparse.Namespace
) -> dict:
    """Per domain: the base tokens per code of the model's greedy continuations and their time against the base
    model's for the same new base tokens (both measured in one run, alternating)."""
    from benchmarks.generation import measure

    measured = measure(
        base,
        model,
        base_tokenizer,
        prompts,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        codec=codec,
        configs=("base", "zip2zip"),
    )
    result = {}
    for row in measured["rows"]:
        ours, theirs = row["zip2zip"], row["base"]
        result[row["domain"]] = {
            "compression": ours["compression"],
            "hypertoken_rate": ours["hypertoken_rate"],
            "seconds": ours["seconds"],
            "base_seconds": theirs["seconds"],
            "time_ratio": ours["seconds"] / theirs["seconds"],
            "steps": ours["steps"],
            "base_steps": theirs["steps"],
            "ms_per_step": ours["ms_per_step"],
            "base_ms_per_step": theirs["ms_per_step"],
        }
    result["examples"] = {
        domain: runs["zip2zip"][0]["text"] for domain, runs in measured["results"].items() if runs["zip2zip"]
    }
    return result


def scoring_settings(args: argparse.Namespace, texts: dict[str, str], identity: Any) -> dict:
    return {
        "model": identity,
        "chars": {domain: len(text) for domain, text in texts.items()},
        "windows": list(args.windows),
        "prompts": args.prompts,
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "threads": args.threads,
    }


def score_models(out: Path, args: argparse.Namespace, seed: Any, logs: dict[str, dict]) -> None:
    """Score every model not scored yet with these settings (``OUT/scores/<model>.json``), then time the seeded
    arm's decoding steps with and without its seed (``OUT/scores/step_time.json``)."""
    from benchmarks.common import load_prompts, load_zip2zip
    from benchmarks.seeding import decoding_step_times
    from zip2zip.loading import load_model_and_tokenizer
    from zip2zip.seeding import apply_seed

    base, base_tokenizer = load_model_and_tokenizer(args.base)
    texts = heldout_texts(base_tokenizer, args.eval_chars)
    prompts = {
        "chat": chat_prompts(base_tokenizer, args.prompts),
        "code": load_prompts(base_tokenizer, "code", args.prompts, args.prompt_tokens),
    }
    identities = {
        "base": args.base,
        "shipped": args.model,
        "shipped+seed": [args.model, seed_digest(seed)],
        **{arm: [logs[arm]["settings"], logs[arm]["steps"], logs[arm]["cpu_seconds"]] for arm in ARMS},
    }
    folders = {
        "shipped": args.model,
        "shipped+seed": args.model,
        **{a: str(model_folder(out, a)) for a in ARMS},
    }
    for name in MODELS:
        path = score_path(out, name)
        settings = scoring_settings(args, texts, identities[name])
        cached = read_json(path)
        if cached and cached["settings"] == settings:
            print(f"[{name}] scored already", flush=True)
            continue
        print(f"[{name}] scoring", flush=True)
        if name == "base":
            model, tokenizer = base, base_tokenizer
        else:
            model, tokenizer = load_zip2zip(folders[name], base_tokenizer)
            if name == "shipped+seed":
                tokenizer = apply_seed(model, base_tokenizer, seed)
        result = {"settings": settings, "bits": score_bits(model, tokenizer, texts, args.windows)}
        if name != "base":
            result["generation"] = score_generation(
                base, model, base_tokenizer, tokenizer.codec, prompts, args
            )
        write_json(path, result)
    path = out / "scores" / "step_time.json"
    settings = {
        "model": identities["seeded"],
        "repeats": args.step_repeats,
        "new_tokens": args.step_tokens,
        "threads": args.threads,
    }
    cached = read_json(path)
    if cached and cached["settings"] == settings:
        return
    model = load_zip2zip(folders["seeded"], base_tokenizer)[0]
    print("[seeded] timing decoding steps with the seed and without", flush=True)
    timing = decoding_step_times(model, base_tokenizer, seed, args.step_repeats, args.step_tokens)
    write_json(path, {"settings": settings, **timing})


# ============================================================================================ report


def bar(name: str, value: float | None, op: str, limit: float) -> dict:
    """One bar: PASS where ``value op limit`` holds, MISS where not, None where the value is not measured yet."""
    if value is None or math.isnan(value):
        status = None
    else:
        status = "PASS" if (value <= limit if op == "<=" else value >= limit) else "MISS"
    return {"bar": name, "value": value, "op": op, "limit": limit, "status": status}


def bars(scores: dict[str, dict], step_time: dict | None, windows: Sequence[int]) -> list[dict]:
    """The issue's bars from the scores (``{model: OUT/scores/<model>.json}``) and the step timing."""
    short, long = (str(w) for w in windows)
    plain, seeded = scores.get("plain"), scores.get("seeded")

    def pooled(score: dict | None, window: str) -> float | None:
        return score["bits"][window]["all"]["bits_per_byte"] if score else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    chat = (seeded or {}).get("generation", {}).get("chat")
    step = step_time["seconds_per_step"] if step_time else None
    return [
        bar(
            f"1. bits per byte, {short}-position windows: seeded / plain",
            ratio(pooled(seeded, short), pooled(plain, short)),
            "<=",
            SHORT_WINDOW_BAR,
        ),
        bar(
            f"1. bits per byte, {long}-position windows: seeded / plain",
            ratio(pooled(seeded, long), pooled(plain, long)),
            "<=",
            LONG_WINDOW_BAR,
        ),
        bar(
            "2. seeded greedy chat answers: base tokens per code",
            chat["compression"] if chat else None,
            ">=",
            CHAT_COMPRESSION_BAR,
        ),
        bar(
            "2. seeded greedy chat answers: time / the base model's",
            ratio(chat["seconds"], chat["base_seconds"]) if chat else None,
            "<=",
            CHAT_TIME_BAR,
        ),
        bar(
            "3. decoding step with the seed / without",
            ratio(step["seeded"], step["plain"]) if step else None,
            "<=",
            STEP_TIME_BAR,
        ),
    ]


def summarize(out: Path, windows: Sequence[int]) -> dict:
    """Everything the report shows, from the arms' logs and the score files."""
    logs = {arm: read_json(out / arm / "log.json") for arm in ARMS}
    training = {}
    for arm, log in logs.items():
        if not log:
            continue
        steps = log["step_cpu_seconds"]
        # bits per byte, not the loss: a code of the seeded arm stands for more text, so its loss per code is higher
        bits = [e["bits_per_byte"] for e in log.get("train_log", []) if "bits_per_byte" in e][-10:]
        training[arm] = {
            "done": bool(log.get("done")),
            "budget_seconds": log["settings"]["budget_seconds"],
            "steps": log.get("steps", len(steps)),
            "cpu_seconds": log.get("cpu_seconds", sum(steps)),
            "step_cpu_seconds_median": statistics.median(steps) if steps else None,
            "step_cpu_seconds_max": max(steps) if steps else None,
            "base_tokens_seen": log.get("base_tokens_seen"),
            "final_bits_per_byte": statistics.mean(bits) if bits else None,
        }
    scores = {name: read_json(score_path(out, name)) for name in MODELS}
    scores = {name: score for name, score in scores.items() if score}
    step_time = read_json(out / "scores" / "step_time.json")
    return {
        "windows": list(windows),
        "training": training,
        "scores": scores,
        "step_time": step_time,
        "bars": bars(scores, step_time, windows),
    }


def markdown(summary: dict) -> str:
    """The report's tables: training, bits per byte, generation, decoding steps, bars."""
    lines = [
        "| arm | steps | CPU s | budget | CPU s per step (median) | base tokens seen | "
        "training bits per byte (last 10 steps) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, row in summary["training"].items():
        seen = f"{int(row['base_tokens_seen']):,}" if row["base_tokens_seen"] is not None else ""
        loss = f"{row['final_bits_per_byte']:.3f}" if row["final_bits_per_byte"] is not None else ""
        step = f"{row['step_cpu_seconds_median']:.2f}" if row["step_cpu_seconds_median"] is not None else ""
        lines.append(
            f"| {arm}{'' if row['done'] else ' (running)'} | {row['steps']} | {row['cpu_seconds']:.1f} | "
            f"{row['budget_seconds']:g} | {step} | {seen} | {loss} |"
        )
    scores, windows = summary["scores"], [str(w) for w in summary["windows"]]
    base = scores.get("base")
    if scores:
        head = " | ".join(f"{d} {w}" for w in windows for d in (*EVAL_DOMAINS, "all"))
        lines += [
            "",
            "Strict bits per byte (in brackets: over the base model's), and base tokens per code of the windows:",
            "",
            f"| model | {head} | " + " | ".join(f"tokens/code {w}" for w in windows) + " |",
            "|---|" + "---:|" * (len(windows) * (len(EVAL_DOMAINS) + 2)),
        ]
        for name, score in scores.items():
            cells = []
            for w in windows:
                for domain in (*EVAL_DOMAINS, "all"):
                    value = _bits(score, w, domain)
                    reference = _bits(base, w, domain) if base else None
                    cells.append(f"{value:.4f}" + (f" ({value / reference:.3f}x)" if reference else ""))
            cells += [f"{score['bits'][w]['all']['compression']:.3f}" for w in windows]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    generated = {name: s["generation"] for name, s in scores.items() if "generation" in s}
    if generated:
        head = " | ".join(f"{d}: tokens/code | {d}: time vs base" for d in GENERATION_DOMAINS)
        lines += [
            "",
            "Greedy continuations (end of sequence suppressed): base tokens per code written, and the time for the "
            "same new base tokens over the base model's, run side by side:",
            "",
            f"| model | {head} |",
            "|---|" + "---:|" * (2 * len(GENERATION_DOMAINS)),
        ]
        for name, generation in generated.items():
            cells = []
            for domain in GENERATION_DOMAINS:
                row = generation[domain]
                cells += [f"{row['compression']:.3f}", f"{row['seconds'] / row['base_seconds']:.3f}x"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    step = summary["step_time"]
    if step:
        median = step["seconds_per_step"]
        lines += [
            "",
            f"Decoding steps of the seeded arm ({step['new_tokens']} steps, median of {step['repeats']}): "
            f"{1e3 * median['seeded']:.1f} ms with its {step['seed_entries']}-entry seed, "
            f"{1e3 * median['plain']:.1f} ms without ({median['seeded'] / median['plain']:.3f}x).",
        ]
    lines += ["", "| bar | value | limit | |", "|---|---:|---:|---|"]
    for row in summary["bars"]:
        value = f"{row['value']:.3f}" if row["value"] is not None else "not measured"
        lines.append(f"| {row['bar']} | {value} | {row['op']} {row['limit']} | {row['status'] or ''} |")
    return "\n".join(lines)


def _bits(score: dict, window: str, domain: str) -> float:
    entry = score["bits"][window]
    return (entry["all"] if domain == "all" else entry["domains"][domain])["bits_per_byte"]


def plot(summary: dict, out: Path, path: Path) -> None:
    """Bits per byte over the base model's, base tokens per code of greedy continuations, training bits per byte."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    scores, windows = summary["scores"], [str(w) for w in summary["windows"]]
    base = scores.get("base")
    names = [name for name in ZIP2ZIP_MODELS if name in scores]
    width = 0.8 / max(len(names), 1)
    if base:
        for k, name in enumerate(names):
            xs = [i + (k - (len(names) - 1) / 2) * width for i in range(len(windows))]
            ys = [_bits(scores[name], w, "all") / _bits(base, w, "all") for w in windows]
            left.bar(xs, ys, width, label=name)
        left.axhline(1.0, color="black", linewidth=1, linestyle=":")
        left.set_xticks(range(len(windows)), [f"{w} positions" for w in windows])
        left.set_ylabel("bits per byte / the base model's")
        lowest = min(_bits(scores[n], w, "all") / _bits(base, w, "all") for n in names for w in windows)
        left.set_ylim(bottom=max(0.0, min(lowest, 1.0) - 0.05))
        left.legend(fontsize=8)
    generated = [name for name in names if "generation" in scores[name]]
    for k, name in enumerate(generated):
        xs = [i + (k - (len(generated) - 1) / 2) * width for i in range(len(GENERATION_DOMAINS))]
        middle.bar(
            xs, [scores[name]["generation"][d]["compression"] for d in GENERATION_DOMAINS], width, label=name
        )
    middle.axhline(CHAT_COMPRESSION_BAR, color="black", linewidth=1, linestyle=":")
    middle.set_xticks(range(len(GENERATION_DOMAINS)), list(GENERATION_DOMAINS))
    middle.set_ylabel("base tokens per code written (greedy)")
    middle.set_ylim(bottom=0.9)
    for arm in ARMS:
        log = read_json(out / arm / "log.json")
        if not log or not log.get("train_log"):
            continue
        clock = [0.0]
        for seconds in log["step_cpu_seconds"]:
            clock.append(clock[-1] + seconds)
        entries = [e for e in log["train_log"] if e["step"] < len(clock) and "bits_per_byte" in e]
        values = [e["bits_per_byte"] for e in entries]
        smooth = [statistics.mean(values[max(0, i - 9) : i + 1]) for i in range(len(values))]
        right.plot([clock[e["step"]] for e in entries], smooth, label=arm, linewidth=1)
    right.set_xlabel("training CPU seconds")
    right.set_ylabel("training bits per byte (mean of 10 steps)")
    right.legend(fontsize=8)
    for ax in (left, middle, right):
        ax.grid(alpha=0.3)
    fig.suptitle("The shipped model trained on with a seeded codebook and without, at equal CPU seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out: Path, windows: Sequence[int]) -> dict:
    """Write ``results.json``, ``results.md`` and ``seeded_training.png`` to ``out`` from its logs and scores."""
    summary = summarize(out, windows)
    if not summary["training"] and not summary["scores"]:
        print("nothing to report yet")
        return summary
    text = markdown(summary)
    print(text)
    (out / "results.md").write_text(text + "\n")
    write_json(out / "results.json", summary)
    plot(summary, out, out / "seeded_training.png")
    return summary


# ============================================================================================ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None, help=f"results folder (default {OUT}, --quick: OUT/quick)")
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: checks the pipeline, measures little"
    )
    parser.add_argument("--report", action="store_true", help="only render the tables and the plot from OUT")
    parser.add_argument("--budget-seconds", type=float, help="training CPU seconds per arm")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads, for every part")
    parser.add_argument(
        "--model", default=None, help="zip2zip model folder to start from (default: the shipped one)"
    )
    parser.add_argument("--base", default=None, help="its base model folder (default: the embedded SmolLM2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of training and data order")
    parser.add_argument("--save-minutes", type=float, default=15.0, help="checkpoint every N minutes")
    parser.add_argument("--batch", type=int, help="rows per step (default: the cpu preset's)")
    parser.add_argument("--length", type=int, help="codes per row (default: the cpu preset's)")
    parser.add_argument(
        "--docs-per-domain", type=int, help="training documents per domain (default: the preset's)"
    )
    parser.add_argument("--seed-size", type=int, help="seed entries")
    parser.add_argument("--seed-tokens", type=int, help="base tokens the seed's runs are counted on")
    parser.add_argument("--eval-chars", type=int, help="held-out characters per domain")
    parser.add_argument("--windows", help="the short and the long scoring window in positions, e.g. 128,1024")
    parser.add_argument("--prompts", type=int, help="chat prompts and code prompts")
    parser.add_argument("--prompt-tokens", type=int, help="base tokens per code prompt")
    parser.add_argument("--new-tokens", type=int, help="new base tokens per continuation")
    parser.add_argument("--repeats", type=int, help="runs per prompt and model (the fastest counts)")
    parser.add_argument("--step-repeats", type=int, help="rounds of the decoding-step timing")
    parser.add_argument("--step-tokens", type=int, help="decoding steps per timed answer")
    args = parser.parse_args(argv)
    for name, (full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    windows = tuple(int(w) for w in str(args.windows).split(","))
    if len(windows) != 2 or not 2 <= windows[0] < windows[1]:
        parser.error(f"--windows {args.windows}: give a short and a longer window, e.g. 128,1024")
    args.windows = windows
    args.out = Path(args.out) if args.out else (OUT / "quick" if args.quick else OUT)
    return args


def resolve_paths(args: argparse.Namespace) -> None:
    """``--model`` and ``--base`` as folders: the shipped model and the embedded base by default."""
    from benchmarks.common import resolve_model
    from zip2zip.bundled.base import default_base_path

    args.model = resolve_model(args.model)
    if args.base is None:
        args.base = str(default_base_path())
    elif not Path(args.base).is_dir():
        raise SystemExit(f"--base {args.base}: no such folder; pass the base model's folder")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(args.out, args.windows)
    import datasets
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from zip2zip.loading import load_zip2zip_tokenizer

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    resolve_paths(args)
    base_tokenizer = AutoTokenizer.from_pretrained(args.base)
    seed = study_seed(args.out, load_zip2zip_tokenizer(args.model), args.seed_size, args.seed_tokens)
    logs = {arm: train_arm(arm, args.out, args, seed, base_tokenizer) for arm in ARMS}
    score_models(args.out, args, seed, logs)
    return report(args.out, args.windows)


if __name__ == "__main__":
    main()
