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
LONG_CONTEXT_DOMAINS = ("code", "prose", UNSEEN_DOMAIN)  # whole held-out documents scored in long windows
# zip2zip / base at the longer window over zip2zip / base at the shorter one, at most: a longer window must not cost
# zip2zip more than it costs the base (compression grows with the window, so the gap must not)
LONG_GAIN_WINDOWS = (1024, 4096)
LONG_GAIN_DOMAINS = ("code", UNSEEN_DOMAIN)
LONG_GAIN_BAR = 1.00
LONG_CONTROL_BARS = {
    1024: 1.10,
    4096: 1.12,
}  # zip2zip / control, pooled over domains (byte-weighted), at most
LONG_TIME_BAR = 0.75  # zip2zip / base time for the new base tokens after the long code prompt, at most
LONG_KV_BAR = 0.80  # zip2zip / base KV-cache bytes after the long code prompt, at most
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
    # long context (section 5): whole documents long enough for the largest window (8k+ code tokens)
    "long_windows": [1024, 2048, 4096, 8192],
    "long_documents": 2,
    "long_chars": 28_000,
    "long_prompt_tokens": 4096,
    "long_new_tokens": 128,
    "long_repeats": 3,
    "long_endings": 8,
    "long_ending_chars": 3_000,
}
QUICK = {
    "eval_chars": 1_500,
    "prompts": 1,
    "prompt_tokens": 96,
    "new_tokens": 16,
    "repeats": 1,
    "mc_items": 4,
    "max_length": 256,
    "long_windows": [1024, 4096],
    "long_documents": 1,
    "long_chars": 2_000,
    "long_prompt_tokens": 256,
    "long_new_tokens": 16,
    "long_repeats": 1,
    "long_endings": 1,
    "long_ending_chars": 1_000,
}
