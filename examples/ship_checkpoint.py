"""Pack a trained zip2zip-SmolLM2 run into the package, as the model `zip2zip demo` and the benchmarks use.

Usage: ``python examples/ship_checkpoint.py RUN_DIR [--command "how the run was started"]``

``RUN_DIR`` is the ``--output`` folder of ``examples/train_smollm2.py`` (or ``zip2zip train``), or one of its
``checkpoint-*`` folders: it holds ``config.json``, the adapter (``adapter/``, a LoRA run) or the weights (a
full fine-tune) and the Trainer's ``trainer_state.json``. What is written:

* ``zip2zip/bundled/checkpoints/smollm2-135m-zip2zip/``: the adapter (LoRA + hyper-encoders) in float16, or for a full
  fine-tune its low-rank deltas (``delta.safetensors``, ``zip2zip.bundled.low_rank``), and the zip2zip settings with
  the run's provenance (steps, tokens, final loss, the command);
* ``benchmarks/results/release/training.json`` and ``training.png``: the run's logged curves (loss, bits per
  byte and compression of the training batches against the step).

Afterwards ``zip2zip.bundled.shipped.shipped_zip2zip_path()`` assembles the full model (once, cached).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def last_trainer_state(run_dir: Path) -> dict:
    """The trainer_state.json of the run's newest complete checkpoint (it carries the whole log history)."""
    from zip2zip.trainer.callbacks import last_complete_checkpoint

    if (run_dir / "trainer_state.json").is_file():  # a checkpoint folder itself
        return json.loads((run_dir / "trainer_state.json").read_text())
    checkpoint = last_complete_checkpoint(run_dir)
    if checkpoint is None:
        raise SystemExit(f"{run_dir} has no checkpoint-*/trainer_state.json; is it a training output folder?")
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [entry for entry in history if "loss" in entry]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key, label in zip(
        axes,
        ("lm_loss", "bits_per_byte", "compression_ratio"),
        ("loss (compressed targets)", "bits per byte (training batches)", "base tokens per code"),
    ):
        points = [(entry["step"], entry[key]) for entry in rows if key in entry]
        ax.plot([s for s, _ in points], [v for _, v in points], marker=".")
        ax.set_xlabel("optimizer step")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    fig.suptitle("zip2zip-SmolLM2-135M training run (the shipped checkpoint)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--command", default="", help="the command line that trained the run, for the record")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: inside the package)")
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "release",
        help="where the curves go",
    )
    args = parser.parse_args()

    from zip2zip.bundled.packing import pack_zip2zip_checkpoint

    state = last_trainer_state(args.run_dir)
    history = state["log_history"]
    logged = [entry for entry in history if "loss" in entry]
    provenance = {
        "command": args.command,
        "global_step": state["global_step"],
        "train_batch_size": state.get("train_batch_size"),
        "base_tokens_seen": logged[-1].get("num_base_tokens") if logged else None,  # a running total
        "final_logged": logged[-1] if logged else {},
    }
    # A run that continued a trained model (--init-from) says so in its folder, above a checkpoint-* folder.
    run_folder = args.run_dir.parent if args.run_dir.name.startswith("checkpoint-") else args.run_dir
    warm_start = run_folder / "warm_start.json"
    if warm_start.is_file():
        record = json.loads(warm_start.read_text())
        provenance["warm_start"] = record
        if provenance["base_tokens_seen"] is not None and record.get("base_tokens_seen"):
            provenance["base_tokens_seen"] += record["base_tokens_seen"]  # what the weights saw in all
    out = pack_zip2zip_checkpoint(args.run_dir, args.out, provenance=provenance)
    results = args.results
    results.mkdir(parents=True, exist_ok=True)
    (results / "training.json").write_text(
        json.dumps({"provenance": provenance, "log_history": history}, indent=1)
    )
    plot_curves(history, results / "training.png")
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"wrote {out} ({size:.1f} MiB) and {results / 'training.png'}")


if __name__ == "__main__":
    main()
