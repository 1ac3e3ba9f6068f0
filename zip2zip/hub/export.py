"""Hub repos for zip2zip models: export a complete `trust_remote_code` folder, write its model card, upload it.

A zip2zip model is only useful to other people as a repo they can load with
``AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True)`` on a machine without this package.
:func:`export_repo` builds that folder from any saved zip2zip model (the output of ``zip2zip train``, a
``save_pretrained`` folder, a downloaded repo): ``config.json`` with ``auto_map``, the model code files (the
codec, configuration, tokenization, modeling and generation files), safetensors weights, the tokenizer files
with ``auto_map``, ``generation_config.json`` and a ``README.md`` model card rendered from the package's
``templates/zip2zip_model_card.md`` with the measured compression and bits per byte, and, when the model
has one, the release benchmark's summary (``release_results.json``: the bars and how they were met, written by
``benchmarks.release`` into the shipped checkpoint folder; see :func:`load_release_summary`). Nothing else from
the source folder travels (checkpoints, optimizer states, ``training_args.bin``, adapters). Weights are
written in bfloat16 by default (see :func:`export_dtype`), and the folder gets ordinary permissions.

:func:`push_repo` uploads such a folder with ``HfApi.upload_folder``. The token comes from huggingface_hub's
usual sources (``HF_TOKEN``, or the login stored by ``hf auth login``), never from a command line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zip2zip.bundled.base import DEFAULT_MODEL_DIRNAME, HUB_MODEL_ID
from zip2zip.bundled.release_summary import (
    RELEASE_SUMMARY_FILENAME,
    ReleaseSummary,
    load_release_summary,
)
from zip2zip.hub.model_card import ExportError, render_model_card
from zip2zip.model import CODE_FILES
from zip2zip.model.configuration_zip2zip import codec_mismatches
from zip2zip.utils.cache import make_readable

logger = logging.getLogger(__name__)


EXPORT_DTYPES = ("float32", "bfloat16", "float16")
"""The dtypes `export_repo` writes weights in."""


REPO_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "base_tokenizer.json",
    "README.md",
    *CODE_FILES,
)
"""Files an exported repo must hold, besides the weights."""


# Licenses of base models whose Hub id is known here; any other base model needs an explicit license.
_KNOWN_LICENSES = {"HuggingFaceTB/SmolLM2-135M-Instruct": "apache-2.0"}


def _weights(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.safetensors.index.json"))


def check_model_folder(folder: str | os.PathLike) -> dict[str, Any]:
    """Check that ``folder`` holds a saved zip2zip model and tokenizer whose codec settings agree.

    Returns the parsed ``config.json``. Raises :class:`ExportError` naming the missing file or the settings
    that disagree, and how to fix it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"model folder {str(folder)!r} does not exist")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ExportError(
            f"{config_path} is missing: {folder} is not a saved model. Save one with model.save_pretrained(folder) "
            "(zip2zip train writes it at the end of a run)"
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ExportError(f"{config_path} is not valid JSON ({error}); save the model again") from None
    if config.get("model_type") != "zip2zip":
        raise ExportError(
            f"{config_path} has model_type={config.get('model_type')!r}, not 'zip2zip': this is a base model. "
            "Convert it first (Zip2ZipForCausalLM.from_base(path, ...) and save_pretrained, or zip2zip train)"
        )
    if not _weights(folder):
        bins = sorted(p.name for p in folder.glob("*.bin") if p.name != "training_args.bin")
        hint = (
            f" (found {bins}: load and save it again with safe_serialization=True)"
            if bins
            else "; save the model with model.save_pretrained(folder)"
        )
        raise ExportError(f"{folder} has no safetensors weights (model.safetensors or an index){hint}")
    for name, fix in (
        ("tokenizer_config.json", "save the tokenizer with tokenizer.save_pretrained(folder)"),
        ("base_tokenizer.json", "save the Zip2ZipTokenizer with tokenizer.save_pretrained(folder)"),
    ):
        if not (folder / name).is_file():
            raise ExportError(f"{folder / name} is missing: {fix}")
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    problems = []
    for name, (mine, theirs) in codec_mismatches(config, tokenizer_config).items():
        if name == "disabled_ids":
            only_model = sorted(set(mine) - set(theirs))[:8]
            only_tok = sorted(set(theirs) - set(mine))[:8]
            problems.append(
                f"disabled_ids: only in config.json {only_model}, only in tokenizer_config.json {only_tok}"
            )
        else:
            problems.append(f"{name}: {mine} in config.json vs {theirs} in tokenizer_config.json")
    if problems:
        raise ExportError(
            f"the codec settings of {folder} disagree between the model and the tokenizer, so they would build "
            "different codebooks from the same ids:\n  "
            + "\n  ".join(problems)
            + "\nRebuild the tokenizer from "
            "the model config (Zip2ZipTokenizer.from_base(base_tokenizer, model.config).save_pretrained(folder))"
        )
    return config


def check_repo_folder(folder: str | os.PathLike) -> None:
    """Check that an exported folder holds everything a fresh process needs; raise ExportError otherwise."""
    folder = Path(folder)
    missing = [name for name in REPO_FILES if not (folder / name).is_file()]
    if not _weights(folder):
        missing.append("model.safetensors")
    if missing:
        raise ExportError(
            f"{folder} is not a complete zip2zip repo: missing {missing}. Export it with "
            f"`zip2zip export MODEL_DIR {folder}` (or zip2zip.hub.export.export_repo)"
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    if "AutoModelForCausalLM" not in config.get("auto_map", {}):
        raise ExportError(
            f"{folder / 'config.json'} has no auto_map.AutoModelForCausalLM; export the folder again"
        )
    if "AutoTokenizer" not in tokenizer_config.get("auto_map", {}):
        raise ExportError(
            f"{folder / 'tokenizer_config.json'} has no auto_map.AutoTokenizer; export the folder again"
        )


def export_repo(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    license: str | None = None,
    trained: bool | None = None,
    measurements: Mapping[str, Any] | None = None,
    template_path: str | os.PathLike | None = None,
    overwrite: bool = False,
    dtype: str | None = None,
    release_summary: ReleaseSummary | None = None,
) -> Path:
    """Write a complete Hub repo folder for the zip2zip model saved in ``model_dir``; return its path.

    Args:
        model_dir: a saved zip2zip model and its Zip2ZipTokenizer (checked by :func:`check_model_folder`).
        out_dir: the repo folder to create (must be absent or empty unless ``overwrite``).
        repo_id: the Hub id the card's examples load and its name (default: a name derived from the base
            model, e.g. ``zip2zip-SmolLM2-135M-Instruct``).
        base_model: the base model's Hub id for the card and for config.json's ``text_config._name_or_path``
            (default: the id recorded in the config, or the embedded default's id for the default model; a
            local path is never written).
        license: the license id; must be the base model's. Required unless the base model's is known.
        trained: whether the hyper-encoders were trained (default: a ``training_args.bin`` or ``adapter/``
            in ``model_dir``); an untrained model says so in its card.
        measurements: a ``zip2zip eval`` result (``--json``) for the card's table and front matter (measuring is
            :mod:`zip2zip.evaluation`'s: ``zip2zip export --measure`` measures before it exports).
        template_path: another jinja template for the card.
        overwrite: replace an existing non-empty ``out_dir``.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` for the weights (recorded in config.json's
            ``dtype``); default: :func:`export_dtype`.
        release_summary: the release benchmark's summary for the card (also copied into the repo as
            ``release_results.json``); default: :func:`load_release_summary` of ``model_dir``, which finds the
            shipped model's when its digest matches the weights.
    """
    import torch
    from transformers import GenerationConfig

    from zip2zip.model.modeling_zip2zip import Zip2ZipForCausalLM
    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    source = Path(model_dir)
    check_model_folder(source)
    out = Path(out_dir)
    if out.resolve() == source.resolve():
        raise ExportError(f"OUT_DIR {out} is MODEL_DIR; export into a new folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ExportError(
            f"{out} exists and is not empty; choose a new folder or pass overwrite=True (--overwrite)"
        )

    tokenizer = Zip2ZipTokenizer.from_pretrained(str(source))
    model = Zip2ZipForCausalLM.from_pretrained(str(source))
    try:
        tokenizer.check_compatible(model.config)
    except ValueError as error:
        raise ExportError(f"{source}: {error}") from None
    # Loaded with our class directly: set the Auto classes so save_pretrained copies the code and writes auto_map.
    type(model.config).register_for_auto_class()
    type(model).register_for_auto_class("AutoModelForCausalLM")
    type(tokenizer).register_for_auto_class("AutoTokenizer")

    base_model = base_model or _base_model_id(model.config)
    if license is None:
        license = _KNOWN_LICENSES.get(base_model or "")
    if not license:
        raise ExportError(
            f"no license given for the export of {source}: pass the base model's license id "
            "(license='apache-2.0', or --license on the command line)"
        )
    if trained is None:
        trained = bool(getattr(model.config, "trained", False))
    dtype = export_dtype(model.config, dtype)
    model.to(getattr(torch, dtype))
    # The base model's public id, never the local path it was converted from.
    model.config.text_config._name_or_path = base_model or ""

    generation = model.generation_config or GenerationConfig()
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if getattr(generation, name, None) is None and getattr(tokenizer, name, None) is not None:
            setattr(generation, name, getattr(tokenizer, name))
    model.generation_config = generation

    if release_summary is None:
        release_summary = load_release_summary(source)
    model_name = repo_id.split("/")[-1] if repo_id else _default_model_name(base_model)
    card = render_model_card(
        model.config,
        repo_id=repo_id or model_name,
        base_model=base_model,
        license=license,
        trained=trained,
        measurements=measurements,
        template_path=template_path,
        model_name=model_name,
        dtype=dtype,
        release=release_summary,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if not (staging / "generation_config.json").is_file():
            generation.save_pretrained(staging)
        card.save(staging / "README.md")
        if measurements:
            (staging / "zip2zip_eval.json").write_text(
                json.dumps(measurements, indent=2) + "\n", encoding="utf-8"
            )
        if release_summary:
            (staging / RELEASE_SUMMARY_FILENAME).write_text(
                json.dumps(release_summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        check_repo_folder(staging)
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
        make_readable(out)  # mkdtemp made the folder private, safetensors the weights
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def export_dtype(config: Any, dtype: str | None = None) -> str:
    """The dtype an export writes: ``dtype`` when given, else the dtype the model was trained in.

    That is bfloat16 unless config.json records float16 or bfloat16 weights (then that one): the recipe trains
    in bfloat16 autocast over float32 master weights, so a training run's config.json says float32 for
    weights that were only ever computed with in bfloat16, and base models such as SmolLM2 ship bfloat16.
    Pass ``"float32"`` to keep the master weights (twice the size).
    """
    if dtype is None:
        recorded = str(getattr(config, "dtype", None) or "").removeprefix("torch.")
        dtype = recorded if recorded in ("bfloat16", "float16") else "bfloat16"
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in EXPORT_DTYPES:
        raise ExportError(f"dtype={dtype!r} is not one of {EXPORT_DTYPES}")
    return dtype


def _default_model_name(base_model: str | None) -> str:
    """``zip2zip-<base model name>`` (``zip2zip-model`` without a base model id)."""
    return f"zip2zip-{base_model.split('/')[-1]}" if base_model else "zip2zip-model"


def _base_model_id(config: Any) -> str | None:
    """The base model's Hub id, when the config records one (a local path is no Hub id)."""
    name = getattr(config.text_config, "_name_or_path", "") or ""
    try:
        if DEFAULT_MODEL_DIRNAME in name:
            return HUB_MODEL_ID
    except ImportError:  # pragma: no cover
        pass
    if name and not os.path.isabs(name) and name.count("/") == 1 and not os.path.exists(name):
        return name
    return None


def write_training_card(folder: str | os.PathLike, config: Any) -> None:
    """The project's model card for a freshly trained folder (`Zip2ZipSFTTrainer.save_model`): what the model
    is, how to load it, and that no quality measurement is included yet (`zip2zip export --measure` adds one).
    Skipped with a log line when the base model's license is unknown (export then asks for it)."""
    base_model = _base_model_id(config)
    license = _KNOWN_LICENSES.get(base_model or "")
    if not license:
        logger.info(
            "no model card in %s: the base model's license is unknown (zip2zip export --license)", folder
        )
        return
    name = Path(folder).name or _default_model_name(base_model)
    card = render_model_card(
        config,
        repo_id=name,
        base_model=base_model,
        license=license,
        trained=bool(getattr(config, "trained", False)),
    )
    card.save(os.path.join(os.fspath(folder), "README.md"))


def push_repo(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    api: Any = None,
) -> Any:
    """Upload an exported folder to the Hub (``create_repo(exist_ok=True)`` then ``upload_folder``).

    The token is huggingface_hub's: ``HF_TOKEN`` or the login stored by ``hf auth login``. Returns the
    ``CommitInfo`` of the upload.
    """
    from huggingface_hub import HfApi, get_token

    check_repo_folder(folder)
    token = get_token()
    if not token:
        raise PermissionError(
            f"no Hugging Face token found to upload {folder} to {repo_id}: run `hf auth login` (stores a token) or "
            "set the HF_TOKEN environment variable to a token with write access, then try again"
        )
    api = api if api is not None else HfApi(token=token)
    api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(
        folder_path=os.fspath(folder),
        repo_id=repo_id,
        repo_type="model",
        revision=revision,
        commit_message=commit_message or "Upload zip2zip model",
        create_pr=create_pr,
    )
