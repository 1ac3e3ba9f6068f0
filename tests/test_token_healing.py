"""Token healing (`generate(token_healing=True)`): a prompt gives up its last base token and the first new code
must start with a token that extends it, so the text written always starts with the prompt's text.

Tiny models (tests/_tiny_models.py) on one CPU thread; loud hypertoken logits, so that the first step is often a
hypertoken and the constraint on hypertoken slots is exercised.
"""

from __future__ import annotations

import pytest
import torch
from _tiny_models import tiny_zip2zip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The last base token of each has longer tokens that start with it.
PROMPTS = [
    "on the mat on the mon the m",  # ends with a hypertoken
    "def f(x):\n    y = x\n",  # ends with a bare newline, which the tiny BPE merges with indentation
    "the cat sat on the mat. the cat sat on the ma",  # a word cut short
    " s s s",
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_zip2zip(seed=3, max_codebook_size=64, loud_hypertokens=True)


def extensions_of(tok, token_id: int) -> set[int]:
    """Base ids whose token text starts with the text of ``token_id`` (specials excluded)."""
    start = tok.base.convert_ids_to_tokens(token_id)
    special = set(tok.base.all_special_ids)
    return {i for text, i in tok.base.get_vocab().items() if text.startswith(start) and i not in special}


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("sample", [False, True])
def test_the_text_written_starts_with_the_prompts_text(tiny, prompt, sample):
    model, tok = tiny
    enc = tok(prompt, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**enc, max_new_tokens=6, do_sample=sample, token_healing=True, tokenizer=tok)
    assert tok.decode(out[0]).startswith(prompt)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_the_first_step_allows_exactly_the_codes_that_extend_the_removed_token(tiny, prompt):
    model, tok = tiny
    ids = tok.base(prompt)["input_ids"]
    allowed_tokens = extensions_of(tok, ids[-1])
    if prompt == PROMPTS[0]:
        assert tok(prompt)["input_ids"][-1] >= model.config.base_vocab_size
    assert len(allowed_tokens) > 1, "the prompt's last token has no extension: nothing would be healed"
    out = model.generate(
        **tok(prompt, return_tensors="pt"),
        max_new_tokens=3,
        do_sample=False,
        token_healing=True,
        tokenizer=tok,
        return_dict_in_generate=True,
        output_scores=True,
    )
    healed = model.codec.encode(ids[:-1])
    assert out.codes[0, : len(healed)].tolist() == healed  # the prompt is the healed one
    decoder = model.codec.new_decoder()
    for code in healed:
        decoder.feed(code)
    entries = list(decoder.codebook.entries)
    if decoder.candidate is not None:
        entries.append(decoder.candidate)
    V = model.config.base_vocab_size
    readable = set(range(V)) | {V + k for k in range(len(entries))}
    expected = {code for code in readable if (code if code < V else entries[code - V][0]) in allowed_tokens}
    finite = set(torch.nonzero(torch.isfinite(out.scores[0][0])).flatten().tolist())
    assert finite == expected
    if prompt == PROMPTS[0]:  # an entry of the prompt's codebook starts with an extension: it stays allowed
        assert any(code >= V for code in expected)
    first = out.codes[0, len(healed)].item()
    first_base = first if first < V else entries[first - V][0]
    assert first_base in allowed_tokens
    # later steps are not constrained: they may write any code the decoder can read
    assert torch.isfinite(out.scores[1][0, :V]).sum() > len(allowed_tokens)


def test_rows_heal_in_a_batch_as_they_do_alone(tiny):
    model, tok = tiny
    settings = {"max_new_tokens": 5, "do_sample": False, "token_healing": True, "tokenizer": tok}
    batch = model.generate(**tok(PROMPTS, return_tensors="pt", padding=True), **settings)
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok(prompt, return_tensors="pt"), **settings)
        assert tok.decode(batch[row], skip_special_tokens=True) == tok.decode(
            alone[0], skip_special_tokens=True
        )


def test_a_prompt_with_nothing_to_heal_is_continued_as_without_healing(tiny):
    model, tok = tiny
    settings = {"max_new_tokens": 5, "do_sample": False}
    vocab = tok.base.get_vocab()
    # a token no other token starts with, and a one-token prompt
    lonely = next(t for t, i in sorted(vocab.items(), key=lambda x: x[1]) if len(extensions_of(tok, i)) == 1)
    for prompt in (tok.base.convert_tokens_to_string(["the", "Ġcat", lonely]), "the"):
        enc = tok(prompt, return_tensors="pt")
        healed = model.generate(**enc, **settings, token_healing=True, tokenizer=tok)
        assert torch.equal(healed, model.generate(**enc, **settings))


def test_the_generation_config_turns_it_on_too(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[1], return_tensors="pt")
    settings = {"max_new_tokens": 4, "do_sample": False, "tokenizer": tok}
    by_kwarg = model.generate(**enc, **settings, token_healing=True)
    config = model.generation_config.__class__.from_dict(model.generation_config.to_dict())
    config.token_healing = True
    assert torch.equal(model.generate(**enc, **settings, generation_config=config), by_kwarg)


def test_it_needs_the_tokenizer_and_refuses_prompt_lookup(tiny):
    model, tok = tiny
    enc = tok(PROMPTS[1], return_tensors="pt")
    with pytest.raises(ValueError, match="tokenizer=tok"):
        model.generate(**enc, max_new_tokens=2, token_healing=True)
    with pytest.raises(ValueError, match="prompt_lookup_num_tokens"):
        model.generate(**enc, max_new_tokens=2, token_healing=True, tokenizer=tok, prompt_lookup_num_tokens=3)
