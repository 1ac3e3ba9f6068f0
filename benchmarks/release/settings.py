"""The release benchmark's fixed choices: domains, bars, run sizes and where its files live."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
ROOT = BENCHMARKS.parent
TASKS_DIR = BENCHMARKS / "tasks"

GENERATION_DOMAINS = ("code", "prose")
MC_DOMAINS = ("code", "prose")
MC_TASKS = {domain: f"next_line_{domain}" for domain in MC_DOMAINS}
MC_MAX_LENGTH = 1024  # positions lm-eval's zip2zip class may use per request; the items need a few hundred

UNSEEN_DOMAIN = "go"
BPB_BARS = {"code": 1.10, "prose": 1.05, UNSEEN_DOMAIN: 1.20}  # strict bits per byte zip2zip / base, at most
GENERATION_COMPRESSION_BAR = (
    1.20  # base tokens per generated code, own greedy continuations of code, at least
)
HYPERTOKEN_SHARE_BAR = 0.15  # hypertokens among the codes zip2zip emits on code, at least
REPEATED_NGRAM = 8  # n of the repeated-n-gram share of the continuations
REPEAT_POINTS_BAR = 10.0  # zip2zip's repeated-8-gram share minus the base model's, percentage points, at most
MC_POINTS_BAR = 5.0  # next-line accuracy: zip2zip at most this many points below the base (lm-eval ``hf``)
MC_BASE_RUN = "base (hf)"
SAME_WORK_TIME_BAR = 0.85  # zip2zip / base time for the same new base tokens of code continuation, at most
BAR_TOLERANCE = 1e-9  # a value that equals its bar up to float rounding meets it

# Rows of 660 base tokens hold the text of the release run's 512 codes (its compression, 1.29): the same base tokens.
CONTROL_COMMAND = (
    "python examples/train_smollm2.py --preset cpu-long --max-subtokens 1 --max-length 660 --output RUN"
)
MIN_FIT_POINTS = 4  # held-out points (with tokens seen > 0) a three-parameter curve fit needs

FULL = {
    "eval_chars": 8_000,
    # greedy loops are all-or-nothing per prompt: two prompts per domain made the repeated-8-gram bar a coin flip
    "prompts": 8,
    "prompt_tokens": 384,
    "new_tokens": 128,
    "repeats": 1,
    "mc_items": 60,
    "max_length": 1024,
}
QUICK = {
    "eval_chars": 1_500,
    "prompts": 1,
    "prompt_tokens": 96,
    "new_tokens": 16,
    "repeats": 1,
    "mc_items": 4,
    "max_length": 256,
}
