"""The files that travel into every exported repo: which they are, what they import, that save_pretrained
copies all of them (transformers copies each Auto class's module and, recursively, its relative imports)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from _tiny_models import tiny_base_model
from _tiny_tokenizers import tiny_bpe_tokenizer

from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer
from zip2zip.model import CODE_FILES

PACKAGE = Path(__file__).parents[1] / "zip2zip" / "model"
REMOTE_FILES = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")


def test_code_files_are_the_model_folder_and_nothing_outside_it_is_remote_code():
    assert sorted(CODE_FILES) == REMOTE_FILES
    outside = [
        p
        for p in PACKAGE.parent.rglob("*.py")
        if PACKAGE not in p.parents and (p.name.endswith("_zip2zip.py") or p.name.startswith("lzw"))
    ]
    assert outside == []


def test_remote_code_files_import_only_torch_transformers_stdlib_and_siblings():
    allowed = {"torch", "transformers", "numpy"} | set(sys.stdlib_module_names)
    for name in REMOTE_FILES:
        tree = ast.parse((PACKAGE / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
                assert roots <= allowed, (name, roots)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    # flat: `from .x import y`, never `from . import x` or a sub-package
                    assert node.level == 1 and node.module and "." not in node.module, (name, node.module)
                    assert f"{node.module}.py" in REMOTE_FILES, (name, node.module)
                else:
                    assert node.module.split(".")[0] in allowed, (name, node.module)
        assert "zip2zip." not in (PACKAGE / name).read_text().replace("_zip2zip.", ""), name
    codec = {"lzw", "lzw_inputs", "lzw_decoder", "lzw_seed", "lzw_state"}
    for name in codec:  # the codec stands alone: its files import only each other
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        siblings = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
        assert siblings <= codec, (name, siblings)


def test_save_pretrained_copies_every_remote_code_file(tmp_path):
    base_tok = tiny_bpe_tokenizer()
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok)), tokenizer=base_tok, max_codebook_size=8
    )
    model.save_pretrained(tmp_path / "model")
    Zip2ZipTokenizer.from_base(base_tok, model.config).save_pretrained(tmp_path / "tokenizer")
    saved_model = {p.name for p in (tmp_path / "model").glob("*.py")}
    saved_tokenizer = {p.name for p in (tmp_path / "tokenizer").glob("*.py")}
    assert sorted(saved_model | saved_tokenizer) == REMOTE_FILES
    # Each side alone is complete: a model folder loads without the tokenizer's files and vice versa.
    for folder, entry in ((saved_model, "modeling_zip2zip.py"), (saved_tokenizer, "tokenization_zip2zip.py")):
        assert entry in folder
        for file in folder:
            tree = ast.parse((PACKAGE / file).read_text())
            needed = {f"{n.module}.py" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level}
            assert needed <= folder, (file, needed - folder)
