"""zip2zip.loading: the one loader of models and tokenizers (CLI, evaluation, demo app)."""

from __future__ import annotations

import pytest

from tests._saved_models import TINY_SETTINGS, save_tiny_base, save_tiny_zip2zip
from zip2zip import loading
from zip2zip.bundled import base as bundled_base
from zip2zip.bundled import shipped as bundled_shipped
from zip2zip.recipe import ZIP2ZIP_SETTINGS


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("loading")
    base = save_tiny_base(root)
    return base, save_tiny_zip2zip(root, base)


def test_a_saved_untrained_zip2zip_folder_loads_in_eval_mode_as_untrained(saved):
    _, folder = saved
    model, tokenizer, trained = loading.load_zip2zip(folder)
    assert loading.is_zip2zip_model(model) and not model.training
    assert trained is False and loading.is_trained(folder) is False and loading.is_trained(model) is False
    assert model.config.max_codebook_size == TINY_SETTINGS["max_codebook_size"]
    assert tokenizer.max_codebook_size == model.config.max_codebook_size


def test_settings_do_not_change_a_saved_model(saved, caplog):
    _, folder = saved
    with caplog.at_level("WARNING", logger="zip2zip.loading"):
        model, _, _ = loading.load_zip2zip(folder, max_subtokens=2)
    assert model.config.max_subtokens == ZIP2ZIP_SETTINGS["max_subtokens"]
    assert "max_subtokens=2" in caplog.text


def test_a_base_model_is_not_taken_for_a_zip2zip_model(saved):
    base, _ = saved
    with pytest.raises(ValueError, match="not a zip2zip model"):
        loading.load_zip2zip(base)


def test_missing_folders_and_unreachable_hub_ids_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        loading.load_zip2zip(tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="no-such-org/no-such-model"):
        loading.load_model_and_tokenizer("no-such-org/no-such-model")


def test_the_base_beside_a_zip2zip_model_is_the_folder_it_was_made_from(saved):
    base, folder = saved
    model, _, _ = loading.load_zip2zip(folder)
    assert loading.base_model_path(model) == str(base)
    base_model, base_tokenizer = loading.load_base_model(model)
    assert base_model.config.model_type == "llama" and len(base_tokenizer) == model.config.base_vocab_size
    model.config.text_config._name_or_path = ""
    assert loading.base_model_path(model) is None and loading.load_base_model(model) is None


def test_without_a_shipped_model_the_default_is_untrained_with_the_recipe_settings(saved, monkeypatch):
    base, _ = saved
    monkeypatch.setattr(bundled_shipped, "shipped_zip2zip_path", lambda: None)
    monkeypatch.setattr(bundled_base, "default_base_path", lambda: str(base))
    model, tokenizer, trained = loading.load_zip2zip(max_codebook_size=32)
    assert trained is False and not model.training
    expected = {**ZIP2ZIP_SETTINGS, "max_codebook_size": 32}
    for name in (
        "max_codebook_size",
        "max_subtokens",
        "encoder_num_layers",
        "encoder_init",
        "protect_digits",
    ):
        assert getattr(model.config, name) == expected[name], name
    assert (
        tokenizer.max_codebook_size == 32 and tokenizer.protect_digits == ZIP2ZIP_SETTINGS["protect_digits"]
    )
    assert loading.base_model_path(model) == str(base)


def test_a_tokenizer_alone_comes_from_a_base_or_a_zip2zip_folder(saved):
    base, folder = saved
    wrapped = loading.load_zip2zip_tokenizer(base, max_subtokens=2)
    assert wrapped.max_subtokens == 2 and wrapped.max_codebook_size == ZIP2ZIP_SETTINGS["max_codebook_size"]
    saved_tokenizer = loading.load_zip2zip_tokenizer(folder)
    assert saved_tokenizer.max_codebook_size == TINY_SETTINGS["max_codebook_size"]


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="max_codebok_size"):
        loading.zip2zip_settings(max_codebok_size=8)


@pytest.mark.slow
def test_the_default_is_the_shipped_trained_model(smollm2_path):
    assert bundled_shipped.shipped_zip2zip_path() is not None, "the package must ship its trained checkpoint"
    model, _, trained = loading.load_zip2zip()
    assert trained is True and loading.is_zip2zip_model(model)
    assert loading.base_model_path(model) == smollm2_path
