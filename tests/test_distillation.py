"""Self-distillation from the frozen base model: the first-token mapping, the alignment, the trainer path.

The mapping is checked on hand-set logits (tiny vocabularies where every sum can be written out), the
alignment on a hand-built LZW stream, and the trainer's vectorised loss against a slow reference that scores
every prefix with a separate copy of the base model, position by position, code by code.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from _tiny_tokenizers import TRAINING_TEXT
from _training import config as trainer_config
from _training import student_and_teacher, teacher_sums, teacher_trainer
from datasets import Dataset

from zip2zip.model.lzw import LZWCodec
from zip2zip.trainer.data import Zip2ZipDataCollator, base_alignment, tokenize_example
from zip2zip.trainer.distillation import first_token_distillation, first_token_log_probs, hypertoken_first_ids
from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

NEG = float("-inf")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------ the mapping


def test_first_token_probabilities_are_the_hand_sums():
    """V = 4 base ids, 3 hypertoken slots starting with base ids 2, 0 and 2."""
    V = 4
    logits = torch.tensor([[0.5, -1.0, 2.0, 0.0, 1.0, -0.5, 0.25]])
    first = torch.tensor([[2, 0, 2]])
    q = torch.softmax(logits, -1)[0].tolist()
    expected = [q[0] + q[5], q[1], q[2] + q[4] + q[6], q[3]]
    got = first_token_log_probs(logits, first, V).exp()[0].tolist()
    assert got == pytest.approx(expected, rel=1e-6)
    assert sum(got) == pytest.approx(1.0, rel=1e-6)


def test_masked_slots_add_nothing():
    """A -inf slot contributes exactly 0 wherever its (meaningless) first id points."""
    V = 4
    open_only = torch.tensor([[0.3, 0.1, -0.2, 0.0, 1.5]])
    with_masked = torch.tensor([[0.3, 0.1, -0.2, 0.0, 1.5, NEG, NEG]])
    a = first_token_log_probs(open_only, torch.tensor([[1]]), V)
    b = first_token_log_probs(with_masked, torch.tensor([[1, 3, 0]]), V)
    assert torch.equal(a, b)


def test_kl_is_zero_when_hypertokens_split_the_teacher_mass():
    """Base code x and a hypertoken starting with x sharing p(x) give q1 = p exactly: KL 0."""
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    teacher = p.log()[None]
    # Slot 0 starts with 3 and takes 3/4 of p(3); slot 1 is masked.
    student = torch.tensor(
        [[p[0].log(), p[1].log(), p[2].log(), (0.25 * p[3]).log(), (0.75 * p[3]).log(), NEG]]
    )
    kl = first_token_distillation(student, teacher, torch.tensor([[3, 0]]), 4)
    assert kl.item() == pytest.approx(0.0, abs=1e-6)
    # Moving that hypertoken to another first token is a real mismatch.
    kl = first_token_distillation(student, teacher, torch.tensor([[1, 0]]), 4)
    q1 = torch.tensor([0.1, 0.2 + 0.3, 0.3, 0.1])
    assert kl.item() == pytest.approx(float((p * (p / q1).log()).sum()), rel=1e-5)


def test_far_tail_stays_finite_with_finite_gradients():
    V = 3
    student = torch.tensor([[0.0, -200.0, -300.0, -400.0]], requires_grad=True)
    teacher = torch.tensor([[0.0, -1.0, -500.0]])
    kl = first_token_distillation(student, teacher, torch.tensor([[2]]), V)
    kl.sum().backward()
    assert torch.isfinite(kl).all() and torch.isfinite(student.grad).all()


def test_candidate_slot_takes_its_candidates_first_constituent():
    """KwKwK: the last acceptable slot is not created yet; it maps to candidates[b, t, 0], elsewhere the codebook's."""
    codebook = torch.tensor([[[5, 6, -1], [7, 5, -1], [-1, -1, -1]]])  # (B=1, K=3, M=3)
    accept_limits = torch.tensor([[2, 3, 0]])
    candidates = torch.full((1, 3, 3), -1)
    candidates[0, 1] = torch.tensor([9, 8, 9])  # position 1: slot 2 (= limit - 1) would be (9, 8, 9)
    first = hypertoken_first_ids(codebook, accept_limits, candidates, num_slots=3)
    assert first[0, 0].tolist() == [5, 7, 0]
    assert first[0, 1].tolist() == [5, 7, 9]
    assert first[0, 2].tolist() == [5, 7, 0]


def test_candidate_mass_goes_to_the_candidates_first_token_on_a_real_kwkwk_stream():
    V, M = 10, 4
    codec = LZWCodec(V, 16, M)
    codes = codec.encode([1, 1, 1, 1, 1, 1])  # 1, then (1,1) used in the step that creates it
    trace = codec.trace(codes)
    state = Zip2ZipDataCollator(0, codec).codebook_state([codes], len(codes))
    t = next(t for t in range(len(codes)) if trace.candidates[t + 1] is not None)
    slot = int(state["accept_limits"][0, t]) - 1
    slots = int(state["accept_limits"].max())
    first = hypertoken_first_ids(state["codebook"], state["accept_limits"], state["candidates"], slots)
    assert first[0, t, slot].item() == trace.candidates[t + 1][0] == 1
    logits = torch.full((1, V + slots), NEG)
    logits[0, 3] = 0.0
    logits[0, V + slot] = 0.0  # half the mass on the candidate hypertoken
    q1 = first_token_log_probs(logits, first[0, t][None], V).exp()[0]
    assert q1[1].item() == pytest.approx(0.5) and q1[3].item() == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------ alignment


def test_base_alignment_points_at_the_last_constituent():
    V = 10
    codec = LZWCodec(V, 16, 3)
    base = [1, 2, 1, 2, 1, 2, 3, 1, 2, 3]
    codes = codec.encode(base)
    other = codec.encode([4, 5])
    traces = [codec.trace(codes), codec.trace(other)]
    T = len(codes) + 2
    out = base_alignment(traces, T, pad_token_id=0)
    assert out["base_input_ids"][0].tolist() == base
    assert out["base_input_ids"][1].tolist() == [4, 5] + [0] * (len(base) - 2)
    assert out["base_attention_mask"].sum(1).tolist() == [len(base), 2]
    positions = out["base_positions"][0].tolist()
    for t in range(len(codes)):
        # the base prefix up to positions[t] is the text of codes[:t+1]
        assert base[: positions[t] + 1] == codec.decode(codes[: t + 1])
    assert positions[len(codes) :] == [-1, -1]
    assert out["base_positions"][1].tolist()[:2] == [0, 1]


# ------------------------------------------------------------------------------------------ trainer path


build = student_and_teacher


def config(tmp_path, **overrides) -> Zip2ZipSFTConfig:
    """The training tests' quick config with distillation on."""
    return trainer_config(tmp_path, **{"distillation_weight": 1.0, **overrides})


def make_trainer(tmp_path, model, tok, **overrides):
    return teacher_trainer(tmp_path, model, tok, **{"distillation_weight": 1.0, **overrides})


def reference_sum(trainer, base_model, rows: list[dict]) -> float:
    """Slow reference: every scored position alone, the teacher a separate copy of the base on the prefix."""
    core = trainer.model.get_base_model()
    codec = core.codec
    V = codec.base_vocab_size
    total = 0.0
    for row in rows:
        codes, labels = row["input_ids"], row["labels"]
        trace = codec.trace(codes)
        with torch.no_grad():
            logits = trainer.model(input_ids=torch.tensor([codes])).logits[0].double()
        for t in range(len(codes) - 1):
            if labels[t + 1] == -100:
                continue
            prefix = codec.decode(codes[: t + 1])
            with torch.no_grad():
                p = torch.softmax(base_model(input_ids=torch.tensor([prefix])).logits[0, -1].double(), -1)
            q = torch.softmax(logits[t], -1)
            q1 = q[:V].clone()
            limit = trace.accept_limits[t + 1]
            for k in range(limit):
                if k == limit - 1 and trace.candidates[t + 1] is not None:
                    phrase = trace.candidates[t + 1]
                else:
                    phrase = trace.codebook.expand(V + k)
                q1[phrase[0]] += q[V + k]
            assert float(q[V + limit :].sum()) == 0.0  # the mask: nothing beyond the accept limit
            total += float((p * (p.log() - q1.log())).sum())
    return total


def batch_sum(trainer, rows: list[dict], collator=None) -> float:
    kl, hidden = teacher_sums(trainer, rows, collator)
    return hidden if kl is None else kl


def test_trainer_loss_matches_the_position_by_position_reference(tmp_path):
    """Padding, prompt masks, the codebook mask, candidates and adapters-off all at once, against a slow loop."""
    model, tok, base = build()
    trainer = make_trainer(tmp_path, model, tok)
    trainer.model.eval()
    rows = [
        tokenize_example({"text": TRAINING_TEXT[0] + " " + TRAINING_TEXT[0]}, tok),
        tokenize_example(
            {"prompt": "the cat sat on the mat.", "completion": " the cat sat on the hat."}, tok
        ),
        tokenize_example({"text": "the the the the the the the"}, tok),
    ]
    assert any(c >= tok.codec.base_vocab_size for row in rows for c in row["input_ids"])
    assert any(label == -100 for label in rows[1]["labels"])  # a masked prompt
    expected = reference_sum(trainer, base, rows)
    assert batch_sum(trainer, rows) == pytest.approx(expected, rel=1e-4)
    # Each row alone (no padding) sums to the same: padding contributes nothing.
    assert sum(batch_sum(trainer, [row]) for row in rows) == pytest.approx(expected, rel=1e-4)
    # A collator that does not send the base rows: the trainer aligns them itself, to the same value.
    plain = Zip2ZipDataCollator(tok.pad_token_id, tok.codec, pad_to_multiple_of=8)
    assert batch_sum(trainer, rows, plain) == pytest.approx(expected, rel=1e-4)


def test_training_with_distillation_logs_it_and_trains_only_adapters(tmp_path):
    model, tok, _ = build()
    trainer = make_trainer(tmp_path, model, tok, max_steps=3, distillation_weight=0.5)
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if not p.requires_grad}
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert entry["distillation_loss"] > 0
        # loss = lm_loss + 0.5 * distillation_loss (one micro-batch per step, both per target)
        assert entry["loss"] == pytest.approx(entry["lm_loss"] + 0.5 * entry["distillation_loss"], rel=1e-3)
    for name, parameter in trainer.model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter, frozen[name]), name
    assert logs[-1]["num_target_bytes"] > 0


def test_full_fine_tuning_distils_from_a_frozen_copy_of_the_base(tmp_path):
    """Without adapters the base weights train, so the teacher is a copy taken before the first step."""
    model, tok, _base = build()
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 2}),
        processing_class=tok,
    )
    start = {n: p.detach().clone() for n, p in model.language_model.named_parameters()}
    trainer.train()
    changed = [n for n, p in model.language_model.named_parameters() if not torch.equal(p, start[n])]
    assert changed, "full fine-tuning must change the base weights"
    for name, parameter in trainer.teacher.copy.named_parameters():
        assert torch.equal(parameter, start[name]), name
        assert not parameter.requires_grad
    assert all(entry["distillation_loss"] > 0 for entry in trainer.state.log_history if "loss" in entry)


def test_distillation_settings_are_validated(tmp_path):
    with pytest.raises(ValueError, match="distillation_weight must be a finite float >= 0"):
        config(tmp_path, distillation_weight=-1.0)
    with pytest.raises(ValueError, match="distillation_weight must be a finite float >= 0"):
        config(tmp_path, distillation_weight=math.inf)
