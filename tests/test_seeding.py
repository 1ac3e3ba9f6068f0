"""Seeded codebooks end to end: tokenizer and model start from the seed, it is saved in both files and checked,
loads without the package, its vectors are computed once per model, a seeded model trains and generates, and
seeds are built from text by frequency or by the codes they save."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
import torch
from _fresh_process import last_json_line, run_without_package
from _tiny_models import tiny_base_model
from _tiny_tokenizers import tiny_bpe_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from zip2zip import Seed, Zip2ZipForCausalLM, Zip2ZipTokenizer, apply_seed, build_seed
from zip2zip.model.lzw import LZWCodec
from zip2zip.model.lzw_seed import close_prefixes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "the cat sat on the mat. the dog sat on the log."


def seed_runs(base_tok) -> list[tuple[int, ...]]:
    """A seed of runs of the prompt's words: its first codes are seed hypertokens."""
    ids = base_tok(PROMPT, add_special_tokens=False)["input_ids"]
    return close_prefixes([ids[0:3], ids[3:6], ids[6:8], ids[8:11]])


def build(seed=None, **settings):
    base_tok = tiny_bpe_tokenizer()
    torch.manual_seed(0)
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok)),
        tokenizer=base_tok,
        max_codebook_size=64,
        encoder_num_layers=1,
        initial_codebook=seed,
        **settings,
    ).eval()
    return model, Zip2ZipTokenizer.from_base(base_tok, model.config), base_tok


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    base_tok = tiny_bpe_tokenizer()
    model, tok, base_tok = build(seed_runs(base_tok))
    folder = tmp_path_factory.mktemp("seeded") / "zip2zip"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model, tok, base_tok


def test_the_tokenizer_and_the_model_start_every_sequence_from_the_seed(seeded):
    _, model, tok, base_tok = seeded
    seed = seed_runs(base_tok)
    V = model.config.base_vocab_size
    assert tok.initial_codebook == model.config.initial_codebook == [list(run) for run in seed]
    ids = tok(PROMPT)["input_ids"]
    # The first code is the seed's 3-token run (entry 1, after its prefix), from the first token on.
    assert ids[0] == V + seed.index(seed[1]) and len(seed[1]) == 3
    assert ids == LZWCodec(V, 64, 4, tok.disabled_ids, initial_codebook=seed).encode(
        base_tok(PROMPT, add_special_tokens=False)["input_ids"]
    )
    assert tok.decode(ids) == PROMPT
    plain = Zip2ZipTokenizer.from_base(base_tok, model.config, initial_codebook=None)
    assert len(ids) < len(plain(PROMPT)["input_ids"])
    codebook = tok(PROMPT, return_codebook=True)["codebook"]
    assert [tuple(i for i in row if i >= 0) for row in codebook[: len(seed)]] == seed
    assert model.codec.initial_codebook == tuple(seed)


def test_seed_is_saved_in_both_files_and_reloads(seeded):
    folder, model, tok, _ = seeded
    for name in ("config.json", "tokenizer_config.json"):
        assert json.loads((folder / name).read_text())["initial_codebook"] == model.config.initial_codebook
    loaded_tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert loaded_tok.initial_codebook == loaded.config.initial_codebook == model.config.initial_codebook
    enc = loaded_tok(PROMPT, return_tensors="pt")
    assert enc["input_ids"][0].tolist() == tok(PROMPT)["input_ids"]
    ours = model.generate(**tok(PROMPT, return_tensors="pt"), max_new_tokens=6, do_sample=False)
    theirs = loaded.generate(**enc, tokenizer=loaded_tok, max_new_tokens=6, do_sample=False)
    assert torch.equal(ours, theirs)


def tamper(folder, tmp_path, file: str, change) -> object:
    broken = tmp_path / f"broken-{file}"
    shutil.copytree(folder, broken)
    path = broken / file
    data = json.loads(path.read_text())
    data["initial_codebook"] = change(data["initial_codebook"])
    path.write_text(json.dumps(data))
    return broken


@pytest.mark.parametrize("file", ["tokenizer_config.json", "config.json"])
@pytest.mark.parametrize(
    "change",
    [lambda seed: seed[:-1], lambda seed: None, lambda seed: [seed[0], *seed[2:], seed[1]]],
    ids=["one-entry-less", "removed", "reordered"],
)
def test_a_seed_that_differs_between_the_two_files_is_refused_naming_file_and_field(
    seeded, tmp_path, file, change
):
    broken = tamper(seeded[0], tmp_path, file, change)
    for loader in (AutoTokenizer, AutoModelForCausalLM):
        with pytest.raises(
            ValueError, match=r"\n  initial_codebook: \d+ entries in the tokenizer files"
        ) as error:
            loader.from_pretrained(broken, trust_remote_code=True)
        assert "model config (config.json)" in str(error.value)


def test_a_seed_outside_the_base_vocabulary_is_refused(seeded, tmp_path):
    folder, model, _, _ = seeded
    V = model.config.base_vocab_size

    def beyond(seed):
        return [*seed, [V + 3, 5]]

    broken = tamper(folder, tmp_path, "tokenizer_config.json", beyond)
    config = json.loads((broken / "config.json").read_text())
    config["initial_codebook"] = beyond(config["initial_codebook"])
    (broken / "config.json").write_text(json.dumps(config))
    for loader, file in ((AutoTokenizer, "tokenizer_config.json"), (AutoModelForCausalLM, "config.json")):
        with pytest.raises(
            ValueError, match=r"initial_codebook entry \d+ .*outside the base vocabulary"
        ) as error:
            loader.from_pretrained(broken, trust_remote_code=True)
        assert file + ": " in str(error.value)


def test_generate_and_the_trainer_refuse_a_tokenizer_with_another_seed(seeded, tmp_path):
    from _training import config
    from datasets import Dataset

    from zip2zip import Zip2ZipSFTTrainer

    _, model, tok, base_tok = seeded
    other = Zip2ZipTokenizer.from_base(base_tok, model.config, initial_codebook=seed_runs(base_tok)[:2])
    enc = tok(PROMPT, return_tensors="pt")
    with pytest.raises(
        ValueError, match=r"\n  initial_codebook: 2 entries in the tokenizer vs \d+ in the model"
    ):
        model.generate(**enc, tokenizer=other, max_new_tokens=2)
    with pytest.raises(ValueError, match="initial_codebook"):
        Zip2ZipSFTTrainer(
            model=model,
            processing_class=other,
            args=config(tmp_path),
            train_dataset=Dataset.from_dict({"text": [PROMPT] * 2}),
        )


FRESH = textwrap.dedent(
    """
    import importlib.util, json, shutil, sys
    assert importlib.util.find_spec("zip2zip") is None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(1)
    folder, prompt, broken = sys.argv[1], sys.argv[2], sys.argv[3]
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=6, do_sample=False)
    errors = {}
    for name, loader in (("tokenizer", AutoTokenizer), ("model", AutoModelForCausalLM)):
        try:
            loader.from_pretrained(broken, trust_remote_code=True)
        except ValueError as error:
            errors[name] = str(error)
    print(json.dumps({"ids": enc["input_ids"][0].tolist(), "out": out[0].tolist(), "errors": errors,
                      "seed": tok.initial_codebook, "imported": [m for m in sys.modules if m.startswith("zip2zip")]}))
    """
)


def test_an_exported_seeded_repo_loads_with_only_torch_and_transformers(seeded, tmp_path):
    from zip2zip.hub.export import export_repo

    folder, model, tok, _ = seeded
    exported = export_repo(folder, tmp_path / "export", license="apache-2.0", dtype="float32")
    assert (
        json.loads((exported / "config.json").read_text())["initial_codebook"]
        == model.config.initial_codebook
    )
    card = (exported / "README.md").read_text()
    assert f"| {len(model.config.initial_codebook)} entries, in `initial_codebook`" in card
    broken = tamper(exported, tmp_path, "tokenizer_config.json", lambda seed: seed[:-1])
    got = last_json_line(run_without_package(FRESH, str(exported), PROMPT, str(broken), workdir=tmp_path))
    enc = tok(PROMPT, return_tensors="pt")
    assert got["imported"] == [] and got["seed"] == model.config.initial_codebook
    assert got["ids"] == enc["input_ids"][0].tolist()
    assert got["out"] == model.generate(**enc, max_new_tokens=6, do_sample=False)[0].tolist()
    assert set(got["errors"]) == {"tokenizer", "model"}
    assert all("initial_codebook" in message for message in got["errors"].values())


# ----------------------------------------------------------------------------------------- the kept vectors


def test_seed_vectors_are_computed_once_and_recomputed_when_weights_change(seeded):
    _, model, tok, _ = seeded
    enc = tok(PROMPT, return_tensors="pt")
    calls = []
    model.output_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    with torch.no_grad():
        first = model(**enc).logits
        S = len(model.config.initial_codebook)
        n = len(calls)
        again = model(**enc).logits
    assert S not in calls[n:], "the seed's output vectors were encoded again"
    fresh = model(**enc).logits.detach()  # gradients on: nothing kept, everything encoded
    torch.testing.assert_close(first, fresh)
    torch.testing.assert_close(first, again)
    with torch.no_grad():
        model.output_encoder.out_proj.bias.add_(0.25)
        changed = model(**enc).logits  # the kept vectors are stale now: they must be recomputed
    changed_fresh = model(**enc).logits.detach()
    with torch.no_grad():
        model.output_encoder.out_proj.bias.sub_(0.25)
        restored = model(**enc).logits
    torch.testing.assert_close(changed, changed_fresh)
    torch.testing.assert_close(restored, first)
    V = model.config.base_vocab_size
    assert not torch.allclose(changed[..., V : V + S], first[..., V : V + S])


def test_seeded_generation_equals_the_full_recomputation(seeded):
    _, model, tok, _ = seeded
    enc = tok([PROMPT, "the dog sat"], return_tensors="pt", padding=True)
    cached = model.generate(**enc, max_new_tokens=8, do_sample=False, return_codes=True)
    uncached = model.generate(**enc, max_new_tokens=8, do_sample=False, return_codes=True, use_cache=False)
    assert torch.equal(cached, uncached)
    # Prompt lookup proposes seed entries too and keeps greedy's output (batch 1).
    one = tok(PROMPT + " the cat sat on the", return_tensors="pt")
    greedy = model.generate(**one, max_new_tokens=8, do_sample=False, return_codes=True)
    looked_up = model.generate(
        **one, max_new_tokens=8, do_sample=False, return_codes=True, prompt_lookup_num_tokens=3
    )
    assert torch.equal(greedy, looked_up)


# ----------------------------------------------------------------------------------------- training


def test_a_seeded_model_trains_a_few_steps_and_generates(tmp_path):
    from _training import build as build_trainable
    from _training import config
    from datasets import Dataset

    from zip2zip import Zip2ZipSFTTrainer

    model, tok = build_trainable()
    base_tok = tok.base
    seed = seed_runs(base_tok)
    tok = apply_seed(
        model, base_tok, Seed(entries=tuple(seed), base_vocab_fingerprint=tok.base_vocab_fingerprint)
    )
    V = model.config.base_vocab_size
    trainer = Zip2ZipSFTTrainer(
        model=model,
        processing_class=tok,
        args=config(tmp_path, max_steps=3),
        train_dataset=Dataset.from_dict({"text": [PROMPT, PROMPT + " " + PROMPT, "the cat sat."] * 2}),
    )
    row = trainer.train_dataset[0]["input_ids"]
    expected = tok(PROMPT)["input_ids"]
    assert row[0] >= V and row[: len(expected)] == expected  # tokenised from the seed (then end-of-sequence)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    table = batch["codebook"][:, : len(seed)]
    assert all([tuple(i for i in entry if i >= 0) for entry in table[b].tolist()] == seed for b in range(2))
    assert bool((batch["accept_limits"][batch["attention_mask"].bool()] >= len(seed)).all())
    before = {name: p.detach().clone() for name, p in model.named_parameters() if "output_encoder" in name}
    result = trainer.train()
    assert result.global_step == 3 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters() if name in before)
    model.eval()
    enc = tok(PROMPT, return_tensors="pt")
    # three steps on random weights may well favour end-of-sequence: six codes are asked for, not left to chance
    out = model.generate(**enc, min_new_tokens=6, max_new_tokens=6, do_sample=False, return_codes=True)
    assert out.shape[1] == enc["input_ids"].shape[1] + 6
    assert tok.decode(out[0]).startswith(PROMPT)


def test_apply_seed_refuses_a_seed_of_another_vocabulary_and_change_codec_trims_the_seed():
    from zip2zip import change_codec

    model, _, base_tok = build(seed_runs(tiny_bpe_tokenizer()))
    foreign = Seed(entries=((5, 6),), base_vocab_fingerprint="sha256:" + "0" * 64)
    with pytest.raises(ValueError, match="initial_codebook: the seed was built for a base vocabulary"):
        apply_seed(model, base_tok, foreign)
    shorter = change_codec(model, base_tok, max_subtokens=2)
    assert all(len(entry) == 2 for entry in shorter.initial_codebook)
    assert model.config.initial_codebook == shorter.initial_codebook
    shorter.check_compatible(model.config)
    assert (
        apply_seed(model, base_tok, None).initial_codebook is None and model.config.initial_codebook is None
    )


# ----------------------------------------------------------------------------------------- building seeds


def test_frequency_takes_the_most_frequent_runs_and_gain_the_ones_tuning_text_uses(tmp_path):
    V, M = 20, 3
    # (1, 2, 3) is frequent in the counted text only; (7, 8) less frequent there but all over the tuning text.
    counted = [[1, 2, 3, 9] * 30 + [7, 8, 10] * 20]
    tuning = [[7, 8, 12, 13] * 8 for _ in range(4)]
    frequency = build_seed(counted, 3, base_vocab_size=V, max_subtokens=M, rule="frequency")
    assert frequency[:3] == [(1, 2), (2, 3), (3, 9)]
    gain = build_seed(counted, 3, base_vocab_size=V, max_subtokens=M, rule="gain", tuning=tuning)
    assert (7, 8) in gain and len(gain) == 3
    for seed in (frequency, gain):
        LZWCodec(V, 8, M, initial_codebook=seed)  # prefix-closed, valid
    codes = [
        sum(len(LZWCodec(V, 8, M, initial_codebook=s).encode(w)) for w in tuning) for s in (frequency, gain)
    ]
    assert codes[1] < codes[0]
    with pytest.raises(ValueError, match="needs tuning windows"):
        build_seed(counted, 3, base_vocab_size=V, max_subtokens=M, rule="gain")
    saved = Seed(entries=tuple(gain), rule="gain", domains=("code",)).save(tmp_path / "seed.json")
    assert Seed.load(saved) == Seed(entries=tuple(gain), rule="gain", domains=("code",))


def test_disabled_ids_never_enter_a_seed():
    seed = build_seed(
        [[1, 2, 0, 1, 2, 0, 1, 2]], 8, base_vocab_size=5, max_subtokens=3, disabled_ids={0}, rule="frequency"
    )
    assert seed and all(0 not in entry for entry in seed)


@pytest.mark.slow
def test_zip2zip_seed_writes_a_seed_that_a_model_of_the_embedded_base_accepts(tmp_path, capsys):
    from zip2zip.cli import main

    out = tmp_path / "seed.json"
    code = main(
        [
            "seed",
            "--domains",
            "prose",
            "--size",
            "64",
            "--rule",
            "gain",
            "--output",
            str(out),
            "--max-base-tokens",
            "20000",
            "--tuning-base-tokens",
            "5000",
        ]
    )
    assert code == 0
    seed = Seed.load(out)
    assert len(seed) == 64 and seed.rule == "gain" and seed.domains == ("prose",)
    printed = capsys.readouterr().out
    assert "plain" in printed and "seeded" in printed
    from zip2zip.loading import load_zip2zip_tokenizer

    tok = load_zip2zip_tokenizer(None)
    assert seed.base_vocab_fingerprint == tok.base_vocab_fingerprint
    seeded = Zip2ZipTokenizer.from_base(tok.base, tok, initial_codebook=seed.entries)
    text = "The package manager installs the packages of the system."
    assert len(seeded(text)["input_ids"]) <= len(tok(text)["input_ids"])
