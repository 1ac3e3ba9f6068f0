"""What users pass the tokenizer that the base tokenizer accepts: BatchEncodings to decode, odd ids, two threads.

Each case once gave a raw error or a wrong answer; the messages must say what is actually wrong.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading

import pytest
from _tiny_tokenizers import tiny_bpe_tokenizer
from transformers import AutoTokenizer

from zip2zip import Zip2ZipTokenizer

TEXT = "the cat sat on the mat. the cat sat on the hat."
CHAT = [
    {"role": "user", "content": "the cat sat on the mat"},
    {"role": "assistant", "content": "the cat sat"},
]


@pytest.fixture(scope="module")
def tok():
    return Zip2ZipTokenizer.from_base(tiny_bpe_tokenizer(), {"max_codebook_size": 64})


def test_decode_takes_what_the_tokenizer_returns(tok):
    base = tok.base
    encoding = tok(TEXT)
    assert tok.decode(encoding) == TEXT == base.decode(base(TEXT))
    assert tok.decode(tok(TEXT, return_tensors="pt")) == [TEXT]  # a batch of one row
    assert tok.decode(tok([TEXT, "the dog"])) == [TEXT, "the dog"]
    assert tok.batch_decode(tok([TEXT, "the dog"])) == [TEXT, "the dog"]
    chat = tok.apply_chat_template(CHAT)
    assert tok.decode(chat) == base.decode(base.apply_chat_template(CHAT))
    assert tok.decode(tok.apply_chat_template(CHAT, return_tensors="pt")) == [tok.decode(chat)]
    assert tok.decode_to_base_ids(encoding) == base(TEXT)["input_ids"]
    with pytest.raises(ValueError, match=r"without 'input_ids' \(keys: \['attention_mask'\]\)"):
        tok.decode({"attention_mask": [1, 1]})


def test_ids_that_are_not_token_ids_are_named(tok):
    V, C = tok.base_vocab_size, tok.max_codebook_size
    with pytest.raises(
        ValueError, match=rf"id -1 is not an id of this tokenizer: .*0\.\.{V - 1}.* ignore index"
    ):
        tok.convert_ids_to_tokens(-1)
    with pytest.raises(ValueError, match=rf"id {V + C} is not an id of this tokenizer"):
        tok.convert_ids_to_tokens(V + C)
    with pytest.raises(ValueError, match=rf"id {V} is a hypertoken slot"):
        tok.convert_ids_to_tokens(V)
    assert tok.convert_ids_to_tokens(tok.encode("the")) == ["the"]


def test_a_missing_tokenizer_config_is_named(tmp_path):
    """A model folder whose tokenizer_config.json is gone: the message names that file, not sentencepiece."""
    from _training import build

    model, tok = build()
    model.save_pretrained(tmp_path / "saved")
    tok.save_pretrained(tmp_path / "saved")
    (tmp_path / "saved" / "tokenizer_config.json").unlink()
    for load in (Zip2ZipTokenizer.from_pretrained, AutoTokenizer.from_pretrained):
        with pytest.raises(
            ValueError, match=r"has no tokenizer_config\.json, which holds the zip2zip tokenizer"
        ):
            load(tmp_path / "saved")


def test_a_replaced_base_tokenizer_is_refused_by_the_tokenizer_alone(tok, tmp_path):
    """Without a config.json beside it, the fingerprint the tokenizer recorded still catches the swap."""
    from _tiny_tokenizers import tiny_wordlevel_tokenizer

    tok.save_pretrained(tmp_path / "saved")
    recorded = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())[
        "base_vocab_fingerprint"
    ]
    assert recorded == tok.base_vocab_fingerprint
    other = tmp_path / "other"
    tiny_wordlevel_tokenizer().save_pretrained(other)
    shutil.copy(other / "tokenizer.json", tmp_path / "saved" / "base_tokenizer.json")
    with pytest.raises(
        ValueError, match=r"base_vocab_fingerprint: .*base_tokenizer\.json was replaced or edited"
    ):
        Zip2ZipTokenizer.from_pretrained(tmp_path / "saved")


def test_two_threads_with_different_split_special_tokens_get_their_own_ids(tok):
    """The Rust backend's split-special-tokens switch is shared state; each call must encode with its own."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    texts = [f"<|im_start|>user\nthe cat {i} sat<|im_end|> " * 40 for i in range(25)]
    want = {flag: [tok(t, split_special_tokens=flag)["input_ids"] for t in texts] for flag in (False, True)}
    assert want[False] != want[True]
    wrong = {False: 0, True: 0}

    def encode(flag: bool) -> None:
        for _ in range(16):
            for text, expected in zip(texts, want[flag]):
                wrong[flag] += tok(text, split_special_tokens=flag)["input_ids"] != expected

    try:
        threads = [threading.Thread(target=encode, args=(flag,)) for flag in (False, True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == {False: 0, True: 0}, (
        f"{sum(wrong.values())} of {2 * 16 * len(texts)} encodings were wrong"
    )
