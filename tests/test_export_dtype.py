"""Exported repos: weights in the training dtype (bfloat16) or the one asked for, readable permissions, no local
paths, a card named after the base model that says how it compares; and an installed wheel exports too."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import torch
from _fresh_process import assert_same_report, fresh_generation_report, generation_report
from _saved_models import TINY_SETTINGS, saved_tiny_zip2zip
from _tiny_models import tiny_zip2zip

from zip2zip.hub.export import export_dtype, export_repo

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "the cat sat on the mat. the cat sat on the hat. the dog"
# Relative tolerance of logits per dtype (7 and 10 mantissa bits, through a few layers).
TOLERANCE = {"bfloat16": 0.05, "float16": 0.01, "float32": 1e-5}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    # perturbed encoders look trained: hypertoken logits then depend on every weight
    return saved_tiny_zip2zip(tmp_path_factory.mktemp("model") / "tiny-run", encoders={}, **TINY_SETTINGS)


def logits(model, tok) -> torch.Tensor:
    with torch.no_grad():
        return model(**tok(PROMPT, return_tensors="pt")).logits.float()


def assert_close(got: torch.Tensor, want: torch.Tensor, dtype: str) -> None:
    finite = torch.isfinite(want)
    assert torch.equal(finite, torch.isfinite(got))  # the same codebook mask
    scale = want[finite].abs().max()
    assert (got[finite] - want[finite]).abs().max() <= TOLERANCE[dtype] * scale


def test_the_default_is_bfloat16_unless_the_config_records_half_weights():
    class Config:
        dtype = "float32"

    assert export_dtype(Config()) == "bfloat16"
    Config.dtype = "float16"
    assert export_dtype(Config()) == "float16"
    assert export_dtype(Config(), "float32") == "float32"
    with pytest.raises(ValueError, match="int8"):
        export_dtype(Config(), "int8")


@pytest.mark.parametrize("dtype", [None, "float16", "float32"])
def test_export_writes_the_dtype_and_loads_in_another(saved, tmp_path, dtype):
    from transformers import AutoModelForCausalLM

    folder, model, tok = saved
    out = export_repo(
        folder, tmp_path / "repo", license="apache-2.0", base_model="org/tiny-base", dtype=dtype
    )
    written = dtype or "bfloat16"
    config = json.loads((out / "config.json").read_text())
    assert config["dtype"] == written
    assert config["text_config"]["_name_or_path"] == "org/tiny-base"  # never the local conversion path
    assert f"| weights | {written} |" in (out / "README.md").read_text()
    want = logits(model, tok)
    loaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    assert loaded.dtype == getattr(torch, written)
    assert_close(logits(loaded, tok), want, written)
    other = "float32" if written != "float32" else "bfloat16"
    converted = AutoModelForCausalLM.from_pretrained(
        out, trust_remote_code=True, dtype=getattr(torch, other)
    ).eval()
    assert converted.dtype == getattr(torch, other)
    assert_close(
        logits(converted, tok), want, max(written, other, key=TOLERANCE.get)
    )  # the coarser of the two
    size = (out / "model.safetensors").stat().st_size
    full = (folder / "model.safetensors").stat().st_size
    assert size < 0.6 * full if written != "float32" else size > 0.9 * full


def test_export_has_ordinary_permissions_and_a_named_card(saved, tmp_path):
    folder, _, _ = saved
    umask = os.umask(0o022)
    try:
        out = export_repo(folder, tmp_path / "repo", license="apache-2.0", base_model="org/Tiny-Base-1M")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o644}
    readme = (out / "README.md").read_text()
    assert "model_name: zip2zip-Tiny-Base-1M" in readme and "# zip2zip-Tiny-Base-1M" in readme
    assert "no quality measurement is included" in readme
    named = export_repo(
        folder, tmp_path / "named", license="mit", base_model="org/b", repo_id="me/my-zip2zip"
    )
    text = (named / "README.md").read_text()
    assert "# my-zip2zip" in text and 'from_pretrained("me/my-zip2zip"' in text


def test_the_card_compares_with_the_base_when_measured(saved, tmp_path):
    folder, _, _ = saved

    def side(bpb: float) -> dict:
        return {"bytes": 100, "compression": 1.25, "bits_per_byte": bpb}

    measurements = {
        "domains": {"prose": {"zip2zip": side(1.1), "base": side(1.0)}},
        "overall": {"zip2zip": side(1.1), "base": side(1.0)},
        "max_length": 64,
    }
    out = export_repo(folder, tmp_path / "repo", license="mit", base_model="org/b", measurements=measurements)
    readme = (out / "README.md").read_text()
    assert "**Compared with org/b:**" in readme
    assert "sequences are 20% shorter" in readme
    assert "1.1000 against 1.0000 for org/b: 10.0% more bits per byte (worse than the base)" in readme
    del measurements["overall"]["base"], measurements["domains"]["prose"]["base"]
    out = export_repo(
        folder, tmp_path / "alone", license="mit", base_model="org/b", measurements=measurements
    )
    assert "include no run of org/b, so its quality is not compared" in (out / "README.md").read_text()


def test_an_installed_wheel_exports(saved, tmp_path):
    """``pip install .`` (not editable) carries the model card template: build a wheel, install it into a venv that
    reuses this environment's packages, and export from there in a fresh process."""
    folder, _, _ = saved
    # Build from a copy of the sources git knows, so neither build/ nor egg-info lands in the checkout.
    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (root / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, source / name)
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            ".",
        ],
        cwd=source,
        check=True,
        timeout=300,
        env={**clean_env, "PIP_NO_INDEX": "1"},
    )
    (wheel,) = wheels.glob("zip2zip-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        timeout=300,
        env=clean_env,
    )
    # Then this environment's packages, as plain path entries (its .pth files, the editable zip2zip's among
    # them, are not run). Only after the install: pip must not see, let alone replace, this environment's zip2zip.
    parents = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "_parent_env.pth").write_text("\n".join(parents) + "\n")
    out = tmp_path / "exported"
    script = (
        "import sys, zip2zip; assert 'site-packages' in zip2zip.__file__ and '/work/' not in zip2zip.__file__, "
        "zip2zip.__file__; from zip2zip.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [python, "-c", script, "export", str(folder), str(out), "--license", "mit", "--base-model", "org/b"],
        cwd=tmp_path,
        env={**clean_env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "is a **zip2zip** version of [org/b]" in (out / "README.md").read_text()


def test_the_default_bfloat16_export_loads_and_generates_in_a_fresh_process(tmp_path):
    """The export users download (bfloat16, the default), loaded where only torch and transformers exist:
    batched generate, transition scores, prompt lookup, the pipeline with a batch of chats, all in bfloat16
    and equal to the same folder loaded here."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny_zip2zip(loud_hypertokens=True)
    model.save_pretrained(tmp_path / "saved")
    tok.save_pretrained(tmp_path / "saved")
    out = export_repo(tmp_path / "saved", tmp_path / "repo", license="apache-2.0", base_model="org/tiny-base")
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    prompts = ["the cat sat on the", "the cat sat on the mat. the cat sat on the hat. the cat"]
    here = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    expected = generation_report(here, AutoTokenizer.from_pretrained(out, trust_remote_code=True), prompts)
    got = fresh_generation_report(out, prompts, tmp_path)
    assert got["dtype"] == expected["dtype"] == "torch.bfloat16"
    assert_same_report(got, expected, atol=0.0)
    V = model.config.base_vocab_size
    assert any(code >= V for code in got["plain_codes"][len(got["ids"]) :]), (
        "bf16 generation uses hypertokens"
    )
