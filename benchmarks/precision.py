"""Does bf16 autocast train like float32? The recipe's first steps in both precisions, under one schedule.

The CPU recipe trains in bf16 autocast (float32 master weights and optimizer state) because it is faster;
this checks that it learns the same. Three runs of the recipe (full fine-tuning, `zip2zip.recipe`), each
``--steps`` optimizer steps with the *same* cosine schedule over those steps:

* ``fp32`` and ``bf16``: the same data order and initialisation (seed 0), float32 vs bf16 autocast;
* ``fp32-seed1``: float32 with another seed (data order and hyper-encoder initialisation), the yardstick for
  what "within noise" means.

Agreement: the mean absolute gap between the two curves' moving averages (``--window`` steps) over the steps
after the first window, for bf16 vs fp32 against fp32 vs fp32-seed1. bf16 agrees within noise when its gap
is no larger than the seed gap. Writes ``results/precision/precision.json`` and ``precision.png``.

Run: ``python -m benchmarks.precision [--steps 50] [--batch 2] [--length 256]`` (resumable: finished runs are
kept in the JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

RUNS = {"fp32": (False, 0), "bf16": (True, 0), "fp32-seed1": (False, 1)}


def train_curve(bf16: bool, seed: int, args) -> dict:
    """Per-step training loss of the recipe for ``args.steps`` steps."""
    from zip2zip import recipe
    from zip2zip.bundled.base import default_base_path
    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.trainer import presets
    from zip2zip.trainer.presets import training_data
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    preset = recipe.get_preset("cpu").replace(
        steps=args.steps, batch_size=args.batch, max_length=args.length, docs_per_domain=args.docs
    )
    preset = preset.replace(bf16=bf16) if bf16 else preset.replace(bf16=False)
    torch.manual_seed(seed)
    model, tokenizer = zip2zip_from_base(default_base_path(), **recipe.ZIP2ZIP_SETTINGS)
    config = presets.training_config(
        preset,
        f"/tmp/zip2zip-precision-{int(bf16)}-{seed}",
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=training_data(preset, seed=0),
        processing_class=tokenizer,
        peft_config=presets.lora_config(model, preset),
    )
    started = time.process_time()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"bf16": bf16, "seed": seed, "loss": losses, "cpu_s": time.process_time() - started}


def moving_average(values: list[float], window: int) -> list[float]:
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def gap(a: list[float], b: list[float], window: int) -> float:
    """Mean absolute gap of the two curves' moving averages after the first window."""
    sa, sb = moving_average(a, window), moving_average(b, window)
    pairs = list(zip(sa, sb))[window:]
    return statistics.fmean(abs(x - y) for x, y in pairs)


def plot(runs: dict, path: Path, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, run in runs.items():
        steps = range(1, len(run["loss"]) + 1)
        (line,) = ax.plot(steps, run["loss"], alpha=0.25)
        ax.plot(steps, moving_average(run["loss"], window), color=line.get_color(), label=name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (compressed targets)")
    ax.set_title(f"fp32 vs bf16 autocast, same schedule (moving average of {window})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--length", type=int, default=256, help="codes per row")
    parser.add_argument("--docs", type=int, default=200, help="documents per domain")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "precision.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    settings = {"steps": args.steps, "batch": args.batch, "length": args.length, "docs": args.docs}
    if record.get("settings") != settings:
        record = {"settings": settings, "runs": {}}
    for name, (bf16, seed) in RUNS.items():
        if name in record["runs"]:
            continue
        print(f"training {name} for {args.steps} steps", flush=True)
        record["runs"][name] = train_curve(bf16, seed, args)
        path.write_text(json.dumps(record, indent=1))
    runs = record["runs"]
    precision_gap = gap(runs["fp32"]["loss"], runs["bf16"]["loss"], args.window)
    seed_gap = gap(runs["fp32"]["loss"], runs["fp32-seed1"]["loss"], args.window)
    record["bf16_vs_fp32_gap"] = precision_gap
    record["seed_gap"] = seed_gap
    record["agree_within_noise"] = precision_gap <= seed_gap
    record["cpu_s_ratio_fp32_over_bf16"] = runs["fp32"]["cpu_s"] / runs["bf16"]["cpu_s"]
    path.write_text(json.dumps(record, indent=1))
    plot(runs, args.out / "precision.png", args.window)
    print(
        f"moving-average loss gap after step {args.window}: bf16 vs fp32 {precision_gap:.4f}, fp32 seed 0 vs 1 "
        f"{seed_gap:.4f}: {'within noise' if record['agree_within_noise'] else 'LARGER than the seed noise'}; "
        f"CPU seconds fp32 / bf16 {record['cpu_s_ratio_fp32_over_bf16']:.2f}x"
    )


if __name__ == "__main__":
    main()
