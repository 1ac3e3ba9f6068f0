"""Prompt-lookup decoding for zip2zip models: lossless, and fewer forward passes on text that repeats.

Tiny random Llama models (tests/test_generation.py's `build`), with large hypertoken logits where noted, and
prompts built to repeat. Logits processors that follow a repeating text make the model's choices predictable,
so acceptance (and its bookkeeping) is exercised as well as rejection.
"""

from __future__ import annotations

import threading

import pytest
import torch
from test_generation import PROMPTS, Collect, build
from transformers import LogitsProcessor, LogitsProcessorList, TextIteratorStreamer

from zip2zip.model.generation_state_zip2zip import Zip2ZipGenerationState
from zip2zip.model.lookup_zip2zip import Zip2ZipCodeLookup

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UNIT = "the cat sat on the mat. "
REPEATING = [
    UNIT * 3 + "the cat",
    "def add(a, b):\n    return a + b\n\ndef add(a, b):\n    return a + b\n\ndef add(a, b):\n",
    "one two three four. one two three four. one two three four. one two",
]


@pytest.fixture(scope="module")
def loud():
    return build(loud_hypertokens=True)


@pytest.fixture(scope="module")
def quiet():
    return build()


class FollowText(LogitsProcessor):
    """Boosts the code that continues a fixed base-token text: its next base token, or with `codes=True` the
    longest codebook entry (the code an LZW encoder would emit there). `boost=inf` forces it."""

    def __init__(self, codec, text_ids, boost=float("inf"), codes=False):
        self.codec, self.text, self.boost, self.codes = codec, text_ids, boost, codes

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        for b in range(input_ids.shape[0]):
            decoder = self.codec.new_decoder()
            decoder.feed_many(input_ids[b].tolist())
            done = len(decoder.base_ids)
            following = self.text[done : done + self.codec.max_subtokens]
            if not following:
                continue
            target = decoder.encode_greedy(following)[0] if self.codes else following[0]
            if self.boost == float("inf"):
                best = scores[b, target].clone()
                scores[b] = float("-inf")
                scores[b, target] = best if torch.isfinite(best) else 0.0
            else:
                scores[b, target] += self.boost
        return scores


def _repeating_case(tok, repeats=3, total=24):
    """A prompt of `repeats` copies of a sentence, as codes, and the base ids of `total` copies."""
    unit = tok.base(UNIT)["input_ids"]
    prompt = tok.codec.encode(unit * repeats)
    return torch.tensor([prompt]), unit * total


def _generate(model, enc, **settings):
    return model.generate(**enc, return_dict_in_generate=True, **settings)


def _assert_same_generation(a, b):
    assert torch.equal(a.codes, b.codes)
    assert torch.equal(a.sequences, b.sequences)
    sa, sb = a.generation_stats, b.generation_stats
    assert (sa.steps, sa.codes, sa.base_tokens, sa.hypertokens) == (
        sb.steps,
        sb.codes,
        sb.base_tokens,
        sb.hypertokens,
    )
    for name in ("scores", "logits"):
        x, y = getattr(a, name), getattr(b, name)
        if x is None:
            assert y is None
            continue
        assert len(x) == len(y)
        for u, v in zip(x, y):
            assert torch.equal(torch.isneginf(u), torch.isneginf(v))
            torch.testing.assert_close(
                u.nan_to_num(neginf=0.0), v.nan_to_num(neginf=0.0), atol=1e-4, rtol=1e-4
            )


def _passes_are_counted(model, enc, settings):
    """Run `generate` counting forward calls; check the statistics agree with the count and with each other."""
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        out = _generate(model, enc, **settings)
    finally:
        handle.remove()
    stats = out.generation_stats
    assert stats.forward_passes == len(calls)
    assert 0 <= stats.accepted_codes <= stats.proposed_codes
    # Each pass appends its accepted codes and then one more, unless the generation stopped on an accepted code.
    assert stats.steps - stats.forward_passes - stats.accepted_codes in (0, -1)
    return out


# ----------------------------------------------------------------------------- the output is unchanged


@pytest.mark.parametrize(
    "position_mode,tied,num_tokens,match",
    [
        ("compressed", False, 4, "base"),
        ("base", False, 10, "base"),
        ("compressed", True, 1, "base"),
        ("compressed", False, 6, "codes"),
    ],
)
def test_greedy_lookup_equals_greedy_code_for_code(position_mode, tied, num_tokens, match):
    model, tok = build(position_mode=position_mode, loud_hypertokens=True, tied=tied)
    settings = {"max_new_tokens": 24, "do_sample": False, "output_scores": True, "output_logits": True}
    for prompt in REPEATING + PROMPTS:
        enc = tok(prompt, return_tensors="pt")
        plain = _generate(model, enc, **settings)
        looked = _passes_are_counted(
            model, enc, {**settings, "prompt_lookup_num_tokens": num_tokens, "prompt_lookup_match": match}
        )
        _assert_same_generation(plain, looked)
        assert plain.generation_stats.forward_passes == plain.generation_stats.steps
        assert plain.generation_stats.proposed_codes == 0


@pytest.mark.parametrize("codes", [False, True])
def test_lookup_accepts_what_the_model_would_write_and_saves_passes(quiet, codes):
    """A processor makes the model continue the repeated sentence (base tokens, or the longest entries):
    lookup then accepts most proposals, and the output is still the output without lookup."""
    model, tok = quiet
    prompt, text = _repeating_case(tok)
    follow = LogitsProcessorList([FollowText(tok.codec, text, codes=codes)])
    enc = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    settings = {"max_new_tokens": 40, "do_sample": False, "logits_processor": follow, "output_scores": True}
    plain = _generate(model, enc, **settings)
    looked = _passes_are_counted(model, enc, {**settings, "prompt_lookup_num_tokens": 8})
    _assert_same_generation(plain, looked)
    stats = looked.generation_stats
    assert stats.forward_passes <= stats.steps // 3, stats
    assert stats.accepted_codes >= stats.steps // 2, stats
    if codes:
        assert stats.hypertokens[0] >= stats.steps // 2, stats  # the proposals were hypertokens, and taken


def test_hypertoken_proposals_carry_more_text_per_pass_than_copied_codes(quiet):
    """Matching the text and re-encoding it with the current codebook proposes the long entries the model
    writes; copying the code stream proposes the short codes the text had the first time round."""
    model, tok = quiet
    prompt, text = _repeating_case(tok, repeats=2)
    follow = LogitsProcessorList([FollowText(tok.codec, text, codes=True)])
    enc = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    passes = {}
    for match in ("base", "codes"):
        out = _generate(
            model,
            enc,
            max_new_base_tokens=96,
            do_sample=False,
            logits_processor=follow,
            prompt_lookup_num_tokens=6,
            prompt_lookup_match=match,
        )
        passes[match] = out.generation_stats.forward_passes
        assert out.generation_stats.base_tokens == [96]
    assert passes["base"] < passes["codes"], passes


def test_sampling_with_lookup_is_sampling_without_it(quiet):
    """Each position is drawn from the processed distribution given the accepted prefix, in the order the loop
    without lookup draws it, so the same seed gives the same codes (here with partial acceptance)."""
    model, tok = quiet
    prompt, text = _repeating_case(tok)
    enc = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    accepted = rejected = 0
    for seed in range(
        16
    ):  # until both full and partial acceptance have happened (float order varies by machine)
        if accepted and rejected and seed >= 4:
            break
        settings = {
            "max_new_tokens": 30,
            "do_sample": True,
            "temperature": 1.5,
            "top_k": 40,
            "logits_processor": LogitsProcessorList([FollowText(tok.codec, text, boost=6.0)]),
            "output_scores": True,
        }
        torch.manual_seed(seed)
        plain = _generate(model, enc, **settings)
        torch.manual_seed(seed)
        looked = _generate(model, enc, prompt_lookup_num_tokens=5, **settings)
        _assert_same_generation(plain, looked)
        stats = looked.generation_stats
        accepted += stats.accepted_codes
        rejected += stats.proposed_codes - stats.accepted_codes
        tok.decode(looked.codes[0])  # decodable
    assert accepted > 0 and rejected > 0, (accepted, rejected)


# ----------------------------------------------------------------------------- rollback


def _capture_state(model, monkeypatch):
    """The generation state of the next generate() call (read from what the loop passes to the model)."""
    seen = {}
    prepare = model.prepare_inputs_for_generation

    def spy(*args, zip2zip_state=None, **kwargs):
        seen["state"] = zip2zip_state
        return prepare(*args, zip2zip_state=zip2zip_state, **kwargs)

    monkeypatch.setattr(model, "prepare_inputs_for_generation", spy)
    return seen


def _state_view(state: Zip2ZipGenerationState) -> dict:
    decoders = [
        (d.base_ids, d.next_id, d.pending, d.candidate, d.accept_limit, d.codebook.entries, d.num_codes)
        for d in state.decoders
    ]
    return {
        "columns": state.columns,
        "records": (
            state.codes,
            state.phrases,
            state.limits,
            state.candidates,
            state.positions,
            state.base_end,
        ),
        "entries": state.entries,
        "attended": state.attended,
        "finished_at": state.finished_at,
        "decoders": decoders,
    }


def test_after_rejections_state_and_cache_equal_a_run_that_never_proposed(loud, monkeypatch):
    """The LZW state, the vectors the next step would read, and the KV cache at the end of a run with many
    rejected proposals equal those of the run without lookup."""
    model, tok = loud
    for prompt in REPEATING[:2]:
        enc = tok(prompt, return_tensors="pt")
        runs = {}
        for lookup in (None, 4):
            seen = _capture_state(model, monkeypatch)
            out = _generate(model, enc, max_new_tokens=20, do_sample=False, prompt_lookup_num_tokens=lookup)
            runs[lookup] = (out, seen["state"])
            monkeypatch.undo()
        (plain, plain_state), (looked, looked_state) = runs[None], runs[4]
        stats = looked.generation_stats
        assert stats.proposed_codes > stats.accepted_codes, "no proposal was rejected"
        assert torch.equal(plain.codes, looked.codes)
        assert _state_view(plain_state) == _state_view(looked_state)
        # What the next step would feed the model: the newest code's limits, positions and hypertoken vectors.
        a, b = plain_state.model_inputs(1, model.device), looked_state.model_inputs(1, model.device)
        assert torch.equal(a["accept_limits"], b["accept_limits"])
        assert torch.equal(a["position_ids"], b["position_ids"])
        K = int(a["accept_limits"].max())
        torch.testing.assert_close(a["codebook_output_embeds"][:, :K], b["codebook_output_embeds"][:, :K])
        newest = int(plain.codes[0, -1]) - model.config.base_vocab_size
        if newest >= 0:
            torch.testing.assert_close(
                a["codebook_input_embeds"][:, newest], b["codebook_input_embeds"][:, newest]
            )
        # The KV cache holds every column but the newest, in both runs.
        assert plain.cache.get_seq_length() == looked.cache.get_seq_length() == plain.codes.shape[1] - 1
        for x, y in zip(plain.cache.layers, looked.cache.layers):
            torch.testing.assert_close(x.keys, y.keys, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(x.values, y.values, atol=1e-5, rtol=1e-4)


def test_restore_forgets_every_column_fed_after_the_snapshot(loud):
    model, tok = loud
    enc = tok(REPEATING[0], return_tensors="pt")
    ids = enc["input_ids"]
    prompt = ids[:, : ids.shape[1] // 2]
    rest = ids[:, ids.shape[1] // 2 :]
    state = Zip2ZipGenerationState(model)
    state.sync(prompt)
    state.model_inputs(prompt.shape[1], model.device)
    snapshot = state.snapshot()
    state.sync(torch.cat([prompt, rest], dim=1))  # creates entries, uses hypertokens
    state.model_inputs(rest.shape[1], model.device)
    assert rest.shape[1] > 0 and len(state.entries[0]) > snapshot.entries[0], "the feed must create entries"
    assert state.columns == ids.shape[1] > snapshot.columns
    state.restore(snapshot)
    fresh = Zip2ZipGenerationState(model)
    fresh.sync(prompt)
    assert _state_view(state) == _state_view(fresh)
    assert all(slot < len(state.entries[0]) for slot in state._in_written[0])
    # Fed again, it is the state that was fed the whole sequence once.
    state.sync(ids)
    whole = Zip2ZipGenerationState(model)
    whole.sync(ids)
    assert _state_view(state) == _state_view(whole)


# ----------------------------------------------------------------------------- the rest of generate()


def test_processors_stopping_budgets_and_streamers_behave_as_without_lookup(quiet):
    model, tok = quiet
    prompt, text = _repeating_case(tok)
    enc = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt)}
    follow = FollowText(tok.codec, text, boost=4.0)
    free = model.generate(
        **enc, max_new_tokens=30, do_sample=False, logits_processor=LogitsProcessorList([follow])
    )
    stop = tok.decode(free[0][prompt.shape[1] :])[20:23]
    cases = [
        {"max_new_tokens": 30, "repetition_penalty": 1.3, "min_new_tokens": 12},
        {"max_new_base_tokens": 13, "eos_token_id": None},
        {"max_new_tokens": 30, "stop_strings": [stop], "tokenizer": tok},
        {"max_new_tokens": 30, "eos_token_id": int(free[0, prompt.shape[1] + 5])},
        {"max_length": prompt.shape[1] + 7},
        {"max_new_tokens": 30, "suppress_tokens": [text[3], text[4]]},
    ]
    for case in cases:
        runs = []
        for lookup in (None, 6):
            collect = Collect()
            out = _generate(
                model,
                enc,
                do_sample=False,
                logits_processor=LogitsProcessorList([follow]),
                streamer=collect,
                output_scores=True,
                prompt_lookup_num_tokens=lookup,
                **case,
            )
            runs.append((out, collect.puts))
        (a, puts_a), (b, puts_b) = runs
        _assert_same_generation(a, b)
        assert puts_a == puts_b, case
        assert b.generation_stats.accepted_codes > 0, case
    # A text streamer in another thread prints the final text.
    streamer = TextIteratorStreamer(tok, skip_prompt=True)
    result = {}
    worker = threading.Thread(
        target=lambda: result.update(
            out=model.generate(
                **enc,
                max_new_tokens=30,
                do_sample=False,
                logits_processor=LogitsProcessorList([follow]),
                prompt_lookup_num_tokens=6,
                streamer=streamer,
            )
        )
    )
    worker.start()
    streamed = "".join(streamer)
    worker.join()
    assert streamed == tok.decode(result["out"][0][prompt.shape[1] :])


def test_pipeline_with_lookup_returns_the_same_text(quiet):
    from transformers import pipeline

    model, tok = quiet
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    for prompt in REPEATING:
        a = pipe(prompt, max_new_tokens=12, do_sample=False)[0]["generated_text"]
        b = pipe(prompt, max_new_tokens=12, do_sample=False, prompt_lookup_num_tokens=5)[0]["generated_text"]
        assert a == b


def test_what_lookup_cannot_do_is_refused_with_the_reason(quiet):
    model, tok = quiet
    batch = tok(REPEATING[:2], return_tensors="pt", padding=True)
    with pytest.raises(ValueError, match="one sequence at a time"):
        model.generate(**batch, max_new_tokens=4, prompt_lookup_num_tokens=3)
    one = tok(REPEATING[0], return_tensors="pt")
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(
            **one, max_new_tokens=4, do_sample=True, num_return_sequences=2, prompt_lookup_num_tokens=3
        )
    with pytest.raises(ValueError, match="use_cache=True"):
        model.generate(**one, max_new_tokens=4, use_cache=False, prompt_lookup_num_tokens=3)
    with pytest.raises(ValueError, match="attentions"):
        model.generate(
            **one,
            max_new_tokens=4,
            prompt_lookup_num_tokens=3,
            return_dict_in_generate=True,
            output_attentions=True,
        )
    with pytest.raises(ValueError, match="prompt_lookup_match"):
        model.generate(**one, max_new_tokens=4, prompt_lookup_num_tokens=3, prompt_lookup_match="words")
    with pytest.raises(ValueError, match="assistant_model"):
        model.generate(**one, max_new_tokens=4, prompt_lookup_num_tokens=3, assistant_model=model)


def test_proposals_are_acceptable_and_respect_the_limits(quiet):
    """Every proposed code is one the row's decoder accepts at its position; the caps hold."""
    model, tok = quiet
    prompt, _ = _repeating_case(tok, repeats=4)
    state = Zip2ZipGenerationState(model)
    state.sync(prompt)
    V = model.config.base_vocab_size
    for match in ("base", "codes"):
        lookup = Zip2ZipCodeLookup(state, num_codes=10, match=match, cost_per_code=0.0)
        proposal = lookup.propose(10)
        assert 0 < len(proposal) <= 10
        decoder = state.decoders[0].copy()
        for item in proposal:
            assert decoder.can_accept(item.code)
            assert len(decoder.feed(item.code).phrase) == item.length
        assert len(lookup.propose(3)) <= 3
        assert lookup.propose(0) == []
        short = lookup.propose(10, max_base_tokens=3)
        assert sum(item.length for item in short[:-1]) < 3
        stop = proposal[1].code
        assert all(item.code != stop for item in lookup.propose(10, stop_ids={stop}))
    base = Zip2ZipCodeLookup(state, num_codes=10, cost_per_code=0.0).propose(10)
    assert any(item.code >= V for item in base), "a repeated text should be proposed as hypertokens"
    with pytest.raises(ValueError, match="prompt_lookup_num_tokens"):
        Zip2ZipCodeLookup(state, num_codes=0)


# ----------------------------------------------------------------------------- statistics per thread


def test_last_generation_stats_are_per_thread(quiet):
    model, tok = quiet
    enc = tok(PROMPTS[0], return_tensors="pt")
    steps = {1: 3, 2: 7}
    wrong = []
    start = threading.Barrier(2)

    def work(name):
        start.wait()
        for _ in range(10):
            model.generate(**enc, max_new_tokens=steps[name], min_new_tokens=steps[name], do_sample=False)
            for _ in range(2):
                if model.last_generation_stats.steps != steps[name]:
                    wrong.append(name)

    threads = [threading.Thread(target=work, args=(name,)) for name in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    result = {}
    other = threading.Thread(target=lambda: result.update(stats=model.last_generation_stats))
    other.start()
    other.join()
    assert result["stats"] is None  # a thread that has not generated sees no statistics


# ----------------------------------------------------------------------------- the shipped model


@pytest.mark.slow
def test_shipped_model_greedy_with_lookup_equals_without_on_heldout_prompts(smollm2_path):
    """5 held-out prompts (one per domain, the unseen Go included), 32 new base tokens each, code for code (the
    tiny-model tests above cover batches, sampling and the edge cases)."""
    from zip2zip.bundled.shipped import shipped_zip2zip_path
    from zip2zip.corpora.store import load_corpus
    from zip2zip.loading import load_model_and_tokenizer

    path = shipped_zip2zip_path()
    assert path is not None, "the package must ship its trained checkpoint (zip2zip/bundled/checkpoints/)"
    model, tok = load_model_and_tokenizer(path)
    model.eval()
    passes = steps = 0
    for domain in ("code", "prose", "math", "multilingual", "go"):
        docs = [doc for doc in load_corpus(domain, "heldout") if len(doc) > 1200][:1]
        assert len(docs) == 1, domain
        for doc in docs:
            base_ids = tok.base(doc, add_special_tokens=False)["input_ids"][:256]
            ids = torch.tensor([tok.codec.encode(base_ids)])
            enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            settings = {"max_new_base_tokens": 32, "do_sample": False, "min_new_tokens": 32}
            plain = _generate(model, enc, **settings)
            looked = _generate(model, enc, prompt_lookup_num_tokens=10, **settings)
            assert torch.equal(plain.codes, looked.codes), (domain, doc[:80])
            assert torch.equal(plain.sequences, looked.sequences)
            stats = looked.generation_stats
            assert stats.steps - stats.forward_passes - stats.accepted_codes in (0, -1), stats
            passes += stats.forward_passes
            steps += plain.generation_stats.steps
    assert passes < steps, (passes, steps)
