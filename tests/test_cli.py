"""The `zip2zip` command line: compress and the demo, on a tiny saved tokenizer and on SmolLM2."""

from __future__ import annotations

import pytest

from tests._tiny_tokenizers import tiny_bpe_tokenizer
from zip2zip.cli import compression_stats, main
from zip2zip.tokenization_zip2zip import Zip2ZipTokenizer


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The CLI picks torch's thread count for its process; keep that from leaking into other tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


TEXT = "the cat sat on the mat. the cat sat on the hat. the cat sat on the mat.\n" * 6


def test_compress_prints_counts_matching_the_codec(tmp_path, capsys):
    base = tiny_bpe_tokenizer()
    base.save_pretrained(tmp_path / "base")
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    code = main(
        [
            "compress",
            str(tmp_path / "a.txt"),
            "--tokenizer",
            str(tmp_path / "base"),
            "--no-color",
            "--context",
            "64",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    tokenizer = Zip2ZipTokenizer.from_base(base, {"max_codebook_size": 2048, "max_subtokens": 4})
    stats = compression_stats(tokenizer, TEXT, 64)
    ids = base(TEXT, add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + 64] for i in range(0, len(ids), 64)]
    assert stats["codes"] == sum(len(tokenizer.codec.encode(w)) for w in windows)
    assert stats["base_tokens"] == len(ids)
    assert f"{stats['base_tokens']:,}" in out and f"{stats['codes']:,}" in out
    assert f"{stats['ratio']:.3f}" in out
    assert "[" in out  # hypertokens bracketed in the plain view


def test_compress_reports_unreadable_files(tmp_path):
    base = tiny_bpe_tokenizer()
    base.save_pretrained(tmp_path / "base")
    with pytest.raises(SystemExit, match="cannot read"):
        main(["compress", str(tmp_path / "missing.txt"), "--tokenizer", str(tmp_path / "base")])


@pytest.mark.slow
def test_demo_runs_on_the_embedded_model(smollm2_path, capsys):
    assert main(["demo", "--no-color", "--samples", "2", "--context", "256", "--new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "code" in out and "ratio" in out
