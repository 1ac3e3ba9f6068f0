"""Whether a model is trained is recorded in its config (`trained`) and read from there by every tool.

It used to be guessed from an `adapter/` folder or `training_args.bin`, which an exported repo has neither
of, so the command line called an exported trained model UNTRAINED while its card said trained.
"""

from __future__ import annotations

import json
import os

import pytest
from _tiny_tokenizers import TRAINING_TEXT
from _training import build, config
from datasets import Dataset

from zip2zip.hub.export import export_repo
from zip2zip.loading import is_trained
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trained")
    model, tok = build()
    assert model.config.trained is False and not is_trained(model)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp, max_steps=1),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    trainer.save_model(str(tmp / "final"))
    return tmp / "final"


def test_training_records_it_in_the_config(trained_run):
    assert json.loads((trained_run / "config.json").read_text())["trained"] is True
    assert is_trained(trained_run)


def test_training_records_the_codec_the_weights_learned_and_loading_another_one_warns(trained_run, tmp_path):
    """The codec settings are part of what the weights mean: training records them (trained_codec), and a folder
    whose settings differ loads with a warning naming each field, trained value and current one."""
    import shutil
    import warnings

    from zip2zip.model.configuration_zip2zip import TRAINED_CODEC_SETTINGS, Zip2ZipConfig

    config = json.loads((trained_run / "config.json").read_text())
    assert config["trained_codec"] == {name: config[name] for name in TRAINED_CODEC_SETTINGS}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the folder as training wrote it: no warning
        Zip2ZipConfig.from_pretrained(trained_run)
    edited = tmp_path / "edited"
    shutil.copytree(trained_run, edited)
    config["position_mode"] = "base"
    config["disabled_ids"] = config["disabled_ids"][:-1]
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.warns(
        UserWarning, match=r"config\.json\): the codec settings differ .*trained_codec"
    ) as caught:
        Zip2ZipConfig.from_pretrained(edited)
    said = str(caught[0].message)
    assert "position_mode: 'base' now vs 'compressed' in training" in said
    assert f"now merged: [{config['trained_codec']['disabled_ids'][-1]}]" in said


def test_export_carries_it_and_the_card_and_cli_agree(trained_run, tmp_path, capsys):
    out = export_repo(trained_run, tmp_path / "repo", base_model="tiny/base", license="apache-2.0")
    assert not (out / "adapter").exists() and not (out / "training_args.bin").exists()
    assert json.loads((out / "config.json").read_text())["trained"] is True
    assert is_trained(out)
    assert "trained: true" in (out / "README.md").read_text().lower()
    from zip2zip.cli import main

    assert main(["generate", "--model", str(out), "--max-new-tokens", "2", "--no-stream", "the cat"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip(), "generate printed no answer"
    assert "UNTRAINED" not in captured.out + captured.err
    (tmp_path / "text.txt").write_text(TRAINING_TEXT[0])
    report = tmp_path / "eval.json"
    args = [
        "eval",
        "--model",
        str(out),
        "--no-base",
        "--data",
        str(tmp_path / "text.txt"),
        "--json",
        str(report),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert json.loads(report.read_text())["trained"] is True
    assert "UNTRAINED" not in captured.out + captured.err and "of the trained zip2zip model" in captured.out


def test_an_untrained_folder_says_so(tmp_path):
    model, _ = build()
    model.save_pretrained(tmp_path / "untrained")
    assert json.loads((tmp_path / "untrained" / "config.json").read_text())["trained"] is False
    assert not is_trained(tmp_path / "untrained")
    # An adapter folder no longer makes a model "trained": only the record does.
    (tmp_path / "untrained" / "adapter").mkdir()
    assert not is_trained(tmp_path / "untrained")


@pytest.mark.slow
def test_the_shipped_model_is_trained():
    from zip2zip.bundled.shipped import shipped_zip2zip_path

    path = shipped_zip2zip_path()
    assert path is not None and is_trained(path)


def test_a_final_training_folder_holds_no_pickle_and_the_projects_card(tmp_path):
    model, tok = build()
    model.config.text_config._name_or_path = (
        "HuggingFaceTB/SmolLM2-135M-Instruct"  # a base with a known license
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=1, save_strategy="steps", save_steps=1),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    final = tmp_path / "final"
    trainer.save_model(str(final))
    files = {p.name for p in final.iterdir() if p.is_file()}
    assert not {name for name in files if name.endswith((".bin", ".pt", ".pkl"))}, files
    card = (final / "README.md").read_text()
    assert "zip2zip" in card and "HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert "fine-tuned version of [None]" not in card and 'pipeline(model="None")' not in card
    # TRL's stub card is not written beside the checkpoints either.
    assert not (tmp_path / "run" / "README.md").exists()
