"""The model code every exported Hub repo carries: codec, configuration, tokenizer, model, generation.

Each file here imports only the standard library, torch, transformers and its siblings (flat relative imports), so
`save_pretrained` copies them into a repo that loads with `trust_remote_code=True` and nothing else installed.
This folder is the export's manifest: :data:`CODE_FILES` lists it.
"""

from pathlib import Path

CODE_DIR = Path(__file__).resolve().parent
"""This folder."""

CODE_FILES: tuple[str, ...] = tuple(sorted(p.name for p in CODE_DIR.glob("*.py") if p.name != "__init__.py"))
"""Every remote-code file of the folder (what an exported repo holds besides weights, config and tokenizer)."""
