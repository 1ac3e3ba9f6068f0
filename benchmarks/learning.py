"""Learning per training step: held-out bits per byte against training bytes seen, per training variant.

Our machines train slowly, so what one step teaches decides how good a zip2zip model we can ship. This
benchmark trains SmolLM2-135M-Instruct into zip2zip models under several variants, all with the same budget
(steps, batch, sequence length, data, data order, seed, LoRA, optimiser, schedule), and measures held-out
**strict bits per byte** every ``--eval-every`` steps, next to the base model's bits per byte on the same bytes.

Variants (every one: ``M = 4``, codebook 2048, 2-layer hyper-encoders, digits never merged, LoRA r=16/alpha=32
on the base projections, encoders trained in full; each differs from ``residual`` in one setting, except
``paper``):

========================  =================================================================================
``paper``                 the paper's training: plain compressed cross-entropy, hyper-encoder output alone
                          (mean-pooled transformer, random init: ``encoder_init="random"``), untied encoders
                          (the released Phi configs), compressed positions, no reconstruction loss (the
                          released configs' alpha = 0). M = 4 as in the released configs, so that every
                          variant compresses the same text identically.
``residual``              ``paper`` with the zip2zip++ initialisation: first constituent + a zero-initialised
                          correction (the current recipe).
``mean``                  ``residual`` but the mean of the constituents + zero-initialised correction.
``tied``                  ``residual`` with one encoder for input and output vectors.
``base-positions``        ``residual`` with base-token positions (each code at its last constituent's index).
``reconstruction``        ``residual`` plus the reconstruction loss, weight 0.1 (the paper's lambda).
``distill``               ``residual`` plus first-token self-distillation from the frozen base, weight 1
                          (``Zip2ZipSFTConfig(distillation_weight=1.0)``).
``distill-base``          ``distill`` with base-token positions.
``narrow``                ``residual`` with half-width encoders (``encoder_hidden_size=288``, MLP width
                          alike): 1.3M parameters per encoder instead of 4.3M, so a third of the encoder
                          cost per generation step.
``narrow-mean``           ``narrow`` with the mean init.
========================  =================================================================================

Held-out set: the first documents of each domain's held-out split (code, prose, math, multilingual), each
domain cut to ``--eval-chars`` characters, scored with ``zip2zip.evaluation.scoring.bits_per_byte`` in windows of
``--eval-length`` positions (a fresh codebook per window; only the canonical LZW stream is scored, so the
zip2zip number is an upper bound). Training bytes seen = UTF-8 bytes of the trained rows' loss targets.

Everything is resumable: each variant writes ``OUT/<variant>/log.json`` (settings and every evaluation) and
keeps its last Trainer checkpoint; rerunning the same command continues where it stopped, and finished
variants are skipped. ``--report`` only rebuilds the table (``OUT/results.md``, ``OUT/results.json``) and the
plot (``OUT/learning.png``) from the logs.

Run (the pilot, then the study, on 2 CPU cores):

    python -m benchmarks.learning --out benchmarks/results/learning-pilot --steps 30 --eval-every 10 \\
        --batch 2 --length 256 --variants paper,residual,distill
    nice -n 10 python -m benchmarks.learning --out benchmarks/results/learning --steps 200 --eval-every 25

Bar (issue 9): at an equal number of steps, the best variant's gap to the base model's bits per byte is at
least 10% smaller than ``paper``'s.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
DOMAINS = ("code", "prose", "math", "multilingual")
BAR = 0.10

COMMON: dict[str, Any] = {
    "max_codebook_size": 2048,
    "max_subtokens": 4,
    "encoder_num_layers": 2,
    "protect_digits": True,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "paper": {"encoder_init": "random", "tie_encoders": False, "position_mode": "compressed"},
    "residual": {"encoder_init": "residual", "tie_encoders": False, "position_mode": "compressed"},
    "distill": {
        "encoder_init": "residual",
        "tie_encoders": False,
        "position_mode": "compressed",
        "distill": 1.0,
    },
    "base-positions": {"encoder_init": "residual", "tie_encoders": False, "position_mode": "base"},
    "mean": {"encoder_init": "mean", "tie_encoders": False, "position_mode": "compressed"},
    "tied": {"encoder_init": "residual", "tie_encoders": True, "position_mode": "compressed"},
    "reconstruction": {
        "encoder_init": "residual",
        "tie_encoders": False,
        "position_mode": "compressed",
        "reconstruction_loss_weight": 0.1,
    },
    "distill-base": {
        "encoder_init": "residual",
        "tie_encoders": False,
        "position_mode": "base",
        "distill": 1.0,
    },
    "narrow": {
        "encoder_init": "residual",
        "tie_encoders": False,
        "position_mode": "compressed",
        "encoder_hidden_size": 288,
    },
    "narrow-mean": {
        "encoder_init": "mean",
        "tie_encoders": False,
        "position_mode": "compressed",
        "encoder_hidden_size": 288,
    },
}


# ============================================================================================ data


def training_texts(docs_per_domain: int, seed: int) -> list[str]:
    """The recipe's training mix (``zip2zip.recipe``), so the study trains on what the recipe does."""
    from zip2zip.corpora.mixing import training_mix

    return list(training_mix(docs_per_domain, seed)["text"])


def heldout_texts(chars: int) -> list[str]:
    """Per domain, held-out documents joined (in the corpus's fixed order) and cut to ``chars`` characters."""
    from zip2zip.corpora.store import load_corpus

    texts = []
    for domain in DOMAINS:
        joined = ""
        for doc in load_corpus(domain, "heldout"):
            joined += doc if not joined else "\n\n" + doc
            if len(joined) >= chars:
                break
        texts.append(joined[:chars])
    return texts


# ============================================================================================ scoring


def score(model, tokenizer, texts: list[str], max_length: int) -> dict[str, float]:
    """Strict bits per byte (and compression) of ``texts``; the shared evaluator when present."""
    try:
        from zip2zip.evaluation.scoring import bits_per_byte
    except ImportError:  # an older checkout: the same scheme, written out
        return _local_bits_per_byte(model, tokenizer, texts, max_length)
    result = bits_per_byte(model, tokenizer, texts, max_length=max_length)
    return {"bpb": result.bits_per_byte, "compression": result.compression, "bytes": result.bytes}


@torch.inference_mode()
def _local_bits_per_byte(model, tokenizer, texts: list[str], max_length: int) -> dict[str, float]:
    """Windows of ``max_length - 1`` base tokens after a bos/eos prefix, each compressed alone, canonical stream."""
    codec = getattr(tokenizer, "codec", None)
    base = tokenizer.base if codec is not None else tokenizer
    prefix = base.bos_token_id if base.bos_token_id is not None else base.eos_token_id
    logprob, n_bytes, base_tokens, codes = 0.0, 0, 0, 0
    for text in texts:
        n_bytes += len(text.encode("utf-8"))
        ids = base(text, add_special_tokens=False)["input_ids"]
        for i in range(0, len(ids), max_length - 1):
            window = ids[i : i + max_length - 1]
            seq = [prefix, *(codec.encode(window) if codec is not None else window)]
            logits = model(input_ids=torch.tensor([seq], device=model.device), use_cache=False).logits[0]
            logprobs = torch.log_softmax(logits[:-1].float(), -1)
            logprob += float(logprobs.gather(-1, torch.tensor(seq[1:], device=logits.device)[:, None]).sum())
            base_tokens += len(window)
            codes += len(seq) - 1
    return {"bpb": -logprob / math.log(2) / n_bytes, "compression": base_tokens / codes, "bytes": n_bytes}


# ============================================================================================ logs


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class HeldOutEvaluator(TrainerCallback):
    """Scores the held-out texts every ``every`` steps (and before the first step) into the variant's log.

    Checkpoints are saved at the same steps, after this callback, so a resumed run starts at a step whose
    evaluation is already logged; bytes seen continue from that entry.
    """

    def __init__(self, log_path: Path, log: dict, tokenizer, texts: list[str], every: int, max_length: int):
        self.log_path, self.log = log_path, log
        self.tokenizer, self.texts = tokenizer, texts
        self.every, self.max_length = every, max_length
        self.trainer = None
        self.bytes_at_start = 0
        self.seconds_at_start = 0.0
        self._step_start = 0.0
        self.train_seconds = 0.0

    def _evaluate(self, step: int) -> None:
        from zip2zip.utils.peft import core_model

        model = core_model(self.trainer.model)
        was_training = model.training
        model.eval()
        started = time.perf_counter()
        result = score(model, self.tokenizer, self.texts, self.max_length)
        model.train(was_training)
        seen = self.bytes_at_start + getattr(self.trainer, "_total_target_bytes", 0)
        entry = {
            "step": step,
            "bytes_seen": seen,
            "train_seconds": round(self.seconds_at_start + self.train_seconds, 1),
            "eval_seconds": round(time.perf_counter() - started, 1),
            **result,
        }
        self.log["evals"] = [e for e in self.log["evals"] if e["step"] != step] + [entry]
        self.log["evals"].sort(key=lambda e: e["step"])
        write_json(self.log_path, self.log)
        print(
            f"[{self.log['variant']}] step {step}: bpb {result['bpb']:.4f} ({seen:,} bytes seen)", flush=True
        )

    def on_train_begin(self, args, state, control, **kwargs):
        previous = [e for e in self.log["evals"] if e["step"] == state.global_step]
        if previous:
            self.bytes_at_start = previous[0]["bytes_seen"]
            self.seconds_at_start = previous[0]["train_seconds"]
        elif state.global_step == 0:
            self._evaluate(0)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.train_seconds += time.perf_counter() - self._step_start
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self._evaluate(state.global_step)


# ============================================================================================ runs


def run_settings(args) -> dict[str, Any]:
    """What must be equal across variants (and across resumed runs of one output folder)."""
    return {
        "steps": args.steps,
        "batch": args.batch,
        "length": args.length,
        "lr": args.lr,
        "lora_r": 16,
        "lora_alpha": 32,
        "seed": args.seed,
        "docs_per_domain": args.docs_per_domain,
        "eval_every": args.eval_every,
        "eval_chars": args.eval_chars,
        "eval_length": args.eval_length,
        **COMMON,
    }


def base_score(out: Path, args, texts: list[str]) -> dict:
    path = out / "base.json"
    cached = read_json(path)
    settings = {"eval_chars": args.eval_chars, "eval_length": args.eval_length}
    if cached and cached["settings"] == settings:
        return cached
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zip2zip.bundled.base import default_base_path

    model = AutoModelForCausalLM.from_pretrained(default_base_path()).eval()
    tokenizer = AutoTokenizer.from_pretrained(default_base_path())
    result = {"settings": settings, **score(model, tokenizer, texts, args.eval_length)}
    write_json(path, result)
    print(f"[base] bpb {result['bpb']:.4f}", flush=True)
    return result


def run_variant(name: str, out: Path, args, train: list[str], heldout: list[str]) -> None:
    from datasets import Dataset

    from zip2zip.bundled.base import default_base_path
    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.trainer.callbacks import last_complete_checkpoint
    from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
    from zip2zip.utils.peft import default_lora_config

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "log.json"
    settings = run_settings(args)
    variant = dict(VARIANTS[name])
    log = read_json(log_path) or {
        "variant": name,
        "settings": settings,
        "variant_settings": variant,
        "evals": [],
    }
    if log["settings"] != settings or log.get("variant_settings") != variant:
        raise SystemExit(
            f"{log_path} was written with other settings ({log['settings']}, {log.get('variant_settings')}); use "
            "another --out folder, or the same flags as before"
        )
    if log.get("done"):
        print(f"[{name}] done already", flush=True)
        return
    distill = float(variant.pop("distill", 0.0))
    torch.manual_seed(args.seed)
    model, tokenizer = zip2zip_from_base(default_base_path(), **COMMON, **variant)
    config = Zip2ZipSFTConfig(
        output_dir=str(folder),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        max_length=args.length,
        learning_rate=args.lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=5,
        save_strategy="steps",
        save_steps=args.eval_every,
        save_total_limit=1,
        gradient_checkpointing=False,
        report_to="none",
        seed=args.seed,
        data_seed=args.seed,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        distillation_weight=distill,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_dict({"text": train}),
        processing_class=tokenizer,
        peft_config=default_lora_config(model, r=16, alpha=32),
    )
    evaluator = HeldOutEvaluator(log_path, log, tokenizer, heldout, args.eval_every, args.eval_length)
    evaluator.trainer = trainer
    trainer.add_callback(evaluator)
    resume = last_complete_checkpoint(folder)  # skips a checkpoint cut short by a kill while saving
    trainer.train(resume_from_checkpoint=resume)
    log["train_log"] = [e for e in trainer.state.log_history if "loss" in e]
    log["done"] = True
    write_json(log_path, log)
    del trainer, model
    gc.collect()


# ============================================================================================ report


def report(out: Path) -> dict:
    base = read_json(out / "base.json")
    logs = {}
    for name in VARIANTS:
        log = read_json(out / name / "log.json")
        if log and log["evals"]:
            logs[name] = log
    if base is None or not logs:
        print("nothing to report yet")
        return {}
    base_bpb = base["bpb"]
    # Compare at equal budgets: the last step every finished variant reached (every variant, while none has
    # finished). A variant still short of that step is listed without a score.
    pool = [log for log in logs.values() if log.get("done")] or list(logs.values())
    common = min(max(e["step"] for e in log["evals"]) for log in pool)
    rows = []
    for name, log in logs.items():
        at = {e["step"]: e for e in log["evals"]}
        entry = at.get(common)
        last = log["evals"][-1]
        rows.append(
            {
                "variant": name,
                "step": common,
                "bpb": entry["bpb"] if entry else float("nan"),
                "gap": (entry["bpb"] - base_bpb) if entry else float("nan"),
                "compression": entry["compression"] if entry else float("nan"),
                "train_seconds": entry["train_seconds"] if entry else float("nan"),
                "last_step": last["step"],
                "last_bpb": last["bpb"],
                "done": bool(log.get("done")),
            }
        )
    paper = next((r for r in rows if r["variant"] == "paper"), None)
    for row in rows:
        row["gap_closed_vs_paper"] = (
            (1 - row["gap"] / paper["gap"]) if paper and paper["gap"] > 0 else float("nan")
        )
    lines = [
        f"Base model (SmolLM2-135M-Instruct): **{base_bpb:.4f}** bits per byte on the held-out set "
        f"({base['bytes']:,} bytes). All variants compared at step {common}.",
        "",
        "| variant | bits/byte | gap to base | gap closed vs paper | compression | train s | last step (bpb) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    scored = [row for row in rows if not math.isnan(row["bpb"])]
    for row in sorted(scored, key=lambda r: r["bpb"]) + [row for row in rows if row not in scored]:
        status = "" if row["done"] else ", unfinished"
        last = f"{row['last_step']} ({row['last_bpb']:.4f}){status}"
        if row not in scored:
            lines.append(f"| {row['variant']} | not yet at step {common} | | | | | {last} |")
            continue
        lines.append(
            f"| {row['variant']} | {row['bpb']:.4f} | {row['gap']:+.4f} | {100 * row['gap_closed_vs_paper']:.1f}% | "
            f"{row['compression']:.3f} | {row['train_seconds']:.0f} | {last} |"
        )
    best = min(scored, key=lambda r: r["bpb"])
    if paper:
        met = best["gap_closed_vs_paper"] >= BAR
        lines += [
            "",
            f"Best: {best['variant']}, {100 * best['gap_closed_vs_paper']:.1f}% of paper's gap closed at step "
            f"{common} (bar {100 * BAR:.0f}%: {'met' if met else 'not met'}).",
        ]
    text = "\n".join(lines)
    print(text)
    (out / "results.md").write_text(text + "\n")
    write_json(out / "results.json", {"base_bpb": base_bpb, "step": common, "rows": rows})
    plot(out, logs, base_bpb)
    return {"rows": rows, "base": base_bpb}


def plot(out: Path, logs: dict[str, dict], base_bpb: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for name, log in logs.items():
        xs = [e["bytes_seen"] / 1e6 for e in log["evals"]]
        ys = [e["bpb"] for e in log["evals"]]
        ax.plot(xs, ys, marker="o", markersize=3, label=name, linestyle="--" if name == "paper" else "-")
    ax.axhline(base_bpb, color="black", linewidth=1, linestyle=":", label="base model")
    # Log scale: the untrained "paper" encoders start several bits above the rest, the interesting part is near
    # the base line.
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.set_xlabel("training bytes seen (MB)")
    ax.set_ylabel("held-out bits per byte (strict)")
    settings = next(iter(logs.values()))["settings"]
    ax.set_title(
        f"zip2zip SmolLM2-135M: {settings['batch']} x {settings['length']} codes per step, LR {settings['lr']}"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning.png", dpi=120)
    plt.close(fig)


# ============================================================================================ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "learning"))
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, from {list(VARIANTS)}"
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512, help="codes per training row (max_length)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs-per-domain", type=int, default=400)
    parser.add_argument("--eval-chars", type=int, default=3000, help="held-out characters per domain")
    parser.add_argument("--eval-length", type=int, default=512, help="positions per scored window")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--report", action="store_true", help="only rebuild the table and the plot")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report:
        report(out)
        return
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    heldout = heldout_texts(args.eval_chars)
    base_score(out, args, heldout)
    train = training_texts(args.docs_per_domain, args.seed)
    for name in names:
        run_variant(name, out, args, train, heldout)
        report(out)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
