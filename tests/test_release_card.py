"""The model card carries the release benchmark's summary: where it is found, when it is refused, how it reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zip2zip import Zip2ZipConfig
from zip2zip.bundled.release_summary import (
    RELEASE_SUMMARY_FILENAME,
    RELEASE_SUMMARY_FORMAT,
    load_release_summary,
)
from zip2zip.hub.model_card import render_model_card
from zip2zip.utils.cache import MARKER_FILENAME

CONFIG = Zip2ZipConfig(
    base_vocab_size=49152,
    max_codebook_size=2048,
    max_subtokens=4,
    protect_digits=True,
    protect_whitespace=False,
    encoder_num_layers=2,
    position_mode="compressed",
    disabled_ids=[0, 1, 2],
    dtype="bfloat16",
)


def summary(digest: str = "abc123", control: float | None = 1.30, **changes) -> dict:
    """A release summary as ``benchmarks.release`` writes it: one bar met, one missed, one not measured."""
    data = {
        "format": RELEASE_SUMMARY_FORMAT,
        "date": "2026-12-01 10:00 UTC",
        "commit": "f00ba47",
        "command": "python -m benchmarks.release",
        "model_digest": digest,
        "quick": False,
        "bars": [
            {
                "bar": "strict bits per byte zip2zip / base, code <= 1.10x",
                "measured": "1.412x",
                "met": False,
                "missed_by": "0.312x",
            },
            {
                "bar": "time for the same 128 new base tokens of code continuation zip2zip / base <= 0.85x",
                "measured": "0.801x",
                "met": True,
                "missed_by": "",
            },
            {
                "bar": "strict bits per byte zip2zip / base, go (unseen) <= 1.20x",
                "measured": "not measured",
                "met": None,
                "missed_by": "",
            },
        ],
        "bits_per_byte": {
            "texts": "first 8,000 characters of each held-out domain",
            "window": 1024,
            "unseen": "go",
            "domains": {
                "code": {"base": 0.9, "zip2zip": 1.2708, "control": control, "compression": 1.4, "bar": 1.1},
                "overall": {"base": 1.2, "zip2zip": 1.5, "control": control, "compression": 1.3, "bar": None},
            },
        },
        "generation": {
            "new_base_tokens": 128,
            "prompts": 2,
            "ngram": 8,
            "domains": {
                "code": {
                    "compression": 1.31,
                    "hypertoken_share": 0.2,
                    "time_ratio": 0.801,
                    "bytes_per_s_ratio": 1.4,
                    "repeated_ngrams": {"base": 0.25, "zip2zip": 0.3},
                }
            },
        },
        "multiple_choice": {"items": 60, "accuracy": {"next_line_code": {"zip2zip": 0.55, "base (hf)": 0.7}}},
        "training": None,
    }
    data.update(changes)
    return data


def card_text(release: dict | None, **kwargs) -> str:
    card = render_model_card(
        CONFIG,
        repo_id="org/zip2zip-tiny",
        base_model="org/base",
        license="apache-2.0",
        trained=True,
        release=release,
        **kwargs,
    )
    return str(card)


def test_card_shows_the_bars_numbers_and_misses():
    text = card_text(summary())
    assert "## Release benchmark" in text and "one run on 2026-12-01 10:00 UTC (commit f00ba47)." in text
    assert "It meets **1 of 2** measured bars:" in text
    assert "| strict bits per byte zip2zip / base, code <= 1.10x | 1.412x | **MISS** | 0.312x |" in text
    assert "| 0.801x | **PASS** |  |" in text
    assert "| not measured | **not measured** |  |" in text
    # the per-domain table with the control and the quality kept relative to it
    assert "| code | 0.9000 | 1.3000 | 1.2708 | 1.412x | <= 1.10x | 0.978x |" in text
    assert "| code | 1.310 | 20.0% | 0.801x | 25.0% / 30.0% |" in text
    assert "| next_line_code | 70.0% | 55.0% |" in text
    # the plain sentence at the top: how it compares with its base, the miss named with its size
    top = next(line for line in text.splitlines() if line.startswith("**Compared with org/base:**"))
    assert "it meets 1 of 2 measured bars" in top
    assert "relative to org/base's are 1.412x on code" in top
    assert "Missed: strict bits per byte zip2zip / base, code <= 1.10x (1.412x, by 0.312x)." in top
    assert "1.154x overall" in top  # 1.5 / 1.3 against the control
    data = json.dumps(
        render_model_card(
            CONFIG,
            repo_id="o/z",
            base_model="org/base",
            license="apache-2.0",
            trained=True,
            release=summary(),
        ).data.to_dict()
    )
    assert '"bars_met": 1' in data and '"bars_measured": 2' in data and '"value": 1.2708' in data


def test_card_settings_come_from_the_config():
    """The settings table reads the model's config: its dtype (a torch dtype there) without the prefix, the
    never-merged ids counted, the seed's entries counted."""
    text = card_text(summary())
    assert "| base vocabulary `V` | 49152 |" in text
    assert "| hypertokens per sequence `C` (`max_codebook_size`) | 2048 |" in text
    assert "| never-merged ids | 3 (special and chat tokens, digits) |" in text
    assert (
        "| initial codebook (hypertokens every sequence starts with) | 0 (every codebook starts empty) |"
        in text
    )
    assert "| weights | bfloat16 |" in text
    seeded = Zip2ZipConfig(**{**CONFIG.to_dict(), "initial_codebook": [[5, 6], [5, 6, 7]]})
    card = render_model_card(
        seeded, repo_id="org/z", base_model="org/base", license="apache-2.0", trained=True, release=summary()
    )
    assert "| 2 entries, in `initial_codebook` of config.json and tokenizer_config.json |" in str(card)
    assert card.data.to_dict()["zip2zip"]["initial_codebook_entries"] == 2


def test_card_states_the_fit_of_the_long_run():
    fit = {"points": 5, "at_seen": 1.25, "extrapolated": {"2x": 1.1768, "4x": 1.125}}
    text = card_text(summary(training={"base_tokens_seen": 4_000_000, "fit": fit}))
    assert "Trained on 4,000,000 base tokens. A fit a + b * tokens^-c" in text
    assert (
        "(5 points) goes from 1.2500 bits per byte at the tokens seen to 1.1768 at 2x and 1.1250 at 4x"
        in text
    )
    assert "too few points" in card_text(summary(training={"base_tokens_seen": 10, "fit": None}))
    scaled = card_text(summary(training={"base_tokens_seen": 10, "fit": None, "delta_scale": 0.9}))
    assert "apply the training's change at scale 0.9: every base weight sits at base + 0.9 x" in scaled
    assert "at scale" not in card_text(
        summary(training={"base_tokens_seen": 10, "fit": None, "delta_scale": 1.0})
    )


def test_card_without_control_says_it_was_not_measured():
    text = card_text(summary(control=None))
    assert "| domain | base | zip2zip | zip2zip / base | bar |" in text
    assert "The no-compression control (the same recipe with `max_subtokens=1`) was not measured." in text
    assert "overall." not in next(line for line in text.splitlines() if line.startswith("**Compared with"))


LONG_CONTEXT = {
    "unseen": "go",
    "documents": {"code": [28_000, 15_412], "go": [28_000, 28_000]},
    "domains": {
        "code": {
            "1024": {"base": 0.8, "zip2zip": 0.84, "control": 0.8, "compression": 1.227},
            "4096": {"base": 0.75, "zip2zip": 0.825, "control": None, "compression": 1.313},
        },
        "go": {
            "1024": {"base": 1.0, "zip2zip": 1.25, "control": 1.1, "compression": 1.227},
            "4096": {"base": 0.9, "zip2zip": 1.17, "control": 1.0, "compression": 1.309},
        },
    },
    "prompt_base_tokens": 4096,
    "new_base_tokens": 128,
    "time_ratio": 0.71,
    "kv_ratio": 0.721,
    "endings": {"prompts": 8, "base_full": 8, "zip2zip_full": 3},
}


def test_card_shows_the_long_context_table_when_the_summary_has_it():
    text = card_text(summary(long_context=LONG_CONTEXT))
    assert "Long context: strict bits per byte relative to org/base and to\nthe control in windows" in text
    assert "| domain | relative to | 1,024 | 4,096 |\n|---|---|---:|---:|\n" in text
    assert "| code | base | 1.050x | 1.100x |" in text
    assert "| code | control (M = 1) | 1.050x |  |" in text  # the control was not scored at 4,096 on code
    assert "| go (unseen) | base | 1.250x | 1.300x |" in text
    assert "| go (unseen) | control (M = 1) | 1.136x | 1.170x |" in text
    assert (
        "After a 4,096-token code prompt it writes 128 new base tokens in 0.71x the base model's time, with 0.72x "
        "its KV-cache bytes." in text
    )
    assert "on 8 of them, this model on 3." in text
    # without any control score: one row per domain and no word of the control
    alone = {**LONG_CONTEXT, "domains": {"code": {"1024": {"base": 0.8, "zip2zip": 0.84, "control": None}}}}
    text = card_text(summary(long_context=alone))
    assert "relative to org/base in windows" in text and "| code | base | 1.050x |" in text
    assert "control (M = 1) |" not in text.split("Long context:")[1]


@pytest.mark.parametrize("long_context", ["absent", None, {}], ids=["older-summary", "not-measured", "empty"])
def test_card_without_long_context_has_no_such_table(long_context):
    data = summary() if long_context == "absent" else summary(long_context=long_context)
    assert "long_context" not in data or not data["long_context"]
    text = card_text(data)
    assert "## Release benchmark" in text and "It meets **1 of 2** measured bars:" in text
    assert "Long context:" not in text and "| relative to |" not in text


def test_card_without_a_summary_has_no_release_section():
    text = card_text(None)
    assert "## Release benchmark" not in text and "PASS" not in text and "MISS" not in text
    assert "No quality measurement is included with this export" in text


def test_a_card_that_meets_every_bar_says_so():
    bars = [{"bar": "b", "measured": "1.000x", "met": True, "missed_by": ""}]
    top = next(
        line for line in card_text(summary(bars=bars)).splitlines() if line.startswith("**Compared with")
    )
    assert "it meets 1 of 1 measured bars" in top and "It meets every measured bar." in top


# ----------------------------------------------------------------------------------------- finding the summary


def assembled(tmp_path: Path, digest: str = "abc123") -> tuple[Path, Path]:
    """An assembled-shipped-like folder whose marker names its source folder and digest."""
    source, folder = tmp_path / "checkpoint", tmp_path / "assembled"
    source.mkdir()
    folder.mkdir()
    marker = {"kind": "shipped zip2zip model", "source": str(source), "source_digest": digest}
    (folder / MARKER_FILENAME).write_text(json.dumps(marker))
    return source, folder


def test_the_shipped_summary_is_found_through_the_marker(tmp_path):
    source, folder = assembled(tmp_path)
    (source / RELEASE_SUMMARY_FILENAME).write_text(json.dumps(summary()))
    assert load_release_summary(folder)["commit"] == "f00ba47"


@pytest.mark.parametrize(
    "written",
    [
        summary(digest="older"),
        summary(quick=True),
        {**summary(), "format": "something-else/9"},
        summary(digest=None),
    ],
    ids=["other-weights", "smoke-run", "other-format", "no-digest"],
)
def test_a_summary_of_other_weights_or_a_smoke_run_is_refused(tmp_path, caplog, written):
    source, folder = assembled(tmp_path)
    (source / RELEASE_SUMMARY_FILENAME).write_text(json.dumps(written))
    with caplog.at_level("WARNING", logger="zip2zip.hub.export"):
        assert load_release_summary(folder) is None
    assert "skipped" in caplog.text


def test_a_summary_beside_an_ordinary_model_is_used(tmp_path):
    (tmp_path / RELEASE_SUMMARY_FILENAME).write_text(json.dumps(summary(digest=None)))
    assert load_release_summary(tmp_path)["date"] == "2026-12-01 10:00 UTC"
    assert load_release_summary(tmp_path / "missing") is None


def test_export_of_an_assembled_model_renders_and_copies_the_summary(tmp_path):
    from tests._tiny_models import tiny_base_model
    from tests._tiny_tokenizers import tiny_bpe_tokenizer
    from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer
    from zip2zip.hub.export import export_repo

    source, folder = assembled(tmp_path)
    base_tok = tiny_bpe_tokenizer()
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base_tok) + 4),
        tokenizer=base_tok,
        max_codebook_size=32,
        max_subtokens=3,
    )
    model.save_pretrained(folder)
    Zip2ZipTokenizer.from_base(base_tok, model.config).save_pretrained(folder)
    (source / RELEASE_SUMMARY_FILENAME).write_text(json.dumps(summary()))
    out = export_repo(folder, tmp_path / "repo", license="apache-2.0", base_model="org/base", dtype="float32")
    readme = (out / "README.md").read_text()
    assert "## Release benchmark" in readme and "| 1.412x | **MISS** | 0.312x |" in readme
    assert json.loads((out / RELEASE_SUMMARY_FILENAME).read_text())["model_digest"] == "abc123"
