"""Hidden-state distillation, encoder-only warm-up, per-part learning rates and CPU-time budgets.

The hidden-state loss is checked against a slow reference (every scored prefix decoded and read by a separate
copy of the base model), under padding, prompt masks and gradient accumulation, as the first-token loss is.
"""

from __future__ import annotations

import os

import pytest
import torch
from _tiny_tokenizers import TRAINING_TEXT
from _training import student_and_teacher, teacher_sums, teacher_trainer
from transformers.trainer_utils import get_last_checkpoint

from zip2zip.trainer.callbacks import budget_spent
from zip2zip.trainer.data import Zip2ZipDataCollator, tokenize_example
from zip2zip.trainer.distillation import hidden_state_distillation, parse_layer_spec
from zip2zip.trainer.optimization import GroupSchedule

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


build = student_and_teacher
make_trainer = teacher_trainer


def test_layer_specs():
    assert parse_layer_spec("last", 30) == [30]
    assert parse_layer_spec("last:3", 30) == [28, 29, 30]
    assert parse_layer_spec("stride:10", 30) == [10, 20, 30]
    assert parse_layer_spec("stride:7", 30) == [7, 14, 21, 28, 30]
    assert parse_layer_spec("all", 3) == [1, 2, 3]
    for bad in ("first", "last:0", "stride:", "last:x", 3):
        with pytest.raises(ValueError, match="hidden_distillation_layers"):
            parse_layer_spec(bad, 30)


def test_distances_are_zero_on_equal_states_and_scale_free():
    a = torch.randn(5, 8)
    for loss in ("nmse", "cosine"):
        assert torch.allclose(hidden_state_distillation([a], [a.clone()], loss), torch.zeros(5), atol=1e-6)
    b = torch.randn(5, 8)
    nmse = hidden_state_distillation([a * 3], [b * 3])
    assert torch.allclose(nmse, hidden_state_distillation([a], [b]), rtol=1e-5)
    expected = ((a - b) ** 2).sum(-1) / (b**2).sum(-1)
    assert torch.allclose(nmse, expected, rtol=1e-5)


def reference_hidden_sum(trainer, base_model, rows, layers) -> float:
    """Slow reference: each scored prefix decoded and read alone by a separate copy of the base model."""
    core = trainer.model.get_base_model()
    codec = core.codec
    total = 0.0
    for row in rows:
        codes, labels = row["input_ids"], row["labels"]
        with torch.no_grad():
            student = trainer.model(input_ids=torch.tensor([codes]), output_hidden_states=True).hidden_states
        for t in range(len(codes) - 1):
            if labels[t + 1] == -100:
                continue
            prefix = codec.decode(codes[: t + 1])
            with torch.no_grad():
                teacher = base_model(
                    input_ids=torch.tensor([prefix]), output_hidden_states=True
                ).hidden_states
            value = 0.0
            for i in layers:
                s, te = student[i][0, t].double(), teacher[i][0, -1].double()
                value += float(((s - te) ** 2).sum() / (te**2).sum())
            total += value / len(layers)
    return total


def batch_hidden_sum(trainer, rows, collator=None) -> float:
    kl, hidden = teacher_sums(trainer, rows, collator)
    assert kl is None  # first-token distillation is off in these runs
    return hidden


@pytest.mark.parametrize("spec", ["last", "stride:1"])
def test_hidden_loss_matches_the_position_by_position_reference(tmp_path, spec):
    model, tok, base = build()
    trainer = make_trainer(
        tmp_path, model, tok, hidden_distillation_weight=1.0, hidden_distillation_layers=spec
    )
    trainer.model.eval()
    rows = [
        tokenize_example({"text": TRAINING_TEXT[0] + " " + TRAINING_TEXT[0]}, tok),
        tokenize_example(
            {"prompt": "the cat sat on the mat.", "completion": " the cat sat on the hat."}, tok
        ),
        tokenize_example({"text": "the the the the the the the"}, tok),
    ]
    assert any(c >= tok.codec.base_vocab_size for row in rows for c in row["input_ids"])
    layers = parse_layer_spec(spec, base.config.num_hidden_layers)
    expected = reference_hidden_sum(trainer, base, rows, layers)
    assert expected > 0
    assert batch_hidden_sum(trainer, rows) == pytest.approx(expected, rel=1e-4)
    assert sum(batch_hidden_sum(trainer, [row]) for row in rows) == pytest.approx(expected, rel=1e-4)
    plain = Zip2ZipDataCollator(tok.pad_token_id, tok.codec, pad_to_multiple_of=8)
    assert batch_hidden_sum(trainer, rows, plain) == pytest.approx(expected, rel=1e-4)


def test_training_logs_the_hidden_loss_in_the_total(tmp_path):
    model, tok, _ = build()
    trainer = make_trainer(tmp_path, model, tok, max_steps=2, hidden_distillation_weight=0.5)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    for entry in logs:
        assert entry["hidden_distillation_loss"] > 0
        assert entry["loss"] == pytest.approx(
            entry["lm_loss"] + 0.5 * entry["hidden_distillation_loss"], rel=1e-3
        )


def test_encoder_warmup_trains_only_the_encoders_first(tmp_path):
    model, tok, _ = build()
    trainer = make_trainer(
        tmp_path, model, tok, max_steps=2, encoder_warmup_steps=2, hidden_distillation_weight=1.0
    )
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    encoders = {
        n: p.detach().clone()
        for n, p in trainer.model.named_parameters()
        if "encoder" in n and p.requires_grad
    }
    assert lora and encoders
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in lora.items())
    assert any(not torch.equal(params[n], v) for n, v in encoders.items())
    # After the warm-up the adapters learn again.
    model, tok, _ = build()
    trainer = make_trainer(
        tmp_path, model, tok, max_steps=4, encoder_warmup_steps=2, hidden_distillation_weight=1.0
    )
    lora = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert any(not torch.equal(params[n], v) for n, v in lora.items())


def test_encoders_get_their_own_learning_rate(tmp_path):
    model, tok, _ = build()
    trainer = make_trainer(tmp_path, model, tok, max_steps=1, learning_rate=1e-3, encoder_learning_rate=5e-3)
    trainer.create_optimizer()
    parts = {}
    for group in trainer.optimizer.param_groups:
        parts.setdefault(group["zip2zip_part"], set()).add(group["lr"])
    assert parts == {"base": {1e-3}, "encoder": {5e-3}}


def test_cpu_budget_stops_training_and_resumes_the_same_budget(tmp_path):
    model, tok, _ = build()
    args = {"max_steps": 10_000, "cpu_budget_seconds": 1.0, "save_strategy": "steps", "save_steps": 10_000}
    trainer = make_trainer(tmp_path, model, tok, **args)
    trainer.train()
    used = trainer.lr_scheduler.lr_lambdas[0].cpu_seconds
    steps = trainer.state.global_step
    assert 1.0 <= used < 5.0 and 1 <= steps < 10_000
    # The cosine schedule ran (nearly: the last step's rate is set before its time is counted) to its end.
    assert trainer.optimizer.param_groups[0]["lr"] < 0.05 * 3e-3
    # Resumed with the same settings, the budget is already spent: no further step.
    model, tok, _ = build()
    again = make_trainer(tmp_path, model, tok, **args)
    again.train(resume_from_checkpoint=True)
    assert again.state.global_step == steps
    last = get_last_checkpoint(str(tmp_path / "run"))
    assert budget_spent(last) == pytest.approx(used)
    for name, parameter in again.model.named_parameters():  # the trained weights, loaded from the checkpoint
        torch.testing.assert_close(parameter, dict(trainer.model.named_parameters())[name], msg=name)


def test_group_schedule_shapes():
    cosine = GroupSchedule("cosine", 100, 0.1)
    assert cosine(0) == 0 and cosine(5) == pytest.approx(0.5) and cosine(10) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0, abs=1e-12)
    frozen = GroupSchedule("linear", 100, 0.0, frozen_steps=20)
    assert frozen(19) == 0 and frozen(20) == pytest.approx(0.8)
    budget = GroupSchedule("cosine", 10, 0.0, budget=50.0)
    budget.cpu_seconds = 25.0
    assert budget(3) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="not supported"):
        GroupSchedule("polynomial", 10, 0.0)
