"""Training throughput: zip2zip LoRA SFT vs plain LoRA SFT of the base model, in bytes of text per second.

One run, side by side, on the same data with the same batch shape in *base* tokens: rows of ``--length``
base tokens cut from the ``--domain`` corpus (training split), ``--batch`` rows per step.

* ``base``: TRL's stock ``SFTTrainer`` on SmolLM2-135M-Instruct with LoRA (its fused LM head), rows of
  ``length`` base ids.
* ``zip2zip``: ``Zip2ZipSFTTrainer`` on the zip2zip model built from the same base (same LoRA), the same rows
  LZW-compressed: shorter sequences, plus the hyper-encoders and the ``V + C``-wide logits.

Both arms run ``--warmup`` + ``--steps`` optimizer steps (dataset preparation is done before timing in both);
only the steps after the warm-up are timed, and the arms alternate for ``--rounds`` rounds so that machine
noise hits both. Throughput is the mean bytes of text per step over the median step time (the median shrugs
off the stalls of a shared machine); the headline is the ratio.

The overhead breakdown times one forward+backward of one batch outside the trainer (median of
``--repeats``): the base on ``length`` tokens, the zip2zip model with every hypertoken feature switched off on
the *compressed* length (what the shorter sequence alone would cost), and the full zip2zip step; the
difference is the hypertoken overhead, of which the hyper-encoders' forward passes are timed with hooks. The
collator's LZW work (codebook state per row) is timed separately; it runs in the data loader.

Precision and adapter arms (``--arms``, all in the same rounds): ``zip2zip-fp32`` (LoRA, float32),
``zip2zip-bf16`` (LoRA, bf16 autocast with float32 master weights, the CPU recipe's default where the CPU has
AVX512-BF16 or AMX) and ``zip2zip-full-bf16`` (full fine-tuning, bf16 autocast); these pad rows to a
multiple of ``--pad-to-multiple-of`` codes (default: the recipe's, no padding beyond the longest row).
``zip2zip-fp32-unpadded`` and ``zip2zip-bf16-unpadded`` never pad, to compare a padding setting with none;
the bf16 ratio takes each precision's faster arm. ``base`` runs in the precision of ``--base-precision``.
The table gives base tokens per second and bytes per second of each arm and the ratios bf16 / fp32 and
full / LoRA.

Run: ``python -m benchmarks.training [--domain code] [--length 1024] [--batch 2] [--steps 3] [--device auto]``.
Bars: zip2zip >= 1.15x the base's bytes per second on code (same precision); bf16 >= 1.8x fp32 on CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import TrainerCallback

BAR = 1.15
BF16_BAR = 1.8
ARMS = (
    "base",
    "zip2zip-fp32",
    "zip2zip-fp32-unpadded",
    "zip2zip-bf16",
    "zip2zip-bf16-unpadded",
    "zip2zip-full-bf16",
)


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (synchronised on CUDA)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        _sync()
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        _sync()
        self.times.append(time.perf_counter() - self._start)


# Operators that do the matrix products of a step (linear layers, attention, the V + C-wide logits): the work
# the CPU's bf16 units speed up. Everything else (optimizer, losses, element-wise work, data) is the rest.
MATRIX_OPS = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::_scaled_dot_product_flash_attention_for_cpu",
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
)


class OpProfiler(TrainerCallback):
    """Self CPU time per operator over the timed steps (after ``warmup``), with torch's profiler."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.self_us: dict[str, float] = {}
        self._profiler = None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step >= self.warmup:
            self._profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._profiler.__enter__()

    def on_step_end(self, args, state, control, **kwargs):
        if self._profiler is None:
            return
        self._profiler.__exit__(None, None, None)
        for event in self._profiler.key_averages():
            self.self_us[event.key] = self.self_us.get(event.key, 0.0) + event.self_cpu_time_total
        self._profiler = None

    def top_ops(self, steps: int, count: int = 15) -> dict[str, float]:
        """The `count` operators with the most self CPU time, in seconds per timed step."""
        ranked = sorted(self.self_us.items(), key=lambda item: -item[1])[:count]
        return {name: round(us / 1e6 / max(steps, 1), 4) for name, us in ranked}

    def matrix_share(self) -> float:
        total = sum(self.self_us.values())
        return sum(self.self_us.get(op, 0.0) for op in MATRIX_OPS) / total if total else float("nan")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def load_rows(tokenizer, domain: str, length: int, count: int) -> list[list[int]]:
    """``count`` rows of exactly ``length`` base ids from the domain's training corpus (documents joined)."""
    from zip2zip.corpora.store import load_corpus

    rows: list[list[int]] = []
    stream: list[int] = []
    for doc in load_corpus(domain, split="train"):
        stream += tokenizer(doc, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        while len(stream) >= length and len(rows) < count:
            rows.append(stream[:length])
            stream = stream[length:]
        if len(rows) == count:
            return rows
    raise SystemExit(f"the {domain} corpus has fewer than {count} rows of {length} tokens")


def config(out: str, args, bf16: bool = False, pad: bool = True, **extra):
    from zip2zip.trainer.sft_config import Zip2ZipSFTConfig

    return Zip2ZipSFTConfig(
        output_dir=out,
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        gradient_checkpointing=False,
        disable_tqdm=True,
        dataloader_pin_memory=False,
        max_length=None,
        pad_to_multiple_of=(args.pad_to_multiple_of or None) if pad else None,
        bf16=bf16,
        use_cpu=args.device == "cpu",
        seed=0,
        **extra,
    )


def lora(model, args):
    from zip2zip.utils.peft import default_lora_config

    return default_lora_config(model, r=args.lora_r, alpha=2 * args.lora_r)


def run_base(base_path: str, rows: list[list[int]], args, bf16: bool) -> list[float]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_path)
    tok = AutoTokenizer.from_pretrained(base_path)
    peft = LoraConfig(
        r=args.lora_r,
        lora_alpha=2 * args.lora_r,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    data = Dataset.from_dict({"input_ids": rows, "labels": rows})
    timer = StepTimer()
    trainer = SFTTrainer(
        model=model,
        args=config("/tmp/zip2zip-bench-base", args, bf16=bf16),
        train_dataset=data,
        processing_class=tok,
        peft_config=peft,
        callbacks=[timer],
    )
    trainer.train()
    return timer.times[args.warmup :]


def build_zip2zip(base_path: str, args):
    from zip2zip.conversion import zip2zip_from_base

    torch.manual_seed(0)
    return zip2zip_from_base(
        base_path,
        max_codebook_size=args.codebook,
        max_subtokens=args.subtokens,
        encoder_num_layers=args.encoder_layers,
        encoder_hidden_size=args.encoder_width,
    )


def compress(rows: list[list[int]], tok) -> list[dict]:
    codec = tok.codec
    out = []
    for row in rows:
        codes = codec.encode(row)
        first = len(codec.decode(codes[:1]))
        out.append(
            {
                "input_ids": codes,
                "labels": codes,
                "num_base_tokens": len(row),
                "num_target_bytes": len(tok.base.decode(row[first:], skip_special_tokens=True).encode()),
            }
        )
    return out


def run_zip2zip(
    base_path: str, rows: list[list[int]], args, bf16: bool, use_lora: bool = True, pad: bool = True
) -> tuple[list[float], dict]:
    from datasets import Dataset

    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    model, tok = build_zip2zip(base_path, args)
    data = Dataset.from_list(compress(rows, tok))
    timer = StepTimer()
    profiler = OpProfiler(args.warmup) if args.profile else None
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config("/tmp/zip2zip-bench-z2z", args, bf16=bf16, pad=pad),
        train_dataset=data,
        processing_class=tok,
        peft_config=lora(model, args) if use_lora else None,
        callbacks=[timer] + ([profiler] if profiler else []),
    )
    trainer.train()
    logs = [e for e in trainer.state.log_history if "loss" in e]
    log = dict(logs[-1])
    if profiler is not None:
        log["matrix_share"] = profiler.matrix_share()
        log["top_ops_s_per_step"] = profiler.top_ops(args.steps)
    return timer.times[args.warmup :], log


def fwd_bwd_seconds(model, batch: dict, repeats: int) -> float:
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        _sync()
        start = time.perf_counter()
        out = model(**batch)
        out.loss.backward()
        _sync()
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def breakdown(base_path: str, rows: list[list[int]], args) -> dict:
    """Per-batch costs of one forward+backward, outside the trainer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from zip2zip.trainer.data import Zip2ZipDataCollator

    device = torch.device(args.device)
    batch_rows = rows[: args.batch]
    result: dict[str, float] = {}

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_path)
    base = get_peft_model(
        base,
        LoraConfig(
            r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        ),
    ).to(device)
    ids = torch.tensor(batch_rows, device=device)
    result["base_step_s"] = fwd_bwd_seconds(base, {"input_ids": ids, "labels": ids}, args.repeats)
    del base

    model, tok = build_zip2zip(base_path, args)
    from peft import get_peft_model as wrap

    model = wrap(model, lora(model, args)).to(device)
    examples = compress(batch_rows, tok)
    collator = Zip2ZipDataCollator(tok.pad_token_id, tok.codec)
    start = time.perf_counter()
    for _ in range(args.repeats):
        batch = collator(examples)
    result["collator_s"] = (time.perf_counter() - start) / args.repeats
    batch = {k: v.to(device) for k, v in batch.items() if k not in ("num_base_tokens", "num_target_bytes")}
    result["compressed_length"] = float(batch["attention_mask"].sum(1).float().mean())
    result["zip2zip_step_s"] = fwd_bwd_seconds(model, batch, args.repeats)

    # Encoder forward time, by hooks on the two hyper-encoders.
    inner = model.get_base_model()
    spent = {"input_encoder": 0.0, "output_encoder": 0.0}
    handles = []
    for name in spent:
        module = getattr(inner, name)

        def pre(_module, _inputs, name=name):
            _sync()
            spent[name] -= time.perf_counter()

        def post(_module, _inputs, _output, name=name):
            _sync()
            spent[name] += time.perf_counter()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    with torch.no_grad():
        model(**batch)
    for handle in handles:
        handle.remove()
    result["input_encoder_fwd_s"] = spent["input_encoder"]
    result["output_encoder_fwd_s"] = spent["output_encoder"]

    # The same compressed length with every hypertoken feature off: hypertokens replaced by a base id, no codebook.
    V = inner.config.base_vocab_size
    plain = {
        "input_ids": batch["input_ids"].masked_fill(batch["input_ids"] >= V, 0),
        "attention_mask": batch["attention_mask"],
        "labels": batch["labels"].masked_fill(batch["labels"] >= V, 0),
        "codebook": batch["codebook"][:, :0],
        "accept_limits": torch.zeros_like(batch["accept_limits"]),
        "candidates": torch.full_like(batch["candidates"], -1),
    }
    result["short_base_step_s"] = fwd_bwd_seconds(model, plain, args.repeats)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", default="code")
    parser.add_argument("--length", type=int, default=1024, help="base tokens per row")
    parser.add_argument("--batch", type=int, default=2, help="rows per step")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per arm and round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="repeats of each breakdown measurement")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--codebook", type=int, default=2048)
    parser.add_argument("--subtokens", type=int, default=4)
    parser.add_argument("--encoder-layers", type=int, default=2)
    parser.add_argument("--encoder-width", type=int, default=None)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the timed steps of the zip2zip arms: the share of self CPU time in matrix products, and "
        "what bf16 could gain at most if only they got faster",
    )
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {ARMS}")
    parser.add_argument("--base-precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--pad-to-multiple-of",
        type=int,
        default=None,
        help="pad zip2zip rows to a multiple of this many codes (default: the recipe's, none; 0 = off)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (default 2, both cores of the machine this project trains on)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.pad_to_multiple_of is None:
        from zip2zip.recipe import PRESETS
        from zip2zip.trainer.presets import training_config

        preset = PRESETS["cpu" if args.device == "cpu" else "gpu"]
        args.pad_to_multiple_of = training_config(preset, "/tmp/zip2zip-bench-config").pad_to_multiple_of or 0

    from transformers import AutoTokenizer

    from zip2zip.bundled.base import default_base_path

    base_path = default_base_path()
    tok = AutoTokenizer.from_pretrained(base_path)
    rows = load_rows(tok, args.domain, args.length, args.batch * (args.warmup + args.steps))
    text_bytes = [len(tok.decode(row, skip_special_tokens=True).encode()) for row in rows]

    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = sorted(set(arms) - set(ARMS))
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; choose from {ARMS}")
    times: dict[str, list[float]] = {arm: [] for arm in arms}
    shares: dict[str, list[float]] = {arm: [] for arm in arms}
    top_ops: dict[str, dict[str, float]] = {}
    last_log: dict = {}
    for _ in range(args.rounds):  # arms alternate every round, so machine noise hits all of them
        for arm in arms:
            if arm == "base":
                times[arm] += run_base(base_path, rows, args, bf16=args.base_precision == "bf16")
            else:
                arm_times, log = run_zip2zip(
                    base_path,
                    rows,
                    args,
                    bf16="bf16" in arm,
                    use_lora="full" not in arm,
                    pad="unpadded" not in arm,
                )
                times[arm] += arm_times
                if "matrix_share" in log:
                    shares[arm].append(log["matrix_share"])
                    top_ops[arm] = log["top_ops_s_per_step"]
                last_log = log or last_log
    # Median step time: robust to the multi-second stalls a shared machine inflicts on single steps.
    steps = args.warmup + args.steps
    bytes_per_step = sum(text_bytes) / steps
    tokens_per_step = args.batch * args.length
    results = {
        "domain": args.domain,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "batch_rows": args.batch,
        "row_base_tokens": args.length,
        "pad_to_multiple_of": args.pad_to_multiple_of,
        "warmup_steps": args.warmup,
        "compression_ratio": last_log.get("compression_ratio"),
        "hypertoken_share": last_log.get("hypertoken_share"),
        "arms": {
            arm: {
                "step_s": statistics.median(t),
                "step_times_s": t,
                "bytes_per_s": bytes_per_step / statistics.median(t),
                "base_tokens_per_s": tokens_per_step / statistics.median(t),
            }
            for arm, t in times.items()
        },
    }
    rates = {arm: r["bytes_per_s"] for arm, r in results["arms"].items()}
    print(
        f"\nTraining throughput on {args.domain}, {args.batch} x {args.length} base tokens per step, {args.device}"
    )
    print(f"{'arm':<20}{'s/step (median)':>18}{'base tokens/s':>15}{'bytes/s':>12}")
    for arm, r in results["arms"].items():
        print(f"{arm:<20}{r['step_s']:>18.3f}{r['base_tokens_per_s']:>15.0f}{r['bytes_per_s']:>12.0f}")
    same = "zip2zip-bf16" if args.base_precision == "bf16" else "zip2zip-fp32"
    if "base" in rates and same in rates:
        results["speedup"] = rates[same] / rates["base"]
        print(
            f"{same} / base: {results['speedup']:.3f}x (bar {BAR}x: {'PASS' if results['speedup'] >= BAR else 'FAIL'})"
        )
    fp32_arms = [arm for arm in ("zip2zip-fp32", "zip2zip-fp32-unpadded") if arm in rates]
    bf16_arms = [arm for arm in ("zip2zip-bf16", "zip2zip-bf16-unpadded") if arm in rates]
    if fp32_arms and bf16_arms:
        # Each precision at its best padding setting.
        fastest = max(fp32_arms, key=rates.get)
        fastest_bf16 = max(bf16_arms, key=rates.get)
        results["bf16_speedup"] = rates[fastest_bf16] / rates[fastest]
        results["bf16_speedup_against"] = fastest
        results["bf16_speedup_of"] = fastest_bf16
        verdict = "PASS" if results["bf16_speedup"] >= BF16_BAR else "FAIL"
        print(
            f"bf16 / fp32 (LoRA, {fastest_bf16} against {fastest}, each precision's faster arm): "
            f"{results['bf16_speedup']:.3f}x (bar {BF16_BAR}x: {verdict})"
        )
    if "zip2zip-bf16" in rates and "zip2zip-full-bf16" in rates:
        results["full_vs_lora"] = rates["zip2zip-full-bf16"] / rates["zip2zip-bf16"]
        print(f"full fine-tuning / LoRA (bf16): {results['full_vs_lora']:.3f}x")
    if args.profile:
        print("\nShare of self CPU time in matrix products (mm, addmm, bmm, attention), timed steps:")
        for arm, values in shares.items():
            if not values:
                continue
            share = statistics.fmean(values)
            step = results["arms"][arm]["step_s"]
            results["arms"][arm]["matrix_share"] = share
            results["arms"][arm]["top_ops_s_per_step"] = top_ops.get(arm, {})
            print(
                f"  {arm:<24}{share:6.1%}: matrix {share * step:6.2f} s, the rest {(1 - share) * step:6.2f} s"
            )
            for name, seconds in top_ops.get(arm, {}).items():
                print(f"      {seconds:7.3f} s/step  {name}")
        fastest = max(fp32_arms, key=rates.get) if fp32_arms else None
        if fastest and "matrix_share" in results["arms"][fastest]:
            share = results["arms"][fastest]["matrix_share"]
            # Amdahl: only the matrix products get faster (the CPU's bf16 matmul: ~4x float32).
            bound = {gain: 1 / ((1 - share) + share / gain) for gain in (4.0, float("inf"))}
            results["bf16_bound"] = {
                "matrix_share_fp32": share,
                "gain_4x": bound[4.0],
                "gain_inf": bound[float("inf")],
            }
            print(
                f"bf16 / fp32 at most {bound[4.0]:.2f}x if the matrix products of {fastest} ran 4x faster, "
                f"{bound[float('inf')]:.2f}x if they took no time"
            )
    print(
        f"compression ratio {results['compression_ratio']}, hypertoken share of targets {results['hypertoken_share']}"
    )
    if not args.no_breakdown:
        parts = breakdown(base_path, rows, args)
        results["breakdown"] = parts
        overhead = parts["zip2zip_step_s"] - parts["short_base_step_s"]
        print("\nOne forward+backward of one batch (median), seconds:")
        print(f"  base, {args.length} tokens/row                      {parts['base_step_s']:.3f}")
        print(
            f"  zip2zip model, hypertokens off, {parts['compressed_length']:.0f} codes/row  "
            f"{parts['short_base_step_s']:.3f}   (shorter sequence alone)"
        )
        print(f"  zip2zip full step                               {parts['zip2zip_step_s']:.3f}")
        print(
            f"  hypertoken overhead                             {overhead:.3f}  ({overhead / parts['short_base_step_s']:.0%})"
        )
        print(f"    input encoder forward                         {parts['input_encoder_fwd_s']:.3f}")
        print(f"    output encoder forward (whole codebook)       {parts['output_encoder_fwd_s']:.3f}")
        rest = overhead - parts["input_encoder_fwd_s"] - parts["output_encoder_fwd_s"]
        print(f"    the rest (encoder backward, V+C logits, mask) {rest:.3f}")
        print(f"  collator LZW state per batch (data loader)      {parts['collator_s']:.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
