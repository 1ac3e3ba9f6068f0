"""Every Python block of README.md runs as written, so the README cannot drift from the code.

The blocks use placeholders a reader fills in (`"path-or-id"`, `ds`, `ids`, `model`); here they are a tiny base
model folder, a tiny dataset and a few base ids, and the first block's shipped model is a tiny exported repo, so
each block runs in seconds. The blocks that load the shipped model also run on the real one (slow).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
from datasets import Dataset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _block(marker: str) -> str:
    found = [block for block in BLOCKS if marker in block]
    assert len(found) == 1, f"expected one README python block containing {marker!r}, found {len(found)}"
    return found[0]


def test_every_block_is_covered():
    markers = (
        "AutoModelForCausalLM.from_pretrained(repo",
        'from_base("path-or-id")',
        "LZWCodec(",
        "change_codec(",
        "model, tok, trained = load_zip2zip()",
        "apply_seed(",
        "OpenAI(base_url",  # run against a live server by tests/test_serving.py
    )
    assert len(BLOCKS) == len(markers)
    for marker in markers:
        _block(marker)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    folder = tmp_path_factory.mktemp("base")
    tok = tiny_bpe_tokenizer()
    tiny_base_model(vocab_size=len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_making_one_from_any_decoder(tiny_base, tmp_path, monkeypatch):
    """The training block as written, on fewer steps: the saved repo is the trained model (merged)."""
    from transformers import AutoModelForCausalLM

    from zip2zip import Zip2ZipForCausalLM

    monkeypatch.chdir(tmp_path)
    code = _block('from_base("path-or-id")').replace("path-or-id", str(tiny_base))
    assert "max_steps=200" in code
    namespace = {"ds": Dataset.from_dict({"text": TRAINING_TEXT})}
    exec(compile(code.replace("max_steps=200", "max_steps=20"), "README.md", "exec"), namespace)
    trainer = namespace["trainer"]
    assert trainer.state.global_step == 20
    assert (tmp_path / "out" / "final" / "adapter" / "adapter_config.json").is_file()
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "final", trust_remote_code=True).eval()
    assert saved.config.trained is True
    ids = namespace["tok"](TRAINING_TEXT[0] + " " + TRAINING_TEXT[0], return_tensors="pt")["input_ids"]
    untrained = Zip2ZipForCausalLM.from_base(str(tiny_base)).eval()
    # The float32 weights as trained, without the bf16 autocast the Trainer wraps around `forward` on CPUs with bf16
    trained = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        torch.testing.assert_close(saved(input_ids=ids).logits, expected, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(untrained(input_ids=ids).logits, expected, atol=1e-3)


def test_using_a_zip2zip_model(tiny_base, tmp_path, capsys, monkeypatch):
    from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer
    from zip2zip.bundled import shipped
    from zip2zip.hub.export import export_repo

    model = Zip2ZipForCausalLM.from_base(str(tiny_base), max_codebook_size=64)
    tok = Zip2ZipTokenizer.from_base(str(tiny_base), model.config)
    model.save_pretrained(tmp_path / "saved")
    tok.save_pretrained(tmp_path / "saved")
    repo = export_repo(tmp_path / "saved", tmp_path / "repo", base_model="tiny/base", license="apache-2.0")
    monkeypatch.setattr(shipped, "shipped_zip2zip_path", lambda: str(repo))  # the block's first line
    code = _block("AutoModelForCausalLM.from_pretrained(repo")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["repo"] == str(repo)
    printed = capsys.readouterr().out
    batch, out, tok = namespace["batch"], namespace["out"], namespace["tok"]
    first = tok.decode(out[0][batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert out.shape[0] == 2 and printed.startswith(first + "\nZip2ZipGenerationStats(steps=")
    # The pipeline continues the same prompt alone as the batch did (greedy): prompt + the same text.
    assert printed.endswith("def fib(n):" + first + "\n"), printed[-300:]


def test_the_codec_block():
    ids = tiny_bpe_tokenizer()("the cat sat on the mat. the cat sat on the mat.")["input_ids"]
    exec(compile(_block("LZWCodec("), "README.md", "exec"), {"ids": ids})


def test_the_change_codec_block(tiny_base):
    from transformers import AutoTokenizer

    from zip2zip import Zip2ZipForCausalLM

    model = Zip2ZipForCausalLM.from_base(str(tiny_base), max_codebook_size=64, protect_whitespace=False)
    namespace = {"model": model, "base_tokenizer": AutoTokenizer.from_pretrained(tiny_base)}
    exec(compile(_block("change_codec("), "README.md", "exec"), namespace)
    assert model.config.protect_whitespace and namespace["tok"].protect_whitespace
    assert model.config.max_subtokens == 2 == namespace["tok"].max_subtokens
    assert set(namespace["tok"].disabled_ids) == set(model.config.disabled_ids)


@pytest.mark.slow
def test_the_first_block_runs_as_written_on_the_shipped_model(capsys):
    namespace: dict = {}
    exec(compile(_block("AutoModelForCausalLM.from_pretrained(repo"), "README.md", "exec"), namespace)
    assert namespace["model"].config.model_type == "zip2zip"
    assert "def fib(n):" in capsys.readouterr().out


@pytest.mark.slow
def test_the_shipped_model_block():
    namespace: dict = {}
    exec(compile(_block("model, tok, trained = load_zip2zip()"), "README.md", "exec"), namespace)
    assert namespace["trained"] is True and namespace["model"].config.model_type == "zip2zip"


@pytest.mark.slow
def test_the_seed_block_on_the_shipped_model(tmp_path, monkeypatch):
    from zip2zip.bundled.base import load_default_tokenizer
    from zip2zip.seeding import Seed, build_seed

    base = load_default_tokenizer()
    ids = base("def f(x):\n    return x\n" * 20 + "The cat sat on the mat. " * 20)["input_ids"]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    # the seed the block reads: a few runs of the shipped model's codec, built as `zip2zip seed` builds one
    from zip2zip import load_zip2zip

    _, tok, _ = load_zip2zip()
    codec = tok.codec
    entries = build_seed([ids], 16, base_vocab_size=codec.base_vocab_size, max_subtokens=codec.max_subtokens,
                         disabled_ids=codec.disabled_ids)  # fmt: skip
    Seed(entries=tuple(map(tuple, entries)), base_vocab_fingerprint=tok.base_vocab_fingerprint).save(
        "seed.json"
    )
    exec(compile(_block("apply_seed("), "README.md", "exec"), namespace)
    seeded = namespace["tok"]
    assert [tuple(e) for e in seeded.codec.initial_codebook] == [tuple(e) for e in entries]
    assert len(seeded(" return x\n")["input_ids"]) < len(base(" return x\n")["input_ids"])
