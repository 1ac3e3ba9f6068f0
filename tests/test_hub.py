"""Hub repos: export a complete trust_remote_code folder, load it in a fresh process without the package, card, push."""

from __future__ import annotations

import json
import os

import pytest

from tests._fresh_process import assert_same_report, fresh_generation_report, generation_report
from tests._saved_models import saved_tiny_zip2zip
from zip2zip.evaluation.scoring import compare_on_domains
from zip2zip.hub.export import check_model_folder, export_repo, push_repo
from zip2zip.hub.model_card import ExportError
from zip2zip.model import CODE_FILES

PROMPT = "the cat sat on the mat. the cat sat on the"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved (untrained) tiny zip2zip model and tokenizer folder (its base has embedding rows beyond the
    tokenizer's). Its encoders are perturbed: exact means would tie a hypertoken of a repeated token with that
    token, and a batched row could then break the tie otherwise than the row alone."""
    return saved_tiny_zip2zip(tmp_path_factory.mktemp("model"), max_subtokens=3, extra_vocab=4, encoders={})


@pytest.fixture(scope="module")
def exported(saved, tmp_path_factory):
    folder, _, _ = saved
    out = tmp_path_factory.mktemp("export") / "tiny-zip2zip"
    texts = {
        "prose": ["the cat sat on the mat. the dog sat on the log. " * 3],
        "code": ["def add(a, b):\n    return a + b\n"],
    }
    # float32: the fresh-process test compares greedy text with the in-memory float32 model (the bfloat16 default
    # is tested in test_export_dtype.py).
    _, model, tok = saved
    measurements = compare_on_domains(texts, model, tok)
    return export_repo(
        folder,
        out,
        license="apache-2.0",
        base_model="org/tiny-base",
        measurements=measurements,
        dtype="float32",
    )


def test_export_writes_a_complete_repo(exported):
    names = set(os.listdir(exported))
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "base_tokenizer.json",
        "README.md",
        "model.safetensors",
        *CODE_FILES,
    ):
        assert name in names, name
    assert "training_args.bin" not in names
    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_zip2zip.Zip2ZipForCausalLM"
    assert config["auto_map"]["AutoConfig"] == "configuration_zip2zip.Zip2ZipConfig"
    tokenizer_config = json.loads((exported / "tokenizer_config.json").read_text())
    assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization_zip2zip.Zip2ZipTokenizer"
    generation = json.loads((exported / "generation_config.json").read_text())
    assert generation["eos_token_id"] is not None and generation["pad_token_id"] is not None


def test_model_card_parses_with_measurements(exported):
    from huggingface_hub import ModelCard

    card = ModelCard.load(exported / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-generation"
    assert data["base_model"] == "org/tiny-base" and data["license"] == "apache-2.0"
    assert {"zip2zip", "custom_code"} <= set(data["tags"])
    summary = data["zip2zip"]
    assert summary["trained"] is False and summary["max_subtokens"] == 3
    assert summary["compression"] > 1.0 and summary["bits_per_byte"] > 0
    measured = json.loads((exported / "zip2zip_eval.json").read_text())
    assert round(measured["overall"]["zip2zip"]["bits_per_byte"], 4) == summary["bits_per_byte"]
    metrics = [r.metric_type for r in card.data.eval_results]
    assert metrics == ["bits_per_byte", "bits_per_byte"]
    assert "This model is untrained" in card.text and "| prose |" in card.text


PROMPTS = [PROMPT, "the dog sat on the log. the dog sat on the mat. the cat sat on the"]


def test_exported_folder_loads_and_generates_in_a_fresh_process_without_the_package(
    exported, saved, tmp_path
):
    _, model, tok = saved
    expected = generation_report(model, tok, PROMPTS)
    got = fresh_generation_report(exported, PROMPTS, tmp_path)
    assert got["dtype"] == "torch.float32"
    assert_same_report(got, expected)


# ----------------------------------------------------------------------------------------- bad input


def test_missing_files_are_named(saved, tmp_path):
    folder, _, _ = saved
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "base_tokenizer.json").unlink()
    with pytest.raises(ExportError, match=r"base_tokenizer\.json is missing.*save_pretrained"):
        check_model_folder(broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ExportError, match="no safetensors weights"):
        check_model_folder(broken)
    with pytest.raises(ExportError, match=r"config\.json is missing"):
        check_model_folder(tmp_path)


def test_codec_settings_disagreeing_with_the_tokenizer_are_named(saved, tmp_path):
    folder, _, _ = saved
    import shutil

    broken = tmp_path / "mismatch"
    shutil.copytree(folder, broken)
    config = json.loads((broken / "config.json").read_text())
    config["max_subtokens"] = 4
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match=r"max_subtokens: 4 in config\.json vs 3 in tokenizer_config\.json"):
        export_repo(broken, tmp_path / "out", license="apache-2.0")


def test_export_needs_a_license_for_an_unknown_base(saved, tmp_path):
    folder, _, _ = saved
    with pytest.raises(ExportError, match="license"):
        export_repo(folder, tmp_path / "out")


def test_push_without_credentials_says_how_to_log_in(exported, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(PermissionError, match=r"hf auth login.*HF_TOKEN"):
        push_repo(exported, "someone/tiny-zip2zip")


def test_push_uploads_the_folder_with_upload_folder(exported, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, **kwargs):
            calls.append(("create_repo", kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return "commit"

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hf_dummy")
    push_repo(exported, "someone/tiny-zip2zip", private=True, api=FakeApi())
    assert calls[0] == (
        "create_repo",
        {"repo_id": "someone/tiny-zip2zip", "repo_type": "model", "private": True, "exist_ok": True},
    )
    name, kwargs = calls[1]
    assert name == "upload_folder" and kwargs["folder_path"] == str(exported)
    assert kwargs["repo_id"] == "someone/tiny-zip2zip" and kwargs["repo_type"] == "model"


# ----------------------------------------------------------------------------------------- command line


def test_cli_export_and_push(saved, tmp_path, monkeypatch, capsys):
    import huggingface_hub

    from zip2zip.cli import main

    folder, _, _ = saved
    out = tmp_path / "repo"
    assert main(["export", str(folder), str(out), "--license", "mit", "--base-model", "org/base"]) == 0
    assert (out / "README.md").is_file() and (out / "model.safetensors").is_file()
    assert "No quality measurement is included with this export" in (out / "README.md").read_text()
    with pytest.raises(SystemExit, match="not empty"):
        main(["export", str(folder), str(out), "--license", "mit"])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["export", str(tmp_path / "nothing-here"), str(tmp_path / "x")])
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(SystemExit, match="hf auth login"):
        main(["push", str(out), "someone/repo"])
