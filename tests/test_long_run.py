"""Callbacks of long runs: checkpoints by the clock, held-out scores with a hook on every new best, and the
running totals (base tokens seen) that continue across a resume."""

from __future__ import annotations

import json
import os

import pytest
import torch
from _tiny_tokenizers import TRAINING_TEXT
from _training import build, config
from datasets import Dataset

from zip2zip.trainer.callbacks import HeldOutScoreCallback, SaveEveryMinutesCallback, last_complete_checkpoint
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trainer_for(tmp_path, max_steps: int, **overrides):
    model, tok = build()
    return Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=max_steps, save_strategy="steps", save_steps=10_000, **overrides),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 3}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )


def test_checkpoints_follow_the_clock(tmp_path):
    trainer = trainer_for(tmp_path, 3)
    trainer.add_callback(SaveEveryMinutesCallback(1e-9))  # due after every step
    trainer.train()
    saved = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert saved == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    with pytest.raises(ValueError, match="minutes must be > 0"):
        SaveEveryMinutesCallback(0)


def test_held_out_scores_are_logged_and_each_new_best_is_handed_on(tmp_path):
    trainer = trainer_for(tmp_path, 4, learning_rate=1e-2)
    improved = []
    scorer = HeldOutScoreCallback(
        {"code": [TRAINING_TEXT[0]], "prose": [TRAINING_TEXT[1]]},
        tmp_path / "heldout.json",
        minutes=1e-9,
        on_improve=lambda trainer, entry: improved.append(entry["step"]),
    )
    scorer.trainer = trainer
    trainer.add_callback(scorer)
    trainer.train()
    entries = json.loads((tmp_path / "heldout.json").read_text())
    assert [e["step"] for e in entries] == [0, 1, 2, 3, 4]
    assert all(e["heldout_bpb"] > 0 and "heldout_bpb_code" in e for e in entries)
    best = [
        e["step"]
        for i, e in enumerate(entries[1:], 1)
        if e["heldout_bpb"] < min(x["heldout_bpb"] for x in entries[:i])
    ]
    assert improved == best and improved  # the training text is the held-out text here: it improves
    assert any("heldout_bpb" in e for e in trainer.state.log_history)
    # A new callback on the same log keeps the best: it does not hand on worse weights after a restart.
    again = HeldOutScoreCallback({"code": [TRAINING_TEXT[0]]}, tmp_path / "heldout.json")
    assert again.best == min(e["heldout_bpb"] for e in entries)


def test_base_tokens_seen_continue_after_a_resume(tmp_path):
    straight = trainer_for(tmp_path / "a", 4)
    straight.train()
    total = [e for e in straight.state.log_history if "num_base_tokens" in e][-1]["num_base_tokens"]
    first = trainer_for(tmp_path / "b", 4)
    first.add_callback(SaveEveryMinutesCallback(1e-9))
    first.args.max_steps = 2
    first.train()
    resumed = trainer_for(tmp_path / "b", 4)
    resumed.train(resume_from_checkpoint=last_complete_checkpoint(tmp_path / "b" / "run"))
    after = [e for e in resumed.state.log_history if "num_base_tokens" in e][-1]["num_base_tokens"]
    assert after == total


def _train_script():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "train_smollm2.py"
    spec = importlib.util.spec_from_file_location("train_smollm2", script)
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    return train_script


def test_a_warm_start_changes_what_changes_no_weight_and_refuses_the_rest(tmp_path, smollm2_tokenizer):
    """`--init-from` may switch the positions (and the mask) of a trained model, whose weights then adapt in
    training, and the codec's protect flags; a setting that shapes the weights is refused with its name."""
    from _tiny_models import tiny_base_model

    from zip2zip import Zip2ZipForCausalLM

    train_script = _train_script()
    base = tiny_base_model("llama", vocab_size=len(smollm2_tokenizer), seed=1)
    trained = Zip2ZipForCausalLM.from_base(base, tokenizer=smollm2_tokenizer, max_codebook_size=64)
    folder = tmp_path / "trained"
    trained.save_pretrained(folder)
    assert trained.config.position_mode == "compressed" and not trained.config.canonical_mask

    changes = {
        "position_mode": "base",
        "canonical_mask": True,
        "protect_digits": not trained.config.protect_digits,
    }
    model, tokenizer = train_script.warm_start(str(folder), dict(changes), str(tmp_path / "run"))
    assert model.config.position_mode == "base" and model.config.canonical_mask
    assert model.config.protect_digits == changes["protect_digits"]
    assert set(model.config.disabled_ids) != set(trained.config.disabled_ids)  # digits merge, or no longer do
    assert tokenizer.codec.disabled_ids == frozenset(model.config.disabled_ids)
    record = json.loads((tmp_path / "run" / "warm_start.json").read_text())
    assert record["changes"] == changes
    weights = dict(trained.named_parameters())
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())

    with pytest.raises(SystemExit, match="max_codebook_size"):
        train_script.warm_start(str(folder), {"max_codebook_size": 128}, str(tmp_path / "refused"))


def test_a_run_continuing_a_run_counts_the_tokens_of_every_run_before(tmp_path):
    """`examples/train_smollm2.py --init-from RUN_FOLDER` records what the weights saw: the folder's own run (its
    newest checkpoint) plus the model that run continued, and that run's command."""
    train_script = _train_script()

    trainer = trainer_for(tmp_path, 3)
    trainer.add_callback(SaveEveryMinutesCallback(1e-9))
    trainer.train()
    run = tmp_path / "run"
    own = [e for e in trainer.state.log_history if "num_base_tokens" in e][-1]["num_base_tokens"]
    assert own > 0
    assert train_script.run_folder_provenance(str(run)) == {
        "base_tokens_seen": own,
        "global_step": 3,
        "command": None,
    }
    earlier = {
        "base_tokens_seen": 1_000_000,
        "global_step": 2000,
        "run_command": "train_smollm2.py --steps 3",
    }
    (run / "warm_start.json").write_text(json.dumps(earlier))
    continued = tmp_path / "continued"
    train_script.write_warm_start_record(
        str(continued), str(run), str(run), {}, "train_smollm2.py --init-from"
    )
    record = json.loads((continued / "warm_start.json").read_text())
    assert record["base_tokens_seen"] == 1_000_000 + own
    assert record["global_step"] == 3
    assert record["command"] == "train_smollm2.py --steps 3"
    assert record["run_command"] == "train_smollm2.py --init-from"
    # A resumed run keeps the record of its start.
    train_script.write_warm_start_record(str(continued), "shipped", str(run), {}, "another command")
    assert json.loads((continued / "warm_start.json").read_text()) == record
    assert train_script.run_folder_provenance(str(tmp_path)) == {}  # not a run folder
