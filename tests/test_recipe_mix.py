"""The training data a preset reads: shares, passes and document pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zip2zip import recipe
from zip2zip.recipe import TrainingPreset, split_at_lines, training_mix


@given(st.text(alphabet=st.sampled_from("ab \n\t\u00e9\u3042"), max_size=400), st.integers(1, 50))
def test_pieces_join_back_and_respect_the_limit(text, max_chars):
    pieces = split_at_lines(text, max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(piece) <= max_chars for piece in pieces)


def test_pieces_break_at_line_ends_when_lines_fit():
    text = "".join(f"line {i}\n" for i in range(100))
    pieces = split_at_lines(text, 40)
    assert all(piece.endswith("\n") for piece in pieces)
    assert max(len(piece) for piece in pieces) <= 40


def test_one_pass_of_the_study_mix_is_the_scarcest_domain_in_full():
    data = training_mix(docs_per_domain=20, seed=0)
    from zip2zip.corpora import load_corpus

    prose = load_corpus("prose", "train", max_docs=20)
    # prose is the scarcest for its share: every one of its documents, once
    assert sorted(t for t in data["text"] if t in set(prose)) == sorted(prose)


def test_more_passes_repeat_the_scarce_domain_and_keep_the_shares():
    one = training_mix(docs_per_domain=10, seed=0, mix="long", max_passes=1.0)
    two = training_mix(docs_per_domain=10, seed=0, mix="long", max_passes=2.0)
    assert len(two) > len(one)
    texts = two["text"]
    assert len(texts) > len(set(texts))  # some documents are read twice
    from zip2zip.corpora import load_corpus

    # ten documents each: code, with the largest share, is the scarcest for it and is read twice
    code = set(load_corpus("code", "train", max_docs=10))
    assert sum(t in code for t in texts) == 2 * len(code)
    assert sum(t in code for t in one["text"]) == len(code)


def test_pieces_cover_the_selected_documents():
    whole = training_mix(docs_per_domain=5, seed=0)
    pieces = training_mix(docs_per_domain=5, seed=0, piece_chars=1000)
    assert len(pieces) > len(whole)
    assert max(len(t) for t in pieces["text"]) <= 1000
    assert sum(map(len, pieces["text"])) == sum(map(len, whole["text"]))


def test_preset_training_data_reads_its_data_fields():
    preset = recipe.get_preset("cpu").replace(docs_per_domain=5, piece_chars=1500)
    data = preset.training_data(seed=3)
    assert data["text"] == training_mix(5, 3, piece_chars=1500)["text"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mix", "web", "not a known mix"),
        ("max_passes", 0.0, "max_passes"),
        ("piece_chars", 10, "piece_chars"),
    ],
)
def test_preset_rejects_bad_data_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainingPreset(steps=1, batch_size=1, **{field: value})


def test_a_mix_without_a_share_for_a_domain_is_refused():
    with pytest.raises(ValueError, match="no share"):
        training_mix(docs_per_domain=2, mix={"code": 1.0}, domains=("code", "prose"))


def test_long_run_presets_do_not_repeat_data_beyond_their_passes():
    for name in ("cpu-long", "gpu"):
        preset = recipe.get_preset(name)
        assert preset.mix == "long" and preset.docs_per_domain is None and preset.max_passes <= 4


def test_only_a_documents_last_piece_ends_with_end_of_sequence():
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip import Zip2ZipTokenizer
    from zip2zip.data import ENDS_DOCUMENT, tokenize_example

    whole = training_mix(docs_per_domain=5, seed=0)
    pieces = training_mix(docs_per_domain=5, seed=0, piece_chars=1000)
    assert sum(pieces[ENDS_DOCUMENT]) == len(whole)  # one last piece per document
    assert not all(pieces[ENDS_DOCUMENT])

    tok = Zip2ZipTokenizer.from_base(tiny_bpe_tokenizer())
    eos = tok.eos_token_id
    ends = tokenize_example({"text": "the cat sat", ENDS_DOCUMENT: True}, tok)["input_ids"]
    goes_on = tokenize_example({"text": "the cat sat", ENDS_DOCUMENT: False}, tok)["input_ids"]
    plain = tokenize_example({"text": "the cat sat"}, tok)["input_ids"]
    assert ends[-1] == eos and plain == ends
    assert goes_on == ends[:-1] and eos not in goes_on
