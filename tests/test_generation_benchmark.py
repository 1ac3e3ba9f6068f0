"""The generation benchmark: the lookup bound (the fewest passes any prompt lookup could take), its prompts, and
where the extra bits go."""

from __future__ import annotations

import functools
import itertools

import pytest
from _benchmarks import load_benchmark
from hypothesis import given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def generation():
    return load_benchmark("generation")


def _occurs_before(text: list[int], run: list[int]) -> bool:
    """Whether ``run`` can be copied from ``text`` (the copy may overlap its own end)."""
    joined = text + run
    return any(joined[s : s + len(run)] == run for s in range(len(text)))


def slow_bound(prompt, output, k, expand=lambda u: (u,)):
    """Every way of splitting the output into passes, the best one (exponential in theory, fine when tiny)."""
    prefix = [[t for u in prompt for t in expand(u)]]
    for unit in output:
        prefix.append(prefix[-1] + list(expand(unit)))

    @functools.cache
    def best(i: int) -> int:
        if i >= len(output):
            return 0
        options = []
        for j in range(i, min(i + k, len(output)) + 1):  # accept output[i:j], then one more unit
            run = prefix[j][len(prefix[i]) :]
            if j > i and not _occurs_before(prefix[i], run):
                break
            options.append(1 + best(j + 1))
        return min(options)

    return best(0)


def test_a_copy_of_the_prompt_takes_one_pass_per_k_plus_one_units(generation):
    prompt = list(range(100, 140))
    assert generation.lookup_bound(prompt, prompt[5:30], num_units=10) == 3  # 25 units: 11 + 11 + 3
    assert generation.lookup_bound(prompt, [1, 2, 3, 4], num_units=10) == 4  # nothing to copy: one per unit


def test_copies_may_overlap_their_own_end(generation):
    # "1 2" then "1 2 1 2 ...": each pass copies 10 units from text it is itself writing, as LZ77 does.
    assert generation.lookup_bound([1, 2], [1, 2] * 10, num_units=10) == 2


def test_codes_are_copied_by_their_text(generation):
    expand = {5: (1, 2, 3), 6: (2, 3), 7: (9,), 8: (3, 9)}.__getitem__
    # code 6's text occurs inside code 5's: it is accepted, and code 7 comes with it in the same pass.
    assert generation.lookup_bound([5], [6, 7], num_units=10, expand=expand) == 1
    # 8's text "3 9" only exists once 7 is written: 7 is the bonus of pass one, 8 is copyable in pass two.
    assert generation.lookup_bound([5], [7, 8, 7], num_units=10, expand=expand) == 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 3), max_size=8),
    st.lists(st.integers(0, 3), min_size=1, max_size=10),
    st.integers(1, 4),
)
def test_the_greedy_bound_is_the_best_split(generation, prompt, output, k):
    assert generation.lookup_bound(prompt, output, num_units=k) == slow_bound(prompt, output, k)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 5), max_size=6),
    st.lists(st.integers(0, 5), min_size=1, max_size=8),
    st.integers(1, 3),
    st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=3), min_size=6, max_size=6),
)
def test_the_greedy_bound_is_the_best_split_of_codes(generation, prompt, output, k, table):
    """Codes count as the text they stand for: a code of several base tokens is copied by its text."""
    expand = [tuple(entry) for entry in table].__getitem__
    assert generation.lookup_bound(prompt, output, num_units=k, expand=expand) == slow_bound(
        prompt, output, k, expand
    )


def test_the_bound_counts_passes_as_forward_passes_do(generation):
    """Plain decoding of n units takes n forward passes (the prefill writes the first): nothing to copy, the
    bound is n too, never more than what decoding without lookup did."""
    prompt, output = [1, 2, 3], list(range(100, 128))
    bound = generation.lookup_bound(prompt, output, num_units=10)
    run = {"prompt": 0, "output": output, "text": "x" * 28, "seconds": 1.0, "steps": len(output) - 1}
    run.update(intervals=[0.01] * len(output), lookup_bound=bound)
    rows = generation.summarize({"code": {"base": [run]}})
    assert rows[0]["base"]["forward_passes"] == len(output) == rows[0]["base"]["lookup_bound_passes"]


def test_the_encoded_text_compresses_as_much_as_it_repeats_the_prompt(generation):
    """What a continuation allows, whoever wrote it: a copy of the prompt packs into the prompt's entries,
    tokens the prompt never had stay one code each; pooled over prompts as base tokens per code."""
    from zip2zip.model.lzw import LZWCodec

    codec = LZWCodec(base_vocab_size=100, max_codebook_size=64, max_subtokens=4)
    prompt = [1, 2, 3, 4] * 4
    copy = generation.encoded_codes(codec, prompt, [1, 2, 3, 4] * 2)
    assert copy < 8 and copy == len(codec.encode(prompt + [1, 2, 3, 4] * 2)) - len(codec.encode(prompt))
    assert generation.encoded_codes(codec, prompt, list(range(50, 58))) == 8

    def run(p, output, codes):
        return {
            "prompt": p,
            "output": output,
            "text": "x",
            "seconds": 1.0,
            "steps": len(output) - 1,
            "intervals": [0.01],
            "encoded_codes": codes,
        }

    rows = generation.summarize({"code": {"base": [run(0, [1] * 8, copy), run(1, [2] * 8, 8)]}})
    assert rows[0]["base"]["encoded_compression"] == pytest.approx(16 / (copy + 8))


def test_the_interval_over_prompts_holds_the_pooled_ratio_and_widens_with_an_outlier():
    common = load_benchmark("common")
    same = common.bootstrap_interval([120, 120, 120, 120], [100, 100, 100, 100])
    assert same == pytest.approx((1.2, 1.2))
    base_tokens, codes = [128] * 8, [110, 112, 108, 111, 109, 110, 112, 55]  # one continuation loops
    low, high = common.bootstrap_interval(base_tokens, codes)
    assert low < sum(base_tokens) / sum(codes) < high
    assert high - low > 0.05 and low >= 128 / 112 and high <= 128 / 55
    # seeded: the report is reproducible
    assert common.bootstrap_interval(base_tokens, codes) == (low, high)
    without = common.bootstrap_interval(base_tokens[:7], codes[:7])
    assert without[1] - without[0] < (high - low) / 3


def test_prompts_are_real_base_ids_of_held_out_documents():
    """On a real byte-level BPE: a domain prompt is the first ``length`` ids of each held-out document long
    enough; a copy prompt is a code document's start, then its first COPY_TOKENS ids again; a chat prompt is the
    chat template around the question."""
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip.corpora.store import load_corpus

    common = load_benchmark("common")
    tok = tiny_bpe_tokenizer()

    def documents(domain, count):
        texts = list(itertools.islice(load_corpus(domain, split="heldout"), count))
        return [(text, tok(text, add_special_tokens=False)["input_ids"]) for text in texts]

    prose = [ids for _, ids in documents("prose", 8)]
    expected = [ids[:600] for ids in prose if len(ids) >= 600 + 16][:3]
    assert expected != [ids[:600] for ids in prose[:3]]  # one of the first three is too short and passed over
    assert common.load_prompts(tok, "prose", 3, 600) == expected

    text, ids = next((text, ids) for text, ids in documents("code", 8) if len(ids) >= 100 + 16)
    (prompt,) = common.load_prompts(tok, "copy", 1, 100)
    assert prompt == ids[:36] + ids[:64]
    assert text.startswith(tok.decode(prompt[36:]))  # the repeated part is the document's opening text
    with pytest.raises(ValueError, match="need more than 64 base tokens"):
        common.load_prompts(tok, "copy", 1, 64)

    chats = common.load_prompts(tok, "chat", 2, 0)
    assert [tok.decode(ids) for ids in chats] == [
        f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        for question in common.CHAT_QUESTIONS[:2]
    ]


# --------------------------------------------------------------------------- where the extra bits go


@pytest.fixture(scope="module")
def bits_module():
    return load_benchmark("bits_by_target")


def test_target_kinds_tell_first_use_from_reuse(bits_module):
    kinds = bits_module.target_kinds([5, 120, 7, 120, 121, 120], base_vocab_size=100)
    assert kinds == [
        "base token",
        "hypertoken, first use",
        "base token",
        "hypertoken, reused",
        "hypertoken, first use",
        "hypertoken, reused",
    ]


def test_the_parts_add_up_to_both_models_strict_scores(bits_module, one_torch_thread):
    """Split by target kind, the bits are still each model's whole strict score on the same windows."""
    import math

    from _tiny_models import tiny_zip2zip

    from zip2zip.evaluation.scoring import bits_per_byte

    model, tok = tiny_zip2zip(perturb=0.0)
    base, base_tok = model.language_model, tok.base
    texts = [
        "the cat sat on the mat. the cat sat on the hat. the cat sat" * 3,
        "def add(a, b):\n    return a + b\n",
    ]
    result = bits_module.bits_by_target(model, tok, base, base_tok, texts, max_length=48)
    parts = result["parts"]
    zip_score = bits_per_byte(model, tok, texts, max_length=48)
    base_score = bits_per_byte(base, base_tok, texts, max_length=48)
    assert sum(p["codes"] for p in parts.values()) == zip_score.codes
    assert parts["base token"]["codes"] == zip_score.codes - zip_score.hypertokens
    assert parts["hypertoken, reused"]["codes"] > 0  # the repeated sentence reuses entries
    assert sum(p["base_tokens"] for p in parts.values()) == zip_score.base_tokens == base_score.base_tokens
    assert result["bytes"] == zip_score.bytes
    assert result["zip_bits_per_byte"] == pytest.approx(zip_score.bits_per_byte, rel=1e-5)
    assert result["base_bits_per_byte"] == pytest.approx(base_score.bits_per_byte, rel=1e-5)
    for p in parts.values():
        assert p["excess_bits"] == pytest.approx(p["zip_bits"] - p["base_bits"])
        assert 0.0 <= p["hypertoken_mass"] <= 1.0 and not math.isnan(p["zip_bits"])
        # "starts with the first token" is likelier than "is this code"; one token costs less than all of them
        assert 0.0 <= p["first_token_zip_bits"] <= p["zip_bits"] + 1e-6
        assert 0.0 <= p["first_token_base_bits"] <= p["base_bits"] + 1e-6
        assert p["first_token_excess_bits"] + p["rest_excess_bits"] == pytest.approx(p["excess_bits"])
    reused = parts["hypertoken, reused"]
    assert reused["first_token_base_bits"] < reused["base_bits"]  # several base tokens per reused hypertoken
    # split by context instead, the same codes, tokens and bits; the repeated sentence has repeats
    contexts = result["contexts"]
    for field in ("codes", "base_tokens", "zip_bits", "base_bits", "excess_bits"):
        assert sum(c[field] for c in contexts.values()) == pytest.approx(
            sum(p[field] for p in parts.values())
        )
    assert contexts["a repeat"]["codes"] > 0 and contexts["new text"]["codes"] > 0


def test_repeated_positions_mark_tokens_whose_context_stood_before(bits_module):
    tokens = [1, 2, 3, 4, 9, 1, 2, 3, 4, 5, 1, 2, 3, 5]
    # with 2 tokens of context: the second "1 2 3 4" repeats from its third token on, "1 2 3 5" only its "3"
    assert bits_module.repeated_positions(tokens, context=2) == [False] * 7 + [True, True] + [False] * 3 + [
        True,
        False,
    ]
