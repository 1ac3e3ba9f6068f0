"""`Zip2ZipSFTConfig`: TRL's `SFTConfig` with the settings zip2zip training adds, and the CPU-safe defaults."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import TrainingArguments
from trl import SFTConfig

from zip2zip.trainer.distillation import parse_layer_spec
from zip2zip.utils.hardware import cpu_supports_bf16, has_accelerator


@dataclass
class Zip2ZipSFTConfig(SFTConfig):
    r"""
    [`~trl.SFTConfig`] for [`Zip2ZipSFTTrainer`].

    Everything in `SFTConfig` keeps its meaning, with these differences:

    - `max_length` counts **compressed** tokens (codes), as `SFTConfig` does after tokenisation. A plain text
      longer than that is split at line ends into several rows (`split_long_texts`), not truncated.
    - `packing=True`, `padding_free=True` and `eval_packing=True` are rejected: packing concatenates examples,
      which would merge their per-sequence codebooks.
    - `bf16` left unset means bf16 autocast (float32 master weights) where the hardware computes bf16 natively
      (CUDA, or a CPU with AVX512-BF16/AMX: about twice float32's speed there) and float32 elsewhere
      (`SFTConfig` turns bf16 on unconditionally, which fails on a CPU-only machine with "Your setup doesn't
      support bf16/gpu").
    - On a machine without an accelerator, `use_cpu=True`, so that several processes (`accelerate launch
      --multi_gpu --num_processes 2` or `torchrun`) train together over gloo instead of each alone.
    - `ddp_find_unused_parameters` left unset means `True`: a batch whose inputs hold no hypertoken does not use
      the input encoder, and DDP would otherwise wait forever for its gradients.

    Parameters:
        reconstruction_loss_weight (`float`, *optional*):
            Weight of the auxiliary reconstruction loss (paper Eq. 3). `None` uses the model config's
            `reconstruction_loss_weight`. `0` switches the loss off for this run; a positive value needs a model
            built with a reconstruction head (`reconstruction_loss_weight > 0` in its config).
        zip2zip_settings (`dict`, *optional*):
            [`Zip2ZipConfig`] fields (`max_codebook_size`, `max_subtokens`, ...) used when the trainer is given the
            path of a plain base model and converts it with `Zip2ZipForCausalLM.from_base`.
        distillation_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the self-distillation loss from the frozen base model (see [`first_token_distillation`]);
            `0` switches it off. It needs LoRA (or another PEFT adapter): the teacher is the same weights with
            the adapters disabled, so no second copy of the model is kept in memory; under full fine-tuning a
            frozen copy of the base model is kept as the teacher.
        hidden_distillation_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the hidden-state distillation loss (see [`hidden_state_distillation`]): at every scored
            compressed position, the zip2zip model's hidden states at `hidden_distillation_layers` are pulled
            towards the frozen base model's at the base position of the code's last constituent. `0` = off.
        hidden_distillation_layers (`str`, *optional*, defaults to `"last"`):
            Which hidden states are matched: `"last"` (the LM head's input), `"last:K"` (the last K),
            `"stride:K"` (every K-th layer and the last) or `"all"`.
        hidden_distillation_loss (`str`, *optional*, defaults to `"nmse"`):
            `"nmse"`: squared error divided by the teacher's squared norm, per position and layer; `"cosine"`:
            one minus the cosine similarity.
        encoder_learning_rate (`float`, *optional*):
            Peak learning rate of the hyper-encoders (and the reconstruction head); `None` = `learning_rate`.
        encoder_warmup_steps (`int`, *optional*, defaults to `0`):
            Optimizer steps at the start during which only the hyper-encoders learn (every other trainable
            weight has learning rate 0); the schedule of the others starts after them.
        line_cut_share (`float`, *optional*, defaults to `0.0`):
            Share of plain texts tokenised in two pieces cut after a random line end (the same place in every
            run), as a prompt and what follows it are at generation time. A prompt that ends at a line end ends
            with a bare newline token, which inside a whole file the tokenizer would have merged with the next
            line's indentation; a model trained only on whole files reads it as the end of the text.
        line_cuts_per_text (`int`, *optional*, defaults to `1`):
            Line ends each text picked by `line_cut_share` is cut after (fewer where it has fewer). One cut per
            file puts one bare newline mid-file beside the one before the file's end-of-sequence token; more
            cuts teach that a bare newline does not end the text faster.
        cpu_budget_seconds (`float`, *optional*):
            Train until the training steps have used this many seconds of process CPU time (all threads), and
            run the learning-rate schedule over that budget instead of `max_steps` (which then only caps the
            steps). Comparing runs at equal CPU time is fair where steps cost differently; resuming continues
            the same budget.
    """

    reconstruction_loss_weight: float | None = field(
        default=None,
        metadata={"help": "Weight of the reconstruction loss; None = the model config's weight, 0 = off."},
    )
    zip2zip_settings: dict[str, Any] | None = field(
        default=None,
        metadata={"help": "Zip2ZipConfig fields used when converting a plain base model given by path."},
    )
    distillation_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the first-token distillation loss from the frozen base model (adapters disabled); "
            "0 = off."
        },
    )

    hidden_distillation_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the hidden-state distillation loss from the frozen base model; 0 = off."
        },
    )
    hidden_distillation_layers: str = field(
        default="last",
        metadata={"help": "Hidden states matched: 'last', 'last:K', 'stride:K' or 'all'."},
    )
    hidden_distillation_loss: Literal["nmse", "cosine"] = field(
        default="nmse",
        metadata={"help": "'nmse' (normalised squared error) or 'cosine'.", "choices": ["nmse", "cosine"]},
    )
    encoder_learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate of the hyper-encoders; None = learning_rate."}
    )
    encoder_warmup_steps: int = field(
        default=0, metadata={"help": "First optimizer steps in which only the hyper-encoders learn."}
    )
    cpu_budget_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Stop after this much process CPU time in training steps; the LR schedule spans it."
        },
    )

    split_long_texts: bool = field(
        default=True,
        metadata={
            "help": "Split plain texts longer than max_length codes at line ends into several rows instead of "
            "truncating them."
        },
    )

    line_cut_share: float = field(
        default=0.0,
        metadata={
            "help": "Share of plain texts tokenised in two pieces cut after a random line end, as a prompt and its "
            "continuation are at generation time, so that a prompt ending at a line end does not read as the end "
            "of the text (0 = every text tokenised whole)."
        },
    )
    line_cuts_per_text: int = field(
        default=1,
        metadata={
            "help": "Line ends each text picked by line_cut_share is cut after (fewer where it has fewer): more "
            "cuts put more prompt-like bare newlines mid-text beside the one before each text's end."
        },
    )

    def __post_init__(self) -> None:
        if not has_accelerator():
            if self.bf16 is None and not self.fp16:
                self.bf16 = cpu_supports_bf16()
            # Without it, processes started by torchrun / `accelerate launch` on a CPU-only machine would each
            # train alone (accelerate only picks the gloo MULTI_CPU backend when asked for the CPU).
            self.use_cpu = True
        if self.ddp_find_unused_parameters is None:
            # A batch without hypertokens in its inputs leaves the input encoder unused; DDP must not wait for it.
            self.ddp_find_unused_parameters = True
        super().__post_init__()
        reject_packing(self)
        weight = self.reconstruction_loss_weight
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0
        ):
            raise ValueError(
                f"Zip2ZipSFTConfig.reconstruction_loss_weight must be None or a float >= 0, got {weight!r}"
            )
        weight = self.distillation_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not weight >= 0
            or math.isinf(weight)
        ):
            raise ValueError(
                f"Zip2ZipSFTConfig.distillation_weight must be a finite float >= 0 (0 = off), got {weight!r}"
            )
        for name in ("hidden_distillation_weight", "encoder_learning_rate", "cpu_budget_seconds"):
            value = getattr(self, name)
            if value is None and name != "hidden_distillation_weight":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                raise ValueError(f"Zip2ZipSFTConfig.{name} must be a finite float >= 0, got {value!r}")
        parse_layer_spec(self.hidden_distillation_layers, 30)  # raises on a malformed spec
        if self.hidden_distillation_loss not in ("nmse", "cosine"):
            raise ValueError(
                f"Zip2ZipSFTConfig.hidden_distillation_loss must be 'nmse' or 'cosine', got "
                f"{self.hidden_distillation_loss!r}"
            )
        share = self.line_cut_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
            raise ValueError(
                f"Zip2ZipSFTConfig.line_cut_share is a share of the plain texts, in [0, 1]; got {share!r}"
            )
        cuts = self.line_cuts_per_text
        if isinstance(cuts, bool) or not isinstance(cuts, int) or cuts < 1:
            raise ValueError(
                f"Zip2ZipSFTConfig.line_cuts_per_text is how many line ends a picked text is cut after, an int >= 1; "
                f"got {cuts!r}"
            )
        steps = self.encoder_warmup_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"Zip2ZipSFTConfig.encoder_warmup_steps must be an int >= 0, got {steps!r}")

    @property
    def uses_teacher(self) -> bool:
        """Whether any loss needs the frozen base model reading the uncompressed rows."""
        return self.distillation_weight > 0 or self.hidden_distillation_weight > 0


def reject_packing(args: Any) -> None:
    """Packing and padding-free both concatenate examples into one row: codebooks would merge across them."""
    for name in ("packing", "padding_free", "eval_packing"):
        if getattr(args, name, False):
            raise ValueError(
                f"{name}=True is not supported by zip2zip training: it concatenates examples into one sequence, "
                "and LZW gives every sequence its own codebook, so hypertokens would be built across example "
                f"boundaries. Set {name}=False (the default); batches are padded per row instead."
            )


def as_zip2zip_config(args: Any, model: Any) -> Zip2ZipSFTConfig:
    """The trainer's `args` as a `Zip2ZipSFTConfig`: as it is, a default one named after the model, or the fields
    of a plain `SFTConfig`/`TrainingArguments` carried over."""
    if isinstance(args, Zip2ZipSFTConfig):
        return args
    if args is None:
        name = (
            model
            if isinstance(model, (str, os.PathLike))
            else getattr(model.config, "_name_or_path", "") or "model"
        )
        return Zip2ZipSFTConfig(f"{os.path.basename(os.fspath(name).rstrip('/')) or 'model'}-zip2zip")
    if isinstance(args, TrainingArguments):
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(args) if f.init}
        known = {f.name for f in dataclasses.fields(Zip2ZipSFTConfig) if f.init}
        return Zip2ZipSFTConfig(**{k: v for k, v in values.items() if k in known})
    raise TypeError(
        f"args must be a Zip2ZipSFTConfig, SFTConfig or TrainingArguments, got {type(args).__name__}"
    )
