"""Generation with per-row LZW codebooks: generate(), streaming, pipeline, chat, batching, statistics.

Everything runs on a tiny random Llama with the tiny byte-level BPE tokenizer (tests/_tiny_*.py), on one
CPU thread. The invariants of the generation issue are marked "invariant N".
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import pytest
import torch
from _fresh_process import assert_same_report, fresh_generation_report, generation_report
from _tiny_models import tiny_base_model, tiny_zip2zip
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TextStreamer,
    pipeline,
)
from transformers.generation.streamers import BaseStreamer

from zip2zip import Zip2ZipForCausalLM, Zip2ZipTextStreamer, Zip2ZipTokenizer
from zip2zip.model.generation_zip2zip import Zip2ZipGenerateOutput, Zip2ZipGenerationStats

C = 64
PROMPTS = [
    "the cat sat on the mat. the cat sat on the hat. the cat",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return",
    "The quick brown fox",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def build(max_subtokens=4, position_mode="compressed", seed=0, loud_hypertokens=False, tied=False):
    """A tiny zip2zip model with perturbed encoders and its tokenizer (see `tiny_zip2zip`)."""
    return tiny_zip2zip(
        seed=seed,
        max_subtokens=max_subtokens,
        max_codebook_size=C,
        position_mode=position_mode,
        tied=tied,
        loud_hypertokens=loud_hypertokens,
    )


@pytest.fixture(scope="module")
def tiny():
    return build()


def new_text(tok, out, prompt_len, row=0, **kwargs):
    return tok.decode(out[row][prompt_len:], skip_special_tokens=True, **kwargs)


def generated_codes(codes, prompt_len, stats, row):
    return codes[row][prompt_len : prompt_len + stats.codes[row]].tolist()


# ----------------------------------------------------------------------------- invariant 1


def test_max_subtokens_one_generates_what_the_base_model_generates():
    model, tok = build(max_subtokens=1)
    base = model.language_model
    base_tok = tok.base
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    base_enc = base_tok(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    assert torch.equal(enc["input_ids"], base_enc["input_ids"])
    settings = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tok.pad_token_id}
    ours = model.generate(**enc, **settings)
    theirs = base.generate(**base_enc, **settings)
    assert torch.equal(ours, theirs)

    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    base_pipe = pipeline("text-generation", model=base, tokenizer=base_tok)
    for prompt in PROMPTS:
        a = pipe(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
        b = base_pipe(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
        assert a == b


# ----------------------------------------------------------------------------- invariant 2


@pytest.mark.parametrize(
    ("position_mode", "canonical"), [("compressed", False), ("base", False), ("compressed", True)]
)
def test_batched_greedy_equals_one_at_a_time(position_mode, canonical):
    model, tok = build(position_mode=position_mode)
    model.config.canonical_mask = canonical
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    batched = model.generate(**enc, max_new_tokens=16, do_sample=False, return_dict_in_generate=True)
    stats = batched.generation_stats
    assert stats.steps <= 16 and len(stats.codes) == len(PROMPTS)
    for b, prompt in enumerate(PROMPTS):
        one = tok(prompt, return_tensors="pt")
        p = one["input_ids"].shape[1]
        single = model.generate(**one, max_new_tokens=16, do_sample=False, return_dict_in_generate=True)
        assert generated_codes(single.codes, p, single.generation_stats, 0) == generated_codes(
            batched.codes, P, stats, b
        )
        assert new_text(tok, single.sequences, p) == new_text(tok, batched.sequences, P, b)


def test_a_finished_row_pads_while_the_others_go_on(tiny):
    model, tok = tiny
    enc = tok([PROMPTS[0], PROMPTS[2]], return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    free = model.generate(**enc, max_new_tokens=12, do_sample=False, return_codes=True)
    row0, row1 = free[0, P:].tolist(), free[1, P:].tolist()
    stop = next(c for c in row0[1:] if c < model.config.base_vocab_size and c not in row1)
    out = model.generate(
        **enc, max_new_tokens=12, do_sample=False, eos_token_id=stop, return_dict_in_generate=True
    )
    stats = out.generation_stats
    k = row0.index(stop) + 1
    assert stats.codes == [k, 12]
    assert out.codes[0, P : P + k].tolist() == row0[:k]
    assert set(out.codes[0, P + k :].tolist()) <= {tok.pad_token_id}
    assert out.codes[1, P:].tolist() == row1
    # The expanded row is the finished text, then padding up to the longer row.
    assert (
        out.sequences[0, P:].tolist()[: stats.base_tokens[0]]
        == tok.decode_to_base_ids(out.codes[0].tolist())[
            len(tok.decode_to_base_ids(enc["input_ids"][0].tolist())) :
        ][: stats.base_tokens[0]]
    )


# ----------------------------------------------------------------------------- cache, logits, positions


@pytest.mark.parametrize("position_mode", ["compressed", "base"])
def test_use_cache_false_equals_use_cache_true(position_mode):
    model, tok = build(position_mode=position_mode)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    settings = {
        "max_new_tokens": 10,
        "do_sample": False,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    cached = model.generate(**enc, **settings)
    uncached = model.generate(**enc, use_cache=False, **settings)
    assert torch.equal(cached.codes, uncached.codes)
    for a, b in zip(cached.logits, uncached.logits):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("position_mode,tied", [("compressed", False), ("base", False), ("compressed", True)])
def test_step_logits_equal_a_full_forward(position_mode, tied, monkeypatch):
    """The logits of every step equal those of one forward over the finished sequence (codes).

    Tied encoders over tied embeddings give an entry one vector for both sides, so generation computes it once:
    no input-side encoder pass at all.
    """
    model, tok = build(position_mode=position_mode, loud_hypertokens=True, tied=tied)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    sides = []
    encode_entries = model.encode_entries
    monkeypatch.setattr(
        model,
        "encode_entries",
        lambda entries, output=False: sides.append(output) or encode_entries(entries, output=output),
    )
    torch.manual_seed(0)
    out = model.generate(
        **enc,
        max_new_tokens=12,
        do_sample=True,
        temperature=1.5,
        return_dict_in_generate=True,
        output_logits=True,
    )
    codes = out.codes
    steps = codes.shape[1] - P
    mask = torch.cat([enc["attention_mask"], torch.ones(codes.shape[0], steps, dtype=torch.long)], dim=1)
    full = model(input_ids=codes, attention_mask=mask).logits
    assert len(out.logits) == steps
    for t in range(steps):
        torch.testing.assert_close(out.logits[t], full[:, P - 1 + t], atol=1e-4, rtol=1e-4)
    assert sum(out.generation_stats.hypertokens) > 0
    assert True in sides
    assert (False in sides) is not tied


def test_scores_have_constant_width_and_stats_are_reported(tiny):
    model, tok = tiny
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    out = model.generate(
        **enc, max_new_tokens=8, do_sample=False, return_dict_in_generate=True, output_scores=True
    )
    assert isinstance(out, Zip2ZipGenerateOutput)
    width = model.config.base_vocab_size + model.config.max_codebook_size
    assert {tuple(s.shape) for s in out.scores} == {(len(PROMPTS), width)}
    stats = out.generation_stats
    assert isinstance(stats, Zip2ZipGenerationStats)
    assert model.last_generation_stats is stats
    V = model.config.base_vocab_size
    P = enc["input_ids"].shape[1]
    for b in range(len(PROMPTS)):
        mine = out.codes[b, P : P + stats.codes[b]]
        assert stats.hypertokens[b] == int((mine >= V).sum())
        assert stats.base_tokens[b] >= stats.codes[b]
    assert stats.compression >= 1.0
    assert set(stats.to_dict()) >= {"steps", "codes", "base_tokens", "hypertokens", "compression"}


def test_compute_transition_scores_scores_each_generated_code(tiny):
    model, tok = tiny
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    out = model.generate(
        **enc,
        max_new_tokens=8,
        do_sample=False,
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    steps = len(out.scores)
    assert out.sequences.shape[1] != P + steps  # base ids: not one column per step
    expected = torch.stack(
        [
            torch.log_softmax(out.scores[t], -1).gather(1, out.codes[:, P + t, None])[:, 0]
            for t in range(steps)
        ],
        1,
    )
    for sequences in (out.sequences, out.codes):
        scores = model.compute_transition_scores(sequences, out.scores, normalize_logits=True)
        assert scores.shape == (len(PROMPTS), steps)
        torch.testing.assert_close(scores, expected)
    raw = model.compute_transition_scores(out.codes, out.logits)
    greedy_max = torch.stack([logits.max(-1).values for logits in out.logits], 1)
    torch.testing.assert_close(raw, greedy_max)  # greedy picks the best-scoring code each step
    with pytest.raises(ValueError, match=r"out\.codes"):
        model.compute_transition_scores(out.codes[:, :2], out.scores)


# ----------------------------------------------------------------------------- invariants 3 and 4


class Collect(BaseStreamer):
    """Records what generate streams: each put as a list of ids, then `["end"]`."""

    def __init__(self):
        self.puts: list[list] = []

    def put(self, value):
        self.puts.append(value.reshape(-1).tolist())

    def end(self):
        self.puts.append(["end"])


def test_decoded_output_equals_text_assembled_step_by_step(tiny):
    """Invariant 4: each step's phrase, decoded from the code stream incrementally, builds the final text."""
    model, tok = tiny
    for prompt in PROMPTS:
        enc = tok(prompt, return_tensors="pt")
        P = enc["input_ids"].shape[1]
        collect = Collect()
        out = model.generate(
            **enc, max_new_tokens=16, do_sample=False, streamer=collect, return_dict_in_generate=True
        )
        decoder = tok.codec.new_decoder()
        prompt_ids = [i for c in enc["input_ids"][0].tolist() for i in decoder.feed(c).phrase]
        steps = [list(decoder.feed(c).phrase) for c in out.codes[0, P:].tolist()]
        assert collect.puts[0] == prompt_ids
        assert collect.puts[1:] == [*[s for s in steps if s], ["end"]]
        assembled = [i for s in steps for i in s]
        assert out.sequences[0, P:].tolist() == assembled
        assert tok.decode(out.sequences[0, P:]) == tok.base.decode(assembled)
        assert tok.decode(out.codes[0]) == tok.base.decode(prompt_ids + assembled)
        assert tok.decode(out.sequences[0]) == tok.decode(out.codes[0])


# ----------------------------------------------------------------------------- streaming


def test_text_streamer_prints_the_final_text_with_prompt_hypertokens(tiny):
    model, tok = tiny
    prompt = PROMPTS[0]
    enc = tok(prompt, return_tensors="pt")
    P = enc["input_ids"].shape[1]
    prompt_entries = len(tok.codec.decode_with_codebook(enc["input_ids"][0].tolist())[1])
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        out = model.generate(
            **enc,
            max_new_tokens=16,
            do_sample=False,
            streamer=TextStreamer(tok, skip_prompt=True),
            return_dict_in_generate=True,
        )
    V = model.config.base_vocab_size
    assert any(V <= c < V + prompt_entries for c in out.codes[0, P:].tolist()), "no prompt hypertoken used"
    assert buffer.getvalue() == tok.decode(out.sequences[0, P:]) + "\n"

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        out = model.generate(**enc, max_new_tokens=16, do_sample=False, streamer=TextStreamer(tok))
    assert buffer.getvalue() == tok.decode(out[0]) + "\n"

    # The tokenizer's own streamer (which expands codes itself) also works on the base ids it is given.
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        model.generate(
            **enc, max_new_tokens=16, do_sample=False, streamer=Zip2ZipTextStreamer(tok, skip_prompt=True)
        )
    assert buffer.getvalue() == tok.decode(out[0][P:]) + "\n"


def test_streamers_refuse_batches_like_transformers(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[:2], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="batch size 1"):
        model.generate(**enc, max_new_tokens=3, do_sample=False, streamer=TextStreamer(tok))


# ----------------------------------------------------------------------------- stopping


def test_stop_strings_stop_at_the_code_that_completes_them(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[0], return_tensors="pt")
    P = enc["input_ids"].shape[1]
    free = model.generate(**enc, max_new_tokens=20, do_sample=False)
    text = new_text(tok, free, P)
    stop = text[6:9]
    assert stop and stop in text
    out = model.generate(
        **enc,
        max_new_tokens=20,
        do_sample=False,
        stop_strings=[stop],
        tokenizer=tok,
        return_dict_in_generate=True,
    )
    got = new_text(tok, out.sequences, P)
    assert stop in got and text.startswith(got)
    last = out.codes[0, P:].tolist()[-1]
    phrase_len = len(tok.codec.decode(out.codes[0].tolist())) - len(
        tok.codec.decode(out.codes[0, :-1].tolist())
    )
    assert stop not in tok.base.decode(out.sequences[0, P:].tolist()[:-phrase_len]), (stop, last)
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(**enc, max_new_tokens=5, stop_strings=["x"])


def test_max_new_base_tokens_counts_base_tokens(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[0], return_tensors="pt")
    P = enc["input_ids"].shape[1]
    free = model.generate(
        **enc, max_new_tokens=20, do_sample=False, eos_token_id=None, return_dict_in_generate=True
    )
    assert free.generation_stats.steps == 20  # max_new_tokens counts codes
    assert free.generation_stats.base_tokens[0] > 20
    collect = Collect()
    out = model.generate(
        **enc,
        max_new_base_tokens=13,
        do_sample=False,
        eos_token_id=None,
        streamer=collect,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape[1] - P == 13
    assert out.sequences[0, P:].tolist() == free.sequences[0, P : P + 13].tolist()
    assert collect.puts[-1] == ["end"]
    assert [i for put in collect.puts[1:-1] for i in put] == out.sequences[0, P:].tolist()
    assert out.generation_stats.base_tokens == [13]
    assert out.generation_stats.steps < 13


def test_max_new_base_tokens_cuts_every_row_of_a_batch_at_its_own_code(tiny):
    """Rows of different lengths (left-padded) each get exactly the budget's base ids, those of the free run."""
    model, tok = tiny
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    free = model.generate(
        **enc, max_new_tokens=20, do_sample=False, eos_token_id=None, return_dict_in_generate=True
    )
    assert min(free.generation_stats.base_tokens) > 13
    out = model.generate(
        **enc, max_new_base_tokens=13, do_sample=False, eos_token_id=None, return_dict_in_generate=True
    )
    assert out.generation_stats.base_tokens == [13] * len(PROMPTS)
    assert out.sequences.shape[1] - P == 13
    assert torch.equal(out.sequences[:, P:], free.sequences[:, P : P + 13])
    # Each row stopped at the code that reached its budget (rows spend it in different numbers of codes).
    codec = tok.codec
    for b, count in enumerate(out.generation_stats.codes):
        prompt = enc["input_ids"][b][enc["attention_mask"][b].bool()].tolist()
        generated = free.codes[b, P : P + count].tolist()
        assert out.codes[b, P : P + count].tolist() == generated

        def new_base(codes, prompt=prompt):
            return len(codec.decode(prompt + codes)) - len(codec.decode(prompt))

        assert new_base(generated[:-1]) < 13 <= new_base(generated), b
    assert len(set(out.generation_stats.codes)) > 1, "the rows must need different numbers of codes"


def test_unsupported_modes_are_rejected_up_front(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[0], return_tensors="pt")
    message = "supports the generation modes 'greedy_search' and 'sample'"
    for settings in (
        {"num_beams": 2},
        {"num_beams": 2, "do_sample": True},
        {"penalty_alpha": 0.6, "top_k": 4},
        {"assistant_model": model},
        {"assistant_model": model, "prompt_lookup_num_tokens": 3},
        {"assistant_early_exit": 1},
    ):
        with pytest.raises(ValueError, match=message):
            model.generate(**enc, max_new_tokens=3, **settings)
    with pytest.raises(ValueError, match="num_beams=2"):
        model.generate(**enc, max_new_tokens=3, num_beams=2)
    # Prompt lookup is supported (its equality with plain decoding: tests/test_lookup.py).


class _Unmask(LogitsProcessor):
    """A careless user processor: gives every masked (-inf) slot a score above every real one."""

    def __call__(self, input_ids, scores):
        return torch.where(scores.isneginf(), scores.new_tensor(1e4), scores)


def test_masked_slots_stay_masked_after_user_processors(tiny):
    """generate re-masks what a row's decoder cannot accept after the caller's processors: the greedy codes and
    the scores (-inf exactly where the decoder rejects) are those of a run without the processor."""
    model, tok = tiny
    enc = tok(PROMPTS[:2], return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    settings = {
        "max_new_tokens": 8,
        "do_sample": False,
        "return_dict_in_generate": True,
        "output_scores": True,
    }
    plain = model.generate(**enc, **settings)
    unmasked = model.generate(**enc, logits_processor=LogitsProcessorList([_Unmask()]), **settings)
    assert torch.equal(unmasked.codes, plain.codes)
    V = model.config.base_vocab_size
    for t, scores in enumerate(unmasked.scores):
        assert torch.equal(scores, plain.scores[t])
        for b in range(scores.shape[0]):
            prompt = [c for c, m in zip(enc["input_ids"][b].tolist(), enc["attention_mask"][b].tolist()) if m]
            limit = model.codec.trace(prompt + unmasked.codes[b, P : P + t].tolist()).accept_limits[-1]
            assert bool(scores[b, V + limit :].isneginf().all()) and limit < model.config.max_codebook_size
            assert bool(scores[b, V : V + limit].isfinite().all())

    # Sampling with several sequences per prompt: every row decodes.
    torch.manual_seed(0)
    out = model.generate(
        **enc,
        do_sample=True,
        max_new_tokens=8,
        num_return_sequences=3,
        logits_processor=LogitsProcessorList([_Unmask()]),
        return_codes=True,
    )
    assert out.shape[0] == 6 and len(model.last_generation_stats.codes) == 6
    for row in out.tolist():
        model.codec.trace([c for c in row if c != tok.pad_token_id])  # raises on an unacceptable code


# ----------------------------------------------------------------------------- dtypes and compilation


def _check_steps_against_a_full_forward(model, enc, out, rtol: float) -> None:
    """Every step's logits equal (within `rtol` of their scale) one forward over the finished codes, with the
    same masked slots; every row's codes decode."""
    P = enc["input_ids"].shape[1]
    codes = out.codes
    steps = codes.shape[1] - P
    mask = torch.cat([enc["attention_mask"], torch.ones(codes.shape[0], steps, dtype=torch.long)], dim=1)
    for row, row_mask in zip(codes.tolist(), mask.tolist()):
        model.codec.trace([c for c, m in zip(row, row_mask) if m])  # raises on an unacceptable code
    with torch.no_grad():
        full = model(input_ids=codes, attention_mask=mask).logits.float()
    for t in range(steps):
        step, want = out.logits[t].float(), full[:, P - 1 + t]
        finite = want.isfinite()
        assert torch.equal(step.isfinite(), finite), t
        assert (step[finite] - want[finite]).abs().max() <= rtol * want[finite].abs().max(), t


def test_bfloat16_generation_follows_the_bfloat16_forward():
    model, tok = build(loud_hypertokens=True)
    model.to(torch.bfloat16)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    out = model.generate(
        **enc, max_new_tokens=12, do_sample=False, return_dict_in_generate=True, output_logits=True
    )
    assert next(model.parameters()).dtype == torch.bfloat16
    assert sum(out.generation_stats.hypertokens) > 0
    _check_steps_against_a_full_forward(model, enc, out, rtol=0.05)
    # Sampling in bf16: each row's codes decode, to the text of its expanded sequence.
    torch.manual_seed(0)
    sampled = model.generate(
        **enc, max_new_tokens=12, do_sample=True, temperature=1.5, return_dict_in_generate=True
    )
    for b in range(len(PROMPTS)):
        text = tok.decode(sampled.codes[b], skip_special_tokens=True)
        assert text == tok.decode(sampled.sequences[b], skip_special_tokens=True)


@pytest.mark.slow
def test_a_compiled_forward_gives_the_eager_logits_and_greedy_steps():
    """torch.compile of the model's forward: the same logits as eager, and generate over the compiled forward
    writes the eager greedy codes with the eager step logits."""
    model, tok = build(loud_hypertokens=True)
    enc = tok(PROMPTS[:1], return_tensors="pt")
    settings = {
        "max_new_tokens": 3,
        "do_sample": False,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    with torch.no_grad():
        eager_logits = model(**enc).logits
        eager = model.generate(**enc, **settings)
    torch._dynamo.reset()
    # aot_eager: Dynamo's tracing (graph breaks, guards, dynamic shapes) and AOTAutograd, without the C++
    # code generation of inductor, which costs minutes on a small CPU and proves nothing about zip2zip.
    model.forward = torch.compile(model.forward, backend="aot_eager", dynamic=True)
    try:
        with torch.no_grad():
            torch.testing.assert_close(model(**enc).logits, eager_logits, atol=1e-4, rtol=1e-4)
            compiled = model.generate(**enc, **settings)
    finally:
        del model.forward
        torch._dynamo.reset()
    assert torch.equal(compiled.codes, eager.codes)
    for a, b in zip(compiled.logits, eager.logits):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert max(eager.codes[0].tolist()) >= model.config.base_vocab_size  # hypertokens read or written


# ----------------------------------------------------------------------------- pipeline, chat, export


def test_pipeline_with_a_model_object_and_chat(tiny):
    model, tok = tiny
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    settings = {"max_new_tokens": 12, "do_sample": False}
    for prompt in PROMPTS:
        enc = tok(prompt, return_tensors="pt")
        expected = new_text(tok, model.generate(**enc, **settings), enc["input_ids"].shape[1])
        assert pipe(prompt, return_full_text=False, **settings)[0]["generated_text"] == expected
        assert pipe(prompt, **settings)[0]["generated_text"] == prompt + expected

    chat = [{"role": "user", "content": "the cat sat on the mat. the cat sat on the"}]
    enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    P = enc["input_ids"].shape[1]
    answer = new_text(tok, model.generate(**enc, **settings), P)
    result = pipe(chat, **settings)[0]["generated_text"]
    assert result[:-1] == chat and result[-1] == {"role": "assistant", "content": answer}

    # Multi-turn: the decoded answer goes back into the conversation and generation goes on.
    chat = [*chat, {"role": "assistant", "content": answer}, {"role": "user", "content": "the cat sat"}]
    enc = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    text = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert tok.decode(enc["input_ids"][0]) == text
    second = new_text(tok, model.generate(**enc, **settings), enc["input_ids"].shape[1])
    assert pipe(chat, **settings)[0]["generated_text"][-1]["content"] == second


def test_saved_folder_pipeline_and_fresh_process_generate(tiny, tmp_path):
    model, tok = tiny
    folder = tmp_path / "repo"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    assert (folder / "generation_zip2zip.py").exists()
    settings = {"max_new_tokens": 12, "do_sample": False}
    enc = tok(PROMPTS[1], return_tensors="pt")
    expected = new_text(tok, model.generate(**enc, **settings), enc["input_ids"].shape[1])

    pipe = pipeline("text-generation", model=str(folder), trust_remote_code=True)
    assert pipe(PROMPTS[1], return_full_text=False, **settings)[0]["generated_text"] == expected
    assert pipe(PROMPTS[1], **settings)[0]["generated_text"] == PROMPTS[1] + expected

    # Only torch and transformers in a fresh process: the saved folder alone, as in this process.
    prompts = [PROMPTS[2], PROMPTS[1]]
    got = fresh_generation_report(folder, prompts, tmp_path)
    assert_same_report(got, generation_report(model, tok, prompts), atol=1e-4)
    assert got["steps"] > 0 and all(got["texts"])


# ----------------------------------------------------------------------------- the default model


def _default_model(smollm2_tokenizer, **settings):
    """An untrained zip2zip model with the recipe's defaults over a tiny random Llama with SmolLM2's vocabulary."""
    base = tiny_base_model("llama", vocab_size=len(smollm2_tokenizer), seed=1)
    model = Zip2ZipForCausalLM.from_base(
        base, tokenizer=smollm2_tokenizer, max_codebook_size=512, max_subtokens=4, **settings
    )
    tok = Zip2ZipTokenizer.from_base(smollm2_tokenizer, model.config)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval(), tok


DEFAULT_PROMPTS = [
    "Hello world. Hello world. Hello",
    "1 2 3 4 5 6 7 8 9 10 11 12",
    "aaaa bbbb aaaa bbbb aaaa",
    "<|im_start|>user\nHi there, hi there<|im_end|>\n<|im_start|>assistant\n",
]


def test_default_untrained_model_batched_greedy_equals_one_at_a_time(smollm2_tokenizer):
    """Every row of a left-padded greedy batch equals the row generated alone, on the default model.

    The default (recipe) init makes a fresh hypertoken the mean of its constituents; with the residual init an
    untrained hypertoken's logit ties exactly with its first constituent's, and padding noise picks the winner
    (with the old defaults, `encoder_init="residual"`, full-width encoders and no digit protection, one of
    these four rows differs).
    """
    model, tok = _default_model(smollm2_tokenizer)
    assert model.config.encoder_init == "mean" and model.config.protect_digits
    enc = tok(DEFAULT_PROMPTS, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    settings = {"max_new_tokens": 48, "do_sample": False, "return_dict_in_generate": True}
    batched = model.generate(**enc, **settings)
    for b, prompt in enumerate(DEFAULT_PROMPTS):
        one = tok(prompt, return_tensors="pt")
        single = model.generate(**one, **settings)
        p = one["input_ids"].shape[1]
        assert generated_codes(single.codes, p, single.generation_stats, 0) == generated_codes(
            batched.codes, P, batched.generation_stats, b
        ), b
