"""A tiny LoRA training run, as a script, that a test can kill while it saves a checkpoint.

    python _interrupted_training.py OUTPUT [--pause-in-save STEP MARKER]

Trains 6 steps, saving a checkpoint every 2 (keeping one, as the benchmarks do). Rerunning the same command
resumes (`resume_from_checkpoint=True`) when OUTPUT holds a checkpoint folder. With `--pause-in-save`, the
save of the checkpoint of step STEP stops after the weights, optimizer and scheduler are written but before
the RNG state and `trainer_state.json`, writes MARKER and sleeps there for the test to kill it; with MARKER
present (the rerun), nothing pauses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from _tiny_tokenizers import TRAINING_TEXT
from _training import build, config
from datasets import Dataset

from zip2zip.trainer.callbacks import last_complete_checkpoint
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config


def pause_in_save(trainer: Zip2ZipSFTTrainer, step: int, marker: Path) -> None:
    original = trainer._save_rng_state  # the last write before trainer_state.json

    def save_rng_state(output_dir):
        if trainer.state.global_step == step and not marker.exists():
            marker.write_text(output_dir)
            time.sleep(600)
        return original(output_dir)

    trainer._save_rng_state = save_rng_state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output")
    parser.add_argument("--pause-in-save", nargs=2, metavar=("STEP", "MARKER"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tok = build()
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(
            Path(args.output),
            output_dir=args.output,
            max_steps=6,
            save_strategy="steps",
            save_steps=2,
            save_total_limit=1,
        ),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 4}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    if args.pause_in_save:
        pause_in_save(trainer, int(args.pause_in_save[0]), Path(args.pause_in_save[1]))
    started = os.path.isdir(args.output) and any(
        name.startswith("checkpoint-") for name in os.listdir(args.output)
    )
    if started:
        print(f"resuming from {last_complete_checkpoint(args.output)}", flush=True)
    trainer.train(resume_from_checkpoint=True if started else None)
    print(f"finished at step {trainer.state.global_step}", flush=True)


if __name__ == "__main__":
    main()
