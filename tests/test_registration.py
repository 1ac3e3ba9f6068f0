"""`import zip2zip` is light, and the Auto classes still resolve model_type "zip2zip" to our classes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._saved_models import save_tiny_base, save_tiny_zip2zip

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def zip2zip_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("registration")
    return save_tiny_zip2zip(root, save_tiny_base(root))


def test_import_zip2zip_imports_neither_torch_nor_transformers_and_every_public_name_resolves():
    result = run_python(
        "import json, sys, zip2zip\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "from zip2zip import *\n"
        "print(json.dumps([heavy, [name for name in zip2zip.__all__ if name not in globals()]]))"
    )
    assert result == [[], []]


@pytest.mark.parametrize(
    "before, after",
    [
        # transformers' Auto classes already imported: `import zip2zip` registers at once
        ("import transformers.models.auto", ""),
        # otherwise the explicit call, or the first zip2zip class the program touches, registers
        ("", "zip2zip.register()"),
        ("", "from zip2zip import Zip2ZipForCausalLM"),
        ("", "zip2zip.Zip2ZipTokenizer"),
    ],
)
def test_auto_classes_load_a_local_zip2zip_folder_without_remote_code(zip2zip_folder, before, after):
    result = run_python(
        f"import json\n{before}\nimport zip2zip\n{after}\n"
        "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer\n"
        f"folder = {str(zip2zip_folder)!r}\n"
        "config = AutoConfig.from_pretrained(folder)\n"
        "model = AutoModelForCausalLM.from_pretrained(folder)\n"
        "tokenizer = AutoTokenizer.from_pretrained(folder)\n"
        "print(json.dumps([type(o).__module__ + '.' + type(o).__name__ for o in (config, model, tokenizer)]))"
    )
    assert result == [
        "zip2zip.model.configuration_zip2zip.Zip2ZipConfig",
        "zip2zip.model.modeling_zip2zip.Zip2ZipForCausalLM",
        "zip2zip.model.tokenization_zip2zip.Zip2ZipTokenizer",
    ]


def test_the_loaders_register_and_nothing_registers_behind_the_programs_back(zip2zip_folder):
    result = run_python(
        "import json, sys, zip2zip\n"
        "from zip2zip.registration import is_registered\n"
        "from transformers import AutoConfig\n"
        "before = is_registered()\n"  # importing transformers afterwards changes nothing by itself
        f"model, tok = zip2zip.load_model_and_tokenizer({str(zip2zip_folder)!r})\n"
        "print(json.dumps([before, is_registered(), type(model).__name__]))"
    )
    assert result == [False, True, "Zip2ZipForCausalLM"]


def test_auto_model_loads_the_whole_zip2zip_model_with_and_without_the_package(zip2zip_folder, tmp_path):
    config = json.loads((Path(zip2zip_folder) / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_zip2zip.Zip2ZipForCausalLM"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_zip2zip.Zip2ZipForCausalLM"
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModel, AutoModelForCausalLM\n"
        "kwargs = {} if sys.argv[2] == 'local' else {'trust_remote_code': True}\n"
        "if sys.argv[2] == 'local':\n"
        "    import zip2zip\n"
        "model = AutoModel.from_pretrained(sys.argv[1], **kwargs).eval()\n"
        "causal = AutoModelForCausalLM.from_pretrained(sys.argv[1], **kwargs).eval()\n"
        "ids = torch.tensor([[5, 6, 7, 5, 6, 7, 5, 6]])\n"
        "with torch.no_grad():\n"
        "    out, ref = model(input_ids=ids, output_hidden_states=True), causal(input_ids=ids)\n"
        "print(json.dumps([type(model).__name__, torch.equal(out.logits, ref.logits), len(out.hidden_states)]))\n"
    )
    from tests._fresh_process import last_json_line, run_without_package

    remote = last_json_line(run_without_package(script, str(zip2zip_folder), "remote", workdir=tmp_path))
    local = run_python(f"import sys\nsys.argv = ['-', {str(zip2zip_folder)!r}, 'local']\n" + script)
    for name, equal, layers in (remote, local):
        assert name == "Zip2ZipForCausalLM" and equal and layers > 1
