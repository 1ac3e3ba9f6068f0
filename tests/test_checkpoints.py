"""A run killed while it saves a checkpoint resumes from the previous complete one, and ends where an
uninterrupted run ends, to the bit.

The hard way: a real training process (tests/_interrupted_training.py, a tiny model on one CPU thread) is sent
SIGKILL inside the save of `checkpoint-4`, after its weights are written and before `trainer_state.json`; the
same command is run again. The cheaper cases (a `trainer_state.json` cut short, folders that only look like
checkpoints) run in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _tiny_tokenizers import TRAINING_TEXT
from _training import build, config
from datasets import Dataset
from safetensors.torch import load_file
from transformers.trainer_utils import get_last_checkpoint

from zip2zip.trainer.callbacks import last_complete_checkpoint
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS / "_interrupted_training.py"


def launch(output: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent), str(TESTS), env.get("PYTHONPATH", "")])
    with open(output.parent / f"{output.name}.log", "a") as log:  # the child keeps its own handle
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), str(output), *extra], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def finish(process: subprocess.Popen, output: Path) -> str:
    assert process.wait(timeout=600) == 0, (output.parent / f"{output.name}.log").read_text()[-3000:]
    return (output.parent / f"{output.name}.log").read_text()


def trained_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "adapter_model.safetensors"))


def losses(checkpoint: Path) -> list[tuple[int, float]]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [(entry["step"], entry["loss"]) for entry in state["log_history"] if "loss" in entry]


def assert_same_run(got: Path, want: Path) -> None:
    assert losses(got) == losses(want)
    a, b = trained_weights(got), trained_weights(want)
    assert a.keys() == b.keys()
    for name in b:
        assert torch.equal(a[name], b[name]), name


def test_a_run_killed_while_saving_resumes_from_the_last_complete_checkpoint(tmp_path) -> None:
    straight_out, killed_out = tmp_path / "straight", tmp_path / "killed"
    marker = tmp_path / "inside-save"
    straight = launch(straight_out)
    command = ("--pause-in-save", "4", str(marker))
    killed = launch(killed_out, *command)
    deadline = time.monotonic() + 600
    while not marker.exists():
        assert killed.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never reached the save of checkpoint-4"
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=60) == -signal.SIGKILL

    partial = killed_out / "checkpoint-4"
    assert (partial / "adapter_model.safetensors").is_file() and (partial / "optimizer.pt").is_file()
    assert not (partial / "trainer_state.json").exists()
    assert (killed_out / "checkpoint-2" / "trainer_state.json").is_file(), "rotation runs only after a save"
    assert get_last_checkpoint(str(killed_out)) == str(partial), "what a plain resume would have picked"
    assert last_complete_checkpoint(killed_out) == str(killed_out / "checkpoint-2")

    log = finish(launch(killed_out, *command), killed_out)  # the same command again
    assert f"resuming from {killed_out / 'checkpoint-2'}" in log and "finished at step 6" in log
    finish(straight, straight_out)
    assert sorted(p.name for p in killed_out.glob("checkpoint-*")) == ["checkpoint-6"]
    assert_same_run(killed_out / "checkpoint-6", straight_out / "checkpoint-6")


def make_trainer(output: Path, max_steps: int = 4) -> Zip2ZipSFTTrainer:
    model, tok = build()
    args = config(
        output.parent, output_dir=str(output), max_steps=max_steps, save_strategy="steps", save_steps=2
    )
    return Zip2ZipSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 4}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )


def test_a_trainer_state_cut_short_is_skipped_on_resume(tmp_path) -> None:
    straight, damaged = tmp_path / "straight", tmp_path / "damaged"
    make_trainer(straight).train()
    shutil.copytree(straight, damaged)
    # What a kill while writing checkpoint-4's trainer_state.json leaves: everything else, and half the JSON.
    state = damaged / "checkpoint-4" / "trainer_state.json"
    text = state.read_text()
    state.write_text(text[: len(text) // 2])
    (damaged / "checkpoint-4" / "rng_state.pth").unlink(missing_ok=True)

    assert last_complete_checkpoint(damaged) == str(damaged / "checkpoint-2")
    resumed = make_trainer(damaged)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 4
    assert_same_run(damaged / "checkpoint-4", straight / "checkpoint-4")


def test_last_complete_checkpoint_reads_steps_as_numbers_and_skips_impostors(tmp_path) -> None:
    assert last_complete_checkpoint(tmp_path / "missing") is None
    assert last_complete_checkpoint(tmp_path) is None

    def checkpoint(name: str, state: str | None = "{}") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
        return folder

    checkpoint("checkpoint-9")
    checkpoint("checkpoint-10")
    checkpoint("checkpoint-11", state=None)  # killed before the state was written
    checkpoint("checkpoint-12", state='{"global_step": 12, "log_hist')  # killed while writing it
    checkpoint("checkpoint-13x")
    checkpoint("run-14")
    (tmp_path / "checkpoint-15").write_text("a file, not a folder")
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_resume_true_without_a_complete_checkpoint_says_so(tmp_path) -> None:
    output = tmp_path / "run"
    (output / "checkpoint-2").mkdir(parents=True)  # only a partial one
    trainer = make_trainer(output)
    with pytest.raises(ValueError, match=r"holds no complete checkpoint .*start without resuming"):
        trainer.train(resume_from_checkpoint=True)
    assert trainer.state.global_step == 0
