"""Zip2ZipTokenizer behaves like a Hugging Face tokenizer, on compressed ids.

Most tests use the tiny in-process base tokenizers of ``_tiny_tokenizers``; a few use the real SmolLM2
tokenizer (``smollm2_tokenizer`` fixture) where real token statistics or its chat template matter.
"""

from __future__ import annotations

import inspect
import json
import json.encoder
import logging
import os
import re
import textwrap

import numpy as np
import pytest
import torch
from _fresh_process import last_json_line, run_without_package
from _tiny_tokenizers import CHATML_TEMPLATE, tiny_bpe_tokenizer, tiny_wordlevel_tokenizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zip2zip.model.tokenization_zip2zip import (
    Zip2ZipTextIteratorStreamer,
    Zip2ZipTextStreamer,
    Zip2ZipTokenizer,
    default_disabled_ids,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPEATED = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat. the dog sat on the log."
CODE = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n"
CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "the cat sat on the mat. the cat sat on the mat."},
    {"role": "assistant", "content": "the cat sat on the mat."},
    {"role": "user", "content": "and the dog?"},
]

# Pieces that make texts with repeats (so hypertokens appear) and every kind of awkward character.
PIECES = [
    "the ", "cat", " sat", " on", "\n", "\t", "    ", "  \n\n ", "def f(x):\n    return x\n", "{\"a\": [1, 2]}",
    "😀", "👩‍💻", "日本語のテキスト", "中文", "é", "a\u0301", "\u200b", "\r\n", "<|im_end|>", "1234", "€",
]  # fmt: skip
texts = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=40).map("".join),
)


def make(base=None, **settings_) -> Zip2ZipTokenizer:
    settings_.setdefault("max_codebook_size", 64)
    settings_.setdefault("max_subtokens", 4)
    # The tests here count disabled ids on the tiny vocabulary: only the special tokens unless a test protects
    # digits or whitespace (both on by default, tested in test_configuration.py).
    settings_.setdefault("protect_digits", False)
    settings_.setdefault("protect_whitespace", False)
    return Zip2ZipTokenizer.from_base(base if base is not None else tiny_bpe_tokenizer(), settings_)


@pytest.fixture
def tok() -> Zip2ZipTokenizer:
    return make()


@pytest.fixture
def word_tok() -> Zip2ZipTokenizer:
    return make(tiny_wordlevel_tokenizer())


@pytest.fixture(scope="module")
def smol(smollm2_tokenizer) -> Zip2ZipTokenizer:
    return Zip2ZipTokenizer.from_base(
        smollm2_tokenizer, {"max_codebook_size": 2048, "max_subtokens": 4, "protect_whitespace": False}
    )


def unpadded(row, mask) -> list[int]:
    return [int(i) for i, m in zip(row, mask) if m]


# ---------------------------------------------------------------------------------------------- round trips


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, add_special_tokens=st.booleans(), skip_special_tokens=st.booleans())
def test_round_trip_matches_base_on_any_text(tok, word_tok, text, add_special_tokens, skip_special_tokens):
    for z in (tok, word_tok):
        ids = z(text, add_special_tokens=add_special_tokens)["input_ids"]
        base_ids = z.base(text, add_special_tokens=add_special_tokens)["input_ids"]
        assert ids == z.codec.encode(base_ids)
        assert len(ids) <= len(base_ids)
        assert z.decode(ids, skip_special_tokens=skip_special_tokens) == z.base.decode(
            base_ids, skip_special_tokens=skip_special_tokens
        )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, max_subtokens=st.integers(1, 5), max_codebook_size=st.integers(0, 8))
def test_round_trip_with_small_or_full_codebooks(text, max_subtokens, max_codebook_size):
    z = make(max_subtokens=max_subtokens, max_codebook_size=max_codebook_size)
    ids = z(text * 3)["input_ids"]
    assert max(ids, default=0) < z.base_vocab_size + max_codebook_size
    assert z.decode(ids) == z.base.decode(z.base(text * 3)["input_ids"])


def test_compresses_repeated_text(tok):
    ids = tok(REPEATED)["input_ids"]
    assert len(ids) < len(tok.base(REPEATED)["input_ids"])
    assert any(i >= tok.base_vocab_size for i in ids)
    assert tok.decode(ids) == REPEATED


def test_real_multi_domain_text_with_smollm2(smol):
    samples = {
        "code": inspect.getsource(json.encoder)[:6000],
        "prose": (
            "The committee met on Tuesday to review the proposal. The proposal, which the committee had "
            "asked for last year, describes how the city would rebuild the old bridge over the river. "
        )
        * 6,
        "json": json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(40)]),
        "markdown": "# Title\n\n- item one\n- item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n" * 4,
        "cjk and emoji": "東京は日本の首都です。東京は大きい都市です。😀😀 👍🏽 naïve café — “quotes” …" * 3,
        "whitespace": "a  b\t\tc\n\n\n   d      e\r\n" * 5,
    }
    for domain, text in samples.items():
        base_ids = smol.base(text)["input_ids"]
        ids = smol(text)["input_ids"]
        assert smol.decode(ids) == smol.base.decode(base_ids), domain
        assert len(ids) < len(base_ids), domain
    batch = smol(list(samples.values()), padding=True, return_tensors="pt")
    assert smol.batch_decode(batch["input_ids"], skip_special_tokens=True) == [
        smol.base.decode(smol.base(t)["input_ids"], skip_special_tokens=True) for t in samples.values()
    ]


# ---------------------------------------------------------------------------------------------- batches


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_rows_equal_unbatched_calls(tok, side):
    batch_texts = [REPEATED, "the cat", "", CODE, "<|im_start|>user\nhi<|im_end|>"]
    batch = tok(batch_texts, padding=True, padding_side=side, return_tensors="pt")
    width = max(len(tok(t)["input_ids"]) for t in batch_texts)
    assert batch["input_ids"].shape == (len(batch_texts), width)
    for row, mask, text in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch_texts):
        single = tok(text)["input_ids"]
        assert unpadded(row, mask) == single
        n_pad = width - len(single)
        pads = row[:n_pad] if side == "left" else row[len(row) - n_pad :]
        assert pads == [tok.pad_token_id] * n_pad
        assert mask == (
            [0] * n_pad + [1] * len(single) if side == "left" else [1] * len(single) + [0] * n_pad
        )
        # pad is a disabled id: decoding the padded row gives the unpadded text plus pad tokens only
        assert tok.decode(row, skip_special_tokens=True) == tok.decode(single, skip_special_tokens=True)


def test_padding_defaults_to_left_and_pad_is_disabled(tok):
    assert tok.padding_side == "left"
    assert tok.pad_token_id in tok.disabled_ids
    ids = tok([REPEATED, "the"], padding=True)["input_ids"]
    assert ids[1][0] == tok.pad_token_id


def test_padding_max_length_and_multiple_of(tok):
    out = tok(["the cat", REPEATED], padding="max_length", max_length=40)
    assert [len(r) for r in out["input_ids"]] == [40, 40]
    out = tok(["the cat", REPEATED], padding=True, pad_to_multiple_of=8)
    assert len(out["input_ids"][0]) % 8 == 0
    single = tok("the cat", padding="max_length", max_length=10, padding_side="right")
    assert single["input_ids"][-1] == tok.pad_token_id and single["attention_mask"][-1] == 0


def test_return_tensors_formats(tok):
    listed = tok(["the cat", REPEATED], padding=True)
    pt = tok(["the cat", REPEATED], padding=True, return_tensors="pt")
    np_ = tok(["the cat", REPEATED], padding=True, return_tensors="np")
    assert isinstance(pt["input_ids"], torch.Tensor) and pt["input_ids"].dtype == torch.long
    assert isinstance(np_["input_ids"], np.ndarray)
    assert pt["input_ids"].tolist() == np_["input_ids"].tolist() == listed["input_ids"]
    one = tok(REPEATED, return_tensors="pt")
    assert one["input_ids"].shape == (1, len(tok(REPEATED)["input_ids"]))
    assert tok(REPEATED, return_attention_mask=False).keys() == {"input_ids"}


def test_text_keyword_like_trl(tok):
    """TRL tokenizes plain text as ``processing_class(text=...)["input_ids"]`` and wants a flat list."""
    ids = tok(text=REPEATED + tok.eos_token)["input_ids"]
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
    assert ids[-1] == tok.eos_token_id


def test_trl_tokenize_helper(tok):
    from trl import data_utils

    out = data_utils._tokenize(tok, REPEATED)
    assert out["input_ids"] == tok(REPEATED)["input_ids"]
    chat = data_utils._tokenize(tok, CHAT[:2])
    assert (
        chat["input_ids"] == tok.apply_chat_template(CHAT[:2], tokenize=True, return_dict=True)["input_ids"]
    )


def test_encode_and_pairs(tok, word_tok):
    assert tok.encode(REPEATED) == tok(REPEATED)["input_ids"]
    pair = word_tok("the cat sat", "on the mat")
    assert pair["input_ids"] == word_tok.codec.encode(word_tok.base("the cat sat", "on the mat")["input_ids"])
    batch = word_tok([("the cat", "the dog")], padding=True)
    assert batch["input_ids"][0] == word_tok.codec.encode(word_tok.base("the cat", "the dog")["input_ids"])


def test_lists_of_ints_are_base_ids(word_tok):
    base_ids = word_tok.base("the cat sat on the the cat sat on the", add_special_tokens=False)["input_ids"]
    assert word_tok(base_ids, add_special_tokens=False)["input_ids"] == word_tok.codec.encode(base_ids)
    bos, eos = word_tok.base.bos_token_id, word_tok.base.eos_token_id
    assert word_tok(base_ids)["input_ids"] == word_tok.codec.encode([bos, *base_ids, eos])


# ---------------------------------------------------------------------------------------------- truncation


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, max_length=st.integers(1, 30), side=st.sampled_from(["left", "right"]))
def test_truncation_property(tok, word_tok, text, max_length, side):
    for z in (tok, word_tok):
        z.truncation_side = side
        full = z.base(text * 2)["input_ids"]
        out = z(text * 2, truncation=True, max_length=max_length, return_base_ids=True)
        ids, kept = out["input_ids"], out["base_ids"]
        assert len(ids) <= max_length
        assert z.codec.decode(ids) == kept
        if len(z.codec.encode(full)) <= max_length:
            assert kept == full
            continue
        # the specials the base tokenizer wraps around a text stay when they fit; text is cut at one end
        n = 1 if z is word_tok and max_length >= 2 else 0
        assert kept[:n] == full[:n] and kept[len(kept) - n :] == full[len(full) - n :]
        content, all_content = kept[n : len(kept) - n], full[n : len(full) - n]
        if side == "right":
            assert content == all_content[: len(content)]
            if n == 0:  # a prefix of a code stream is a valid code stream
                assert ids == z.codec.encode(full)[:max_length]
            longer = all_content[: len(content) + 1]
        else:
            assert content == all_content[len(all_content) - len(content) :]
            longer = all_content[len(all_content) - len(content) - 1 :]
        # as much text as fits: one more base token would not
        assert len(z.codec.encode(full[:n] + longer + full[len(full) - n :])) > max_length


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(texts, min_size=1, max_size=5), side=st.sampled_from(["left", "right"]))
def test_padded_batches_property(tok, batch, side):
    out = tok(batch, padding=True, padding_side=side)
    for row, mask, text in zip(out["input_ids"], out["attention_mask"], batch):
        assert unpadded(row, mask) == tok(text)["input_ids"]


def test_truncation_without_padding_in_a_batch(tok):
    out = tok([REPEATED, "the cat"], truncation=True, max_length=6, padding=True, return_tensors="pt")
    assert out["input_ids"].shape[1] == 6
    with pytest.raises(ValueError, match="pair"):
        tok("the cat", "the dog", truncation=True, max_length=3)


# ---------------------------------------------------------------------------------------------- specials


def test_special_tokens_never_merged(tok):
    eos = tok.eos_token
    text = (REPEATED + eos) * 4
    out = tok(text, return_codebook=True)
    ids = out["input_ids"]
    assert ids[-1] == tok.eos_token_id
    assert ids.count(tok.eos_token_id) == 4
    for entry in out["codebook"]:
        assert not set(entry) & set(tok.disabled_ids)


def test_empty_strings_and_only_special_tokens(tok, word_tok):
    assert tok("")["input_ids"] == []
    assert tok.decode([]) == ""
    assert word_tok("")["input_ids"] == [word_tok.bos_token_id, word_tok.eos_token_id]
    only = "<|im_end|><|im_start|><|im_end|>"
    assert tok(only)["input_ids"] == [2, 1, 2]
    assert tok.decode(tok(only)["input_ids"]) == only
    assert tok.decode(tok(only)["input_ids"], skip_special_tokens=True) == ""
    batch = tok(["", only, ""], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == (3, 3) and batch["attention_mask"].sum().item() == 3
    assert tok([])["input_ids"] == []


def test_default_disabled_ids(smollm2_tokenizer):
    specials = default_disabled_ids(smollm2_tokenizer)
    assert specials == list(range(17))  # SmolLM2's 17 special tokens; eos = pad = 2
    with_digits = default_disabled_ids(smollm2_tokenizer, protect_digits=True)
    digits = sorted(set(with_digits) - set(specials))
    assert sorted(smollm2_tokenizer.convert_ids_to_tokens(digits)) == list("0123456789")  # single digits only
    z = Zip2ZipTokenizer.from_base(smollm2_tokenizer, {"protect_digits": True, "protect_whitespace": False})
    assert z.disabled_ids == with_digits and z.protect_digits
    out = z("x = 31415926 + 31415926 + 31415926 " * 3, return_codebook=True)
    assert all(not set(entry) & set(digits) for entry in out["codebook"])  # digits are never merged
    assert out["input_ids"].count(z.convert_tokens_to_ids("1")) == 18  # every digit stays a single id


def test_protect_whitespace_keeps_layout_out_of_hypertokens(smollm2_tokenizer):
    plain = default_disabled_ids(smollm2_tokenizer, protect_digits=True)
    protected = default_disabled_ids(smollm2_tokenizer, protect_digits=True, protect_whitespace=True)
    added = sorted(set(protected) - set(plain))
    texts = smollm2_tokenizer.convert_tokens_to_string
    assert added and all(not texts([t]).strip() for t in smollm2_tokenizer.convert_ids_to_tokens(added))
    vocab = smollm2_tokenizer.get_vocab()
    for layout in ("Ġ", "Ċ", "ĉĉ", "ĊĠĠĠ"):  # " ", "\n", "\t\t", "\n   "
        assert vocab[layout] in added
    for word in ("Ġthe", "(", "Ġ{"):  # a word, a bracket, a space glued to a symbol: these still merge
        assert vocab[word] not in protected
    z = Zip2ZipTokenizer.from_base(smollm2_tokenizer, {"protect_whitespace": True})
    assert z.protect_whitespace and z.disabled_ids == protected
    code = "func f() {\n\tif err != nil {\n\t\treturn err\n\t}\n}\n" * 4
    out = z(code, return_codebook=True)
    assert out["codebook"] and all(not set(entry) & set(added) for entry in out["codebook"])
    assert z.decode(out["input_ids"]) == code
    # the same text merges its indentation without the setting, so the setting is what keeps it out
    free = Zip2ZipTokenizer.from_base(smollm2_tokenizer, {"protect_whitespace": False})
    assert any(set(entry) & set(added) for entry in free(code, return_codebook=True)["codebook"])
    reloaded = Zip2ZipTokenizer.from_base(
        smollm2_tokenizer, {"disabled_ids": protected, "protect_whitespace": True}
    )
    assert reloaded(code)["input_ids"] == out["input_ids"]


def test_special_tokens_and_vocab(tok):
    base = tok.base
    assert len(tok) == len(base) and tok.vocab_size == base.vocab_size
    assert tok.get_vocab() == base.get_vocab()
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (1, 2, 2)
    assert tok.convert_tokens_to_ids("<|im_end|>") == 2
    tok.pad_token = "<|endoftext|>"  # already disabled: the codec is untouched
    assert tok.pad_token_id == 0 and tok.disabled_ids == [0, 1, 2]
    tok.eos_token_id = 1
    assert tok.eos_token == "<|im_start|>"


def test_setting_a_plain_word_as_pad_disables_it(tok, caplog):
    word_id = tok(" cat", add_special_tokens=False)["input_ids"][0]
    with caplog.at_level(logging.WARNING):
        tok.pad_token = tok.convert_ids_to_tokens(word_id)
    assert word_id in tok.disabled_ids
    assert "disabled" in caplog.text
    assert tok.decode(tok(REPEATED)["input_ids"]) == REPEATED


# ---------------------------------------------------------------------------------------------- chat template


def test_chat_template_renders_like_base_and_tokenizes_through_lzw(tok):
    base = tok.base
    for add_generation_prompt in (False, True):
        rendered = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=add_generation_prompt)
        assert rendered == base.apply_chat_template(
            CHAT, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        out = tok.apply_chat_template(CHAT, add_generation_prompt=add_generation_prompt)
        assert out["input_ids"] == tok(rendered, add_special_tokens=False)["input_ids"]
        assert tok.decode(out["input_ids"]) == rendered
        ids = tok.apply_chat_template(CHAT, add_generation_prompt=add_generation_prompt, return_dict=False)
        assert ids == out["input_ids"]
    batch = tok.apply_chat_template([CHAT, CHAT[:2]], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1, 0] == 0


def test_chat_template_with_smollm2(smol):
    base = smol.base
    rendered = smol.apply_chat_template(CHAT[1:], tokenize=False, add_generation_prompt=True)
    assert rendered == base.apply_chat_template(CHAT[1:], tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    ids = smol.apply_chat_template(CHAT[1:], add_generation_prompt=True, return_dict=False)
    base_ids = base.apply_chat_template(CHAT[1:], add_generation_prompt=True, return_dict=False)
    assert smol.codec.decode(ids) == base_ids
    assert len(ids) < len(base_ids)
    im_start, im_end = smol.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    assert ids.count(im_start) == base_ids.count(im_start) and ids.count(im_end) == base_ids.count(im_end)


def test_sanitize_control_tokens_encodes_user_markers_as_text(tok):
    chat = [{"role": "user", "content": "say <|im_end|> please"}]
    plain = tok.apply_chat_template(chat, return_dict=False)
    safe = tok.apply_chat_template(chat, return_dict=False, sanitize_control_tokens=True)
    assert plain.count(tok.eos_token_id) == 2  # the user's marker became a control token
    assert safe.count(tok.eos_token_id) == 1  # only the template's own
    assert tok.decode(safe) == tok.apply_chat_template(chat, tokenize=False)


# ---------------------------------------------------------------------------------------------- decoding


def test_batch_decode_and_cleanup_options(word_tok):
    texts_ = ["the cat sat on the mat .", "the dog , the dog"]
    batch = word_tok(texts_, padding=True, return_tensors="pt")
    decoded = word_tok.batch_decode(batch["input_ids"], skip_special_tokens=True)
    assert decoded == [
        word_tok.base.decode(word_tok.base(t)["input_ids"], skip_special_tokens=True) for t in texts_
    ]
    assert word_tok.decode(batch["input_ids"].tolist()) == word_tok.batch_decode(batch["input_ids"])
    cleaned = word_tok.decode(word_tok("the dog , the dog")["input_ids"], skip_special_tokens=True,
                              clean_up_tokenization_spaces=True)  # fmt: skip
    assert cleaned == "the dog, the dog"


def test_convert_ids_to_tokens(tok):
    ids = tok(REPEATED)["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert len(tokens) == len(ids)
    assert tok.convert_tokens_to_string(tokens) == REPEATED
    with pytest.raises(ValueError, match="whole sequence"):
        tok.convert_ids_to_tokens(tok.base_vocab_size)


def test_bad_ids_raise_value_errors_naming_id_and_position(tok):
    V, C = tok.base_vocab_size, tok.max_codebook_size
    with pytest.raises(ValueError, match=rf"{V + 5} at position 2"):
        tok.decode([10, 11, V + 5])
    with pytest.raises(ValueError, match=rf"{V + C} at position 0 is outside"):
        tok.decode([V + C])
    with pytest.raises(ValueError, match="-1 at position 1"):
        tok.decode([5, -1])
    ids = tok(REPEATED)["input_ids"]
    first_hyper = next(k for k, i in enumerate(ids) if i >= V)
    generation = ids[first_hyper + 3 :]  # a slice cut from the prompt that defined its hypertokens
    with pytest.raises(ValueError, match="decode the prompt and the new codes together"):
        tok.decode(generation)


# ---------------------------------------------------------------------------------------------- settings


def test_from_base_accepts_config_objects_dicts_and_paths(tmp_path):
    class Config:
        base_vocab_size = 512
        max_codebook_size = 32
        max_subtokens = 3
        disabled_ids = None
        protect_digits = False
        protect_whitespace = False

    z = Zip2ZipTokenizer.from_base(tiny_bpe_tokenizer(), Config())
    assert (z.base_vocab_size, z.max_codebook_size, z.max_subtokens) == (512, 32, 3)
    assert z.disabled_ids == default_disabled_ids(z.base)
    ids = z(REPEATED)["input_ids"]
    assert min(i for i in ids if i >= len(z.base)) >= 512  # hypertoken ids start at V, not len(tokenizer)
    assert len(z) == len(z.base)
    z.base.save_pretrained(tmp_path)
    from_path = Zip2ZipTokenizer.from_base(str(tmp_path), {"max_codebook_size": 32, "max_subtokens": 3})
    assert from_path(REPEATED)["input_ids"] == Zip2ZipTokenizer.from_base(z.base, {"max_codebook_size": 32, "max_subtokens": 3})(REPEATED)["input_ids"]  # fmt: skip
    assert Zip2ZipTokenizer.from_base(tiny_bpe_tokenizer()).max_codebook_size == 2048  # defaults


def test_from_base_rejects_bad_settings():
    with pytest.raises(ValueError, match="base_vocab_size=10 is smaller than the base tokenizer"):
        make(base_vocab_size=10)
    with pytest.raises(ValueError, match="pad id 2"):
        make(disabled_ids=[0, 1])


def test_check_compatible_names_each_mismatch(tok):
    tok.check_compatible({"base_vocab_size": tok.base_vocab_size, "max_codebook_size": 64, "max_subtokens": 4,
                          "disabled_ids": tok.disabled_ids})  # fmt: skip
    tok.check_compatible({})  # nothing to compare
    with pytest.raises(ValueError) as error:
        tok.check_compatible({"max_codebook_size": 1024, "max_subtokens": 3, "disabled_ids": [0, 2, 7]})
    message = str(error.value)
    assert "max_codebook_size: tokenizer 64 vs model 1024" in message
    assert "max_subtokens: tokenizer 4 vs model 3" in message
    assert "only in the tokenizer: [1], only in the model: [7]" in message
    assert "from_base" in message


# ---------------------------------------------------------------------------------------------- codebook


def test_return_codebook_and_base_ids(tok):
    batch_texts = [REPEATED, "the cat", ""]
    out = tok(batch_texts, padding=True, return_tensors="pt", return_codebook=True, return_base_ids=True)
    books = [tok.codec.encode_with_codebook(tok.base(t)["input_ids"])[1] for t in batch_texts]
    K = max(len(b) for b in books)
    assert out["codebook"].shape == (3, K, tok.max_subtokens) and out["codebook"].dtype == torch.long
    for row, book in zip(out["codebook"].tolist(), books):
        assert row == book.table(K, pad=-1)
    assert out["base_ids"] == [tok.base(t)["input_ids"] for t in batch_texts]
    listed = tok(batch_texts, return_codebook=True)
    assert listed["codebook"] == [book.table(K, pad=-1) for book in books]
    single = tok(REPEATED, return_codebook=True, return_base_ids=True)
    assert single["codebook"] == books[0].table() and single["base_ids"] == tok.base(REPEATED)["input_ids"]
    assert tok("", return_codebook=True, return_tensors="pt")["codebook"].shape == (1, 0, tok.max_subtokens)


# ---------------------------------------------------------------------------------------------- saving


def test_save_and_load_round_trip(tmp_path, tok):
    tok.save_pretrained(tmp_path)
    assert {"tokenizer_config.json", "base_tokenizer.json", "tokenization_zip2zip.py", "lzw.py"} <= set(
        os.listdir(tmp_path)
    )
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["auto_map"]["AutoTokenizer"][0] == "tokenization_zip2zip.Zip2ZipTokenizer"
    assert config["max_codebook_size"] == 64 and config["disabled_ids"] == [0, 1, 2]
    loaded = Zip2ZipTokenizer.from_pretrained(tmp_path)
    for name in ("base_vocab_size", "max_codebook_size", "max_subtokens", "disabled_ids", "protect_digits"):
        assert getattr(loaded, name) == getattr(tok, name)
    assert loaded.special_tokens_map == tok.special_tokens_map and loaded.padding_side == "left"
    assert loaded.chat_template == CHATML_TEMPLATE
    batch = [REPEATED, CODE, "日本語 😀", ""]
    assert loaded(batch)["input_ids"] == tok(batch)["input_ids"]
    assert loaded.apply_chat_template(CHAT, return_dict=False) == tok.apply_chat_template(
        CHAT, return_dict=False
    )


def test_autotokenizer_in_a_fresh_process_uses_only_the_saved_folder(tmp_path):
    tok = make(tiny_bpe_tokenizer(), protect_digits=True)
    folder = tmp_path / "z2z-repo"
    tok.save_pretrained(folder)
    batch = [REPEATED, CODE, "日本語 😀 1234", ""]
    script = textwrap.dedent(
        """
        import json, sys
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
        texts = json.loads(sys.argv[2])
        print(json.dumps({
            "module": type(tok).__module__,
            "zip2zip_imported": any(m == "zip2zip" or m.startswith("zip2zip.") for m in sys.modules),
            "ids": tok(texts)["input_ids"],
            "chat": tok.apply_chat_template([{"role": "user", "content": texts[0]}], return_dict=False),
            "decoded": tok.decode(tok(texts[0])["input_ids"]),
            "settings": [tok.base_vocab_size, tok.max_codebook_size, tok.max_subtokens, tok.disabled_ids],
        }))
        """
    )
    result = run_without_package(script, str(folder), json.dumps(batch), workdir=tmp_path)
    out = last_json_line(result)
    assert out["module"].startswith("transformers_modules"), out["module"]
    assert not out["zip2zip_imported"]
    assert out["ids"] == tok(batch)["input_ids"]
    assert out["chat"] == tok.apply_chat_template([{"role": "user", "content": REPEATED}], return_dict=False)
    assert out["decoded"] == REPEATED
    assert out["settings"] == [
        tok.base_vocab_size,
        tok.max_codebook_size,
        tok.max_subtokens,
        tok.disabled_ids,
    ]


def test_smollm2_save_load_gives_identical_ids(tmp_path, smol):
    smol.save_pretrained(tmp_path)
    loaded = Zip2ZipTokenizer.from_pretrained(tmp_path)
    text = inspect.getsource(json.encoder)[:3000] + " 東京 😀 x = 12345"
    assert loaded(text)["input_ids"] == smol(text)["input_ids"]
    assert loaded.base(text)["input_ids"] == smol.base(text)["input_ids"]
    assert loaded.model_max_length == smol.model_max_length


# ---------------------------------------------------------------------------------------------- visualize

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_visualize_formats(tok):
    text = REPEATED + " <tag> & 😀😀😀"
    ids = tok(text)["input_ids"]
    plain = tok.visualize(text, format="plain")
    assert plain.replace("[", "").replace("]", "") == text.replace("[", "").replace("]", "")
    assert plain.count("[") == sum(i >= tok.base_vocab_size for i in ids)
    ansi = tok.visualize(ids)
    assert "\x1b[" in ansi and ANSI.sub("", ansi) == text
    page = tok.visualize(text, format="html")
    assert page.startswith("<pre") and "&lt;tag&gt; &amp;" in page and 'class="z2z-hyper"' in page
    first_hyper = next(i for i in ids if i >= tok.base_vocab_size)
    assert (
        f'title="{first_hyper} = {list(tok.codec.decode_with_codebook(ids)[1].expand(first_hyper))}"' in page
    )
    batch = tok([REPEATED, "the cat"], padding=True, return_tensors="pt")["input_ids"]
    lines = ANSI.sub("", tok.visualize(batch, skip_special_tokens=True)).split("\n")
    assert lines == [REPEATED, "the cat"]
    with pytest.raises(ValueError, match="format"):
        tok.visualize(text, format="svg")


def test_visualize_pieces_survive_split_characters(tok):
    # Byte-level BPE splits an emoji into several tokens; hypertokens may cut through it.
    text = "👩‍💻👩‍💻👩‍💻👩‍💻 日本語日本語日本語"
    assert tok.visualize(text, format="plain").replace("[", "").replace("]", "") == text


# ---------------------------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("skip_prompt", [False, True])
def test_streamer_decodes_hypertokens_defined_in_the_prompt(tok, skip_prompt):
    text = REPEATED + "\n" + REPEATED + "\nthe cat sat on the mat.\n" + REPEATED
    codes = tok(text)["input_ids"]
    cut = len(tok(REPEATED)["input_ids"])  # everything after the first sentence is "generated"
    assert any(c >= tok.base_vocab_size for c in codes[cut:])
    streamer = Zip2ZipTextIteratorStreamer(tok, skip_prompt=skip_prompt)
    streamer.put(torch.tensor([codes[:cut]]))  # generate() sends the prompt first, with a batch axis
    for code in codes[cut:]:
        streamer.put(torch.tensor([code]))
    streamer.end()
    streamed = "".join(streamer)
    prompt_text = tok.decode(codes[:cut])
    assert streamed == (text[len(prompt_text) :] if skip_prompt else text)
    with pytest.raises(ValueError, match="batch size 1"):
        Zip2ZipTextStreamer(tok).put(torch.zeros(2, 3, dtype=torch.long))


def test_unsupported_requests_fail_with_a_clear_error(tok):
    with pytest.raises(ValueError, match="offsets"):
        tok.apply_chat_template(CHAT, return_dict=True, return_assistant_tokens_mask=True)
    with pytest.raises(ValueError, match="overflow"):
        tok(REPEATED, return_overflowing_tokens=True, truncation=True, max_length=4)
    with pytest.raises(ValueError, match="hypertokens"):
        tok.add_tokens(["<new_token>"])
    roomy = make(base_vocab_size=len(tok.base) + 4)
    assert roomy.add_tokens(["<new_token>"], special_tokens=True) == 1
    new_id = roomy.convert_tokens_to_ids("<new_token>")
    assert new_id in roomy.disabled_ids and roomy("a <new_token> b")["input_ids"].count(new_id) == 1


def test_visualize_pieces_when_tokens_decode_differently_alone(word_tok):
    # The WordPiece decoder puts spaces *between* words, so a word decoded alone lacks its space.
    text = "the cat sat on the mat the cat sat on the mat"
    ids = word_tok(text)["input_ids"]
    plain = word_tok.visualize(ids, format="plain", skip_special_tokens=True)
    assert plain.replace("[", "").replace("]", "") == word_tok.decode(ids, skip_special_tokens=True)
    assert "[" in plain
