"""The recommended way to make a zip2zip model: every setting the project's measurements chose, in one place.

`Zip2ZipForCausalLM.from_base`, `zip2zip train`, `examples/train_smollm2.py`, the benchmarks and the shipped
checkpoint's provenance all read this module; nothing else holds a copy. The evidence behind each choice is
in `benchmarks/README.md` ("Learning per step", "Quality per CPU second").

Two layers:

- :data:`ZIP2ZIP_SETTINGS`: the model's architecture and codec (`Zip2ZipConfig` fields). They are also the
  defaults of `Zip2ZipConfig` itself, because the configuration file travels into Hub repos and may not
  import this module; a test keeps the two equal.
- :class:`TrainingPreset` and :data:`PRESETS`: how to train it (optimiser, batch, LoRA, precision, data mix),
  for a CPU machine and for one GPU; :func:`training_config` and :func:`lora_config` turn a preset into the
  `Zip2ZipSFTConfig` and `LoraConfig` the trainer takes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "DOMAINS",
    "LONG_MIX",
    "MIX",
    "MIXES",
    "PRESETS",
    "ZIP2ZIP_SETTINGS",
    "TrainingPreset",
    "cpu_supports_bf16",
    "get_preset",
    "lora_config",
    "training_config",
    "training_mix",
]

ZIP2ZIP_SETTINGS: dict[str, Any] = {
    # The released zip2zip Phi-3.5 configuration: up to 4 base tokens per hypertoken, 2048 per sequence.
    "max_codebook_size": 2048,
    "max_subtokens": 4,
    # Two transformer layers per hyper-encoder (the paper; four were worse in zip2zip++).
    "encoder_num_layers": 2,
    # `None` = half the base model's width: a third of the encoder weights, generation steps no dearer than
    # the base model's, and it learned faster in the learning study (1.576 vs 1.612 bits/byte at step 200).
    "encoder_hidden_size": None,
    "tie_encoders": False,
    # A fresh hypertoken starts as the mean of its constituents' vectors (study: 1.612 vs residual 1.665).
    # The residual init also makes an untrained hypertoken's logit tie exactly with its first constituent's,
    # so greedy decoding of an untrained model would be decided by float noise.
    "encoder_init": "mean",
    "position_mode": "compressed",
    "reconstruction_loss_weight": 0.0,
    # zip2zip++: arithmetic improves when numbers are never merged.
    "protect_digits": True,
    # Indentation and line breaks are layout the model must infer; merged into words they cost more than their
    # compression gives (benchmarks/README.md, "Codec settings at inference"). The shipped model reads this way.
    "protect_whitespace": True,
}

DOMAINS: tuple[str, ...] = ("code", "prose", "math", "multilingual")
# Share of each domain in the training mix (paper App. J: web 20%, code 25%, math 20%, chat 20%, multilingual
# 15%; the project has no chat corpus, so prose takes the web and chat shares).
MIX: dict[str, float] = {"code": 0.30, "prose": 0.35, "math": 0.20, "multilingual": 0.15}
# The same mix cannot feed a long run: prose (the Debian handbook, 0.87M characters) is scarce, and at 35% the
# whole mix holds about 0.7M base tokens. Long runs take the domains closer to what the corpora hold, each read
# at most `max_passes` times (at two passes: about 16M characters, 4.4M base tokens).
# Rust (corpora.EXTRA_DOMAINS) joins them: with Python its only programming language, the study's best model read
# the unseen Go 1.29x worse than its base while matching the base on the other domains.
LONG_MIX: dict[str, float] = {"code": 0.30, "rust": 0.20, "prose": 0.12, "math": 0.14, "multilingual": 0.24}
MIXES: dict[str, dict[str, float]] = {"study": MIX, "long": LONG_MIX}


@dataclass(frozen=True)
class TrainingPreset:
    """How to train a zip2zip model on one kind of machine; every field has the recipe's value."""

    steps: int = dataclasses.field(metadata={"help": "Optimizer steps (the schedule spans exactly these)."})
    batch_size: int = dataclasses.field(metadata={"help": "Rows per device per micro-batch."})
    grad_accum: int = dataclasses.field(default=1, metadata={"help": "Gradient accumulation steps."})
    max_length: int = dataclasses.field(default=512, metadata={"help": "Codes (compressed tokens) per row."})
    lr: float = dataclasses.field(default=1e-4, metadata={"help": "Peak learning rate (cosine, warm-up)."})
    encoder_lr: float | None = dataclasses.field(
        default=3e-4, metadata={"help": "Peak learning rate of the hyper-encoders (None = lr)."}
    )
    warmup: float = dataclasses.field(default=0.05, metadata={"help": "Warm-up, as a share of the steps."})
    lora_r: int = dataclasses.field(default=0, metadata={"help": "LoRA rank; 0 trains the whole model."})
    lora_alpha: int = dataclasses.field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = dataclasses.field(default=0.0, metadata={"help": "LoRA dropout."})
    docs_per_domain: int | None = dataclasses.field(
        default=400,
        metadata={"help": "Training documents (whole files or pages) read per domain (None = all of them)."},
    )
    mix: str = dataclasses.field(
        default="study", metadata={"help": "Domain shares of the training data: a name in recipe.MIXES."}
    )
    max_passes: float = dataclasses.field(
        default=1.0, metadata={"help": "Times the scarcest domain (for its share) may be read."}
    )
    gradient_checkpointing: bool = dataclasses.field(
        default=False, metadata={"help": "Recompute activations (memory for speed)."}
    )
    bf16: bool | None = dataclasses.field(
        default=None,
        metadata={"help": "bf16 autocast with float32 master weights; None = wherever the hardware has it."},
    )
    distillation_weight: float = dataclasses.field(
        default=0.0, metadata={"help": "First-token self-distillation from the frozen base (0 = off)."}
    )

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainingPreset.{name} must be an int >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"TrainingPreset.lr must be > 0, got {self.lr!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"TrainingPreset.warmup is a share of the steps in [0, 1), got {self.warmup!r}")
        if self.lora_r < 0:
            raise ValueError(
                f"TrainingPreset.lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r!r}"
            )
        if self.mix not in MIXES:
            raise ValueError(
                f"TrainingPreset.mix {self.mix!r} is not a known mix; choose from {sorted(MIXES)}"
            )
        if not self.max_passes > 0:
            raise ValueError(f"TrainingPreset.max_passes must be > 0, got {self.max_passes!r}")

    def replace(self, **changes: Any) -> TrainingPreset:
        """A copy with `changes` (`None` values are ignored, so parsed command-line flags can be passed as is)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def training_data(self, seed: int = 0, domains: tuple[str, ...] | None = None):
        """The preset's training mix of the project's corpora (:func:`training_mix` with its data fields)."""
        return training_mix(
            self.docs_per_domain,
            seed,
            domains,
            mix=self.mix,
            max_passes=self.max_passes,
        )

    @property
    def bf16_enabled(self) -> bool:
        """The precision this preset trains in here: its `bf16`, or the hardware's support when unset."""
        return bool(self.bf16) if self.bf16 is not None else _bf16_available()


# The quality-per-CPU-second study (benchmarks/README.md) decided the training: full fine-tuning in bf16 autocast
# (LR 1e-4 for the base weights, 3e-4 for the hyper-encoders), no distillation. At the budget of the previous
# recipe's 200 steps it reached the base model's bits per byte (1.4001 vs 1.3995, pooled over five held-out
# domains), against 1.4484 for the same with LoRA and 1.5738 for the previous recipe (LoRA, float32).
PRESETS: dict[str, TrainingPreset] = {
    # Two CPU cores: rows of 512 codes, batch 4, full fine-tuning, bf16 autocast where the CPU has it.
    "cpu": TrainingPreset(steps=200, batch_size=4, max_length=512),
    # The release-v2 run on two CPU cores: the same steps' shape for 2000 steps on the long mix (every domain read
    # at most twice), whole documents split by the trainer into rows of at most 512 codes.
    "cpu-long": TrainingPreset(
        steps=2000,
        batch_size=4,
        max_length=512,
        docs_per_domain=None,
        mix="long",
        max_passes=2.0,
    ),
    # Long context, continuing a trained model (`--init-from`): rows of up to 2048 codes (a quarter of SmolLM2's
    # 8192-token context at the recipe's compression), two per step, half the learning rates of a fresh run.
    "cpu-long-context": TrainingPreset(
        steps=1500,
        batch_size=1,
        grad_accum=2,
        max_length=2048,
        lr=5e-5,
        encoder_lr=1.5e-4,
        docs_per_domain=None,
        mix="long",
        max_passes=2.0,
    ),
    # One recent GPU: the paper's batch (~32k base tokens per step: 8 rows x 2048 codes x 2 accumulation
    # steps). The project's corpora, not the GPU, bound the run: at four passes of the long mix they hold
    # about 9M base tokens, about 280 such steps (the paper trained on 100M+ tokens from the Hub).
    "gpu": TrainingPreset(
        steps=280,
        batch_size=8,
        grad_accum=2,
        max_length=2048,
        docs_per_domain=None,
        mix="long",
        max_passes=4.0,
    ),
}


def get_preset(name: str | None = None) -> TrainingPreset:
    """The preset called `name`; `None` picks `"gpu"` when CUDA is visible and `"cpu"` otherwise."""
    if name is None:
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX), where autocast pays.

    Without it PyTorch emulates bf16 and autocast is slower than float32, so the recipe then trains in float32.
    """
    import torch

    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    try:
        if check is not None and not check():
            return False
    except RuntimeError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:
        return check is not None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _bf16_available() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    if cpu_supports_bf16():
        return True
    logger.warning(
        "this CPU has no native bf16 matrix units (AVX512-BF16 or AMX): training in float32, about half the "
        "speed of bf16 autocast on a CPU that has them"
    )
    return False


def training_config(preset: TrainingPreset, output_dir: str, **overrides: Any):
    """The `Zip2ZipSFTConfig` of `preset`: cosine schedule over exactly `preset.steps`, checkpoints, precision.

    `overrides` are further `Zip2ZipSFTConfig` fields (`save_steps`, `logging_steps`, `seed`, ...).
    """
    import torch

    from .sft_config import Zip2ZipSFTConfig

    on_gpu = torch.cuda.is_available()
    values: dict[str, Any] = {
        "output_dir": output_dir,
        "max_steps": preset.steps,
        "per_device_train_batch_size": preset.batch_size,
        "gradient_accumulation_steps": preset.grad_accum,
        "max_length": preset.max_length,
        "learning_rate": preset.lr,
        "encoder_learning_rate": preset.encoder_lr,
        "lr_scheduler_type": "cosine",
        "warmup_steps": preset.warmup,
        "gradient_checkpointing": preset.gradient_checkpointing,
        "bf16": preset.bf16_enabled,
        "distillation_weight": preset.distillation_weight,
        "logging_steps": 10,
        "save_steps": 50,
        "save_total_limit": 2,
        "report_to": "none",
        "dataloader_pin_memory": on_gpu,
        # No padding beyond the batch's longest row: in the trainer, bf16 steps on rows of changing length were
        # as fast as padded ones or faster (2 x ~800 codes, SmolLM2 LoRA: 4.45 s unpadded, 4.73 s padded to a
        # multiple of 64; benchmarks/README.md, "Training throughput").
        "pad_to_multiple_of": None,
    }
    values.update(overrides)
    return Zip2ZipSFTConfig(**values)


def lora_config(model: Any, preset: TrainingPreset):
    """The preset's `LoraConfig` for `model` (adapters on the base projections, hyper-encoders in full);
    `None` when the preset fine-tunes the whole model (`lora_r=0`)."""
    if preset.lora_r == 0:
        return None
    from .peft_utils import default_lora_config

    return default_lora_config(model, r=preset.lora_r, alpha=preset.lora_alpha, dropout=preset.lora_dropout)


def training_mix(
    docs_per_domain: int | None = 400,
    seed: int = 0,
    domains: tuple[str, ...] | None = None,
    *,
    mix: str | dict[str, float] = "study",
    max_passes: float = 1.0,
):
    """The project's corpora sampled to a mix's shares of characters and shuffled, as a `datasets.Dataset`.

    Each text is a whole document: a source file, a handbook page, a run of a manual
    (:func:`zip2zip.corpora.load_files`), so its end-of-sequence token marks where a real document ends; the
    trainer splits a text longer than `max_length` codes into rows at line ends
    (`Zip2ZipSFTConfig.split_long_texts`). `docs_per_domain` caps the documents read per domain; `domains`
    default to every domain of the mix. The scarcest domain (its characters relative to its share) is read
    `max_passes` times (whole passes, then a prefix), and every other domain gets the characters of its share:
    whole passes over its documents, then a prefix of them.
    """
    from datasets import Dataset

    from .corpora import load_files

    table = MIXES[mix] if isinstance(mix, str) else mix
    domains = tuple(table) if domains is None else domains
    unknown = sorted(set(domains) - set(table))
    if unknown:
        raise ValueError(f"domains {unknown} have no share in the mix {table}; give each domain a share")
    corpora = {domain: load_files(domain, "train", max_files=docs_per_domain) for domain in domains}
    chars = {domain: sum(map(len, texts)) for domain, texts in corpora.items()}
    total = min(chars[domain] * max_passes / table[domain] for domain in domains if chars[domain])
    texts: list[str] = []
    for domain in domains:
        texts += _passes(corpora[domain], total * table[domain])
    return Dataset.from_dict({"text": texts}).shuffle(seed=seed)


def _passes(docs: list[str], chars: float) -> list[str]:
    """Documents holding about `chars` characters: whole passes over `docs` in order, then a prefix."""
    size = sum(map(len, docs))
    if not size:
        return []
    whole, rest = divmod(chars, size)
    picked = docs * int(whole)
    for doc in docs:
        if rest < len(doc) / 2:
            break
        picked.append(doc)
        rest -= len(doc)
    return picked
