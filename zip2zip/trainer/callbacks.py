"""Trainer callbacks: checkpoints by the clock, held-out scores during long runs, a CPU-time budget, and the
hyper-encoders' warm-up.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from transformers import TrainerCallback

from zip2zip.evaluation.scoring import bits_per_byte
from zip2zip.trainer.optimization import GroupSchedule, is_encoder_parameter
from zip2zip.utils.peft import core_model

logger = logging.getLogger(__name__)


class SaveEveryMinutesCallback(TrainerCallback):
    """Ask for a checkpoint whenever `minutes` of wall time have passed since the last one (or the start)."""

    def __init__(self, minutes: float) -> None:
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0, got {minutes!r}")
        self.seconds = 60.0 * minutes
        self._last = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.monotonic()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() - self._last >= self.seconds:
            control.should_save = True
        return control

    def on_save(self, args, state, control, **kwargs):
        self._last = time.monotonic()
        return control


class HeldOutScoreCallback(TrainerCallback):
    """Scores held-out texts (strict bits per byte, per domain and pooled) every `minutes` of wall time, logs
    them (`heldout_bpb`, `heldout_bpb_<domain>`) and appends them to `log_path`; when the pooled score is the
    best so far, calls `on_improve(trainer, entry)` (for example to pack the weights) after a checkpoint.

    The log file survives restarts: a resumed run keeps its best score and does not repack worse weights.
    """

    def __init__(
        self,
        texts: Mapping[str, Sequence[str]],
        log_path: str | os.PathLike,
        minutes: float = 30.0,
        max_length: int = 512,
        on_improve: Callable[[Any, dict], None] | None = None,
    ) -> None:
        self.texts = {domain: list(values) for domain, values in texts.items()}
        self.log_path = os.fspath(log_path)
        self.seconds = 60.0 * minutes
        self.max_length = max_length
        self.on_improve = on_improve
        self.trainer = None
        self._last = time.monotonic()
        self.entries: list[dict] = []
        if os.path.isfile(self.log_path):
            with open(self.log_path, encoding="utf-8") as handle:
                self.entries = json.load(handle)

    @property
    def best(self) -> float:
        return min((entry["heldout_bpb"] for entry in self.entries), default=math.inf)

    def score(self, model: Any, tokenizer: Any) -> dict[str, float]:

        result, bits, n_bytes = {}, 0.0, 0
        for domain, texts in self.texts.items():
            score = bits_per_byte(model, tokenizer, texts, max_length=self.max_length)
            result[f"heldout_bpb_{domain}"] = score.bits_per_byte
            bits += score.bits_per_byte * score.bytes
            n_bytes += score.bytes
        result["heldout_bpb"] = bits / n_bytes if n_bytes else math.nan
        return result

    def evaluate(self, state) -> dict:

        trainer = self.trainer
        model = core_model(trainer.model)
        was_training = model.training
        model.eval()
        try:
            result = self.score(model, trainer.processing_class)
        finally:
            model.train(was_training)
        previous_best = self.best
        entry = {
            "step": state.global_step,
            "base_tokens_seen": getattr(trainer, "_total_base_tokens", 0),
            "time": time.time(),
            **result,
        }
        self.entries = [e for e in self.entries if e["step"] != state.global_step] + [entry]
        tmp = self.log_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.entries, handle, indent=1)
        os.replace(tmp, self.log_path)
        trainer.log(dict(result))
        entry["improved"] = result["heldout_bpb"] < previous_best
        return entry

    def on_train_begin(self, args, state, control, **kwargs):
        self._last = time.monotonic()
        if not self.entries:
            self.evaluate(state)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        due = time.monotonic() - self._last >= self.seconds or state.global_step >= state.max_steps
        if not due:
            return control
        self._last = time.monotonic()
        entry = self.evaluate(state)
        if entry["improved"] and self.on_improve is not None:
            control.should_save = True  # the checkpoint the packed weights come from
            self.on_improve(self.trainer, entry)
        return control


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest `checkpoint-N` folder of `output_dir` whose `trainer_state.json` (the Trainer writes it last)
    reads back, or None. Newer folders without one were cut short by a kill while saving."""
    if not os.path.isdir(output_dir):
        return None
    steps = []
    for name in os.listdir(output_dir):
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        if match and os.path.isdir(os.path.join(output_dir, name)):
            steps.append((int(match.group(1)), name))
    for _, name in sorted(steps, reverse=True):
        folder = os.path.join(os.fspath(output_dir), name)
        try:
            with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
                json.load(handle)
        except (OSError, ValueError):
            logger.warning(
                "skipping %s: it has no complete trainer_state.json (cut short while saving)", folder
            )
            continue
        return folder
    return None


class CPUBudgetCallback(TrainerCallback):
    """Counts the process CPU time (all threads) of each training step into the schedules, and stops training
    (with a checkpoint) once the budget is used. Time between steps (evaluation, logging, saving) is not
    counted."""

    def __init__(self, schedules: list[GroupSchedule], budget: float) -> None:
        self.schedules = schedules
        self.budget = budget
        self._started: float | None = None

    @property
    def cpu_seconds(self) -> float:
        return self.schedules[0].cpu_seconds

    def on_train_begin(self, args, state, control, **kwargs):
        if self.cpu_seconds >= self.budget:  # resumed after the budget was spent
            control.should_training_stop = True
        return control

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.process_time()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self._started is not None:
            spent = time.process_time() - self._started
            for schedule in self.schedules:
                schedule.cpu_seconds += spent
            self._started = None
        if self.cpu_seconds >= self.budget:
            control.should_training_stop = True
            control.should_save = True
        return control


class EncoderWarmupCallback(TrainerCallback):
    """During the first `steps` optimizer steps only the hyper-encoders compute gradients; then every trainable
    parameter does again. (Their learning rate is 0 then too, see :class:`GroupSchedule`.)"""

    def __init__(self, model: torch.nn.Module, steps: int) -> None:
        self.steps = steps
        self.others = [
            p for n, p in model.named_parameters() if p.requires_grad and not is_encoder_parameter(n)
        ]

    def on_step_begin(self, args, state, control, **kwargs):
        warming = state.global_step < self.steps
        for parameter in self.others:
            parameter.requires_grad_(not warming)
        return control


def budget_spent(checkpoint: str) -> float | None:
    """CPU seconds a checkpoint's budget schedule has used (None when it has no such schedule)."""
    import os

    path = os.path.join(checkpoint, "scheduler.pt")
    if not os.path.isfile(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    lambdas = state.get("lr_lambdas") or [None]
    first = lambdas[0]
    return float(first["cpu_seconds"]) if isinstance(first, dict) and first.get("budget") else None
