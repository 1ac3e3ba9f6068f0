"""The teacher part of :class:`~zip2zip.trainer.sft_trainer.Zip2ZipSFTTrainer`'s loss step: distillation from the frozen base.

Split from ``trainer.py`` so that the trainer reads as TRL's: setup, loss, metrics, saving. The signals themselves
(first-token KL, hidden-state distances) live in :mod:`zip2zip.distillation`.
"""

from __future__ import annotations

import torch

from zip2zip.trainer.data import base_alignment_from_inputs
from zip2zip.trainer.distillation import (
    first_token_distillation,
    hidden_state_distillation,
    hypertoken_first_ids,
    parse_layer_spec,
)
from zip2zip.utils.peft import core_model

__all__ = ["TeacherDistillationMixin"]


class TeacherDistillationMixin:
    """Adds the teacher's loss terms to a trainer that has ``teacher``, ``distillation_weight`` and
    ``hidden_distillation_weight`` (set up by :class:`~zip2zip.trainer.sft_trainer.Zip2ZipSFTTrainer`)."""

    def _teacher_sums(self, model, inputs, outputs, valid, base_inputs) -> tuple[torch.Tensor | None, ...]:
        """Sums over the scored positions of the first-token KL and of the hidden-state distance to the teacher.

        Scored positions are those whose next code is a target (`labels[:, 1:] != -100`), the same set as the
        compressed cross-entropy: padding and masked prompt codes contribute nothing. A loss that is off is None.
        """
        V = self.model.config.base_vocab_size
        logits = outputs.logits
        if not base_inputs:  # a collator of the user's: align here (runs the LZW decoder in the step)
            base_inputs = base_alignment_from_inputs(
                self.model.codec,
                inputs["input_ids"],
                inputs.get("attention_mask"),
                self.processing_class.pad_token_id,
            )
        want_kl, want_hidden = self.distillation_weight > 0, self.hidden_distillation_weight > 0
        rows, cols = valid.nonzero(as_tuple=True)
        if rows.numel() == 0:
            zero = logits.float().sum() * 0.0  # keeps the graph (DDP) and adds nothing
            return (zero if want_kl else None), (zero if want_hidden else None)
        positions = base_inputs["base_positions"].to(logits.device)[rows, cols]
        if bool((positions < 0).any()):
            raise ValueError(
                "a scored position has no base alignment (base_positions = -1): base_positions must give the base "
                "index of every attended code's last constituent (Zip2ZipDataCollator(return_base_ids=True))"
            )
        layers = self._hidden_layers(outputs) if want_hidden else []
        unwrapped = self.accelerator.unwrap_model(model)
        teacher_logits, teacher_states = self.teacher(
            unwrapped, base_inputs, rows, positions, layers, want_kl
        )
        kl_sum = hidden_sum = None
        if want_hidden:
            student = [outputs.hidden_states[i][rows, cols] for i in layers]
            distance = hidden_state_distillation(student, teacher_states, self.args.hidden_distillation_loss)
            hidden_sum = distance.sum()
        if want_kl:
            if teacher_logits.shape[-1] != V:
                raise ValueError(
                    f"the base model's LM head has {teacher_logits.shape[-1]} rows but base_vocab_size is {V}; "
                    "distillation compares distributions over the same base vocabulary"
                )
            accept_limits = inputs.get("accept_limits")
            codebook, candidates = inputs.get("codebook"), inputs.get("candidates")
            if accept_limits is None:
                state = core_model(unwrapped).prepare_codebook(
                    inputs["input_ids"], inputs.get("attention_mask")
                )
                codebook, accept_limits, candidates = (
                    state["codebook"],
                    state["accept_limits"],
                    state["candidates"],
                )
            slots = int(accept_limits[rows, cols].max())
            first = hypertoken_first_ids(codebook, accept_limits, candidates, slots)[rows, cols]
            kl_sum = first_token_distillation(logits[rows, cols], teacher_logits, first, V).sum()
        return kl_sum, hidden_sum

    def _hidden_layers(self, outputs) -> list[int]:
        if outputs.hidden_states is None:
            raise ValueError(
                "hidden-state distillation needs the model's hidden states (output_hidden_states)"
            )
        return parse_layer_spec(self.args.hidden_distillation_layers, len(outputs.hidden_states) - 1)
