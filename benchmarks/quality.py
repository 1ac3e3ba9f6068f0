"""Quality per CPU second: which training recipe makes the best zip2zip model for a fixed CPU budget.

The per-step study (``benchmarks/learning.py``) compared variants at equal steps, which rewards variants whose
steps cost more. This one gives every variant the same **process CPU time** for its training steps
(``Zip2ZipSFTConfig(cpu_budget_seconds=...)``; its learning-rate schedule runs over the budget), and measures
every eighth of the budget:

- held-out **strict bits per byte** on the four project domains (code, prose, math, multilingual) and on an
  **unseen** domain, the Go standard library (``zip2zip.corpora.sources.UNSEEN_DOMAINS``: no training mix contains
  Go), next to the base model's on the same bytes;
- the **next-base-token gap** on code and prose: at every compressed position, the zip2zip model's probability
  that the next code *starts with* the true next base token (``q1``, ``zip2zip.distillation``) against the base
  model's probability of that token at the aligned base position, in nats per position (0 = the zip2zip
  model reads compressed text as well as its base reads plain text).

The budget is the CPU time the previous recipe (half-width mean-init encoders, LoRA, float32) spends on the
per-step study's 200 steps of 2 x 256 codes: the ``control`` variant runs first, for exactly those 200 steps,
and its CPU seconds become every other variant's budget (rows of ``--batch`` x ``--length`` codes for all). Variants (all with the recipe's architecture, LoRA r=16/alpha=32 unless
said, LR 3e-4 cosine with 5% warm-up over the budget):

=================  ==========================================================================================
``control``        float32, 200 steps (defines the budget)
``bf16``           bf16 autocast (float32 master weights)
``full``           bf16, full fine-tuning (LR 1e-4 for the base weights, 3e-4 for the encoders)
``hidden``         bf16 + hidden-state distillation at the last layer (the LM head's input), weight 1
``hidden-stride``  bf16 + hidden-state distillation at every 6th layer and the last, weight 1
``hidden-warmup``  ``hidden`` with the first 40 steps training the hyper-encoders alone
``kl``             bf16 + first-token KL distillation (output side), weight 1
``hidden-kl``      ``hidden`` + ``kl``
``m1``             ``bf16`` with compression off (M = 1): the no-compression control, the fair base for
                   "quality kept"
=================  ==========================================================================================

Resumable: each variant keeps ``OUT/<variant>/log.json`` and its last checkpoint; rerunning the same command
continues, finished variants are skipped. ``--report`` rebuilds ``OUT/results.md``, ``OUT/results.json`` and
``OUT/quality.png`` from the logs. Other work on the machine slows a run down but barely changes its CPU
seconds, which is why the budget is CPU time and not wall time.

    nice -n 10 python -m benchmarks.quality                      # the study, in order of the table
    python -m benchmarks.quality --report
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("code", "prose", "math", "multilingual", "go")
GAP_DOMAINS = ("code", "prose")
CONTROL_STEPS = 200
EVALS_PER_BUDGET = 8

VARIANTS: dict[str, dict[str, Any]] = {
    "control": {"train": {"bf16": False}},
    "bf16": {"train": {"bf16": True}},
    "full": {"train": {"bf16": True, "learning_rate": 1e-4, "encoder_learning_rate": 3e-4}, "lora": False},
    "hidden": {"train": {"bf16": True, "hidden_distillation_weight": 1.0}},
    "hidden-stride": {
        "train": {"bf16": True, "hidden_distillation_weight": 1.0, "hidden_distillation_layers": "stride:6"}
    },
    "hidden-warmup": {"train": {"bf16": True, "hidden_distillation_weight": 1.0, "encoder_warmup_steps": 40}},
    "kl": {"train": {"bf16": True, "distillation_weight": 1.0}},
    "hidden-kl": {"train": {"bf16": True, "hidden_distillation_weight": 1.0, "distillation_weight": 1.0}},
    "m1": {"train": {"bf16": True}, "model": {"max_subtokens": 1}},
}


# ============================================================================================ data


def heldout_texts(chars: int) -> dict[str, str]:
    """Per domain, held-out documents joined in the corpus's fixed order and cut to ``chars`` characters."""
    from zip2zip.corpora.store import load_corpus

    texts = {}
    for domain in DOMAINS:
        joined = ""
        for doc in load_corpus(domain, "heldout"):
            joined += doc if not joined else "\n\n" + doc
            if len(joined) >= chars:
                break
        texts[domain] = joined[:chars]
    return texts


# ============================================================================================ scoring


@torch.inference_mode()
def next_token_gap_terms(model, tokenizer, text: str, max_length: int) -> tuple[float, int, list[int], list]:
    """Sum of ``-log q1`` of the true next base token over the compressed positions of ``text``, their count,
    and per window the base positions they align to (for the base model's side).

    Windows as in ``zip2zip.evaluation.scoring``: ``max_length - 1`` base tokens after a bos/eos prefix, each
    compressed alone.
    """
    from zip2zip.trainer.distillation import first_token_log_probs, hypertoken_first_ids

    codec, base = tokenizer.codec, tokenizer.base
    prefix = base.bos_token_id if base.bos_token_id is not None else base.eos_token_id
    ids = base(text, add_special_tokens=False)["input_ids"]
    V = codec.base_vocab_size
    total, count, windows = 0.0, 0, []
    for i in range(0, len(ids), max_length - 1):
        window = [prefix, *ids[i : i + max_length - 1]]
        codes = codec.encode(window)
        input_ids = torch.tensor([codes])
        logits = model(input_ids=input_ids, use_cache=False).logits[0].float()
        state = model.prepare_codebook(input_ids)
        slots = int(state["accept_limits"].max())
        first = hypertoken_first_ids(state["codebook"], state["accept_limits"], state["candidates"], slots)[0]
        trace = codec.trace(codes)
        ends = torch.tensor(trace.spans).cumsum(0) - 1  # base index of each code's last constituent
        targets = torch.tensor(window)[ends[:-1] + 1]  # the base token after each code but the last
        log_q1 = first_token_log_probs(logits[:-1], first[:-1], V)
        total += float(-log_q1.gather(1, targets[:, None]).sum())
        count += len(codes) - 1
        windows.append((window, ends[:-1].tolist()))
    return total, count, ids, windows


@torch.inference_mode()
def base_gap_terms(base_model, windows) -> float:
    """Sum of the base model's ``-log p`` of the next base token at the aligned positions of each window."""
    total = 0.0
    for window, positions in windows:
        logits = base_model(input_ids=torch.tensor([window]), use_cache=False).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        pos = torch.tensor(positions)
        total += float(-logp[pos, torch.tensor(window)[pos + 1]].sum())
    return total


def score(model, tokenizer, texts: dict[str, str], max_length: int, base_gap: dict | None) -> dict[str, Any]:
    """Strict bits per byte per domain (pooled too) and, with the base model's gap terms, the q1 gap."""
    from zip2zip.evaluation.scoring import bits_per_byte

    result: dict[str, Any] = {"domains": {}}
    total_bits, total_bytes = 0.0, 0
    for domain, text in texts.items():
        r = bits_per_byte(model, tokenizer, [text], max_length=max_length)
        result["domains"][domain] = {"bpb": r.bits_per_byte, "compression": r.compression, "bytes": r.bytes}
        total_bits += r.bits_per_byte * r.bytes
        total_bytes += r.bytes
    result["bpb"] = total_bits / total_bytes
    result["bpb_seen"] = sum(
        result["domains"][d]["bpb"] * result["domains"][d]["bytes"] for d in DOMAINS[:4]
    ) / sum(result["domains"][d]["bytes"] for d in DOMAINS[:4])
    if base_gap is not None and getattr(tokenizer, "codec", None) is not None:
        result["gap"] = {}
        for domain in GAP_DOMAINS:
            q1, count, _, _ = next_token_gap_terms(model, tokenizer, texts[domain], max_length)
            result["gap"][domain] = (q1 - base_gap[domain]["sum"]) / count
    return result


def base_reference(out: Path, texts: dict[str, str], max_length: int) -> dict:
    """The base model's bits per byte and gap terms on the same windows (cached in ``OUT/base.json``)."""
    path = out / "base.json"
    settings = {"chars": {d: len(t) for d, t in texts.items()}, "max_length": max_length}
    cached = read_json(path)
    if cached and cached.get("settings") == settings:
        return cached
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zip2zip.bundled.base import default_base_path
    from zip2zip.conversion import zip2zip_from_base

    base_model = AutoModelForCausalLM.from_pretrained(default_base_path()).eval()
    tokenizer = AutoTokenizer.from_pretrained(default_base_path())
    result = score(base_model, tokenizer, texts, max_length, None)
    _, zip_tok = zip2zip_from_base(default_base_path())  # only its codec: the windows a zip2zip model scores
    result["gap_terms"] = {}
    for domain in GAP_DOMAINS:
        windows = _windows(zip_tok, texts[domain], max_length)
        result["gap_terms"][domain] = {"sum": base_gap_terms(base_model, windows)}
    result["settings"] = settings
    write_json(path, result)
    print(f"[base] bpb {result['bpb']:.4f}", flush=True)
    return result


def _windows(tokenizer, text: str, max_length: int) -> list:
    codec, base = tokenizer.codec, tokenizer.base
    prefix = base.bos_token_id if base.bos_token_id is not None else base.eos_token_id
    ids = base(text, add_special_tokens=False)["input_ids"]
    windows = []
    for i in range(0, len(ids), max_length - 1):
        window = [prefix, *ids[i : i + max_length - 1]]
        trace = codec.trace(codec.encode(window))
        ends = (torch.tensor(trace.spans).cumsum(0) - 1)[:-1].tolist()
        windows.append((window, ends))
    return windows


# ============================================================================================ logs


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class BudgetEvaluator(TrainerCallback):
    """Scores the held-out set before the first step, then every ``every_steps`` steps or every
    ``every_seconds`` CPU seconds of training steps (its own clock, continued from the log on resume: a
    checkpoint is saved at every evaluation)."""

    def __init__(
        self, log_path: Path, log: dict, tokenizer, texts, max_length: int, base: dict,
        every_steps: int | None = None, every_seconds: float | None = None,
    ):  # fmt: skip
        self.log_path, self.log, self.tokenizer, self.texts = log_path, log, tokenizer, texts
        self.max_length, self.base = max_length, base
        self.every_steps, self.every_seconds = every_steps, every_seconds
        self.trainer = None
        self._wall = self._cpu = 0.0
        self._wall_started = self._cpu_started = 0.0

    def cpu_seconds(self) -> float:
        return self.log.get("cpu_at_resume", 0.0) + self._cpu

    def evaluate(self, step: int) -> None:
        from zip2zip.utils.peft import core_model

        model = core_model(self.trainer.model)
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        result = score(model, self.tokenizer, self.texts, self.max_length, self.base["gap_terms"])
        model.train(was_training)
        entry = {
            "step": step,
            "cpu_seconds": round(self.cpu_seconds(), 2),
            "wall_seconds": round(self.log.get("wall_seconds", 0.0) + self._wall, 1),
            "bytes_seen": self.log.get("bytes_at_resume", 0)
            + getattr(self.trainer, "_total_target_bytes", 0),
            "eval_seconds": round(time.perf_counter() - started, 1),
            **result,
        }
        self.log["evals"] = [e for e in self.log["evals"] if e["step"] != step] + [entry]
        self.log["evals"].sort(key=lambda e: e["step"])
        write_json(self.log_path, self.log)
        gap = result.get("gap", {})
        print(
            f"[{self.log['variant']}] step {step} cpu {entry['cpu_seconds']:.0f}s: bpb {result['bpb']:.4f} "
            f"(go {result['domains']['go']['bpb']:.4f}) gap code {gap.get('code', float('nan')):.3f} "
            f"prose {gap.get('prose', float('nan')):.3f}",
            flush=True,
        )

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and not self.log["evals"]:
            self.evaluate(0)
        if self.log["evals"]:
            last = next(e for e in self.log["evals"] if e["step"] == state.global_step)
            self.log["bytes_at_resume"] = last["bytes_seen"]
            self.log["wall_seconds"] = last["wall_seconds"]
            self.log["cpu_at_resume"] = last["cpu_seconds"]

    def on_step_begin(self, args, state, control, **kwargs):
        self._wall_started, self._cpu_started = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self._wall += time.perf_counter() - self._wall_started
        self._cpu += time.process_time() - self._cpu_started
        last = self.log["evals"][-1] if self.log["evals"] else {"step": 0, "cpu_seconds": 0.0}
        due = (self.every_steps and state.global_step - last["step"] >= self.every_steps) or (
            self.every_seconds and self.cpu_seconds() - last["cpu_seconds"] >= self.every_seconds
        )
        if due or control.should_training_stop or state.global_step >= state.max_steps:
            self.evaluate(state.global_step)
            control.should_save = True  # every evaluation is a resume point


# ============================================================================================ runs


def run_variant(name: str, out: Path, args, texts, base: dict, budget: float | None) -> float:
    """Train (or resume) one variant; return its CPU seconds."""
    from datasets import Dataset

    from zip2zip import recipe
    from zip2zip.bundled.base import default_base_path
    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.corpora import mixing
    from zip2zip.trainer import presets
    from zip2zip.trainer.callbacks import last_complete_checkpoint
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    spec = VARIANTS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "log.json"
    control = name == "control"
    preset = recipe.get_preset("cpu").replace(batch_size=args.batch, max_length=args.length)
    settings = {
        "batch": preset.batch_size,
        "length": preset.max_length,
        "budget": None if control else budget,
        "control_steps": args.control_steps,
        "seed": args.seed,
        "docs_per_domain": args.docs_per_domain,
        "eval_chars": args.eval_chars,
        "eval_length": args.eval_length,
    }
    log = read_json(log_path) or {"variant": name, "settings": settings, "spec": spec, "evals": []}
    if log["settings"] != settings or log["spec"] != spec:
        raise SystemExit(f"{log_path} was written with other settings ({log['settings']}); use another --out")
    if log.get("done"):
        print(f"[{name}] done already", flush=True)
        return float(log["evals"][-1]["cpu_seconds"])
    torch.manual_seed(args.seed)
    model, tokenizer = zip2zip_from_base(
        default_base_path(), **{**recipe.ZIP2ZIP_SETTINGS, **spec.get("model", {})}
    )
    train = mixing.training_mix(args.docs_per_domain, args.seed)
    # The control defines the budget by its steps; the others stop on the budget (max_steps only caps them).
    budget_seconds = None if control else budget
    config = presets.training_config(
        preset,
        str(folder),
        max_steps=args.control_steps if control else 100 * args.control_steps,
        cpu_budget_seconds=budget_seconds,
        logging_steps=5,
        save_strategy="steps",
        save_steps=10**9,  # saved at every evaluation (BudgetEvaluator) instead
        save_total_limit=1,
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=True,
        **spec["train"],
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_dict({"text": list(train["text"])}),
        processing_class=tokenizer,
        peft_config=presets.lora_config(model, preset) if spec.get("lora", True) else None,
    )
    evaluator = BudgetEvaluator(
        log_path, log, tokenizer, texts, args.eval_length, base,
        every_steps=max(1, args.control_steps // EVALS_PER_BUDGET) if control else None,
        every_seconds=None if control else budget / EVALS_PER_BUDGET,
    )  # fmt: skip
    evaluator.trainer = trainer
    trainer.add_callback(evaluator)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(folder))
    if not log["evals"] or log["evals"][-1]["step"] != trainer.state.global_step:
        evaluator.evaluate(trainer.state.global_step)
    log["train_log"] = [e for e in trainer.state.log_history if "loss" in e]
    log["done"] = True
    write_json(log_path, log)
    seconds = float(log["evals"][-1]["cpu_seconds"])
    del trainer, model
    gc.collect()
    return seconds


# ============================================================================================ report


def report(out: Path) -> dict:
    base = read_json(out / "base.json")
    logs = {name: read_json(out / name / "log.json") for name in VARIANTS}
    logs = {name: log for name, log in logs.items() if log and log["evals"]}
    if base is None or not logs:
        print("nothing to report yet")
        return {}
    control = logs.get("control")
    budget = control["evals"][-1]["cpu_seconds"] if control and control.get("done") else None
    rows = []
    for name, log in logs.items():
        last = log["evals"][-1]
        rows.append(
            {
                "variant": name,
                "done": bool(log.get("done")),
                "step": last["step"],
                "cpu_seconds": last["cpu_seconds"],
                "bpb": last["bpb"],
                "bpb_seen": last["bpb_seen"],
                "go": last["domains"]["go"]["bpb"],
                "compression": last["domains"]["code"]["compression"],
                "gap_code": last.get("gap", {}).get("code", float("nan")),
                "gap_prose": last.get("gap", {}).get("prose", float("nan")),
            }
        )
    ctrl = next((r for r in rows if r["variant"] == "control"), None)
    for row in rows:
        gap = row["bpb"] - base["bpb"]
        row["gap_to_base"] = gap
        row["control_gap_closed"] = (
            1 - gap / ctrl["gap_to_base"] if ctrl and ctrl["gap_to_base"] > 0 else float("nan")
        )
    lines = [
        f"Base model (SmolLM2-135M-Instruct): **{base['bpb']:.4f}** bits per byte pooled over "
        f"{', '.join(DOMAINS)} (go, never trained on: {base['domains']['go']['bpb']:.4f}). Budget: "
        + (
            f"{budget:.0f} CPU seconds (the control's {control['settings']['control_steps']} steps)."
            if budget
            else "not yet known."
        ),
        "",
        "| variant | steps | CPU s | bits/byte (all) | vs base | control gap closed | go (unseen) | "
        "q1 gap code | q1 gap prose | compression (code) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(rows, key=lambda r: r["bpb"]):
        status = "" if row["done"] else " (running)"
        lines.append(
            f"| {row['variant']}{status} | {row['step']} | {row['cpu_seconds']:.0f} | {row['bpb']:.4f} | "
            f"{row['bpb'] / base['bpb']:.3f}x | {100 * row['control_gap_closed']:.1f}% | {row['go']:.4f} "
            f"({row['go'] / base['domains']['go']['bpb']:.3f}x) | {row['gap_code']:.3f} | {row['gap_prose']:.3f} | "
            f"{row['compression']:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    write_json(out / "results.json", {"base": base, "budget": budget, "rows": rows})
    plot(out, logs, base)
    return {"rows": rows, "budget": budget}


def plot(out: Path, logs: dict[str, dict], base: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    for name, log in logs.items():
        xs = [e["cpu_seconds"] / 3600 for e in log["evals"]]
        style = "--" if name in ("control", "m1") else "-"
        left.plot(xs, [e["bpb"] for e in log["evals"]], style, marker="o", markersize=3, label=name)
        gaps = [e.get("gap", {}).get("code") for e in log["evals"]]
        if any(g is not None for g in gaps):
            right.plot(xs, gaps, style, marker="o", markersize=3, label=name)
    left.axhline(base["bpb"], color="black", linewidth=1, linestyle=":", label="base model")
    right.axhline(0, color="black", linewidth=1, linestyle=":")
    left.set_xlabel("training CPU hours")
    left.set_ylabel("held-out bits per byte (strict, 5 domains)")
    right.set_xlabel("training CPU hours")
    right.set_ylabel("next-base-token gap on code (nats/position)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle("zip2zip SmolLM2-135M: quality per CPU second")
    fig.tight_layout()
    fig.savefig(out / "quality.png", dpi=120)
    plt.close(fig)


# ============================================================================================ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quality"))
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=2, help="rows per step (the per-step study's)")
    parser.add_argument("--length", type=int, default=256, help="codes per row (the per-step study's)")
    parser.add_argument(
        "--control-steps", type=int, default=CONTROL_STEPS, help="steps of the control (they set the budget)"
    )
    parser.add_argument("--docs-per-domain", type=int, default=400)
    parser.add_argument("--eval-chars", type=int, default=2000, help="held-out characters per domain")
    parser.add_argument("--eval-length", type=int, default=256, help="positions per scored window")
    parser.add_argument("--report", action="store_true", help="only rebuild the table and the plot")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out)
        return
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    texts = heldout_texts(args.eval_chars)
    base = base_reference(out, texts, args.eval_length)
    if "control" in names:
        names.remove("control")
    budget = run_variant("control", out, args, texts, base, None)
    for name in names:
        run_variant(name, out, args, texts, base, budget)
        report(out)
    report(out)


if __name__ == "__main__":
    main()
