"""Turning a training run into the shipped form: an adapter, or low-rank deltas of a full fine-tune, with the
settings and a README, packed into ``zip2zip/bundled/checkpoints/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zip2zip.bundled.base import HUB_MODEL_ID
from zip2zip.bundled.release_summary import RELEASE_SUMMARY_FILENAME
from zip2zip.utils.cache import (
    make_readable,
)

if TYPE_CHECKING:
    import torch
from zip2zip.bundled.low_rank import check_delta_scale, extract_low_rank_delta
from zip2zip.bundled.shipped import (
    _ADAPTER_FILES,
    DELTA_FILENAME,
    SHIPPED_SETTINGS_FILENAME,
    _shipped_files,
    _untrained_model,
    _zip2zip_setting_names,
    shipped_checkpoint_dir,
)

DEFAULT_DELTA_BUDGET = 40_000_000
"""Numbers a fully fine-tuned run keeps (80 MB in float16). Measured on the release run at step 643 (3,000
held-out characters of six domains, pooled strict bits per byte): full weights 1.2528, 40M numbers 1.2651 (79%
of the weights' squared change), 20M numbers 1.2906 (67%); on the quality study's shorter fine-tune 20M numbers
gave 1.4182 against the full weights' 1.4001."""


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
    ``delta_budget`` numbers (:func:`zip2zip.bundled.low_rank.extract_low_rank_delta`; ``base_path``: the base model,
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
            f"norms and the two hyper-encoders whole (`{DELTA_FILENAME}`, `zip2zip.bundled.low_rank`), and",
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
        f"the zip2zip settings (`{SHIPPED_SETTINGS_FILENAME}`). `zip2zip.bundled.shipped.shipped_zip2zip_path()` assembles the full",
        "model from them and the embedded base model (once, cached) and returns a `trust_remote_code` folder.",
        "",
        *scaled,
        "## Training run",
        "",
        *run,
        "- zip2zip settings: " + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "disabled_ids"),
        "",
        "Curves: `benchmarks/results/release/`; measured against the base model in `benchmarks/RESULTS.md`",
        "(`python -m benchmarks.release`).",
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

    model = AutoModelForCausalLM.from_pretrained(str(trained), trust_remote_code=True, dtype=torch.float32)
    base, _ = _untrained_model(settings, base_path)
    delta = extract_low_rank_delta(model, base, budget, dtype=dtype)
    save_file(delta.tensors, str(out / DELTA_FILENAME), metadata={"format": "pt"})
    return {"budget": budget, **delta.summary()}


def set_delta_scale(
    scale: float, selection: dict[str, Any] | None = None, source: str | os.PathLike[str] | None = None
) -> Path:
    """Record in the shipped settings that the delta is applied at ``scale`` (see :func:`build_shipped_model`).

    ``selection`` says how the scale was chosen (the benchmark, its data and rule), for the record and the
    README. The release summary is removed: it measured other weights. The assembly key changes with the
    settings file, so the next :func:`shipped_zip2zip_path` assembles the scaled model.
    """

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
