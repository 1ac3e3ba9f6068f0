"""The trained zip2zip model this package ships: where its files are, and assembling it into a loadable folder.

The package carries only what training changed (a PEFT adapter, or a full fine-tune's low-rank deltas,
:mod:`zip2zip.bundled.low_rank`) and the zip2zip settings, in ``zip2zip/bundled/checkpoints/``.
:func:`shipped_zip2zip_path` assembles the full model from them and the embedded base model once and caches it.
A delta may ship applied in part (``delta_scale`` in the settings): the base weights a step back toward the base.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zip2zip.bundled.base import HUB_MODEL_ID, default_base_path
from zip2zip.utils.cache import (
    CONVERSION_VERSION,
    MARKER_FILENAME,
    cache_root,
    is_complete,
    make_readable,
    make_temporary_folder,
    writer_lock,
)

if TYPE_CHECKING:
    pass
from zip2zip.model import CODE_DIR, CODE_FILES

logger = logging.getLogger(__name__)


SHIPPED_MODEL_NAME = "smollm2-135m-zip2zip"


SHIPPED_SETTINGS_FILENAME = "zip2zip_settings.json"


# Part of the cache name: bump when the assembled folder changes (v2: config.json records `trained`).
ASSEMBLY_VERSION = "v2"


_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


DELTA_FILENAME = "delta.safetensors"


def _shipped_files(source: Path) -> tuple[str, ...] | None:
    """The weight files of the shipped form in ``source`` (adapter or low-rank delta), or None if neither."""
    if not (source / SHIPPED_SETTINGS_FILENAME).is_file():
        return None
    if (source / DELTA_FILENAME).is_file():
        return (DELTA_FILENAME,)
    if all((source / name).is_file() for name in _ADAPTER_FILES):
        return _ADAPTER_FILES
    return None


def shipped_checkpoint_dir() -> Path:
    """Folder inside the package that holds the shipped adapter and settings (see its README.md)."""
    return Path(__file__).resolve().parent / "checkpoints" / SHIPPED_MODEL_NAME


def shipped_zip2zip_path(
    source: str | os.PathLike[str] | None = None, base_path: str | None = None
) -> str | None:
    """Return the folder of the trained zip2zip model assembled from the shipped weights, or None if none ships.

    The folder is a complete ``trust_remote_code`` repo (merged float32 weights, config, model code, tokenizer):
    ``AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True)`` loads it. Built on the first call
    (about 20 s on two cores) from ``source`` (default: :func:`shipped_checkpoint_dir`) and the base model at
    ``base_path`` (default: :func:`default_base_path`), then cached under a name that carries a hash of the
    shipped files and of the model code, so new weights or new code never reuse an old assembly.
    """
    source = Path(source) if source is not None else shipped_checkpoint_dir()
    if _shipped_files(source) is None:
        return None
    target = cache_root() / f"{SHIPPED_MODEL_NAME}-{_assembly_key(source)}"
    if is_complete(target):
        return str(target)
    base_path = base_path or default_base_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(target):  # also removes what an interrupted assembly left
        if not is_complete(target):
            _assemble_shipped(source, base_path, target)
            _remove_replaced_assemblies(source, target)
    return str(target)


def _remove_replaced_assemblies(source: Path, target: Path) -> list[Path]:
    """Remove the other assemblies of ``source`` in the cache (older weights or older code, 0.5 GB each).

    Only folders whose marker names this same ``source`` go: another installation of the package (another
    environment sharing the cache) keeps its own. Each is removed under its writer lock.
    """
    removed = []
    for folder in sorted(target.parent.glob(f"{SHIPPED_MODEL_NAME}-*")):
        if folder == target or not folder.is_dir() or folder.is_symlink() or not is_complete(folder):
            continue
        try:
            marker = json.loads((folder / MARKER_FILENAME).read_text())
        except (OSError, ValueError):
            continue
        if marker.get("kind") != "shipped zip2zip model" or marker.get("source") != str(source):
            continue
        with writer_lock(folder):
            shutil.rmtree(folder, ignore_errors=True)
        (folder.parent / f"{folder.name}.lock").unlink(missing_ok=True)
        removed.append(folder)
    if removed:
        logger.warning(
            "Removed %d earlier assembly(ies) of the shipped model: %s",
            len(removed),
            ", ".join(f.name for f in removed),
        )
    return removed


def _untrained_model(settings: dict[str, Any], base_path: str | None = None) -> tuple[Any, Any]:
    """The untrained zip2zip model of the embedded base with ``settings``: what the shipped weights apply to."""
    import torch

    from zip2zip.conversion import zip2zip_from_base

    settings = dict(settings)
    disabled = settings.pop("disabled_ids", None)
    return zip2zip_from_base(
        base_path or default_base_path(),
        dtype=torch.float32,
        **settings,
        **({"disabled_ids": disabled} if disabled else {}),
    )


def _zip2zip_setting_names() -> list[str]:
    """Zip2ZipConfig's own fields that `from_base` takes (not the base config, vocabulary size or inherited ones)."""
    from zip2zip.model.configuration_zip2zip import Zip2ZipConfig

    own = Zip2ZipConfig.__annotations__
    return [
        name for name in own if name not in ("text_config", "base_vocab_size", "trained", "trained_codec")
    ]


def _files_digest(source: Path) -> str:
    """Hash of the shipped files: what the release summary's numbers are tied to."""
    import hashlib

    digest = hashlib.sha256(ASSEMBLY_VERSION.encode())
    for name in (*(_shipped_files(source) or ()), SHIPPED_SETTINGS_FILENAME):
        digest.update((source / name).read_bytes())
    return digest.hexdigest()[:12]


def _assembly_key(source: Path) -> str:
    """Hash of the shipped files and of the model code an assembled folder carries (its ``trust_remote_code``
    files): a package with other code assembles anew instead of serving an old copy of the code."""
    import hashlib

    digest = hashlib.sha256(_files_digest(source).encode())
    for name in CODE_FILES:
        digest.update((CODE_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def build_shipped_model(
    source: str | os.PathLike[str] | None = None, scale: float | None = None, base_path: str | None = None
) -> tuple[Any, Any]:
    """The trained zip2zip model and its tokenizer built in memory from shipped weights (float32, eval mode).

    ``scale`` (default: the ``delta_scale`` the settings record, else 1) is how far a low-rank delta moves the
    base language model from its base (:func:`zip2zip.bundled.low_rank.apply_low_rank_delta`); an adapter is merged
    whole. :func:`shipped_zip2zip_path` saves what this returns; ``benchmarks.delta_scale`` compares scales.
    """
    source = Path(source) if source is not None else shipped_checkpoint_dir()
    files = _shipped_files(source)
    if files is None:
        raise FileNotFoundError(
            f"{source} holds no shipped weights ({SHIPPED_SETTINGS_FILENAME} with {DELTA_FILENAME} or an adapter)"
        )
    record = json.loads((source / SHIPPED_SETTINGS_FILENAME).read_text())
    scale = record.get("delta_scale", 1.0) if scale is None else scale
    model, tokenizer = _untrained_model(record["zip2zip"], base_path)
    if DELTA_FILENAME in files:
        from safetensors.torch import load_file

        from zip2zip.bundled.low_rank import apply_low_rank_delta

        apply_low_rank_delta(model, load_file(str(source / DELTA_FILENAME)), scale=scale)
        return model.eval(), tokenizer
    if scale != 1.0:
        raise ValueError(f"delta_scale={scale} needs low-rank delta weights; {source} ships a PEFT adapter")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(source)).merge_and_unload().float().eval(), tokenizer


def _assemble_shipped(source: Path, base_path: str, target: Path) -> None:
    """Untrained zip2zip model of the base + the shipped weights (adapter merged, or low-rank deltas added),
    saved through a temporary folder."""
    started = time.perf_counter()
    logger.warning("Assembling the shipped zip2zip model into %s (once, about 20 s)", target)
    record = json.loads((source / SHIPPED_SETTINGS_FILENAME).read_text())
    workdir = make_temporary_folder(target)
    try:
        merged, tokenizer = build_shipped_model(source, base_path=base_path)  # float32, eval mode
        merged.config.mark_trained()
        merged.save_pretrained(workdir, safe_serialization=True)
        tokenizer.save_pretrained(workdir)
        if DELTA_FILENAME not in (_shipped_files(source) or ()):
            # The adapter beside the merged weights, as training writes it: a trained model's folder layout.
            (workdir / "adapter").mkdir()
            for name in _ADAPTER_FILES:
                shutil.copyfile(source / name, workdir / "adapter" / name)
        marker = {
            "version": CONVERSION_VERSION,
            "kind": "shipped zip2zip model",
            "source": str(source),
            "source_digest": _files_digest(source),
            "base_model": record.get("base_model", HUB_MODEL_ID),
            "delta_scale": record.get("delta_scale", 1.0),
            "assembly_seconds": round(time.perf_counter() - started, 1),
        }
        (workdir / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n")
        make_readable(workdir)
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(workdir, target)
        except OSError:
            if not is_complete(target):
                raise
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
