"""Zip2ZipConfig defaults (they are the recipe's), the default encoder width, and the rules a model and a
tokenizer share: which ids never merge, and whether two sets of codec settings agree."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import tiny_bpe_tokenizer
from transformers import GPT2Config

from zip2zip import Zip2ZipConfig, Zip2ZipForCausalLM, Zip2ZipTokenizer, recipe
from zip2zip.model.configuration_zip2zip import codec_mismatches, default_disabled_ids


def test_config_field_defaults_are_the_recipe():
    defaults = {field.name: field.default for field in dataclasses.fields(Zip2ZipConfig)}
    for name, value in recipe.ZIP2ZIP_SETTINGS.items():
        assert defaults[name] == value, name


@pytest.mark.parametrize(
    "hidden,heads,width,encoder_heads",
    [(576, 9, 288, 9), (32, 4, 16, 4), (100, 4, 48, 4), (88, 8, 40, 8), (6, 4, 3, 1)],
)
def test_default_encoder_width_is_half_the_model_width(hidden, heads, width, encoder_heads):
    text = GPT2Config(vocab_size=100, n_embd=hidden, n_head=heads)
    config = Zip2ZipConfig(text_config=text)
    assert (config.encoder_hidden_size, config.encoder_num_heads) == (width, encoder_heads)
    assert config.encoder_intermediate_size == width
    # A given head count shapes the rounding; a given width is kept as it is.
    assert Zip2ZipConfig(text_config=text, encoder_num_heads=1).encoder_hidden_size == hidden // 2
    assert Zip2ZipConfig(text_config=text, encoder_hidden_size=hidden).encoder_hidden_size == hidden


def test_from_base_defaults_to_the_recipe():
    base_tok = tiny_bpe_tokenizer()
    model = Zip2ZipForCausalLM.from_base(tiny_base_model(vocab_size=len(base_tok)), tokenizer=base_tok)
    config = model.config
    assert config.protect_digits is True and config.protect_whitespace is True
    assert config.encoder_init == "mean"
    assert config.encoder_hidden_size == config.text_config.hidden_size // 2
    assert config.disabled_ids == default_disabled_ids(base_tok, protect_digits=True, protect_whitespace=True)
    assert base_tok.convert_tokens_to_ids("1") in config.disabled_ids
    assert base_tok.convert_tokens_to_ids("\u010a") in config.disabled_ids  # a newline never merges


def test_a_tokenizer_built_without_a_config_matches_the_default_model(smollm2_tokenizer):
    base = tiny_base_model(vocab_size=len(smollm2_tokenizer))
    model = Zip2ZipForCausalLM.from_base(base, tokenizer=smollm2_tokenizer)
    tok = Zip2ZipTokenizer.from_base(smollm2_tokenizer)
    assert codec_mismatches(model.config, tok) == {}
    assert tok.protect_digits is recipe.ZIP2ZIP_SETTINGS["protect_digits"]
    assert tok.protect_whitespace is recipe.ZIP2ZIP_SETTINGS["protect_whitespace"]
    tok.check_compatible(model.config)


@pytest.mark.parametrize("protect_digits", [False, True])
@pytest.mark.parametrize("protect_whitespace", [False, True])
def test_model_and_tokenizer_disable_the_same_ids_on_smollm2(
    smollm2_tokenizer, protect_digits, protect_whitespace
):
    base = tiny_base_model(vocab_size=len(smollm2_tokenizer))
    flags = {"protect_digits": protect_digits, "protect_whitespace": protect_whitespace}
    model = Zip2ZipForCausalLM.from_base(base, tokenizer=smollm2_tokenizer, max_codebook_size=8, **flags)
    tok = Zip2ZipTokenizer.from_base(smollm2_tokenizer, max_codebook_size=8, **flags)
    assert model.config.disabled_ids == tok.disabled_ids
    # SmolLM2: 17 special tokens, the 10 digits, 166 whitespace-only tokens
    assert len(tok.disabled_ids) == 17 + 10 * protect_digits + 166 * protect_whitespace
    assert model.config.protect_whitespace is protect_whitespace
    tok.check_compatible(model.config)
    if protect_whitespace:
        other = Zip2ZipTokenizer.from_base(smollm2_tokenizer, model.config, protect_whitespace=False)
        assert "protect_whitespace" in codec_mismatches(model.config, other)


def test_codec_mismatches_reads_configs_tokenizers_and_saved_json(tmp_path):
    base_tok = tiny_bpe_tokenizer()
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok)), tokenizer=base_tok, max_codebook_size=16
    )
    tok = Zip2ZipTokenizer.from_base(base_tok, model.config)
    assert codec_mismatches(model.config, tok) == {}
    other = Zip2ZipTokenizer.from_base(base_tok, model.config, max_subtokens=3, disabled_ids=[0, 1, 2, 50])
    expected = {
        "max_subtokens": (4, 3),
        "disabled_ids": (model.config.disabled_ids, [0, 1, 2, 50]),
    }
    assert codec_mismatches(model.config, other) == expected
    model.save_pretrained(tmp_path)
    other.save_pretrained(tmp_path)
    saved = [json.loads((tmp_path / name).read_text()) for name in ("config.json", "tokenizer_config.json")]
    assert codec_mismatches(*saved) == expected
    assert codec_mismatches(saved[0], {}) == {}  # nothing to compare


def test_change_codec_reads_a_model_under_other_settings(smollm2_tokenizer):
    from zip2zip.conversion import change_codec

    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(smollm2_tokenizer)),
        tokenizer=smollm2_tokenizer,
        max_codebook_size=64,
        encoder_num_layers=1,
        protect_whitespace=False,
    ).eval()
    code = "if x:\n\t\treturn y\n\t\tif x:\n\t\treturn y\n" * 3
    tok = change_codec(model, smollm2_tokenizer, protect_whitespace=True, max_subtokens=2)
    assert model.config.protect_whitespace and model.config.max_subtokens == 2
    assert (
        model.config.disabled_ids == default_disabled_ids(smollm2_tokenizer, True, True) == tok.disabled_ids
    )
    tok.check_compatible(model.config)
    batch = tok(code, return_tensors="pt", return_codebook=True)
    assert all(len(entry) <= 2 for entry in batch["codebook"][0].tolist() if entry[0] >= 0)
    assert tok.decode(batch["input_ids"][0]) == code
    logits = model(input_ids=batch["input_ids"]).logits
    assert torch.isfinite(logits.max(-1).values).all()
    # back to the settings it was built with: the same codes as a tokenizer made for them from scratch
    back = change_codec(model, smollm2_tokenizer, protect_whitespace=False, max_subtokens=4)
    fresh = Zip2ZipTokenizer.from_base(smollm2_tokenizer, max_codebook_size=64, protect_whitespace=False)
    assert back(code)["input_ids"] == fresh(code)["input_ids"] != tok(code)["input_ids"]
    with pytest.raises(ValueError, match="at most 4 base tokens"):
        change_codec(model, smollm2_tokenizer, max_subtokens=5)
    with pytest.raises(ValueError, match="max_codebook_size"):
        change_codec(model, smollm2_tokenizer, max_codebook_size=32)
    with pytest.raises(ValueError, match="not the model's"):
        change_codec(model, tiny_bpe_tokenizer(), protect_whitespace=True)
