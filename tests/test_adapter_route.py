"""Using a zip2zip adapter the PEFT way: `zip2zip.loading.load_adapter` builds the zip2zip model it belongs to.

A zip2zip adapter adapts a zip2zip model (LoRA under `language_model.`, the hyper-encoders in
`modules_to_save`), so PEFT alone cannot apply it to the plain base model; these tests pin the supported route
and its result: the same logits as the merged model training wrote. (The shipped model is a low-rank delta,
not an adapter: tests/test_shipped.py covers its route.)
"""

from __future__ import annotations

import os

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
from _training import config
from datasets import Dataset
from transformers import AutoModelForCausalLM

from zip2zip.conversion import zip2zip_from_base
from zip2zip.loading import load_adapter
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_training_runs_adapter_loads_onto_its_base_with_the_merged_logits(tmp_path):
    tok = tiny_bpe_tokenizer()
    base = tiny_base_model(vocab_size=len(tok), seed=3)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    torch.manual_seed(0)
    model, ztok = zip2zip_from_base(str(tmp_path / "base"), max_codebook_size=64, encoder_num_layers=1)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2, learning_rate=1e-2),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT}),
        processing_class=ztok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))

    loaded = load_adapter(tmp_path / "final" / "adapter", base=tmp_path / "base")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "final", trust_remote_code=True).eval()
    assert loaded.trained and loaded.model.config.trained
    ids = torch.tensor([ztok(TRAINING_TEXT[0] + " " + TRAINING_TEXT[0])["input_ids"]])
    assert int((ids >= ztok.codec.base_vocab_size).sum()) > 0  # hypertokens in the input
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, merged(input_ids=ids).logits)
    # Unmerged, it is a PeftModel whose adapters can be switched off (the untrained model underneath).
    unmerged = load_adapter(tmp_path / "final" / "adapter", base=tmp_path / "base", merge=False).model
    assert hasattr(unmerged, "disable_adapter")


def test_an_adapter_without_settings_is_refused_with_the_layouts_named(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"zip2zip_settings\.json"):
        load_adapter(tmp_path / "adapter")
