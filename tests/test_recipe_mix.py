"""The training data a preset reads: whole documents, shares of characters, passes."""

from __future__ import annotations

import pytest

from zip2zip import recipe
from zip2zip.corpora.mixing import training_mix
from zip2zip.recipe import PRESETS, TrainingPreset
from zip2zip.trainer.presets import training_data


def test_texts_are_whole_documents():
    from zip2zip.corpora.store import load_files

    data = training_mix(docs_per_domain=5, seed=0)
    files = {text for domain in recipe.MIX for text in load_files(domain, "train", max_files=5)}
    assert set(data["text"]) <= files
    assert len(set(data["text"])) > 5


def test_one_pass_of_the_study_mix_is_the_scarcest_domain_in_full():
    from zip2zip.corpora.store import load_files

    data = training_mix(docs_per_domain=20, seed=0)
    shares = {}
    for domain in recipe.MIX:
        files = set(load_files(domain, "train", max_files=20))
        shares[domain] = sum(len(t) for t in data["text"] if t in files)
    scarcest = min(
        recipe.MIX, key=lambda d: sum(map(len, load_files(d, "train", max_files=20))) / recipe.MIX[d]
    )
    # the scarcest domain for its share: every one of its documents, once
    assert sorted(t for t in data["text"] if t in set(load_files(scarcest, "train", max_files=20))) == sorted(
        load_files(scarcest, "train", max_files=20)
    )
    # the others get about their share of the characters (whole documents, so not exactly)
    total = sum(shares.values())
    for domain, share in recipe.MIX.items():
        assert abs(shares[domain] / total - share) < 0.12, (domain, shares[domain] / total, share)


def test_more_passes_repeat_the_scarce_domain():
    one = training_mix(docs_per_domain=10, seed=0, mix="long", max_passes=1.0)
    two = training_mix(docs_per_domain=10, seed=0, mix="long", max_passes=2.0)
    # twice the characters, up to whole documents at the end of each domain's share
    assert sum(map(len, two["text"])) > 1.6 * sum(map(len, one["text"]))
    assert len(two["text"]) > len(set(two["text"]))  # some documents are read twice


def test_preset_training_data_reads_its_data_fields():
    preset = recipe.get_preset("cpu").replace(docs_per_domain=5, max_passes=1.5)
    data = training_data(preset, seed=3)
    assert data["text"] == training_mix(5, 3, max_passes=1.5)["text"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mix", "web", "not a known mix"),
        ("max_passes", 0.0, "max_passes"),
        ("line_cut_share", 1.5, "line_cut_share"),
        ("line_cut_share", -0.1, "line_cut_share"),
        ("line_cuts_per_text", 0, "line_cuts_per_text"),
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


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_training_config_carries_every_preset_setting_the_trainer_reads(tmp_path, name):
    from zip2zip.trainer.presets import training_config

    preset = PRESETS[name]
    args = training_config(preset, str(tmp_path / name), report_to="none")
    assert (args.max_steps, args.per_device_train_batch_size, args.gradient_accumulation_steps) == (
        preset.steps,
        preset.batch_size,
        preset.grad_accum,
    )
    assert (args.max_length, args.learning_rate, args.encoder_learning_rate) == (
        preset.max_length,
        preset.lr,
        preset.encoder_lr,
    )
    assert (args.line_cut_share, args.line_cuts_per_text) == (
        preset.line_cut_share,
        preset.line_cuts_per_text,
    )
    assert args.distillation_weight == preset.distillation_weight
