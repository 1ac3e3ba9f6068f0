"""Greedy search by base-token prefix (`greedy_by="prefix"`): each step's code against a plain-Python walk of the
row's codebook trie, the base model's output when nothing can merge, and the settings it refuses.

Tiny models (tests/_tiny_models.py) on one CPU thread; a seeded one so that hypertokens exist from the first step.
"""

from __future__ import annotations

import math

import pytest
import torch
from _tiny_models import tiny_base_model, tiny_zip2zip
from _tiny_tokenizers import tiny_bpe_tokenizer

from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer
from zip2zip.model.lzw_seed import close_prefixes, restrict_initial_codebook

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = [
    "the cat sat on the mat. the cat sat on the hat. the cat",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return",
]


def reference_choice(logits: torch.Tensor, codebook, candidate) -> int:
    """The code a walk down the trie picks: the next base token by the mass of every code that starts with it,
    then one id deeper while some longer run holds more mass than the code that ends here."""
    V = codebook.base_vocab_size
    probs = torch.softmax(logits.double(), dim=-1).tolist()
    expansion = {code: (code,) for code in range(V)}
    for k, entry in enumerate(codebook.entries):
        expansion[V + k] = entry
    if candidate is not None:
        expansion[V + len(codebook.entries)] = candidate
    by_run = {run: code for code, run in expansion.items()}

    def mass(prefix: tuple[int, ...]) -> float:
        return sum(
            probs[c] for c, run in expansion.items() if c < len(probs) and run[: len(prefix)] == prefix
        )

    first = max(range(V), key=lambda t: (mass((t,)), -t))
    run = (first,)
    while True:
        longer = {r[len(run)] for r in by_run if len(r) > len(run) and r[: len(run)] == run}
        if not longer:
            break
        best = max(sorted(longer), key=lambda t: mass(run + (t,)))
        if mass(run + (best,)) <= probs[by_run[run]]:
            break
        run = run + (best,)
    return by_run[run]


def seeded_model():
    """A tiny model whose codebook starts with runs of the prompts' words, with loud hypertoken logits."""
    base_tok = tiny_bpe_tokenizer()
    runs = []
    for prompt in PROMPTS:
        ids = base_tok(prompt, add_special_tokens=False)["input_ids"]
        runs += [ids[i : i + 3] for i in range(0, len(ids) - 3, 2)]
    settings = {"tokenizer": base_tok, "max_codebook_size": 64, "encoder_num_layers": 1}
    disabled = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok)), **settings
    ).config.disabled_ids
    seed = restrict_initial_codebook(close_prefixes(runs), 4, disabled)
    torch.manual_seed(0)
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok)), initial_codebook=seed, **settings
    ).eval()
    with torch.no_grad():
        output_encoder = model.output_encoder if model.output_encoder is not None else model.input_encoder
        output_encoder.out_proj.weight.normal_(0.0, 0.5)
    return model, Zip2ZipTokenizer.from_base(base_tok, model.config)


@pytest.mark.parametrize("build", ["seeded", "lzw"])
def test_every_step_picks_the_code_a_walk_down_the_trie_picks(build):
    if build == "seeded":
        model, tok = seeded_model()
    else:
        model, tok = tiny_zip2zip(seed=3, max_codebook_size=64, loud_hypertokens=True)
    hyper_steps = 0
    for prompt in PROMPTS:
        enc = tok(prompt, return_tensors="pt")
        out = model.generate(
            **enc,
            max_new_tokens=16,
            do_sample=False,
            greedy_by="prefix",
            return_dict_in_generate=True,
            output_logits=True,
        )
        codes = out.codes[0].tolist()
        start = enc["input_ids"].shape[1]
        decoder = model.codec.new_decoder()
        for code in codes[:start]:
            decoder.feed(code)
        for step, logits in enumerate(out.logits):
            code = codes[start + step]
            expected = reference_choice(logits[0], decoder.codebook, decoder.candidate)
            assert code == expected, (
                f"step {step} of {prompt!r}: generated {code}, the trie walk picks {expected}"
            )
            hyper_steps += code >= model.config.base_vocab_size
            decoder.feed(code)
    assert hyper_steps > 0, "no step wrote a hypertoken: the check would not tell the walk from plain greedy"


def test_it_writes_more_base_tokens_per_code_than_plain_greedy_on_the_seeded_model():
    """Where a base token's probability is split over its entries, plain greedy passes it over."""
    model, tok = seeded_model()
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 24, "do_sample": False}
    model.generate(**enc, **settings)
    plain = model.last_generation_stats
    model.generate(**enc, **settings, greedy_by="prefix")
    prefix = model.last_generation_stats
    assert prefix.hypertoken_rate > plain.hypertoken_rate
    assert prefix.compression > plain.compression


def test_with_one_subtoken_it_is_the_base_models_greedy_search():
    model, tok = tiny_zip2zip(seed=1, max_subtokens=1)
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 12, "do_sample": False, "pad_token_id": tok.pad_token_id}
    ours = model.generate(**enc, **settings, greedy_by="prefix")
    base_enc = tok.base(PROMPTS, return_tensors="pt", padding=True, padding_side="left")
    assert torch.equal(ours, model.language_model.generate(**base_enc, **settings))


def test_it_streams_caches_and_batches_as_one_row_alone_does():
    model, tok = seeded_model()
    enc = tok(PROMPTS, return_tensors="pt", padding=True)
    settings = {"max_new_tokens": 10, "do_sample": False, "greedy_by": "prefix", "return_codes": True}
    cached = model.generate(**enc, **settings)
    assert torch.equal(cached, model.generate(**enc, **settings, use_cache=False))
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok(prompt, return_tensors="pt"), **settings)[0]
        mine = cached[row][enc["attention_mask"][row].bool().tolist() + [True] * 10]
        assert mine.tolist()[: alone.shape[0]] == alone.tolist()


def test_it_is_set_from_the_generation_config_and_refuses_sampling_and_unknown_values():
    model, tok = seeded_model()
    enc = tok(PROMPTS[0], return_tensors="pt")
    explicit = model.generate(**enc, max_new_tokens=6, do_sample=False, greedy_by="prefix")
    model.generation_config.greedy_by = "prefix"
    try:
        assert torch.equal(model.generate(**enc, max_new_tokens=6, do_sample=False), explicit)
    finally:
        del model.generation_config.greedy_by
    with pytest.raises(ValueError, match="do_sample=True samples them"):
        model.generate(**enc, max_new_tokens=2, do_sample=True, greedy_by="prefix")
    with pytest.raises(ValueError, match=r"greedy_by must be one of \('code', 'prefix'\), got 'longest'"):
        model.generate(**enc, max_new_tokens=2, greedy_by="longest")


def test_scores_keep_the_chosen_codes_logit():
    model, tok = seeded_model()
    enc = tok(PROMPTS[1], return_tensors="pt")
    out = model.generate(
        **enc,
        max_new_tokens=5,
        do_sample=False,
        greedy_by="prefix",
        return_dict_in_generate=True,
        output_scores=True,
        output_logits=True,
    )
    start = enc["input_ids"].shape[1]
    for step, (scores, logits) in enumerate(zip(out.scores, out.logits)):
        code = int(out.codes[0, start + step])
        assert torch.isfinite(scores[0]).sum() == 1
        assert math.isclose(float(scores[0, code]), float(logits[0, code]), rel_tol=1e-6)


def test_prompt_lookup_keeps_its_output():
    """Lookup verifies proposals against this processor's choice and rolls the codebook back past rejected ones."""
    model, tok = seeded_model()
    for prompt in PROMPTS:
        enc = tok(prompt + prompt, return_tensors="pt")
        settings = {"max_new_tokens": 24, "do_sample": False, "greedy_by": "prefix", "return_codes": True}
        plain = model.generate(**enc, **settings)
        looked_up = model.generate(**enc, **settings, prompt_lookup_num_tokens=4)
        assert torch.equal(plain, looked_up)
