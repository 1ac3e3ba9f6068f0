"""Optimizer groups and learning-rate schedules of zip2zip training: per-part learning rates, an encoder-only
warm-up, and schedules that run over a CPU-time budget instead of a step count.

Why a CPU budget: training variants cost different time per step (a teacher pass, full fine-tuning, wider
encoders), so comparing them at equal steps rewards the expensive ones. A run given `cpu_budget_seconds`
trains until its steps have used that much process CPU time, and its schedule's progress is the share of the
budget used, so every variant gets a complete warm-up and decay within the same cost.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zip2zip.utils.peft import ENCODER_MODULES


def is_encoder_parameter(name: str) -> bool:
    """Whether a parameter (by its name in the trained model, PEFT-wrapped or not) belongs to a hyper-encoder."""
    return any(f"{module}." in name or name.startswith(f"{module}.") for module in ENCODER_MODULES)


def split_encoder_groups(optimizer: torch.optim.Optimizer, model: torch.nn.Module, encoder_lr: float) -> None:
    """Move the hyper-encoders' parameters into their own groups (tagged `"zip2zip_part": "encoder"`), with
    learning rate `encoder_lr`; every other group is tagged `"base"`. Call before the first step."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = list(optimizer.param_groups)
    optimizer.param_groups.clear()
    for group in groups:
        encoder = [p for p in group["params"] if is_encoder_parameter(names.get(id(p), ""))]
        others = [p for p in group["params"] if not is_encoder_parameter(names.get(id(p), ""))]
        settings = {k: v for k, v in group.items() if k != "params"}
        if others:
            optimizer.add_param_group({**settings, "params": others, "zip2zip_part": "base"})
        if encoder:
            lr = encoder_lr if encoder_lr is not None else settings["lr"]
            optimizer.add_param_group(
                {**settings, "params": encoder, "lr": lr, "initial_lr": lr, "zip2zip_part": "encoder"}
            )


class GroupSchedule:
    """Learning-rate multiplier of one parameter group: linear warm-up, then cosine, linear or constant decay.

    Progress is `step / total_steps`, or with a `budget` (CPU seconds) the share of it used so far
    (`cpu_seconds`, advanced by :class:`CPUBudgetCallback`). `frozen_steps` > 0 keeps the multiplier at 0 for
    the first steps (the encoder-only warm-up of the other groups). A callable object with plain attributes,
    so `LambdaLR.state_dict()` saves it in every checkpoint and a resumed run continues the same schedule.
    """

    def __init__(
        self,
        kind: str,
        total_steps: int,
        warmup: float,
        budget: float | None = None,
        frozen_steps: int = 0,
    ) -> None:
        kind = str(getattr(kind, "value", kind))  # a plain str: checkpoints are loaded with weights_only=True
        if kind not in ("cosine", "linear", "constant", "constant_with_warmup"):
            raise ValueError(
                f"lr_scheduler_type={kind!r} is not supported with cpu_budget_seconds or encoder_warmup_steps; "
                "use 'cosine', 'linear' or 'constant'"
            )
        self.kind = kind
        self.total_steps = max(1, int(total_steps))
        self.warmup = float(warmup)
        self.budget = float(budget) if budget else 0.0
        self.frozen_steps = int(frozen_steps)
        self.cpu_seconds = 0.0

    def progress(self, step: int) -> float:
        if self.budget:
            return min(1.0, self.cpu_seconds / self.budget)
        return min(1.0, step / self.total_steps)

    def __call__(self, step: int) -> float:
        if step < self.frozen_steps:
            return 0.0
        progress = self.progress(step)
        # `warmup` below 1 is a share of the run, from 1 on a number of steps (as TrainingArguments.warmup_steps).
        warm = self.warmup if self.warmup < 1 else self.warmup / self.total_steps
        if warm > 0 and progress < warm:
            return progress / warm
        if self.kind.startswith("constant"):
            return 1.0
        rest = (progress - warm) / max(1e-12, 1 - warm)
        if self.kind == "linear":
            return max(0.0, 1 - rest)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, rest)))


def build_schedules(optimizer: torch.optim.Optimizer, args: Any, total_steps: int) -> list[GroupSchedule]:
    """One :class:`GroupSchedule` per optimizer group: encoder groups never frozen, the others frozen for
    `args.encoder_warmup_steps`."""
    return [
        GroupSchedule(
            args.lr_scheduler_type
            if isinstance(args.lr_scheduler_type, str)
            else args.lr_scheduler_type.value,
            total_steps,
            args.warmup_steps or 0.0,
            budget=args.cpu_budget_seconds,
            frozen_steps=0 if group.get("zip2zip_part") == "encoder" else args.encoder_warmup_steps,
        )
        for group in optimizer.param_groups
    ]
