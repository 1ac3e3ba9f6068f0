"""What a user does with the trained model, checked on the shipped model itself: batched greedy generation equals
generating each prompt alone, chat through `pipeline` equals `generate` on the chat template, transition scores
are the scores of the codes written, and the streamed steps assemble the returned text.

The tiny-model tests in test_generation.py prove the same behaviours on random weights with loud hypertokens;
here the hypertokens come from training, with the codec settings the model ships with (slow: the real SmolLM2).
"""

from __future__ import annotations

import pytest
import torch
from test_generation import Collect
from transformers import pipeline

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

PROMPTS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\ndef",
    "The Debian project maintains thousands of packages. Each package",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n\nclass Size:\n"
    "    def __init__(self, width, height):\n        self.width = width\n        self.height = height\n\n\n"
    "class Rect:\n    def __init__(self, x, y, width, height):\n",
]
NEW = 48


@pytest.fixture(scope="module")
def shipped(smollm2_path):
    from zip2zip.bundled.shipped import shipped_zip2zip_path
    from zip2zip.loading import load_model_and_tokenizer

    path = shipped_zip2zip_path()
    assert path is not None, "the package must ship its trained checkpoint (zip2zip/bundled/checkpoints/)"
    model, tok = load_model_and_tokenizer(path)
    return model.eval(), tok


def _new_codes(codes, prompt_len, stats, row):
    return codes[row, prompt_len : prompt_len + stats.codes[row]].tolist()


def test_batched_greedy_equals_one_at_a_time(shipped):
    model, tok = shipped
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    settings = {"max_new_base_tokens": NEW, "do_sample": False, "return_dict_in_generate": True}
    batched = model.generate(**enc, **settings)
    hypertokens = 0
    for row, prompt in enumerate(PROMPTS):
        one = tok(prompt, return_tensors="pt")
        p = one["input_ids"].shape[1]
        single = model.generate(**one, **settings)
        assert _new_codes(single.codes, p, single.generation_stats, 0) == _new_codes(
            batched.codes, P, batched.generation_stats, row
        ), f"row {row}: batched codes differ from the prompt generated alone"
        text = tok.decode(single.sequences[0, p:], skip_special_tokens=True)
        assert tok.decode(batched.sequences[row, P:], skip_special_tokens=True) == text
        hypertokens += single.generation_stats.hypertokens[0]
    assert hypertokens > 0, "the trained model writes hypertokens on these prompts"


def test_chat_through_pipeline_equals_generate(shipped):
    model, tok = shipped
    chat = [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}]
    settings = {"max_new_tokens": 32, "do_sample": False}
    enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    P = enc["input_ids"].shape[1]
    answer = tok.decode(model.generate(**enc, **settings)[0, P:], skip_special_tokens=True)
    assert answer.strip(), "the shipped model answers a chat turn"
    result = pipeline("text-generation", model=model, tokenizer=tok)(chat, **settings)[0]["generated_text"]
    assert result[:-1] == chat and result[-1] == {"role": "assistant", "content": answer}


def test_transition_scores_are_the_scores_of_the_written_codes(shipped):
    model, tok = shipped
    enc = tok(PROMPTS[0], return_tensors="pt")
    P = enc["input_ids"].shape[1]
    out = model.generate(
        **enc, max_new_tokens=16, do_sample=False, return_dict_in_generate=True, output_scores=True
    )
    steps = len(out.scores)
    expected = torch.stack(
        [torch.log_softmax(out.scores[t], -1)[0, out.codes[0, P + t]] for t in range(steps)]
    )
    scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    torch.testing.assert_close(scores[0], expected)
    assert torch.isfinite(scores).all() and (scores <= 0).all()
    # greedy: each written code is the best-scoring one the decoder could read
    assert all(out.scores[t][0].argmax() == out.codes[0, P + t] for t in range(steps))


def test_streamed_steps_assemble_the_returned_text(shipped):
    model, tok = shipped
    enc = tok(PROMPTS[2], return_tensors="pt")
    P = enc["input_ids"].shape[1]
    streamer = Collect()
    out = model.generate(
        **enc, max_new_base_tokens=NEW, do_sample=False, streamer=streamer, return_dict_in_generate=True
    )
    steps = streamer.puts[1:-1]  # the first put is the prompt's base ids, the last the end
    assert streamer.puts[-1] == ["end"]
    assert [i for put in steps for i in put] == out.sequences[0, P:].tolist()
    assert any(len(put) > 1 for put in steps), "some steps write a hypertoken"


def test_token_healing_continues_a_file_cut_inside_a_function_body(shipped):
    """A held-out Python file cut at a line end inside an indented block ends with a bare newline, which a model
    trained on whole files reads as the file's end (the release-v2 model writes `<|im_end|>` at once here);
    healed, it writes on, and its text starts with the prompt's."""
    from zip2zip.corpora.store import load_files

    model, tok = shipped
    text = next(t for t in load_files("code", "heldout") if len(t) >= 6000 and "ignoring\n            #" in t)
    prompt = text[: text.index("ignoring\n            #") + len("ignoring\n")]
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, max_new_base_tokens=24, do_sample=False, token_healing=True, tokenizer=tok)
    assert model.last_generation_stats.base_tokens == [24]
    assert tok.eos_token_id not in out[0].tolist()
    assert tok.decode(out[0]).startswith(prompt)
