"""Temporary folders that killed cache writers left behind are removed by the next writer, under the lock.

The shipped-model assembly runs for real on a tiny base; the base-model conversion is exercised through its
lock (the conversion itself needs the real GGUF file and a minute, so the test lets another "writer" finish it).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from _tiny_models import tiny_base_model
from _tiny_tokenizers import TRAINING_TEXT, tiny_bpe_tokenizer
from _training import config
from datasets import Dataset
from safetensors.torch import load_file

from zip2zip.bundled import base as bundled_base
from zip2zip.bundled import packing
from zip2zip.bundled import shipped as bundled_shipped
from zip2zip.conversion import zip2zip_from_base
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer
from zip2zip.utils import cache as cache_utils
from zip2zip.utils.peft import default_lora_config

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = {"max_codebook_size": 64, "max_subtokens": 4, "encoder_num_layers": 1}


def plant(folder: Path, files: dict[str, bytes]) -> Path:
    """A folder as a writer killed half-way leaves it."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def temporaries(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.glob(f".{target.name}.tmp-*"))


@pytest.fixture
def shipped_files(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny base on disk and the shipped files of a one-step LoRA run on it: (base dir, shipped dir)."""
    base_dir, run_dir = tmp_path / "base", tmp_path / "run"
    base_tok = tiny_bpe_tokenizer()
    tiny_base_model(vocab_size=len(base_tok)).save_pretrained(base_dir)
    base_tok.save_pretrained(base_dir)
    torch.manual_seed(0)
    model, tok = zip2zip_from_base(str(base_dir), **SETTINGS)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=1, learning_rate=1e-2),
        train_dataset=Dataset.from_dict({"text": TRAINING_TEXT}),
        processing_class=tok,
        peft_config=default_lora_config(model, r=4, alpha=8),
    )
    trainer.train()
    trainer.save_model(str(run_dir))
    return base_dir, packing.pack_zip2zip_checkpoint(run_dir, tmp_path / "ship")


def test_assembly_removes_what_a_killed_assembly_left(shipped_files, tmp_path, monkeypatch, caplog) -> None:
    base_dir, source = shipped_files
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(tmp_path / "clean"))
    reference = Path(bundled_shipped.shipped_zip2zip_path(source=source, base_path=str(base_dir)))

    cache = tmp_path / "cache"
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(cache))
    target = cache / reference.name
    stale = plant(
        cache / f".{target.name}.tmp-k1lled01",
        {"config.json": b"{}", "model.safetensors": b"\0" * 4096, "adapter/adapter_config.json": b"{"},
    )
    stale_file = plant(cache / f".{target.name}.tmp-k1lled02", {})  # an empty one, as mkdtemp leaves it
    other_shipped = plant(
        cache / f".{bundled_shipped.SHIPPED_MODEL_NAME}-0123456789ab.tmp-other001", {"x": b"1"}
    )
    other_base = plant(cache / f".{bundled_base.DEFAULT_MODEL_DIRNAME}.tmp-other002", {"x": b"2"})
    longer_name = plant(cache / f".{target.name}-v2.tmp-other003", {"x": b"3"})

    with caplog.at_level(logging.WARNING, logger="zip2zip.utils.cache"):
        path = bundled_shipped.shipped_zip2zip_path(source=source, base_path=str(base_dir))
    assert path == str(target) and cache_utils.is_complete(path)
    assert not stale.exists() and not stale_file.exists() and temporaries(target) == []
    assert other_shipped.exists() and other_base.exists() and longer_name.exists(), (
        "other targets are not ours"
    )
    assert any("k1lled01" in r.getMessage() and "k1lled02" in r.getMessage() for r in caplog.records)
    # The assembly is the one a clean cache gets.
    got, want = load_file(str(target / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name


def test_writer_lock_removes_only_its_targets_temporaries(tmp_path) -> None:
    target = tmp_path / "model-abc"
    ours = [plant(tmp_path / f".model-abc.tmp-{i}", {"w": b"0"}) for i in ("a1", "b2")]
    (tmp_path / ".model-abc.tmp-file").write_text("a temporary file")
    kept = [
        plant(tmp_path / "model-abc", {"zip2zip_conversion.json": b"{}"}),  # the target itself
        plant(tmp_path / ".model-abcd.tmp-x", {}),
        plant(tmp_path / ".model-ab.tmp-x", {}),
        plant(tmp_path / ".other.tmp-x", {}),
        plant(tmp_path / "model-abc.tmp-x", {}),  # not hidden: not a name make_temporary_folder gives
    ]
    live = None
    with cache_utils.writer_lock(target):
        assert not any(p.exists() for p in ours) and not (tmp_path / ".model-abc.tmp-file").exists()
        assert all(p.exists() for p in kept)
        live = cache_utils.make_temporary_folder(target)
        assert live.name.startswith(".model-abc.tmp-")
    assert (tmp_path / "model-abc.lock").exists() and live.exists()
    with cache_utils.writer_lock(target):  # the next writer: the previous one died without cleaning up
        assert not live.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="needs fcntl locks")
def test_base_conversion_cleans_up_under_its_lock(tmp_path, monkeypatch) -> None:
    """A converter waiting for the lock removes what a killed converter left, then finds the finished copy."""
    try:
        bundled_base.find_gguf()
    except bundled_base.DefaultModelUnavailableError as error:
        pytest.skip(str(error))
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(tmp_path))
    target = tmp_path / bundled_base.DEFAULT_MODEL_DIRNAME
    stale = plant(tmp_path / f".{target.name}.tmp-k1lled03", {"model.safetensors": b"\0" * 4096})
    other = plant(tmp_path / f".{bundled_shipped.SHIPPED_MODEL_NAME}-0123456789ab.tmp-other004", {"x": b"4"})
    results: list[str] = []
    with cache_utils.file_lock(tmp_path / f"{target.name}.lock"):  # a converter at work
        waiter = threading.Thread(target=lambda: results.append(bundled_base.default_base_path()))
        waiter.start()
        deadline = time.monotonic() + 30
        while not _waits_in_file_lock(waiter):  # past the unlocked fast path, waiting for the lock
            assert waiter.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)
        assert stale.exists(), "nothing may be removed before the lock is held"
        # The working converter finishes (its marker is written last).
        plant(
            target,
            {cache_utils.MARKER_FILENAME: f'{{"version": "{cache_utils.CONVERSION_VERSION}"}}'.encode()},
        )
    waiter.join(30)
    assert results == [str(target)]
    assert not stale.exists() and other.exists()


def _waits_in_file_lock(thread: threading.Thread) -> bool:
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if frame.f_code is cache_utils.file_lock.__wrapped__.__code__:
            return True
        frame = frame.f_back
    return False
