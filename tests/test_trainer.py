"""Zip2ZipSFTTrainer: loss path, data preparation, collator, PEFT, saving, resuming, CLI.

Everything runs on tiny in-process models (hidden size 32) and a byte-level BPE tokenizer trained in
milliseconds, so each test takes a second or two on two CPU cores.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
from _training import build, config, one_step_update, prompt_completion_dataset
from datasets import Dataset

from zip2zip.trainer.data import Zip2ZipDataCollator, tokenize_example
from zip2zip.trainer.sft_config import Zip2ZipSFTConfig
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config, lora_target_modules

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def text_dataset(repeat: int = 4) -> Dataset:
    return Dataset.from_dict({"text": TRAINING_TEXT * repeat})


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def train_logs(trainer) -> list[dict]:
    return [entry for entry in trainer.state.log_history if "loss" in entry]


# ------------------------------------------------------------------------------------------ config


def test_packing_and_padding_free_are_rejected(tmp_path):
    for flag in ("packing", "padding_free"):
        with pytest.raises(ValueError, match=f"{flag}=True is not supported"):
            config(tmp_path, **{flag: True})


def test_bf16_defaults_to_what_the_hardware_computes(tmp_path):
    """Left unset, bf16 is on with an accelerator, and on a CPU only where the CPU has native bf16 units (read
    here from /proc/cpuinfo's flags, not through the function the config uses); set, it is kept."""
    from zip2zip.utils.hardware import has_accelerator

    args = Zip2ZipSFTConfig(str(tmp_path / "r"), report_to="none")
    if has_accelerator():
        assert args.bf16 is True and args.use_cpu is False
    else:
        flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        assert args.bf16 is ("avx512_bf16" in flags or "amx_bf16" in flags)
        assert args.use_cpu is True
    assert Zip2ZipSFTConfig(str(tmp_path / "r"), report_to="none", bf16=False).bf16 is False


def test_reports_name_the_cpu_its_bf16_units_and_its_cores():
    """Benchmark figures depend on the CPU: the description names the model, the bf16 units /proc/cpuinfo lists
    (or their absence) and the logical cores."""
    import os

    from zip2zip.utils.hardware import describe_cpu

    described = describe_cpu()
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []
    )
    assert described.endswith(f", {os.cpu_count()} logical cores")
    assert ("AMX" in described) is ("amx_bf16" in flags)
    assert ("AVX512-BF16" in described) is ("avx512_bf16" in flags)
    assert ("no bf16 units" in described) is not ("amx_bf16" in flags or "avx512_bf16" in flags)
    model = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), ""
    )
    assert described.startswith(model)


def test_plain_sft_config_is_converted(tmp_path):
    from trl import SFTConfig

    model, tok = build()
    args = SFTConfig(
        str(tmp_path / "r"), bf16=False, report_to="none", max_steps=1, gradient_checkpointing=False
    )
    trainer = Zip2ZipSFTTrainer(model=model, args=args, train_dataset=text_dataset(1), processing_class=tok)
    assert isinstance(trainer.args, Zip2ZipSFTConfig)


def test_non_zip2zip_model_is_rejected(tmp_path):
    base_tok = tiny_bpe_tokenizer()
    base = tiny_base_model("llama", vocab_size=len(base_tok))
    with pytest.raises(TypeError, match="convert a base model first"):
        Zip2ZipSFTTrainer(
            model=base, args=config(tmp_path), train_dataset=text_dataset(1), processing_class=base_tok
        )


# ------------------------------------------------------------------------------------------ data


def test_plain_text_example_round_trips_and_counts():
    _, tok = build()
    text = TRAINING_TEXT[0]
    row = tokenize_example({"text": text}, tok)
    base_ids = tok.base(text)["input_ids"] + [tok.eos_token_id]
    assert row["input_ids"] == tok.codec.encode(base_ids)
    assert row["labels"] == row["input_ids"]
    assert row["num_base_tokens"] == len(base_ids)
    first = len(tok.codec.decode(row["input_ids"][:1]))
    assert row["num_target_bytes"] == len(
        tok.base.decode(base_ids[first:], skip_special_tokens=True).encode()
    )


def test_completion_only_mask_is_exact_in_compressed_space():
    _, tok = build()
    prompt, completion = "the cat sat on the mat. the cat", " sat on the hat. the cat sat on the mat."
    row = tokenize_example({"prompt": prompt, "completion": completion}, tok)
    codes, labels = row["input_ids"], row["labels"]
    prompt_base = tok.base(prompt)["input_ids"]
    completion_base = tok.base(completion, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    prompt_codes = tok.codec.encode(prompt_base)
    # The prompt keeps the codes it gets alone (as in generation) and is masked; nothing spans the boundary.
    assert codes[: len(prompt_codes)] == prompt_codes
    assert labels[: len(prompt_codes)] == [-100] * len(prompt_codes)
    assert labels[len(prompt_codes) :] == codes[len(prompt_codes) :]
    assert tok.codec.decode(codes) == prompt_base + completion_base
    decoder = tok.codec.new_decoder()
    phrases = [decoder.feed(code).phrase for code in codes]
    trained = [x for phrase, label in zip(phrases, labels) if label != -100 for x in phrase]
    assert trained == completion_base
    # The completion reuses hypertokens the prompt created: the codebook is shared.
    assert any(code >= tok.codec.base_vocab_size for code in codes[len(prompt_codes) :])
    # Without completion-only loss every code is a target.
    full = tokenize_example({"prompt": prompt, "completion": completion}, tok, completion_only_loss=False)
    assert full["labels"] == full["input_ids"] == codes


def test_assistant_only_masks_assistant_turns():
    _, tok = build()
    messages = [
        {"role": "user", "content": "the cat sat on the mat."},
        {"role": "assistant", "content": "the cat sat on the hat."},
        {"role": "user", "content": "the dog sat on the log."},
        {"role": "assistant", "content": "the dog sat on the mat."},
    ]
    row = tokenize_example({"messages": messages}, tok, assistant_only_loss=True)
    codes, labels = row["input_ids"], row["labels"]
    decoder = tok.codec.new_decoder()
    phrases = [decoder.feed(code).phrase for code in codes]
    trained_text = tok.base.decode([x for p, label in zip(phrases, labels) if label != -100 for x in p])
    assert trained_text == "the cat sat on the hat.<|im_end|>\nthe dog sat on the mat.<|im_end|>\n"
    full = tok.apply_chat_template(messages, tokenize=False)
    assert tok.base.decode(tok.codec.decode(codes)) == full
    every = tokenize_example({"messages": messages}, tok)
    assert every["labels"] == every["input_ids"]


def test_truncation_counts_what_is_kept():
    _, tok = build()
    row = tokenize_example({"text": TRAINING_TEXT[1]}, tok, max_length=7)
    assert len(row["input_ids"]) == len(row["labels"]) == 7
    assert row["num_base_tokens"] == len(tok.codec.decode(row["input_ids"]))


def test_collator_codebook_state_matches_the_model():
    model, tok = build()
    rows = [tokenize_example({"text": text}, tok) for text in TRAINING_TEXT[:3]]
    collator = Zip2ZipDataCollator(tok.pad_token_id, tok.codec)
    batch = collator(rows)
    state = model.prepare_codebook(batch["input_ids"], batch["attention_mask"])
    for key in ("codebook", "accept_limits", "candidates"):
        assert torch.equal(batch[key], state[key]), key
    assert batch["labels"][batch["attention_mask"] == 0].eq(-100).all()
    assert batch["num_base_tokens"].tolist() == [row["num_base_tokens"] for row in rows]
    # Precomputed state gives the same logits as the model's own rebuild.
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "codebook", "accept_limits", "candidates")}
    with torch.no_grad():
        a = model(**inputs).logits
        b = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ training


def test_loss_falls_over_30_steps(tmp_path):
    model, tok = build()
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=30, learning_rate=1e-2, lr_scheduler_type="constant"),
        train_dataset=text_dataset(),
        processing_class=tok,
    )
    trainer.train()
    losses = [entry["loss"] for entry in train_logs(trainer)]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    last = train_logs(trainer)[-1]
    for key in ("lm_loss", "compression_ratio", "hypertoken_share", "bits_per_byte", "mean_token_accuracy"):
        assert key in last, key
    assert last["compression_ratio"] > 1.0 and 0.0 < last["hypertoken_share"] < 1.0
    assert "reconstruction_loss" not in last


def test_lora_trains_exactly_the_adapters_and_encoders(tmp_path):
    model, tok = build()
    peft_config = default_lora_config(model, r=4, alpha=8)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=4),
        train_dataset=text_dataset(),
        processing_class=tok,
        peft_config=peft_config,
    )
    before = snapshot(trainer.model)
    trainer.train()
    after = snapshot(trainer.model)
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("lora_" in name for name in trainable)
    assert any("modules_to_save" in name and "input_encoder" in name for name in trainable)
    assert any("modules_to_save" in name and "output_encoder" in name for name in trainable)
    assert not any("lora_" in name and "_encoder" in name for name in trainable)  # no adapters on encoders
    for name in before:
        if name in trainable:
            assert not torch.equal(before[name], after[name]), f"trainable {name} did not change"
        else:
            assert torch.equal(before[name], after[name]), f"frozen {name} changed"


def test_reconstruction_loss_on_and_off(tmp_path):
    model, tok = build(reconstruction_loss_weight=0.1)
    before = snapshot(model.reconstruction_head)
    trainer = Zip2ZipSFTTrainer(
        model=model, args=config(tmp_path), train_dataset=text_dataset(), processing_class=tok
    )
    trainer.train()
    logs = train_logs(trainer)
    assert all(entry["reconstruction_loss"] > 0 for entry in logs)
    # loss = lm_loss + 0.1 * reconstruction_loss (one micro-batch per step).
    for entry in logs:
        assert entry["loss"] == pytest.approx(entry["lm_loss"] + 0.1 * entry["reconstruction_loss"], rel=1e-3)
    after = snapshot(model.reconstruction_head)
    assert all(not torch.equal(before[k], after[k]) for k in before)

    # Switched off for a run: no reconstruction term in the loss, though the head exists.
    model, tok = build(reconstruction_loss_weight=0.1)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, reconstruction_loss_weight=0.0),
        train_dataset=text_dataset(),
        processing_class=tok,
    )
    trainer.train()
    for entry in train_logs(trainer):
        assert entry["loss"] == pytest.approx(entry["lm_loss"], rel=1e-4)

    # Asking for it on a model without a head fails with the fix.
    model, tok = build()
    with pytest.raises(ValueError, match="no reconstruction head"):
        Zip2ZipSFTTrainer(
            model=model,
            args=config(tmp_path, reconstruction_loss_weight=0.1),
            train_dataset=text_dataset(1),
            processing_class=tok,
        )


@pytest.mark.parametrize(
    ("lora", "settings"),
    [
        (False, {}),
        (True, {"distillation_weight": 1.0}),
        (True, {"hidden_distillation_weight": 1.0, "hidden_distillation_layers": "last:2"}),
    ],
    ids=["plain", "first-token-distillation", "hidden-distillation"],
)
def test_gradient_accumulation_matches_one_big_batch(tmp_path, lora, settings):
    """Batch 1 x GA 2 and batch 2 x GA 1 give the same update: every loss is normalised by all targets of the
    step, the teacher losses included."""
    texts = TRAINING_TEXT[:2]
    big = one_step_update(tmp_path, texts, batch=2, accumulation=1, lora=lora, **settings)
    accumulated = one_step_update(tmp_path, texts, batch=1, accumulation=2, lora=lora, **settings)
    assert any(delta.abs().max() > 0 for delta in big.values())
    for name in big:
        torch.testing.assert_close(accumulated[name], big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
    def run(resume: str | None, out: str):
        model, tok = build()
        args = config(tmp_path, max_steps=4, save_strategy="steps", save_steps=2, output_dir=out)
        trainer = Zip2ZipSFTTrainer(
            model=model,
            args=args,
            train_dataset=text_dataset(),
            processing_class=tok,
            peft_config=default_lora_config(model, r=4, alpha=8),
        )
        trainer.train(resume_from_checkpoint=resume)
        return snapshot(trainer.model)

    straight = run(None, str(tmp_path / "a"))
    resumed = run(str(tmp_path / "a" / "checkpoint-2"), str(tmp_path / "b"))
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0, msg=name)


def test_trained_folder_reloads_with_remote_code_and_generates(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = build()
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2),
        train_dataset=text_dataset(),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    saved = json.loads((out / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForCausalLM"].endswith("Zip2ZipForCausalLM")
    assert (out / "modeling_zip2zip.py").exists() and (out / "adapter" / "adapter_config.json").exists()

    reloaded = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True).eval()
    rtok = AutoTokenizer.from_pretrained(str(out), trust_remote_code=True)
    batch = rtok(["the cat sat on the mat. the cat sat"], return_tensors="pt")
    trained = trainer.model.eval()
    with torch.no_grad():
        expected = trained(**batch).logits
        got = reloaded(**batch).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    # The adapter alone (LoRA + trained encoders) reproduces the model on top of the untrained one.
    fresh, _ = build()
    adapted = PeftModel.from_pretrained(fresh, str(out / "adapter")).eval()
    with torch.no_grad():
        torch.testing.assert_close(adapted(**batch).logits, expected, rtol=1e-4, atol=1e-4)

    generated = reloaded.generate(**batch, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > batch["input_ids"].shape[1]
    assert rtok.decode(generated[0], skip_special_tokens=True).startswith(
        "the cat sat on the mat. the cat sat"
    )
    assert reloaded.last_generation_stats is not None


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_lora_targets_base_projections_only(arch):
    model, _ = build(arch=arch)
    pattern = lora_target_modules(model)
    from peft import get_peft_model

    peft_model = get_peft_model(model, default_lora_config(model, r=2, alpha=2))
    adapted = {name for name, _ in peft_model.named_modules() if name.endswith(".lora_A")}
    assert adapted and all(".language_model." in name for name in adapted), pattern
    assert not any("encoder" in name for name in adapted)
    expected = {"llama": "q_proj", "qwen2": "down_proj", "gpt2": "c_attn"}[arch]
    assert any(f".{expected}." in name for name in adapted)


def test_eval_and_conversational_prompt_completion(tmp_path):
    model, tok = build()
    data = prompt_completion_dataset(TRAINING_TEXT * 2)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2, eval_strategy="no"),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tok,
    )
    first = trainer.train_dataset[0]
    assert first["labels"][0] == -100 and first["labels"][-1] != -100
    trainer.train()
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0 and "eval_bits_per_byte" in metrics


# ------------------------------------------------------------------------------------------ LoRA


def test_a_plain_lora_config_is_adapted_to_the_recipe(tmp_path):
    from peft import LoraConfig

    model, tok = build()
    user_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "o_proj"])
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=1),
        train_dataset=text_dataset(1),
        processing_class=tok,
        peft_config=user_config,
    )
    adapted = {name for name, _ in trainer.model.named_modules() if name.endswith(".lora_A")}
    assert adapted and all(".language_model." in name for name in adapted)
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert any("input_encoder" in name for name in trainable) and any(
        "output_encoder" in name for name in trainable
    )
    assert user_config.modules_to_save is None  # the caller's object is left alone
    assert trainer.model.peft_config["default"].task_type == "CAUSAL_LM"


def test_a_lora_config_without_targets_gets_the_base_projections(tmp_path):
    """`LoraConfig(r=16, lora_alpha=32)` as a user writes it: PEFT alone would ask for target_modules."""
    from peft import LoraConfig

    model, tok = build()
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=1),
        train_dataset=text_dataset(1),
        processing_class=tok,
        peft_config=LoraConfig(r=4, lora_alpha=8),
    )
    adapted = {
        name.rsplit(".", 2)[-2] for name, _ in trainer.model.named_modules() if name.endswith(".lora_A")
    }
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert all(
        ".language_model." in name for name, _ in trainer.model.named_modules() if name.endswith(".lora_A")
    )
    trainer.train()


def test_gradient_checkpointing_default_works_with_lora(tmp_path):
    """SFTConfig turns gradient checkpointing on by default; the zip2zip forward must train under it exactly
    as without it (the same parameters after the same steps)."""
    trained = {}
    for checkpointing in (True, False):
        model, tok = build()
        trainer = Zip2ZipSFTTrainer(
            model=model,
            args=config(tmp_path, max_steps=2, gradient_checkpointing=checkpointing),
            train_dataset=text_dataset(),
            processing_class=tok,
            peft_config=default_lora_config(model, r=4, alpha=8),
        )
        before = snapshot(trainer.model)
        trainer.train()
        trained[checkpointing] = snapshot(trainer.model)
    changed = [n for n, p in trained[True].items() if not torch.equal(before[n], p)]
    assert any("lora_B" in n for n in changed) and any("output_encoder" in n for n in changed)
    for name, value in trained[False].items():
        torch.testing.assert_close(trained[True][name], value, atol=1e-6, rtol=1e-5, msg=name)


def test_converting_evaluating_and_loading_never_import_trl():
    """TRL takes seconds to import; conversion, evaluation, loading and the demo must not need it."""
    import subprocess
    import sys

    script = (
        "import sys, zip2zip, zip2zip.evaluation.scoring, zip2zip.conversion, zip2zip.loading, zip2zip.bundled.shipped\n"
        "from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer, zip2zip_from_base\n"
        "assert 'trl' not in sys.modules, [m for m in sys.modules if m.startswith('trl')][:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
