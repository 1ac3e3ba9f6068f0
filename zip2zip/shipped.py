"""The trained zip2zip model this package ships, and how a trained run becomes one.

The project ships one trained zip2zip model of the default base (:mod:`zip2zip.defaults`): only what training
changed plus the zip2zip settings, inside the package (``zip2zip/checkpoints/``). Two forms: a PEFT adapter
(LoRA on the base projections and the two hyper-encoders, float16) for a LoRA run, and for a run that
fine-tuned the whole model its low-rank deltas (:mod:`zip2zip.low_rank`: ``delta.safetensors``), because the
full weights are too large for a package. :func:`shipped_zip2zip_path` assembles the full model
from them and the embedded base model once and caches it like the base conversion;
:func:`pack_zip2zip_checkpoint` turns a training run's output into those files. A delta may ship applied in
part (``delta_scale`` in the settings, :func:`set_delta_scale`): the base weights a step back toward the base.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .defaults import (
    CONVERSION_VERSION,
    HUB_MODEL_ID,
    MARKER_FILENAME,
    cache_root,
    default_base_path,
    is_complete,
    make_readable,
    make_temporary_folder,
    writer_lock,
)
from .model_card import RELEASE_SUMMARY_FILENAME

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "SHIPPED_MODEL_NAME",
    "SHIPPED_SETTINGS_FILENAME",
    "build_shipped_model",
    "pack_zip2zip_checkpoint",
    "set_delta_scale",
    "shipped_checkpoint_dir",
    "shipped_zip2zip_path",
    "write_shipped_readme",
]

SHIPPED_MODEL_NAME = "smollm2-135m-zip2zip"
SHIPPED_SETTINGS_FILENAME = "zip2zip_settings.json"
# Part of the cache name: bump when the assembled folder changes (v2: config.json records `trained`).
ASSEMBLY_VERSION = "v2"
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
DELTA_FILENAME = "delta.safetensors"
DEFAULT_DELTA_BUDGET = 40_000_000
"""Numbers a fully fine-tuned run keeps (80 MB in float16). Measured on the release run at step 643 (3,000
held-out characters of six domains, pooled strict bits per byte): full weights 1.2528, 40M numbers 1.2651 (79%
of the weights' squared change), 20M numbers 1.2906 (67%); on the quality study's shorter fine-tune 20M numbers
gave 1.4182 against the full weights' 1.4001."""


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


def pack_zip2zip_checkpoint(
    trained_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
    provenance: dict[str, Any] | None = None,
    delta_budget: int = DEFAULT_DELTA_BUDGET,
    base_path: str | None = None,
) -> Path:
    """Write the shippable part of a trained zip2zip repo (``zip2zip train`` / ``Zip2ZipSFTTrainer`` output).

    Reads ``trained_dir/config.json`` (the zip2zip settings) and either ``trained_dir/adapter`` (the PEFT
    adapter: LoRA plus the hyper-encoders in ``modules_to_save``), or, for a run that fine-tuned the whole model,
    its weights, which become low-rank deltas from the untrained model of the embedded base in at most
    ``delta_budget`` numbers (:func:`zip2zip.low_rank.extract_low_rank_delta`; ``base_path``: the base model,
    default the embedded one, which is what the shipped deltas are assembled onto). Floating tensors are cast to
    ``dtype`` (float16 by default: half the size, and float16 keeps 10 mantissa bits where bfloat16 keeps 7)
    and written with the settings to ``out_dir`` (default: :func:`shipped_checkpoint_dir`); the files of the
    other form are removed. ``provenance`` (training settings, steps, measurements) is stored in the settings
    file for the record.
    """
    import torch

    trained = Path(trained_dir)
    adapter = trained / "adapter"
    has_adapter = all((adapter / name).is_file() for name in _ADAPTER_FILES)
    has_weights = any(trained.glob("model*.safetensors"))
    if not (trained / "config.json").is_file() or not (has_adapter or has_weights):
        raise FileNotFoundError(
            f"{trained} is not a trained zip2zip repo: it needs config.json and either adapter/ "
            f"({', '.join(_ADAPTER_FILES)}) or model weights (model.safetensors). Pass the --output folder "
            "of `zip2zip train` or examples/train_smollm2.py, or one of its checkpoint-* folders."
        )
    config = json.loads((trained / "config.json").read_text())
    if config.get("model_type") != "zip2zip":
        raise ValueError(f"{trained}/config.json has model_type {config.get('model_type')!r}, not 'zip2zip'")
    settings = {key: config[key] for key in _zip2zip_setting_names() if key in config}
    out = Path(out_dir) if out_dir is not None else shipped_checkpoint_dir()
    out.mkdir(parents=True, exist_ok=True)
    dtype = dtype or torch.float16
    record: dict[str, Any] = {"base_model": HUB_MODEL_ID, "zip2zip": settings, "provenance": provenance or {}}
    if has_adapter:
        _pack_adapter(adapter, out, dtype)
        stale: tuple[str, ...] = (DELTA_FILENAME,)
    else:
        record["low_rank_delta"] = _pack_delta(trained, settings, out, dtype, delta_budget, base_path)
        stale = _ADAPTER_FILES
    # The release benchmark's summary describes the weights it measured, not these.
    for name in (*stale, RELEASE_SUMMARY_FILENAME):
        (out / name).unlink(missing_ok=True)
    (out / SHIPPED_SETTINGS_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
    write_shipped_readme(out, record)
    make_readable(out)
    return out


def write_shipped_readme(out: Path, record: dict[str, Any]) -> None:
    """The shipped folder's README.md: what the files are, how the run was trained, where the results are."""
    settings, provenance, delta = (
        record["zip2zip"],
        record.get("provenance") or {},
        record.get("low_rank_delta"),
    )
    if delta:
        weights = [
            "The trained part of a zip2zip model of SmolLM2-135M-Instruct, fine-tuned in full: the change of every",
            "weight matrix of the base as a truncated SVD (two float16 factors, ranks chosen jointly under a budget",
            f"of {delta['budget']:,} numbers: {delta['rank_min']} to {delta['rank_max']}, median {delta['rank_median']};"
            f" {delta['kept_energy']:.1%} of the squared change), the",
            f"norms and the two hyper-encoders whole (`{DELTA_FILENAME}`, `zip2zip.low_rank`), and",
        ]
    else:
        weights = [
            "The trained part of a zip2zip model of SmolLM2-135M-Instruct: a PEFT adapter (`adapter_model.safetensors`,",
            "float16) holding LoRA on the base model's projections and the two hyper-encoders (`modules_to_save`), and",
        ]
    run = [
        f"- command: `{provenance.get('command') or 'not recorded'}`",
        f"- optimizer steps: {provenance.get('global_step')}, rows per step: {provenance.get('train_batch_size')}",
        f"- base tokens seen: {int(provenance.get('base_tokens_seen') or 0):,}",
    ]
    warm = provenance.get("warm_start") or {}
    if warm:
        changes = (
            ", ".join(f"{k}={v}" for k, v in (warm.get("changes") or {}).items()) or "no setting changed"
        )
        run.append(
            f"- continued from a trained model ({warm.get('init_from')}: {int(warm.get('base_tokens_seen') or 0):,} "
            f"base tokens, {warm.get('global_step')} steps, `{warm.get('command')}`) with {changes}; the steps "
            "above are the continuation's, the tokens both runs'"
        )
    final = provenance.get("final_logged") or {}
    if final:
        run.append(
            f"- last logged training batch: loss {final.get('lm_loss', 0):.3f}, bits per byte "
            f"{final.get('bits_per_byte', 0):.3f}, base tokens per code {final.get('compression_ratio', 0):.3f}"
        )
    heldout = provenance.get("heldout") or {}
    if heldout:
        domains = ", ".join(
            f"{name.removeprefix('heldout_bpb_')} {value:.4f}"
            for name, value in heldout.items()
            if name.startswith("heldout_bpb_")
        )
        run.append(
            f"- held-out strict bits per byte of the trained weights (before packing): {heldout.get('heldout_bpb', float('nan')):.4f} pooled "
            f"({domains})"
        )
    scale = record.get("delta_scale", 1.0)
    scaled = []
    if scale != 1.0:
        chosen = (record.get("delta_scale_selection") or {}).get("how", "")
        scaled = [
            f"The delta is applied at scale {scale} (`delta_scale`): each weight of the base language model sits at",
            f"base + {scale} x (trained - base), a step back toward the base that keeps more of what it knew about",
            "text the run never saw (weight interpolation, WiSE-FT); the hyper-encoders are whole.",
            *([chosen] if chosen else []),
            "",
        ]
    lines = [
        "# zip2zip-SmolLM2-135M (shipped weights)",
        "",
        *weights,
        f"the zip2zip settings (`{SHIPPED_SETTINGS_FILENAME}`). `zip2zip.defaults.shipped_zip2zip_path()` assembles the full",
        "model from them and the embedded base model (once, cached) and returns a `trust_remote_code` folder.",
        "",
        *scaled,
        "## Training run",
        "",
        *run,
        "- zip2zip settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "disabled_ids"),
        "",
        "Curves: `benchmarks/results/release/`; measured against the base model in `benchmarks/RESULTS.md`",
        "(`python benchmarks/release.py`).",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def _pack_adapter(adapter: Path, out: Path, dtype: torch.dtype) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = HUB_MODEL_ID
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")


def _pack_delta(
    trained: Path, settings: dict[str, Any], out: Path, dtype: torch.dtype, budget: int, base_path: str | None
) -> dict:
    """The fully fine-tuned weights of ``trained`` as low-rank deltas; returns what was kept, for the record."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from .low_rank import extract_low_rank_delta

    model = AutoModelForCausalLM.from_pretrained(str(trained), trust_remote_code=True, dtype=torch.float32)
    base, _ = _untrained_model(settings, base_path)
    delta = extract_low_rank_delta(model, base, budget, dtype=dtype)
    save_file(delta.tensors, str(out / DELTA_FILENAME), metadata={"format": "pt"})
    return {"budget": budget, **delta.summary()}


def _untrained_model(settings: dict[str, Any], base_path: str | None = None) -> tuple[Any, Any]:
    """The untrained zip2zip model of the embedded base with ``settings``: what the shipped weights apply to."""
    import torch

    from .conversion import zip2zip_from_base

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
    from .configuration_zip2zip import Zip2ZipConfig

    own = Zip2ZipConfig.__annotations__
    return [name for name in own if name not in ("text_config", "base_vocab_size", "trained")]


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

    from .hub import CODE_FILES

    digest = hashlib.sha256(_files_digest(source).encode())
    package = Path(__file__).resolve().parent
    for name in CODE_FILES:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:12]


def build_shipped_model(
    source: str | os.PathLike[str] | None = None, scale: float | None = None, base_path: str | None = None
) -> tuple[Any, Any]:
    """The trained zip2zip model and its tokenizer built in memory from shipped weights (float32, eval mode).

    ``scale`` (default: the ``delta_scale`` the settings record, else 1) is how far a low-rank delta moves the
    base language model from its base (:func:`zip2zip.low_rank.apply_low_rank_delta`); an adapter is merged
    whole. :func:`shipped_zip2zip_path` saves what this returns; ``benchmarks/delta_scale.py`` compares scales.
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

        from .low_rank import apply_low_rank_delta

        apply_low_rank_delta(model, load_file(str(source / DELTA_FILENAME)), scale=scale)
        return model.eval(), tokenizer
    if scale != 1.0:
        raise ValueError(f"delta_scale={scale} needs low-rank delta weights; {source} ships a PEFT adapter")
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(source)).merge_and_unload().float().eval(), tokenizer


def set_delta_scale(
    scale: float, selection: dict[str, Any] | None = None, source: str | os.PathLike[str] | None = None
) -> Path:
    """Record in the shipped settings that the delta is applied at ``scale`` (see :func:`build_shipped_model`).

    ``selection`` says how the scale was chosen (the benchmark, its data and rule), for the record and the
    README. The release summary is removed: it measured other weights. The assembly key changes with the
    settings file, so the next :func:`shipped_zip2zip_path` assembles the scaled model.
    """
    from .low_rank import check_delta_scale

    source = Path(source) if source is not None else shipped_checkpoint_dir()
    if _shipped_files(source) != (DELTA_FILENAME,):
        raise ValueError(f"{source} ships no low-rank delta ({DELTA_FILENAME}); only a delta can be scaled")
    check_delta_scale(scale)
    path = source / SHIPPED_SETTINGS_FILENAME
    record = json.loads(path.read_text())
    record["delta_scale"] = scale
    if selection is not None:
        record["delta_scale_selection"] = selection
    path.write_text(json.dumps(record, indent=2) + "\n")
    (source / RELEASE_SUMMARY_FILENAME).unlink(missing_ok=True)
    write_shipped_readme(source, record)
    return source


def _assemble_shipped(source: Path, base_path: str, target: Path) -> None:
    """Untrained zip2zip model of the base + the shipped weights (adapter merged, or low-rank deltas added),
    saved through a temporary folder."""
    started = time.perf_counter()
    logger.warning("Assembling the shipped zip2zip model into %s (once, about 20 s)", target)
    record = json.loads((source / SHIPPED_SETTINGS_FILENAME).read_text())
    workdir = make_temporary_folder(target)
    try:
        merged, tokenizer = build_shipped_model(source, base_path=base_path)  # float32, eval mode
        merged.config.trained = True
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
