"""Canonical masking: a model that puts no probability on code streams the LZW encoder never writes.

The codec part is a property test (a stream is canonical exactly when none of its codes is excluded by the
one before it); the model part checks, on tiny models, what a user relies on: the mask only removes codes,
never a canonical target, so scores can only improve; a prompt/completion training row gets, column by
column, the mask and log-probabilities of generating its completion after its prompt; generation writes canonical streams, the same with and without a KV cache or prompt lookup; and the
flag survives save/load.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from _benchmarks import load_benchmark
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_generation import PROMPTS, build
from transformers import LogitsProcessor, LogitsProcessorList

from zip2zip import Zip2ZipConfig, Zip2ZipDataCollator, Zip2ZipForCausalLM
from zip2zip.evaluation.scoring import Scorer
from zip2zip.model.generation_state_zip2zip import Zip2ZipGenerationState
from zip2zip.model.lzw import LZWCodec
from zip2zip.trainer.data import tokenize_example

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def codec_and_stream(draw):
    """A small codec, base ids, and a random decodable code stream for them (any split of the text into
    phrases the decoder knows at each point, the KwKwK code included)."""
    V = draw(st.integers(2, 6))
    C = draw(st.integers(0, 24))
    M = draw(st.integers(1, 5))
    D = draw(st.sets(st.integers(0, V - 1), max_size=min(2, V - 1)))
    ids = draw(st.lists(st.integers(0, V - 1), max_size=60))
    codec = LZWCodec(V, C, M, D)
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    decoder = codec.new_decoder()
    children = decoder._state.children
    codes, i = [], 0
    while i < len(ids):
        options = [(ids[i], 1)]
        if ids[i] not in codec.disabled_ids:
            node, length = ids[i], 1
            while length < M and i + length < len(ids):
                node = children.get(node * V + ids[i + length])
                if node is None:
                    break
                length += 1
                options.append((node, length))
            candidate = decoder.candidate
            if candidate is not None and tuple(ids[i : i + len(candidate)]) == candidate:
                options.append((decoder.next_id, len(candidate)))
        code, length = rng.choice(options)
        decoder.feed(code)
        codes.append(code)
        i += length
    return codec, ids, codes


@SETTINGS
@given(codec_and_stream())
def test_a_stream_is_canonical_exactly_when_no_code_is_excluded(case):
    codec, ids, codes = case
    assert codec.decode(codes) == ids
    trace = codec.trace(codes, exclusions=True)
    plain = codec.trace(codes)
    assert (trace.accept_limits, trace.candidates, trace.spans) == (
        plain.accept_limits,
        plain.candidates,
        plain.spans,
    )
    assert len(trace.excluded) == len(codes) + 1 and trace.excluded[0] == []
    broken = [t for t, code in enumerate(codes) if code in trace.excluded[t]]
    assert (not broken) == (codec.encode(ids) == codes)
    V = codec.base_vocab_size
    for t, excluded in enumerate(trace.excluded):
        # Only codes the decoder could accept there, each once, and never a disabled id.
        assert len(set(excluded)) == len(excluded)
        assert all(0 <= c < V + trace.accept_limits[t] for c in excluded)
        assert not codec.disabled_ids.intersection(excluded)


@SETTINGS
@given(codec_and_stream())
def test_exclusions_follow_their_definition(case):
    """After code c: every code whose first base id x makes c + x an entry known at that point."""
    codec, _, codes = case
    trace = codec.trace(codes, exclusions=True)
    V = codec.base_vocab_size
    entries, created_at = trace.codebook.entries, trace.codebook.created_at
    for t in range(1, len(codes) + 1):
        known = [entries[k] for k in range(len(entries)) if created_at[k] < t]
        previous = trace.codebook.expand(codes[t - 1])
        firsts = {entry[-1] for entry in known if entry[:-1] == previous}
        expected = set(firsts) | {
            V + k for k, entry in enumerate(entries) if created_at[k] < t and entry[0] in firsts
        }
        candidate = trace.candidates[t]
        if candidate is not None and candidate[0] in firsts:
            expected.add(V + trace.accept_limits[t] - 1)
        assert set(trace.excluded[t]) == expected


def test_a_decoder_copy_gives_the_same_exclusions():
    codec = LZWCodec(5, 32, 4)
    codes = codec.encode([1, 2, 3, 1, 2, 3, 1, 2, 4, 1, 2, 3, 4])
    decoder = codec.new_decoder()
    decoder.feed_many(codes[:6])
    before = decoder.excluded_next(codes[5])
    copy = decoder.copy()
    assert copy.excluded_next(codes[5]) == before
    copy.feed_many(codes[6:])
    assert decoder.excluded_next(codes[5]) == before, "feeding the copy leaves the original alone"


# ---------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def tiny():
    return build()


def _switch(model, on: bool):
    model.config.canonical_mask = on
    return model


def test_the_mask_only_removes_codes_and_never_a_canonical_target(tiny):
    model, tok = tiny
    ids = tok(PROMPTS[0] + PROMPTS[1], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        off = _switch(model, False)(input_ids=ids).logits
        on = _switch(model, True)(input_ids=ids).logits
    _switch(model, False)
    changed = off != on
    assert bool(changed.any()), "the test text must have positions the rule constrains"
    assert bool(on[changed].isneginf().all())
    trace = model.codec.trace(ids[0].tolist(), exclusions=True)
    expected = torch.zeros_like(changed[0])
    for t, excluded in enumerate(trace.excluded[1:]):
        expected[t, excluded] = True
    assert torch.equal(changed[0] | off[0].isneginf(), expected | off[0].isneginf())
    logprob_off = torch.log_softmax(off[0, :-1], -1).gather(-1, ids[0, 1:, None])
    logprob_on = torch.log_softmax(on[0, :-1], -1).gather(-1, ids[0, 1:, None])
    assert bool(logprob_on.isfinite().all())
    assert bool((logprob_on >= logprob_off - 1e-5).all()), "renormalising over fewer codes"
    assert float(logprob_on.sum()) > float(logprob_off.sum())


def test_bits_per_byte_improve_and_continuations_stay_finite(tiny):
    model, tok = tiny
    texts = [PROMPTS[0] * 3, PROMPTS[1] * 3]
    scores = {}
    for on in (False, True):
        scorer = Scorer(_switch(model, on), tok, max_length=96)
        scores[on] = scorer.score_texts(texts)
    _switch(model, False)
    assert scores[True].bits_per_byte < scores[False].bits_per_byte
    # A continuation that starts a phrase the context's last code could extend: the first code of a new
    # segment is exempt, so its probability stays finite and close to the unmasked one.
    scorer = Scorer(_switch(model, True), tok, max_length=96)
    text = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat."
    pairs = []
    for cut in range(1, len(text)):
        context, continuation = text[:cut], text[cut:]
        codes, start = scorer.pair(context, continuation)
        if codes[start] in model.codec.trace(codes, exclusions=True).excluded[start]:
            pairs.append((context, continuation))
    assert pairs, "some split must break the rule at its boundary"
    masked = scorer.loglikelihood(pairs)
    _switch(model, False)
    plain = Scorer(model, tok, max_length=96).loglikelihood(pairs)
    for (logprob, _), (reference, _) in zip(masked, plain):
        assert math.isfinite(logprob) and logprob >= reference - 1e-4


class _Force(LogitsProcessor):
    """Makes generation emit the given codes, one per step (the raw logits stay the model's own)."""

    def __init__(self, codes: list[int]):
        self.codes, self.step = codes, 0

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.codes[self.step]] = 0.0
        self.step += 1
        return forced


def _boundary_examples(codec, tok, count: int) -> list[dict]:
    """Prompt/completion examples whose prompt's last code has codes the canonical rule would exclude after
    it, the first ones of them with a completion that starts with such a code."""
    text = "the cat sat on the mat. the cat sat on the hat. the cat sat on the mat. the cat sat. a dog, a dog, a dog"
    breaking, constrained = [], []
    for cut in range(8, len(text) - 8):
        example = {"prompt": text[:cut], "completion": text[cut:]}
        row = tokenize_example(example, tok)
        (end,) = row["segment_ends"]
        codes = row["input_ids"]
        excluded = codec.trace(codes, exclusions=True).excluded[end + 1]
        if excluded:
            (breaking if codes[end + 1] in excluded else constrained).append(example)
    assert breaking and constrained, "the text must have both kinds of boundary"
    return (breaking[: count - 1] + constrained)[:count]


@pytest.mark.parametrize("completion_only_loss", [True, False])
def test_training_and_generation_give_a_prompt_completion_row_the_same_mask(tiny, completion_only_loss):
    """Column by column, the excluded codes and the log-probabilities of a prompt/completion training row
    (the data collator's state, the labels given) equal those of generating its completion after its prompt.

    At the boundary neither excludes anything: the completion was compressed apart from the prompt.
    """
    model, tok = tiny
    _switch(model, True)
    try:
        codec = model.codec
        examples = _boundary_examples(codec, tok, 3)
        rows = [tokenize_example(e, tok, completion_only_loss=completion_only_loss) for e in examples]
        collator = Zip2ZipDataCollator(tok.pad_token_id, codec, canonical_mask=True)
        batch = collator(rows)
        with torch.no_grad():
            training = torch.log_softmax(model(**batch).logits, -1)
        constrained = 0
        for b, row in enumerate(rows):
            codes, (end,) = row["input_ids"], row["segment_ends"]
            prompt, completion = codes[: end + 1], codes[end + 1 :]
            # The codes masked after each column, in the generation state fed the same row.
            state = Zip2ZipGenerationState(model)
            state.sync(torch.tensor([prompt]))
            for code in completion:
                state.push(torch.tensor([code]), state.columns)
            generation_excluded = [sorted(ex) for ex in state.excluded[0]]
            training_excluded = [
                sorted(c for c in ex if c >= 0) for ex in batch["excluded_codes"][b].tolist()
            ]
            assert training_excluded[: len(codes)] == generation_excluded, b
            assert generation_excluded[end] == []
            constrained += sum(1 for ex in generation_excluded[end + 1 :] if ex)
            # The log-probabilities of every step of generation, its raw logits, against the training row's.
            out = model.generate(
                input_ids=torch.tensor([prompt]),
                max_new_tokens=len(completion),
                do_sample=False,
                eos_token_id=None,
                logits_processor=LogitsProcessorList([_Force(completion)]),
                return_dict_in_generate=True,
                output_logits=True,
            )
            assert out.codes[0].tolist() == codes
            for t, logits in enumerate(out.logits):
                generated = torch.log_softmax(logits[0], -1)
                column = training[b, end + t]
                assert torch.equal(generated.isneginf(), column.isneginf()), (b, t)
                finite = ~column.isneginf()
                torch.testing.assert_close(generated[finite], column[finite], atol=1e-5, rtol=1e-5)
                assert bool(column[completion[t]].isfinite())
        assert constrained, "the rule must constrain some completion column"
    finally:
        _switch(model, False)


def test_training_rows_with_segment_boundaries_keep_a_finite_loss(tiny):
    model, tok = tiny
    codec = model.codec
    base = tok.base("the cat sat on the mat. the cat sat on the mat.", add_special_tokens=False)["input_ids"]
    codes = codec.encode_segments([base[:9], base[9:]])
    assert any(c in ex for c, ex in zip(codes, codec.trace(codes, exclusions=True).excluded)), (
        "the row must break the rule at its boundary"
    )
    collator = Zip2ZipDataCollator(tok.pad_token_id, codec, canonical_mask=True)
    batch = collator([{"input_ids": codes}, {"input_ids": codec.encode(base)}])
    assert batch["excluded_codes"].shape[:2] == batch["input_ids"].shape
    model.train()
    try:
        out = _switch(model, True)(**batch)
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    finally:
        model.zero_grad(set_to_none=True)
        _switch(model, False).eval()


@pytest.mark.parametrize("loud", [False, True])
def test_generation_writes_canonical_streams_with_and_without_cache_and_lookup(loud):
    model, tok = build(loud_hypertokens=loud)
    _switch(model, True)
    V = model.config.base_vocab_size
    for prompt in PROMPTS:
        enc = tok(prompt, return_tensors="pt")
        P = enc["input_ids"].shape[1]
        kwargs = dict(max_new_tokens=30, do_sample=False, return_codes=True)
        cached = model.generate(**enc, **kwargs)
        assert torch.equal(cached, model.generate(**enc, use_cache=False, **kwargs))
        assert torch.equal(cached, model.generate(**enc, prompt_lookup_num_tokens=3, **kwargs))
        codes = cached[0].tolist()
        trace = model.codec.trace(codes, exclusions=True)
        # After the first generated code (which starts a new segment), every code follows the rule.
        assert not [t for t in range(P + 1, len(codes)) if codes[t] in trace.excluded[t]]
        if loud:
            assert any(c >= V for c in codes[P:])
        sampled = model.generate(**enc, max_new_tokens=30, do_sample=True, return_codes=True)
        trace = model.codec.trace(sampled[0].tolist(), exclusions=True)
        assert not [t for t in range(P + 1, sampled.shape[1]) if int(sampled[0, t]) in trace.excluded[t]]


def test_the_flag_is_validated_and_saved(tiny, tmp_path):
    model, tok = tiny
    with pytest.raises(ValueError, match="canonical_mask must be True or False"):
        Zip2ZipConfig(text_config=model.config.text_config, canonical_mask="yes")
    _switch(model, True).save_pretrained(tmp_path)
    _switch(model, False)
    loaded = Zip2ZipForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.canonical_mask is True
    ids = tok(PROMPTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = _switch(model, True)(input_ids=ids).logits
        _switch(model, False)
        assert torch.equal(loaded(input_ids=ids).logits, expected)


def test_the_benchmark_compares_both_masks_on_the_same_text(tiny):
    bench = load_benchmark("canonical_mask")
    model, tok = tiny
    base = model.language_model
    texts = {"cats": [PROMPTS[0] * 3], "code": [PROMPTS[1] * 3]}
    bits = bench.compare_bits(model, tok, base, tok.base, texts, max_length=96)
    assert model.config.canonical_mask is False, "the model's setting is restored"
    for domain, row in bits.items():
        assert row["mask on"] < row["mask off"]
        assert row["base"] == pytest.approx(
            Scorer(base, tok.base, 96).score_texts(texts[domain]).bits_per_byte
        )
    prompts = {"cats": [tok.base(PROMPTS[0] * 2, add_special_tokens=False)["input_ids"]]}
    generations = bench.compare_generations(model, base, tok.base, prompts, new_tokens=24)
    rows = generations["cats"]
    assert set(rows) == {"base", "mask off", "mask on"}
    assert rows["mask on"]["non_canonical_share"] == 0.0
    for name in ("mask off", "mask on"):
        assert rows[name]["base_tokens_per_code"] >= 1.0 and 0.0 <= rows[name]["hypertoken_share"] <= 1.0
        assert math.isfinite(rows[name]["base_bits_per_byte"])


def test_the_trainer_trains_and_evaluates_with_the_mask(tmp_path):
    from _tiny_tokenizers import TRAINING_TEXT
    from _training import build as build_trainable
    from _training import config, prompt_completion_dataset

    from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

    model, tok = build_trainable(canonical_mask=True)
    data = prompt_completion_dataset(TRAINING_TEXT * 2)
    trainer = Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2, eval_strategy="no"),
        train_dataset=data,
        eval_dataset=data,
        processing_class=tok,
    )
    assert trainer.data_collator.canonical_mask
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert "excluded_codes" in batch and bool((batch["excluded_codes"] >= 0).any())
    history = trainer.train()
    assert math.isfinite(history.training_loss)
    assert math.isfinite(trainer.evaluate()["eval_loss"])
