"""The shipped zip2zip model: packing a trained run's adapter, assembling the full model, caching it.

The mechanics run on a tiny model trained for a few steps; one slow test checks the checkpoint that actually
ships with the package (when one does).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
from _training import config
from datasets import Dataset
from transformers import AutoModelForCausalLM

from zip2zip.bundled import packing
from zip2zip.bundled import shipped as bundled_shipped
from zip2zip.conversion import zip2zip_from_base
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils import cache as cache_utils
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = {"max_codebook_size": 64, "max_subtokens": 4, "encoder_num_layers": 1, "protect_digits": True}


@pytest.fixture
def trained_run(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny base saved to disk and a zip2zip run on it (LoRA + encoders, 4 steps): (base dir, run dir)."""
    base_dir, run_dir = tmp_path / "base", tmp_path / "run"
    base_tok = tiny_bpe_tokenizer()
    tiny_base_model(vocab_size=len(base_tok)).save_pretrained(base_dir)
    base_tok.save_pretrained(base_dir)
    torch.manual_seed(0)
    model, tok = zip2zip_from_base(str(base_dir), **SETTINGS)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=4, learning_rate=1e-2),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 4}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    trainer.save_model(str(run_dir))
    return base_dir, run_dir


def _logits(folder: str | Path, ids: torch.Tensor) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(str(folder), trust_remote_code=True).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_pack_and_assemble_reproduce_the_trained_model(trained_run, tmp_path, monkeypatch) -> None:
    base_dir, run_dir = trained_run
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(tmp_path / "cache"))
    shipped = packing.pack_zip2zip_checkpoint(run_dir, tmp_path / "ship", provenance={"steps": 4})

    weights = shipped / "adapter_model.safetensors"
    full = run_dir / "adapter" / "adapter_model.safetensors"
    assert weights.stat().st_size < 0.6 * full.stat().st_size, "float16 should halve the adapter"
    record = json.loads((shipped / bundled_shipped.SHIPPED_SETTINGS_FILENAME).read_text())
    assert record["zip2zip"]["max_codebook_size"] == 64 and record["provenance"] == {"steps": 4}

    path = bundled_shipped.shipped_zip2zip_path(source=shipped, base_path=str(base_dir))
    assert path is not None and cache_utils.is_complete(path)
    assert Path(path).parent == tmp_path / "cache"
    assert (Path(path) / "adapter" / "adapter_model.safetensors").is_file(), "a trained model's layout"

    tok = tiny_bpe_tokenizer()
    from zip2zip import Zip2ZipTokenizer

    zip_tok = Zip2ZipTokenizer.from_pretrained(path)
    text = TRAINING_TEXT[0] + " " + TRAINING_TEXT[1]
    ids = zip_tok(text, return_tensors="pt")["input_ids"]
    assert ids.shape[1] < len(tok(text)["input_ids"]), "the prompt should contain hypertokens"
    assembled, trained = _logits(path, ids), _logits(run_dir, ids)
    finite = torch.isfinite(trained)
    assert torch.equal(finite, torch.isfinite(assembled)), "the codebook mask must be the same"
    # float16 storage of LoRA and encoders: small, bounded differences.
    torch.testing.assert_close(assembled[finite], trained[finite], atol=2e-2, rtol=1e-2)
    untrained, _ = zip2zip_from_base(str(base_dir), **SETTINGS)
    with torch.no_grad():
        fresh = untrained.eval()(input_ids=ids).logits
    assert (fresh[finite] - trained[finite]).abs().max() > 10 * (
        assembled[finite] - trained[finite]
    ).abs().max()

    # Cached: a second call reuses the folder; new weights get a new folder.
    stamp = (Path(path) / cache_utils.MARKER_FILENAME).stat().st_mtime
    time.sleep(0.01)
    assert bundled_shipped.shipped_zip2zip_path(source=shipped, base_path=str(base_dir)) == path
    assert (Path(path) / cache_utils.MARKER_FILENAME).stat().st_mtime == stamp
    (shipped / bundled_shipped.SHIPPED_SETTINGS_FILENAME).write_text(
        (shipped / bundled_shipped.SHIPPED_SETTINGS_FILENAME).read_text().replace('"steps": 4', '"steps": 5')
    )
    newer = bundled_shipped.shipped_zip2zip_path(source=shipped, base_path=str(base_dir))
    assert newer != path and cache_utils.is_complete(newer)
    assert not Path(path).exists(), "the assembly it replaces is removed (0.5 GB for the real model)"


def test_new_model_code_gets_a_new_assembly_with_the_same_weights_digest(tmp_path, monkeypatch) -> None:
    """The assembled folder carries the model code (trust_remote_code): a package whose code changed must not
    serve the old copy, while the release numbers stay tied to the weights alone."""
    import zip2zip.model
    from zip2zip.model import CODE_FILES

    source = tmp_path / "ship"
    source.mkdir()
    (source / bundled_shipped.SHIPPED_SETTINGS_FILENAME).write_text("{}")
    (source / bundled_shipped.DELTA_FILENAME).write_bytes(b"weights")
    package = zip2zip.model.CODE_DIR
    key, weights = bundled_shipped._assembly_key(source), bundled_shipped._files_digest(source)
    edited = tmp_path / "package"
    edited.mkdir()
    for name in CODE_FILES:
        (edited / name).write_bytes((package / name).read_bytes())
    monkeypatch.setattr(bundled_shipped, "CODE_DIR", edited)
    assert bundled_shipped._assembly_key(source) == key
    (edited / "lzw.py").write_bytes((package / "lzw.py").read_bytes() + b"\n# edited\n")
    assert bundled_shipped._assembly_key(source) != key
    assert bundled_shipped._files_digest(source) == weights


def test_a_full_fine_tune_ships_as_low_rank_deltas(tmp_path, monkeypatch) -> None:
    base_dir, run_dir = tmp_path / "base", tmp_path / "run"
    base_tok = tiny_bpe_tokenizer()
    tiny_base_model(vocab_size=len(base_tok)).save_pretrained(base_dir)
    base_tok.save_pretrained(base_dir)
    torch.manual_seed(0)
    model, tok = zip2zip_from_base(str(base_dir), **SETTINGS)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=3, learning_rate=1e-2),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT * 4}),
        processing_class=tok,
    )
    trainer.train()
    trainer.save_model(str(run_dir))
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(tmp_path / "cache"))
    # a stale adapter from an earlier LoRA release must not survive the new form
    (tmp_path / "ship").mkdir()
    (tmp_path / "ship" / "adapter_model.safetensors").write_bytes(b"old")
    # nor the release benchmark's summary of the old weights
    (tmp_path / "ship" / "release_results.json").write_text("{}")
    shipped = packing.pack_zip2zip_checkpoint(run_dir, tmp_path / "ship", base_path=str(base_dir))
    assert sorted(p.name for p in shipped.iterdir()) == [
        "README.md",
        bundled_shipped.DELTA_FILENAME,
        bundled_shipped.SHIPPED_SETTINGS_FILENAME,
    ]
    readme = (shipped / "README.md").read_text()
    assert "fine-tuned in full" in readme and bundled_shipped.DELTA_FILENAME in readme
    record = json.loads((shipped / bundled_shipped.SHIPPED_SETTINGS_FILENAME).read_text())
    assert record["low_rank_delta"]["matrices"] > 0 and record["low_rank_delta"]["kept_energy"] > 0.999

    path = bundled_shipped.shipped_zip2zip_path(source=shipped, base_path=str(base_dir))
    from zip2zip import Zip2ZipTokenizer

    text = TRAINING_TEXT[0] + " " + TRAINING_TEXT[1]
    ids = Zip2ZipTokenizer.from_pretrained(path)(text, return_tensors="pt")["input_ids"]
    assembled, trained = _logits(path, ids), _logits(run_dir, ids)
    finite = torch.isfinite(trained)
    assert torch.equal(finite, torch.isfinite(assembled))
    torch.testing.assert_close(assembled[finite], trained[finite], atol=2e-2, rtol=1e-2)
    assert AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).config.trained

    # shipped at half scale: a new assembly whose base weights sit halfway, the hyper-encoders whole
    (shipped / "release_results.json").write_text("{}")
    packing.set_delta_scale(0.5, {"how": "Chosen for the test."}, source=shipped)
    assert not (shipped / "release_results.json").exists()
    readme = (shipped / "README.md").read_text()
    assert "applied at scale 0.5" in readme and "Chosen for the test." in readme
    half = bundled_shipped.shipped_zip2zip_path(source=shipped, base_path=str(base_dir))
    assert half != path and not Path(path).exists()  # the whole-scale assembly was replaced
    untrained, _ = bundled_shipped._untrained_model(SETTINGS, str(base_dir))
    whole, _ = bundled_shipped.build_shipped_model(shipped, scale=1.0, base_path=str(base_dir))
    scaled = dict(AutoModelForCausalLM.from_pretrained(half, trust_remote_code=True).named_parameters())
    before, after = dict(untrained.named_parameters()), dict(whole.named_parameters())
    for name, param in scaled.items():
        expected = (before[name] + after[name]) / 2 if name.startswith("language_model.") else after[name]
        torch.testing.assert_close(param, expected, atol=1e-6, rtol=1e-5)
    assert any(not torch.equal(before[n], after[n]) for n in scaled if n.startswith("language_model."))
    with pytest.raises(ValueError, match="in part"):
        packing.set_delta_scale(1.5, source=shipped)


def test_nothing_ships_without_the_files(tmp_path) -> None:
    assert bundled_shipped.shipped_zip2zip_path(source=tmp_path) is None


def test_pack_names_what_is_missing(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"adapter_model\.safetensors"):
        packing.pack_zip2zip_checkpoint(tmp_path, tmp_path / "out")


@pytest.mark.slow
def test_the_shipped_checkpoint_loads_generates_and_exports(smollm2_path, tmp_path) -> None:
    path = bundled_shipped.shipped_zip2zip_path()
    assert path is not None, "the package must ship its trained checkpoint (zip2zip/bundled/checkpoints/)"
    from zip2zip.loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(path)
    assert model.config.max_codebook_size == 2048
    prompt = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\n"
    batch = tok(prompt, return_tensors="pt")
    out = model.generate(**batch, max_new_base_tokens=24, do_sample=False, eos_token_id=None)
    new = out[0][batch["input_ids"].shape[1] :].tolist()
    stats = model.last_generation_stats
    assert stats.base_tokens == [24] and len(new) == 24
    assert stats.hypertokens[0] > 0 and stats.codes[0] < 24, "the trained model writes code with hypertokens"
    assert tok.decode(new, skip_special_tokens=True).strip(), "the shipped model should continue the prompt"

    from zip2zip.cli import main
    from zip2zip.hub.export import check_repo_folder

    assert main(["export", "shipped", str(tmp_path / "repo")]) == 0
    check_repo_folder(tmp_path / "repo")
    card = (tmp_path / "repo" / "README.md").read_text()
    assert "zip2zip" in card and "SmolLM2" in card


def test_the_shipped_readme_says_where_a_continued_run_started(tmp_path):
    from zip2zip.bundled.packing import write_shipped_readme

    warm = {"init_from": "shipped", "changes": {"protect_whitespace": True}, "base_tokens_seen": 4_077_813}
    warm.update(global_step=2000, command="examples/train_smollm2.py --preset cpu-long")
    provenance = {
        "command": "continue",
        "global_step": 1000,
        "base_tokens_seen": 6_100_000,
        "warm_start": warm,
    }
    write_shipped_readme(tmp_path, {"zip2zip": dict(SETTINGS), "provenance": provenance})
    text = (tmp_path / "README.md").read_text()
    assert "- base tokens seen: 6,100,000" in text
    assert "continued from a trained model (shipped: 4,077,813 base tokens, 2000 steps" in text
    assert "with protect_whitespace=True" in text
