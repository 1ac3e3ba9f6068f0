"""`Zip2ZipSFTTrainer`: TRL's `SFTTrainer`, taught to speak LZW.

A zip2zip model comes to exist by training an existing model on LZW-compressed text (paper Eq. 2, plus the
optional reconstruction loss of Eq. 3), usually with LoRA on the base model and the hyper-encoders trained in
full. The parts live in TRL's split of concerns:

- :mod:`.sft_config`: :class:`Zip2ZipSFTConfig`, the zip2zip settings and the CPU-safe defaults;
- :mod:`.data`: tokenisation per segment (:func:`tokenize_example`) and :class:`Zip2ZipDataCollator`, and
  :mod:`.data_validation`: the checks of raw rows;
- :mod:`.distillation`: the teacher signals of the frozen base model, and :mod:`.teacher`: the trainer's step
  that computes them;
- :mod:`.callbacks`, :mod:`.optimization`: checkpoints by the clock, held-out scores, CPU budgets, learning
  rates per parameter group;
- :mod:`.presets`: the recipe's presets as TRL and PEFT configs;
- :mod:`zip2zip.utils.peft`: LoRA on the base projections, hyper-encoders in `modules_to_save`;
- :mod:`zip2zip.conversion`: :func:`zip2zip_from_base` (no TRL needed);
- this module: the trainer (our loss path, metrics, saving).

Packing and padding-free batches are rejected: they would concatenate sequences, and every sequence has its own
codebook.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, TrainingArguments
from trl import SFTConfig, SFTTrainer

from zip2zip.conversion import zip2zip_from_base
from zip2zip.hub.export import write_training_card
from zip2zip.loading import is_zip2zip_model
from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer
from zip2zip.trainer.callbacks import (
    CPUBudgetCallback,
    EncoderWarmupCallback,
    budget_spent,
    last_complete_checkpoint,
)
from zip2zip.trainer.data import (
    BASE_COLUMNS,
    SEGMENT_ENDS,
    STAT_COLUMNS,
    Zip2ZipDataCollator,
    tokenize_batch,
    warn_dropped_text,
)
from zip2zip.trainer.data_validation import drop_empty_rows, reject_empty_dataset
from zip2zip.trainer.distillation import FrozenBaseTeacher
from zip2zip.trainer.optimization import build_schedules, split_encoder_groups
from zip2zip.trainer.sft_config import Zip2ZipSFTConfig, as_zip2zip_config, reject_packing
from zip2zip.trainer.teacher import TeacherDistillationMixin
from zip2zip.utils.peft import adapt_peft_config, is_peft_model

logger = logging.getLogger(__name__)


def load_or_convert(path: str, tokenizer: Any, args: Any) -> tuple[PreTrainedModel, Any]:
    """`args` is the run's `Zip2ZipSFTConfig` (`trust_remote_code`, `model_init_kwargs`, `zip2zip_settings`). A zip2zip repo loads as it is; any other causal LM is converted with `from_base`."""
    config = AutoConfig.from_pretrained(path, trust_remote_code=args.trust_remote_code)
    kwargs = dict(args.model_init_kwargs or {})
    if config.model_type == "zip2zip":
        kwargs.setdefault("trust_remote_code", args.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=args.trust_remote_code)
        return model, tokenizer
    model, zip_tokenizer = zip2zip_from_base(
        path, tokenizer=tokenizer, dtype=kwargs.get("dtype"), **(args.zip2zip_settings or {})
    )
    return model, zip_tokenizer


def as_zip2zip_tokenizer(tokenizer: Any, model: Any) -> Any:

    if tokenizer is None:
        path = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
        if not path:
            raise ValueError(
                "processing_class is required when the model has no path to load its tokenizer from"
            )
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
    if getattr(tokenizer, "codec", None) is None:
        tokenizer = Zip2ZipTokenizer.from_base(tokenizer, model.config)
    check = getattr(tokenizer, "check_compatible", None)
    if check is not None:
        check(model.config)
    return tokenizer


class Zip2ZipSFTTrainer(TeacherDistillationMixin, SFTTrainer):
    """[`~trl.SFTTrainer`] for zip2zip models: compressed cross-entropy over hypertokens, TRL and PEFT as usual.

    Differences from `SFTTrainer`, each forced by LZW:

    - **Loss.** TRL's `compute_loss` calls the model with its fused LM head, which scores only the base vocabulary
      and bypasses the hypertoken logits. Ours calls the zip2zip forward: cross-entropy over the compressed targets
      (logits of width `V + C`, with the decoder's accept masks), summed and divided by the number of targets in
      the whole accumulated batch (`num_items_in_batch`, counted over shifted labels and across processes), so
      gradient accumulation and data parallelism give the gradient of one big batch
      (`loss_is_scaled_for_ga = True`). The reconstruction loss is a per-micro-batch mean and is divided by the
      accumulation steps.
    - **Data.** Raw datasets (plain text, prompt/completion, conversational) are tokenised by
      :func:`tokenize_example`, so hypertokens never span the prompt/completion or turn boundaries and masks are
      exact in compressed space. Pre-tokenised datasets (`input_ids`, optional `labels`) are used as they are.
    - **Collator.** :class:`Zip2ZipDataCollator` by default (per-row padding and codebooks). Packing and
      padding-free are rejected.
    - **Tokenizer.** A plain base tokenizer is wrapped into a `Zip2ZipTokenizer` with the model's codec settings,
      so checkpoints carry the right tokenizer.
    - **Self-distillation** (optional, `distillation_weight > 0`, with LoRA). The frozen base model (the same
      weights with the adapters disabled, so no second copy in memory) reads the uncompressed rows, and at every
      scored compressed position the zip2zip model's probability that the next code *starts with* base token
      `x` is pulled towards the base model's `p(x | same text)`: `loss += distillation_weight * sum KL(p || q1)
      / num_items_in_batch` (:func:`first_token_distillation` defines the mapping). It gives a dense target over
      the whole vocabulary at every position from what the base model already knows.
    - **Saving.** `save_model(dir)` writes a complete `trust_remote_code` repo: merged weights (LoRA folded in),
      config with `auto_map`, the model's code, the tokenizer, and the adapter under `dir/adapter`. Checkpoints
      (during training) stay adapter-only, as in TRL, and resume as usual.

    Logged metrics: `loss`, `lm_loss` (compressed cross-entropy per target), `reconstruction_loss`,
    `compression_ratio` (base tokens per code), `hypertoken_share` (share of targets that are hypertokens),
    `bits_per_byte`, `mean_token_accuracy`, `num_tokens` (codes seen), `num_base_tokens`, `num_target_bytes`
    (UTF-8 bytes of the targets seen) and, with distillation, `distillation_loss` (mean KL per target, nats).

    Example:

    ```python
    >>> from datasets import Dataset
    >>> from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer, Zip2ZipSFTConfig, Zip2ZipSFTTrainer
    >>> from zip2zip import default_lora_config
    >>> model = Zip2ZipForCausalLM.from_base("HuggingFaceTB/SmolLM2-135M-Instruct")  # the recipe's settings
    >>> tokenizer = Zip2ZipTokenizer.from_base("HuggingFaceTB/SmolLM2-135M-Instruct", model.config)
    >>> trainer = Zip2ZipSFTTrainer(
    ...     model=model,
    ...     args=Zip2ZipSFTConfig(output_dir="out", max_steps=200, hidden_distillation_weight=1.0),
    ...     train_dataset=Dataset.from_dict({"text": ["def fib(n):\n    return n if n < 2 else ...", ...]}),
    ...     processing_class=tokenizer,
    ...     peft_config=default_lora_config(model),
    ... )
    >>> trainer.train()
    >>> trainer.save_model("out/final")  # a complete trust_remote_code repo, plus the adapter in out/final/adapter
    ```
    """

    loss_is_scaled_for_ga = True
    _tag_names: ClassVar[list[str]] = ["trl", "sft", "zip2zip"]
    _name = "Zip2Zip SFT"

    def __init__(
        self,
        model: str | os.PathLike | PreTrainedModel,
        args: Zip2ZipSFTConfig | SFTConfig | TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Callable | None = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        optimizer_cls_and_kwargs: tuple | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        peft_config: Any = None,
        formatting_func: Callable[[dict], str] | None = None,
    ) -> None:
        args = as_zip2zip_config(args, model)
        reject_packing(args)
        if isinstance(model, (str, os.PathLike)):
            model, processing_class = load_or_convert(os.fspath(model), processing_class, args)
        if not is_zip2zip_model(model):
            raise TypeError(
                f"Zip2ZipSFTTrainer trains zip2zip models, got {type(model).__name__} (model_type="
                f"{getattr(getattr(model, 'config', None), 'model_type', None)!r}); convert a base model first with "
                "Zip2ZipForCausalLM.from_base(...) or zip2zip.trainer.zip2zip_from_base(...)"
            )
        processing_class = as_zip2zip_tokenizer(processing_class, model)
        if peft_config is not None:
            peft_config = adapt_peft_config(peft_config, model)

        # Reconstruction weight: the model's unless the run overrides it.
        weight = args.reconstruction_loss_weight
        has_head = getattr(model, "reconstruction_head", None) is not None
        if weight is None:
            weight = float(model.config.reconstruction_loss_weight) if has_head else 0.0
        elif weight > 0 and not has_head:
            raise ValueError(
                f"reconstruction_loss_weight={weight} but the model has no reconstruction head (its config has "
                "reconstruction_loss_weight=0); build it with from_base(..., reconstruction_loss_weight=0.1) or set "
                "reconstruction_loss_weight=None/0 in the training config"
            )
        self.reconstruction_loss_weight = float(weight)

        self.distillation_weight = float(args.distillation_weight)
        self.hidden_distillation_weight = float(args.hidden_distillation_weight)
        # Built before any step: under full fine-tuning it copies the base weights while they are the base's.
        self.teacher = (
            FrozenBaseTeacher(model, copy_weights=peft_config is None and not is_peft_model(model))
            if args.uses_teacher
            else None
        )

        # Pad token: TRL sets it up only for its own collator; ours needs the same.
        pad_token = args.pad_token or processing_class.pad_token or processing_class.eos_token
        if pad_token is None or pad_token not in processing_class.get_vocab():
            raise ValueError(
                f"the pad token {pad_token!r} is not in the tokenizer's vocabulary; set pad_token= in the config to a "
                "special token of the tokenizer (eos works)"
            )
        if processing_class.pad_token != pad_token:
            processing_class.pad_token = pad_token
        pad_id = processing_class.pad_token_id
        if pad_id not in processing_class.codec.disabled_ids:
            raise ValueError(
                f"pad id {pad_id} ({pad_token!r}) is not a never-merged id of the codec; padded rows would decode "
                "differently. Use a special token as pad_token."
            )
        model.config.get_text_config().pad_token_id = pad_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.pad_token_id = pad_id
        if data_collator is None:
            pad_multiple = args.pad_to_multiple_of if isinstance(args.pad_to_multiple_of, int) else None
            data_collator = Zip2ZipDataCollator(
                pad_id,
                model.codec,
                pad_to_multiple_of=pad_multiple,
                return_base_ids=args.uses_teacher,
                canonical_mask=bool(getattr(model.config, "canonical_mask", False)),
            )

        # Assistant-only masks are built by our tokenisation (turn segments), not by TRL's template patching
        # (`get_training_chat_template` only knows a fixed list of templates). Hide the flag from SFTTrainer while
        # it sets up, then restore it.
        self._assistant_only_loss = bool(args.assistant_only_loss)
        reject_empty_dataset(train_dataset, "train")  # before TRL reads its first row
        if self._assistant_only_loss and train_dataset is not None:
            sample = next(iter(train_dataset))
            if not any(isinstance(sample.get(key), list) for key in ("messages", "prompt", "completion")):
                raise ValueError(
                    "assistant_only_loss=True needs a conversational dataset ('messages' or conversational "
                    "'prompt'/'completion' columns)"
                )
        args.assistant_only_loss = False
        try:
            super().__init__(
                model=model,
                args=args,
                data_collator=data_collator,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                compute_metrics=compute_metrics,
                callbacks=callbacks,
                optimizers=optimizers,
                optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
                preprocess_logits_for_metrics=preprocess_logits_for_metrics,
                peft_config=peft_config,
                formatting_func=formatting_func,
            )
        finally:
            args.assistant_only_loss = self._assistant_only_loss
        self._total_base_tokens = 0
        if args.encoder_warmup_steps:
            self.add_callback(EncoderWarmupCallback(self.model, args.encoder_warmup_steps))

    # ------------------------------------------------------------------------------------ optimisation

    def create_optimizer(self, model=None):
        """TRL's optimizer, with the hyper-encoders in groups of their own when their learning rate differs or
        an encoder-only warm-up is asked for."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        args = self.args
        if args.encoder_learning_rate is not None or args.encoder_warmup_steps:
            split_encoder_groups(optimizer, self.model, args.encoder_learning_rate)
        return optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """TRL's scheduler, unless the run has a CPU budget or an encoder-only warm-up: then one
        :class:`~zip2zip.trainer.optimization.GroupSchedule` per optimizer group (saved in checkpoints)."""
        args = self.args
        if self.lr_scheduler is None and (args.cpu_budget_seconds or args.encoder_warmup_steps):
            optimizer = optimizer or self.optimizer
            schedules = build_schedules(optimizer, args, num_training_steps)
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)
            if args.cpu_budget_seconds:
                # First in line: its clock stops before other callbacks evaluate or log at a step's end.
                self.callback_handler.callbacks.insert(
                    0, CPUBudgetCallback(schedules, args.cpu_budget_seconds)
                )
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """`Trainer.train`, with two differences for runs that outlive a session:

        - `resume_from_checkpoint=True` picks the last *complete* checkpoint (one whose `trainer_state.json`,
          written last, reads back): a process killed while saving leaves a partial folder that is skipped;
        - resuming a run whose CPU budget is already spent loads that checkpoint and returns without another
          step, so the same command can be rerun safely.
        """
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            if checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True but {self.args.output_dir} holds no complete checkpoint "
                    "(checkpoint-N folder with a readable trainer_state.json); start without resuming"
                )
            resume_from_checkpoint = checkpoint
        spent = budget_spent(checkpoint) if checkpoint and self.args.cpu_budget_seconds else None
        if spent is None or spent < self.args.cpu_budget_seconds:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)
        from transformers.trainer_callback import TrainerState
        from transformers.trainer_utils import TrainOutput

        logger.info("%s: the CPU budget (%.0f s) is spent; loading it without training", checkpoint, spent)
        self._load_from_checkpoint(checkpoint)
        self.state = TrainerState.load_from_json(os.path.join(checkpoint, "trainer_state.json"))
        return TrainOutput(self.state.global_step, 0.0, {"cpu_seconds": spent})

    # ------------------------------------------------------------------------------------ data

    def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
        """Check rows and drop empty ones (:func:`~zip2zip.trainer.data_validation.drop_empty_rows`), tokenise raw examples with
        :func:`tokenize_example`, then let TRL finish (labels, truncation, shuffle)."""
        reject_packing(args)
        reject_empty_dataset(dataset, dataset_name)
        columns = dataset.column_names or list(next(iter(dataset)).keys())
        if "input_ids" in columns:
            dataset = drop_empty_rows(dataset, args.dataset_text_field, dataset_name)
        else:
            map_kwargs: dict[str, Any] = {}
            if hasattr(dataset, "num_rows"):  # a map-style Dataset (IterableDataset.map takes neither)
                map_kwargs = {
                    "num_proc": args.dataset_num_proc,
                    "desc": f"Compressing {dataset_name} dataset",
                }
            if formatting_func is not None:
                format_kwargs = (
                    {**map_kwargs, "desc": f"Formatting {dataset_name} dataset"} if map_kwargs else {}
                )
                dataset = dataset.map(lambda example: {"text": formatting_func(example)}, **format_kwargs)
                text_field = "text"
            else:
                text_field = args.dataset_text_field
            from trl.data_utils import maybe_convert_to_chatml

            chatml_kwargs = (
                {**map_kwargs, "desc": f"Converting {dataset_name} dataset to ChatML"} if map_kwargs else {}
            )
            dataset = dataset.map(maybe_convert_to_chatml, **chatml_kwargs)
            dataset = drop_empty_rows(dataset, text_field, dataset_name)
            columns = dataset.column_names or list(next(iter(dataset)).keys())
            dataset = dataset.map(
                tokenize_batch,
                batched=True,
                fn_kwargs={
                    "tokenizer": processing_class,
                    "dataset_text_field": text_field,
                    "completion_only_loss": bool(self.completion_only_loss),
                    "assistant_only_loss": self._assistant_only_loss,
                    "max_length": args.max_length,
                    "chat_template": None,
                    "split_long_texts": args.split_long_texts,
                    "line_cut_share": args.line_cut_share,
                    "line_cuts_per_text": args.line_cuts_per_text,
                },
                remove_columns=columns,
                # a stream is read row by row, so that a bad row fails when it comes, not a batch early
                **(map_kwargs or {"batch_size": 1}),
            )
            dataset = warn_dropped_text(dataset, dataset_name, args.max_length)
        dataset = super()._prepare_dataset(dataset, processing_class, args, False, None, dataset_name)
        reject_empty_dataset(
            dataset, dataset_name, f" left with a trained token within max_length={args.max_length}"
        )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels", *STAT_COLUMNS, SEGMENT_ENDS]

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | None:
        """Targets of the whole accumulated batch: labels at positions 1.. that are not -100, over all processes.

        Counted here whatever the model class says about loss kwargs, because `compute_loss` always normalises by
        this count (`loss_is_scaled_for_ga = True`).
        """
        if not batch_samples or "labels" not in batch_samples[0]:
            return None
        count = sum((batch["labels"][..., 1:] != -100).sum() for batch in batch_samples)
        count = torch.as_tensor(count, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        return count

    # ------------------------------------------------------------------------------------ loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        stats = {name: inputs.pop(name) for name in STAT_COLUMNS if name in inputs}
        base_inputs = {name: inputs.pop(name) for name in BASE_COLUMNS if name in inputs}
        labels = inputs["labels"]
        valid = labels[:, 1:] != -100
        local_targets = valid.sum()
        denominator = num_items_in_batch if num_items_in_batch is not None else local_targets.clamp(min=1)
        # `fused_lm_head` stays False: the fused path would score only the base vocabulary.
        outputs = model(
            **inputs,
            use_cache=False,
            num_items_in_batch=denominator,
            output_hidden_states=self.hidden_distillation_weight > 0,
        )
        lm_loss = outputs.lm_loss
        loss = lm_loss
        reconstruction = outputs.reconstruction_loss
        if reconstruction is not None:
            accumulating = num_items_in_batch is not None and self.model.training
            steps = self.current_gradient_accumulation_steps if accumulating else 1
            # Weight 0 still keeps the head in the graph (DDP expects every trainable parameter to get a gradient).
            loss = loss + (self.reconstruction_loss_weight / steps) * reconstruction
        distillation_sum = hidden_sum = None
        if self.teacher is not None:
            distillation_sum, hidden_sum = self._teacher_sums(model, inputs, outputs, valid, base_inputs)
            # Summed over positions and divided like the compressed loss: exact under accumulation and DDP.
            if distillation_sum is not None:
                loss = loss + self.distillation_weight * distillation_sum / denominator
            if hidden_sum is not None:
                loss = loss + self.hidden_distillation_weight * hidden_sum / denominator
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # `num_items_in_batch` counts the targets of every process and DDP averages gradients: undo the mean.
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())

        self._record_metrics(
            mode,
            inputs,
            outputs,
            valid,
            lm_loss.detach() * denominator,
            reconstruction,
            stats,
            distillation_sum,
            hidden_sum,
        )
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _record_metrics(
        self,
        mode,
        inputs,
        outputs,
        valid,
        nll_sum,
        reconstruction,
        stats,
        distillation_sum=None,
        hidden_sum=None,
    ) -> None:
        """One gather per step of the sums behind every ratio, so ratios are exact over all processes."""
        V = self.model.config.base_vocab_size
        targets = inputs["labels"][:, 1:]
        predicted = outputs.logits[:, :-1].argmax(-1)
        sums = torch.stack(
            [
                nll_sum.float().reshape(()),
                valid.sum().float(),
                ((targets >= V) & valid).sum().float(),
                ((predicted == targets) & valid).sum().float(),
                stats["num_target_bytes"].sum().float() if "num_target_bytes" in stats else valid.new_zeros((), dtype=torch.float),
                stats["num_base_tokens"].sum().float() if "num_base_tokens" in stats else valid.new_zeros((), dtype=torch.float),
                inputs["attention_mask"].sum().float() if "attention_mask" in inputs else valid.new_tensor(float(targets.numel() + targets.shape[0])),
                reconstruction.detach().float().reshape(()) if reconstruction is not None else valid.new_zeros((), dtype=torch.float),
                distillation_sum.detach().float().reshape(()) if distillation_sum is not None else valid.new_zeros((), dtype=torch.float),
                hidden_sum.detach().float().reshape(()) if hidden_sum is not None else valid.new_zeros((), dtype=torch.float),
            ]
        )  # fmt: skip
        if self.accelerator.num_processes > 1:
            sums = self.accelerator.gather(sums[None]).sum(0)
        nll, targets_n, hyper, correct, n_bytes, base_tokens, codes, recon, distill, hidden = sums.tolist()
        metrics = self._metrics[mode]
        metrics["lm_loss"].append(nll / targets_n if targets_n else 0.0)
        metrics["hypertoken_share"].append(hyper / targets_n if targets_n else 0.0)
        metrics["mean_token_accuracy"].append(correct / targets_n if targets_n else 0.0)
        if n_bytes:
            metrics["bits_per_byte"].append(nll / math.log(2) / n_bytes)
        if base_tokens and codes:
            metrics["compression_ratio"].append(base_tokens / codes)
        if reconstruction is not None:
            metrics["reconstruction_loss"].append(recon / self.accelerator.num_processes)
        if distillation_sum is not None:
            metrics["distillation_loss"].append(distill / targets_n if targets_n else 0.0)
        if hidden_sum is not None:
            metrics["hidden_distillation_loss"].append(hidden / targets_n if targets_n else 0.0)
        if mode == "train":
            if not getattr(self, "_totals_restored", False):
                self._restore_totals()
            self._total_train_tokens += int(codes)
            self._total_base_tokens = getattr(self, "_total_base_tokens", 0) + int(base_tokens)
            self._total_target_bytes = getattr(self, "_total_target_bytes", 0) + int(n_bytes)
            metrics["num_tokens"] = [self._total_train_tokens]
            metrics["num_base_tokens"] = [self._total_base_tokens]
            metrics["num_target_bytes"] = [self._total_target_bytes]

    def _restore_totals(self) -> None:
        """After a resume, continue the running totals (codes, base tokens, target bytes) from the log."""
        self._totals_restored = True
        logged = [entry for entry in self.state.log_history if "num_base_tokens" in entry]
        if self.state.global_step and logged:
            last = logged[-1]
            self._total_train_tokens = int(last.get("num_tokens", self._total_train_tokens))
            self._total_base_tokens = int(last["num_base_tokens"])
            self._total_target_bytes = int(last.get("num_target_bytes", 0))

    # ------------------------------------------------------------------------------------ saving

    def create_model_card(self, *args: Any, **kwargs: Any) -> None:
        """TRL's card describes a plain SFT run (it names no base model and loads with `pipeline(model="None")`);
        a zip2zip repo gets the project's own card from `zip2zip export` instead, so nothing is written here."""

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Checkpoints (internal calls) as in TRL; a user's call writes a complete `trust_remote_code` repo."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call=True)
        self.save_zip2zip(output_dir or self.args.output_dir)

    def save_zip2zip(self, output_dir: str, save_adapter: bool = True) -> None:
        """Write a loadable repo: merged weights, config with `auto_map`, model code, tokenizer (and `adapter/`).

        LoRA is merged into a copy of the model, so training can go on afterwards. The folder loads with
        `AutoModelForCausalLM.from_pretrained(output_dir, trust_remote_code=True)` and
        `AutoTokenizer.from_pretrained(output_dir, trust_remote_code=True)`; the adapter (LoRA plus the trained
        hyper-encoders) loads onto the untrained zip2zip model with `PeftModel.from_pretrained`.
        """
        from peft import PeftModel

        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            os.makedirs(output_dir, exist_ok=True)
            unwrapped = self.accelerator.unwrap_model(self.model)
            if isinstance(unwrapped, PeftModel):
                if save_adapter:
                    unwrapped.save_pretrained(os.path.join(output_dir, "adapter"))
                merged = copy.deepcopy(unwrapped).merge_and_unload()
            else:
                merged = unwrapped
            # TRL patches `forward` on the instance (fused LM head); the saved model must not carry it.
            merged.__dict__.pop("forward", None)
            merged.config.mark_trained()  # with the codec settings the weights learned
            merged.save_pretrained(output_dir, safe_serialization=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            # No training_args.bin (a pickle) in a model folder: safetensors, JSON, code and the model card only.
            stale = os.path.join(output_dir, "training_args.bin")
            if os.path.isfile(stale):
                os.remove(stale)

            write_training_card(output_dir, merged.config)
        self.accelerator.wait_for_everyone()
