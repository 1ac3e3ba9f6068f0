"""A battery of sampled generations at high temperature on a model whose hypertokens dominate its logits.

Every generated row must (1) decode, every code acceptable to its own decoder (``codec.trace`` raises
otherwise), (2) come back expanded, and counted in the statistics, exactly as a fresh decoder expands the whole
row, the generation state's incremental bookkeeping (budget, padding, end of sequence) checked against it, and
(3) when streamed, stream exactly its final text. The default run samples 256 rows over varied prompts, batch
shapes and sampling settings, and streams a few; the slow run adds 768 rows and 32 streamed generations.
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


def check_rows(model, tok, enc, out, returns: int) -> tuple[int, int, int]:
    """Check every row of `out`; return (rows, hypertokens emitted, hypertokens that are prompt entries)."""
    V = model.config.base_vocab_size
    codec = tok.codec
    P = enc["input_ids"].shape[1]
    mask = enc["attention_mask"].repeat_interleave(returns, dim=0)
    stats = out.generation_stats
    pad, eos = tok.pad_token_id, tok.eos_token_id
    hyper = from_prompt = 0
    for b in range(out.codes.shape[0]):
        prompt = [c for c, m in zip(out.codes[b, :P].tolist(), mask[b].tolist()) if m]
        generated = out.codes[b, P:].tolist()
        trace = codec.trace(prompt + generated)  # raises on any code the row's decoder could not accept
        k = stats.codes[b]
        assert eos not in generated[: k - 1] and set(generated[k:]) <= {pad}, (b, generated, k)
        assert k == len(generated) or generated[k - 1] == eos
        prompt_base = sum(trace.spans[: len(prompt)])
        new_base = trace.base_ids[prompt_base : prompt_base + sum(trace.spans[len(prompt) : len(prompt) + k])]
        assert stats.base_tokens[b] == len(new_base)
        assert out.sequences[b, P : P + len(new_base)].tolist() == new_base, b
        assert set(out.sequences[b, P + len(new_base) :].tolist()) <= {pad}
        assert stats.hypertokens[b] == sum(c >= V for c in generated[:k])
        prompt_entries = len(codec.decode_with_codebook(prompt)[1])
        from_prompt += sum(V <= c < V + prompt_entries for c in generated[:k])
        hyper += stats.hypertokens[b]
    return out.codes.shape[0], hyper, from_prompt


def sample_battery(model, tok, rounds: int, seed: int) -> tuple[int, int, int]:
    rng = random.Random(seed)
    rows = hyper = from_prompt = 0
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
        n, h, p = check_rows(model, tok, enc, out, returns)
        rows, hyper, from_prompt = rows + n, hyper + h, from_prompt + p
    return rows, hyper, from_prompt


def battery(model, tok, rows: int, seed: int) -> tuple[int, int, int]:
    done = hyper = from_prompt = 0
    while done < rows:
        n, h, p = sample_battery(model, tok, rounds=4, seed=seed)
        done, hyper, from_prompt, seed = done + n, hyper + h, from_prompt + p, seed + 1
    return done, hyper, from_prompt


def check_streams(model, tok, count: int, seed: int) -> None:
    """Streamed sampled generations, one prompt at a time: the streamed text is the final text."""
    for i in range(count):
        prompt = PROMPTS[i % len(PROMPTS)]
        torch.manual_seed(seed + i)
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


def test_sampled_rows_decode_expand_and_stream(loud):
    model, tok = loud
    rows, hyper, from_prompt = battery(model, tok, 256, seed=0)
    assert hyper > 0.2 * rows  # the battery exercises hypertokens, not just base ids
    assert from_prompt > 0  # ... and the prompt's own entries
    check_streams(model, tok, 5, seed=100)


@pytest.mark.slow
def test_more_sampled_rows_and_streams(loud):
    model, tok = loud
    rows, hyper, _ = battery(model, tok, 768, seed=1000)
    assert hyper > 0.2 * rows
    check_streams(model, tok, 32, seed=5000)
