"""A tokenizer and a model that disagree are refused, naming the field: at load, in generate, pipeline, training.

Each case tampers one setting of a saved folder (or builds a tokenizer with it), as a user editing
tokenizer_config.json or replacing base_tokenizer.json would. A disagreeing pair would build different
codebooks from the same ids and misread prompts without any error.
"""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest
from _fresh_process import last_json_line, run_without_package
from _saved_models import TINY_SETTINGS, saved_tiny_zip2zip
from _tiny_tokenizers import CHATML_TEMPLATE
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, TokenizersBackend, pipeline

from zip2zip import Zip2ZipTokenizer
from zip2zip.model.configuration_zip2zip import codec_mismatches, vocab_fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPT = "the cat sat on the mat. the cat sat on the hat."
FIELDS = (
    "max_subtokens",
    "max_codebook_size",
    "disabled_ids",
    "protect_digits",
    "protect_whitespace",
    "base_vocab_size",
)


def other_vocabulary() -> Tokenizer:
    """A byte-level BPE with the same special tokens (ids 0-2) but trained on other text: other ids."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=350,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(
        ["a matter of taste, tastes differ; matters differ.", "zebra zebu zoo"] * 8, trainer
    )
    return tk


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder, model, tok = saved_tiny_zip2zip(
        tmp_path_factory.mktemp("pair") / "zip2zip", perturb=0.0, encoders={}, **TINY_SETTINGS
    )
    return folder, model, tok, tok.base


def tampered_value(field: str, tokenizer_config: dict):
    """The tokenizer_config.json value of a probe that edits ``field``."""
    value = tokenizer_config[field]
    if field == "disabled_ids":
        return [i for i in value if i != max(value)]  # un-protect one digit (pad stays disabled)
    if field in ("protect_digits", "protect_whitespace"):
        return not value
    if field == "base_vocab_size":
        return value + 4
    return value - 1 if field == "max_subtokens" else value // 2


def tamper(folder, tmp_path, field: str):
    broken = tmp_path / f"broken-{field}"
    shutil.copytree(folder, broken)
    if field == "base_vocab_fingerprint":
        other_vocabulary().save(str(broken / "base_tokenizer.json"))
        return broken
    path = broken / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config[field] = tampered_value(field, config)
    path.write_text(json.dumps(config))
    return broken


def mismatched_tokenizer(saved, field: str) -> Zip2ZipTokenizer:
    """A tokenizer that differs from the model in ``field`` only (built in memory: loading would refuse it)."""
    _, model, tok, base_tok = saved
    if field == "base_vocab_fingerprint":
        other = TokenizersBackend(
            tokenizer_object=other_vocabulary(),
            bos_token="<|im_start|>",
            eos_token="<|im_end|>",
            unk_token="<|endoftext|>",
            pad_token="<|im_end|>",
            chat_template=CHATML_TEMPLATE,
        )
        return Zip2ZipTokenizer.from_base(other, model.config)
    value = tampered_value(field, json.loads(json.dumps({field: getattr(tok, field)})))
    bad = Zip2ZipTokenizer.from_base(base_tok, model.config, **{field: value})
    assert set(codec_mismatches(model.config, bad)) == {field}
    return bad


ALL_FIELDS = (*FIELDS, "base_vocab_fingerprint")


def test_both_sides_record_the_base_vocabulary_fingerprint(saved):
    folder, model, tok, base_tok = saved
    expected = vocab_fingerprint(base_tok)
    assert expected.startswith("sha256:") and len(expected) == 7 + 64
    assert model.config.base_vocab_fingerprint == tok.base_vocab_fingerprint == expected
    for name in ("config.json", "tokenizer_config.json"):
        assert json.loads((folder / name).read_text())["base_vocab_fingerprint"] == expected
    assert vocab_fingerprint(other_vocabulary().get_vocab(with_added_tokens=True)) != expected
    # The intact folder loads on both sides, and generate accepts its own tokenizer.
    loaded_tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    loaded = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert loaded_tok.base_vocab_fingerprint == expected
    loaded.generate(**loaded_tok(PROMPT, return_tensors="pt"), tokenizer=loaded_tok, max_new_tokens=2)


def test_a_folder_whose_config_records_no_fingerprint_is_refused_until_it_does(saved, tmp_path):
    """Without the record, a swapped base vocabulary would load silently: both loaders refuse, naming config.json
    and the field, and the fix the message gives (record the tokenizer's fingerprint) makes the folder load."""
    folder, _, tok, _ = saved
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    for name in ("config.json", "tokenizer_config.json"):
        config = json.loads((old / name).read_text())
        del config["base_vocab_fingerprint"]
        (old / name).write_text(json.dumps(config))
    for load in (AutoTokenizer, AutoModelForCausalLM):
        with pytest.raises(
            ValueError, match=r"config\.json has no base_vocab_fingerprint.*base_tokenizer\.json"
        ):
            load.from_pretrained(old, trust_remote_code=True)
    config = json.loads((old / "config.json").read_text())
    config["base_vocab_fingerprint"] = vocab_fingerprint(tok.base)
    (old / "config.json").write_text(json.dumps(config))
    loaded_tok = AutoTokenizer.from_pretrained(old, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(old, trust_remote_code=True)
    loaded_tok.check_compatible(model.config)


@pytest.fixture(scope="module", params=ALL_FIELDS)
def tampered(request, saved, tmp_path_factory):
    """A copy of the saved folder whose tokenizer files disagree with the model in one field (one per field,
    shared by the loaders)."""
    return request.param, tamper(saved[0], tmp_path_factory.mktemp("tampered"), request.param)


# Each loader: how it loads a folder, the refusal it must raise (``{field}`` is the tampered field), and the fix
# its message must name (any of them).
LOADERS = {
    "tokenizer": (
        lambda folder: AutoTokenizer.from_pretrained(folder, trust_remote_code=True),
        "{field}",
        ("base_tokenizer.json", "from_base"),
    ),
    "model": (
        lambda folder: AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True),
        r"\n  {field}: .*tokenizer files .*model config \(config\.json\)",
        ("save_pretrained",),
    ),
    "pipeline": (
        lambda folder: pipeline("text-generation", model=str(folder), trust_remote_code=True),
        "{field}",
        (),
    ),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_a_tampered_folder_is_refused_by_every_loader(tampered, loader):
    field, broken = tampered
    load, refusal, fixes = LOADERS[loader]
    with pytest.raises(ValueError, match=refusal.format(field=field)) as error:
        load(broken)
    assert not fixes or any(fix in str(error.value) for fix in fixes)


@pytest.mark.parametrize("field", ALL_FIELDS)
def test_generate_refuses_a_mismatched_tokenizer(saved, field):
    _, model, tok, _ = saved
    bad = mismatched_tokenizer(saved, field)
    enc = tok(PROMPT, return_tensors="pt")
    with pytest.raises(ValueError, match=rf"\n  {field}: .*tokenizer.* vs .*model") as error:
        model.generate(**enc, tokenizer=bad, max_new_tokens=2)
    assert "from_base" in str(error.value)
    # A pipeline passes its tokenizer to generate with stop strings.
    pipe = pipeline("text-generation", model=model, tokenizer=bad)
    with pytest.raises(ValueError, match=field):
        pipe(PROMPT, max_new_tokens=2, stop_sequence=".")


@pytest.mark.parametrize("field", ALL_FIELDS)
def test_the_trainer_refuses_a_mismatched_tokenizer(saved, tmp_path, field):
    from _training import config
    from datasets import Dataset

    from zip2zip import Zip2ZipSFTTrainer

    _, model, _, _ = saved
    data = Dataset.from_dict({"text": [PROMPT] * 2})
    with pytest.raises(ValueError, match=field):
        Zip2ZipSFTTrainer(
            model=model,
            processing_class=mismatched_tokenizer(saved, field),
            args=config(tmp_path),
            train_dataset=data,
        )
    broken = tamper(saved[0], tmp_path, field)
    with pytest.raises(ValueError, match=field):
        Zip2ZipSFTTrainer(model=str(broken), args=config(tmp_path), train_dataset=data)


FRESH = textwrap.dedent(
    """
    import importlib.util, json, sys
    assert importlib.util.find_spec("zip2zip") is None
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline
    errors = {}
    for name, load in (("tokenizer", AutoTokenizer), ("model", AutoModelForCausalLM)):
        try:
            load.from_pretrained(sys.argv[1], trust_remote_code=True)
        except ValueError as error:
            errors[name] = str(error)
    try:
        pipeline("text-generation", model=sys.argv[1], trust_remote_code=True)
    except ValueError as error:
        errors["pipeline"] = str(error)
    print(json.dumps(errors))
    """
)


@pytest.mark.parametrize("field", ["max_subtokens", "base_vocab_fingerprint"])
def test_remote_code_refuses_a_tampered_folder_without_the_package(saved, tmp_path, field):
    broken = tamper(saved[0], tmp_path, field)
    result = run_without_package(FRESH, str(broken), workdir=tmp_path)
    errors = last_json_line(result)
    assert set(errors) == {"tokenizer", "model", "pipeline"}
    for message in errors.values():
        assert field in message


def test_generate_refuses_a_tokenizer_that_is_not_a_zip2zip_one(saved):
    """The plain base tokenizer reads and writes uncompressed base ids: its ids would be read, but can't belong."""
    _, model, tok, base_tok = saved
    enc = tok(PROMPT, return_tensors="pt")
    with pytest.raises(
        ValueError, match=r"tokenizer=TokenizersBackend, which is not a zip2zip tokenizer.*from_base"
    ):
        model.generate(**enc, tokenizer=base_tok, max_new_tokens=2)


@pytest.mark.parametrize(
    ("setting", "value", "kind"),
    [
        ("max_subtokens", "4", "an int"),
        ("max_codebook_size", 2.5, "an int"),
        ("protect_digits", "false", "true or false"),
    ],
)
def test_a_setting_of_the_wrong_type_names_the_field_and_tokenizer_config(saved, setting, value, kind):
    _, model, _, base_tok = saved
    with pytest.raises(
        TypeError, match=rf"{setting}={value!r} .* in tokenizer_config\.json .* must be {kind}"
    ):
        Zip2ZipTokenizer.from_base(base_tok, model.config, **{setting: value})
