"""The recommended way to make a zip2zip model: every setting the project's measurements chose, in one place.

`Zip2ZipForCausalLM.from_base`, `zip2zip train`, `examples/train_smollm2.py`, the benchmarks and the shipped
checkpoint's provenance all read this module; nothing else holds a copy. The evidence behind each choice is
in `benchmarks/README.md` ("Learning per step", "Quality per CPU second").

Two layers:

- :data:`ZIP2ZIP_SETTINGS`: the model's architecture and codec (`Zip2ZipConfig` fields). They are also the
  defaults of `Zip2ZipConfig` itself, because the configuration file travels into Hub repos and may not
  import this module; a test keeps the two equal.
- :class:`TrainingPreset` and :data:`PRESETS`: how to train it (optimiser, batch, LoRA, precision, data mix),
  for a CPU machine and for one GPU; :mod:`zip2zip.trainer.presets` turns a preset into the `Zip2ZipSFTConfig`,
  `LoraConfig` and training data the trainer takes.

This module is plain settings: it imports neither torch nor transformers, so the command line's `--help` and the
codec's defaults can read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from zip2zip.utils.hardware import bf16_available

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
    line_cut_share: float = dataclasses.field(
        default=0.0,
        metadata={"help": "Share of texts tokenised in pieces cut after line ends, as prompts are."},
    )
    line_cuts_per_text: int = dataclasses.field(
        default=1, metadata={"help": "Line ends each text picked by line_cut_share is cut after."}
    )

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "max_length", "line_cuts_per_text"):
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
        if not 0 <= self.line_cut_share <= 1:
            raise ValueError(
                f"TrainingPreset.line_cut_share is a share in [0, 1], got {self.line_cut_share!r}"
            )

    def replace(self, **changes: Any) -> TrainingPreset:
        """A copy with `changes` (`None` values are ignored, so parsed command-line flags can be passed as is)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def bf16_enabled(self) -> bool:
        """The precision this preset trains in here: its `bf16`, or the hardware's support when unset."""
        return bool(self.bf16) if self.bf16 is not None else bf16_available()


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
    # 8192-token context at the recipe's compression), two per step, half the learning rates of a fresh run; every
    # text tokenised in pieces cut after 8 of its line ends, as a prompt and its continuation are (one cut per text
    # taught less per step that a bare newline mid-file does not end the file).
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
        line_cut_share=1.0,
        line_cuts_per_text=8,
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
        line_cut_share=1.0,
        line_cuts_per_text=8,
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
