"""A battery of sampled generations at high temperature on a model whose hypertokens dominate its logits.

Every generated row must (1) decode, (2) have emitted only codes its own decoder could accept at each step,
and (3) when streamed, stream exactly its final text. The default run samples 1,024 rows over varied prompts,
batch shapes and sampling settings; the slow run adds 256 more rows and 64 streamed generations.
"""

from __future__ import annotations

import random
import threading

import pytest
import torch
from test_generation import build
from transformers import TextIteratorStreamer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = [
    "the cat sat on the mat. the cat sat on the hat. the cat",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return",
    "The quick brown fox",
    "the dog sat on the log. the dog",
    "for i in range(10):\n    print(i, i * i)\n",
    "aaaa aaaa aaaa aaaa",
    "x",
    "1234 1234 1234 12",
]
SETTINGS = [
    {"temperature": 2.0},
    {"temperature": 3.0, "top_k": 30},
    {"temperature": 5.0},
    {"temperature": 2.5, "top_p": 0.95, "repetition_penalty": 1.2},
    {"temperature": 4.0, "min_new_tokens": 8},
]


@pytest.fixture(scope="module")
def loud():
    return build(loud_hypertokens=True, seed=7)


def check_rows(model, tok, enc, out, returns: int) -> tuple[int, int]:
    """Assert the three properties for every row of `out`; return (rows, hypertokens emitted)."""
    V = model.config.base_vocab_size
    codec = tok.codec
    P = enc["input_ids"].shape[1]
    mask = enc["attention_mask"].repeat_interleave(returns, dim=0)
    hyper = 0
    for b in range(out.codes.shape[0]):
        prompt = [c for c, m in zip(out.codes[b, :P].tolist(), mask[b].tolist()) if m]
        codes = prompt + out.codes[b, P:].tolist()
        trace = codec.trace(codes)  # raises on any code the row's decoder could not accept
        for t in range(len(prompt), len(codes)):
            assert codes[t] < V + trace.accept_limits[t], (b, t, codes[t])
        assert tok.decode(codes) == tok.base.decode(trace.base_ids)
        hyper += out.generation_stats.hypertokens[b]
    return out.codes.shape[0], hyper


def sample_battery(model, tok, rounds: int, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    rows = hyper = 0
    for r in range(rounds):
        batch = rng.sample(PROMPTS, rng.randint(1, len(PROMPTS)))
        returns = rng.choice([1, 2, 4])
        settings = SETTINGS[r % len(SETTINGS)]
        torch.manual_seed(seed * 1000 + r)
        enc = tok(batch, return_tensors="pt", padding=True)
        out = model.generate(
            **enc,
            do_sample=True,
            max_new_tokens=rng.randint(4, 16),
            num_return_sequences=returns,
            return_dict_in_generate=True,
            **settings,
        )
        n, h = check_rows(model, tok, enc, out, returns)
        rows, hyper = rows + n, hyper + h
    return rows, hyper


def test_a_thousand_sampled_rows_decode_with_acceptable_codes(loud):
    model, tok = loud
    rows = hyper = 0
    seed = 0
    while rows < 1024:
        n, h = sample_battery(model, tok, rounds=8, seed=seed)
        rows, hyper, seed = rows + n, hyper + h, seed + 1
    assert rows >= 1024
    assert hyper > 0.2 * rows  # the battery exercises hypertokens, not just base ids


@pytest.mark.slow
def test_more_sampled_rows_and_streams(loud):
    model, tok = loud
    rows = 0
    seed = 1000
    while rows < 256:
        n, _ = sample_battery(model, tok, rounds=4, seed=seed)
        rows, seed = rows + n, seed + 1
    for i in range(64):
        prompt = PROMPTS[i % len(PROMPTS)]
        torch.manual_seed(5000 + i)
        enc = tok(prompt, return_tensors="pt")
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        result = {}
        settings = SETTINGS[i % len(SETTINGS)]
        thread = threading.Thread(
            target=lambda e=enc, s=streamer, r=result, k=settings: r.update(
                out=model.generate(**e, do_sample=True, max_new_tokens=12, streamer=s, **k)
            )
        )
        thread.start()
        streamed = "".join(streamer)
        thread.join()
        final = tok.decode(result["out"][0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
        assert streamed == final, i
