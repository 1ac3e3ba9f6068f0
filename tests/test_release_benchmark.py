"""The release benchmark: its multiple-choice items, bars, report, summary, control and curves from synthetic
reports, and section 5's measuring part with tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _benchmarks import load_benchmark

RELEASE_MODULES = (
    "bars",
    "cli",
    "control",
    "curves",
    "items",
    "plots",
    "provenance",
    "report",
    "settings",
    "summary",
)


@pytest.fixture(scope="module")
def release():
    """The release benchmark's package, its modules loaded: ``release.items``, ``release.report``, ..."""
    for module in RELEASE_MODULES:
        load_benchmark(f"release.{module}")
    return load_benchmark("release")


def code_doc(n: int) -> str:
    lines = [
        f"def function_{n}_{k}(value_{k}):\n    return value_{k} * {n + k} + offset_{n}\n" for k in range(8)
    ]
    return "\n".join(lines)


def prose_doc(n: int) -> str:
    sentences = [
        f"Sentence number {k} of document {n} says something about topic {n * 7 + k}." for k in range(9)
    ]
    return " ".join(sentences[:5]) + "\n\n" + " ".join(sentences[5:])


DOCS = {"code": [code_doc(n) for n in range(6)], "prose": [prose_doc(n) for n in range(6)]}


def test_items_are_deterministic_and_well_formed(release):
    items = release.items.build_next_line_items(DOCS, per_domain=10, seed=3)
    assert items == release.items.build_next_line_items(DOCS, per_domain=10, seed=3)
    assert items != release.items.build_next_line_items(DOCS, per_domain=10, seed=4)
    assert [item["domain"] for item in items] == ["code"] * 10 + ["prose"] * 10
    for item in items:
        choices, label = item["choices"], item["label"]
        assert len(choices) == 4 and 0 <= label < 4
        doc = DOCS[item["domain"]][item["doc"]]
        # the gold choice is what really follows the context in its document (separator included)
        assert item["context"] + choices[label] in doc
        assert choices[label].strip() == item["answer"].strip()
        separator = choices[label][: len(choices[label]) - len(item["answer"])]
        assert separator.strip() == ""
        distractors = [c for i, c in enumerate(choices) if i != label]
        assert len({c.strip() for c in choices}) == 4  # distractors differ from the answer and each other
        for distractor in distractors:
            assert distractor.startswith(separator)
            text = distractor[len(separator) :]
            assert text != item["answer"]
            assert text not in doc  # drawn from other documents
            assert any(text in other for other in DOCS[item["domain"]])
    assert len({item["label"] for item in items}) > 1  # the gold position is drawn, not fixed


def test_context_ends_where_the_answer_starts(release):
    items = release.items.build_next_line_items(DOCS, per_domain=5, context_units=2)
    code = next(item for item in items if item["domain"] == "code")
    assert code["context"].count("\n") >= 1  # two lines of context
    prose = next(item for item in items if item["domain"] == "prose")
    assert prose["answer"].startswith("Sentence number")
    assert prose["answer"].endswith(".")


def test_too_few_positions_says_what_to_do(release):
    with pytest.raises(ValueError, match="use fewer items"):
        release.items.build_next_line_items({"code": DOCS["code"][:1]}, per_domain=1000)


# ------------------------------------------------------------------------------------- bars, report, summary


def periodic(period: int, length: int = 17) -> list[int]:
    """Ids whose 8-grams repeat with ``period``: of the ``length - 7`` 8-grams, ``length - 7 - period`` repeat.

    With the default length (ten 8-grams), period 8 gives a share of 0.2, period 7 0.3 and period 6 0.4.
    """
    return [i % period for i in range(length)]


def score(bpb: float, codes: int = 800, base_tokens: int = 1000, hypertokens: int = 150) -> dict:
    return {
        "bits_per_byte": bpb,
        "bytes": 4000,
        "base_tokens": base_tokens,
        "codes": codes,
        "hypertokens": hypertokens,
        "compression": base_tokens / codes,
        "positions": codes + 1,
    }


def synthetic_report(
    release,
    ratios: dict[str, float],
    compression: float = 1.2,
    hypertoken_rate: float = 0.15,
    zip_period: int = 7,
    zip_acc: float = 0.65,
    zip_seconds: float = 8.5,
    control: dict[str, float] | None = None,
    quick: bool = False,
    long_context: dict | None = None,
) -> dict:
    """A report with the shape ``main`` writes: base bits per byte 1.0 everywhere, zip2zip at ``ratios``;
    base continuations with a repeated-8-gram share of 0.2, base next-line accuracy 0.70, base time 10 s;
    ``long_context`` its section 5 (see :func:`long_context_results`), none by default."""
    domains = {d: {"base": score(1.0, 1000, 1000, 0), "zip2zip": score(r)} for d, r in ratios.items()}
    compared = {
        "max_length": 1024,
        "description": "synthetic",
        "domains": domains,
        "overall": {"base": score(1.0, 1000, 1000, 0), "zip2zip": score(1.1)},
    }
    bits = {
        "compared": compared,
        "heldout_compression": {
            d: {
                "texts": 3,
                "base_tokens": 1000,
                "codes": 800,
                "bytes": 4000,
                "compression": 1.25,
                "bytes_per_code": 5.0,
            }
            for d in ratios
        },
    }
    if control:
        bits["control"] = {
            "max_length": 1024,
            "domains": {d: {"zip2zip": score(v, 1000, 1000, 0)} for d, v in control.items()},
            "overall": {"zip2zip": score(1.02, 1000, 1000, 0)},
        }

    def run(ids: list[int], seconds: float) -> dict:
        return {"output": ids, "seconds": seconds, "text": "x = 1\n" * 20, "prompt": 0, "steps": len(ids) - 1}

    speed = {"steps": 16, "ms_per_step": 10.0, "bytes_per_s": 12.0}
    rows, results = [], {}
    for domain in ("code", "prose"):
        zip_row = {**speed, "compression": compression, "hypertoken_rate": hypertoken_rate}
        rows.append({"domain": domain, "base": speed, "pld": speed, "zip2zip": zip_row, "ratio": 1.0})
        results[domain] = {
            "base": [run(periodic(8), 10.0)],
            "pld": [run(periodic(8), 9.0)],
            "zip2zip": [run(periodic(zip_period), zip_seconds)],
        }

    def tasks(acc: float) -> dict:
        return {
            "seconds": 1.0,
            "tasks": {
                task: {"acc": acc, "acc_stderr": 0.05, "acc_norm": acc, "acc_norm_stderr": 0.05, "items": 60}
                for task in release.settings.MC_TASKS.values()
            },
        }

    settings = {
        **release.settings.FULL,
        "quick": quick,
        "mc_context": 4,
        "pld_tokens": 10,
        "seed": 0,
        "threads": 1,
    }
    report = {
        "run": {
            "command": "python -m benchmarks.release",
            "date": "2026-01-02 03:04 UTC",
            "commit": "abc1234",
            "model": "/cache/shipped",
            "shipped": True,
            "model_digest": "d1g3st",
            "model_settings": {"max_subtokens": 4},
            "control": {"folder": "/runs/m1", "model_settings": {"max_subtokens": 1}} if control else None,
            "base": "SmolLM2-135M-Instruct",
            "threads": 1,
            "cpu": "test cpu",
            "load_average": None,
            "versions": {"python": "3"},
            "settings": settings,
        },
        "timings": {},
        "seconds": 60.0,
        "bits_per_byte": bits,
        "generation": {"rows": rows, "results": results, "pld_mismatches": []},
        "multiple_choice": {
            "zip2zip": tasks(zip_acc),
            "base (hf)": tasks(0.70),
            "base (zip2zip class)": tasks(0.69),
        },
    }
    if long_context is not None:
        report["long_context"] = long_context
    return report


LONG_WINDOWS = ("1024", "2048", "4096", "8192")


def long_context_results(
    gain: float = 1.0,
    control: dict[int, float] | None = None,
    zip_full: int = 8,
    time_ratio: float = 0.75,
    kv_ratio: float = 0.80,
    prompts: int = 8,
) -> dict:
    """A ``long_context`` section as ``measure_long_context`` writes it: on code, prose and go, base bits per
    byte 1.0 at every window, zip2zip 1.2 at 1,024 and 1.2 * ``gain`` beyond; the control, at the windows of
    ``control``, at zip2zip / that ratio; the base's 128 tokens after the 4k prompt take 10 s and its KV cache
    holds 180 MiB; of ``prompts`` cut files zip2zip writes ``zip_full`` in full and ends the others."""

    def window_scores(window: str) -> dict:
        zip_bpb = 1.2 if window == "1024" else 1.2 * gain
        scores = {"base": score(1.0, 1000, 1000, 0), "zip2zip": score(zip_bpb, 800 - int(window) // 64)}
        if control and int(window) in control:
            scores["control"] = score(zip_bpb / control[int(window)], 1000, 1000, 0)
        return scores

    quality = {
        domain: {
            "documents": 2,
            "characters": [28_000, 15_412],
            "digest": f"{domain}-digest",
            "windows": {w: window_scores(w) for w in LONG_WINDOWS},
        }
        for domain in ("code", "prose", "go")
    }
    full = {"base_tokens": 128, "ended": False}
    rows = [
        {
            "prompt_chars": 2990 + k,
            "base": full,
            "zip2zip": full if k < zip_full else {"base_tokens": 1, "ended": True},
        }
        for k in range(prompts)
    ]
    return {
        "quality": quality,
        "continuation": {
            "prompt_base_tokens": 4096,
            "prompt_codes": 2954,
            "new_base_tokens": 128,
            "base_seconds": 10.0,
            "zip2zip_seconds": 10.0 * time_ratio,
            "ratio": 10.0 * time_ratio / 10.0,
            "zip2zip_steps": 81,
            "zip2zip_base_tokens": 128,
        },
        "kv_cache": {
            "prompt_base_tokens": 4096,
            "prompt_codes": 2954,
            "base": 180 * 2**20,
            "zip2zip": round(180 * 2**20 * kv_ratio),
        },
        "endings": {"prompts": prompts, "rows": rows, "base_full": prompts, "zip2zip_full": zip_full},
    }


AT_THE_BARS = {"code": 1.10, "prose": 1.05, "math": 1.5, "go": 1.20}
LONG_AT_THE_BARS = {1024: 1.10, 2048: 1.11, 4096: 1.12, 8192: 1.12}


def test_bars_pass_exactly_at_their_limits(release):
    long = long_context_results(control=LONG_AT_THE_BARS)
    report = synthetic_report(release, AT_THE_BARS, long_context=long)
    bars = release.bars.release_bars(report)
    assert len(bars) == 17
    assert [bar.met for bar in bars] == [True] * 17, [(b.name, b.value) for b in bars]
    assert all(bar.missed_by == "" for bar in bars)
    by_name = {bar.name: bar for bar in bars}
    assert by_name["strict bits per byte zip2zip / base, go (unseen) <= 1.20x"].measured == "1.200x"
    assert [bar.measured for bar in bars[10:]] == [
        "1.000x",  # zip2zip / base at 4,096 over at 1,024, code and go
        "1.000x",
        "1.100x",  # zip2zip / control pooled at 1,024 and at 4,096
        "1.120x",
        "8 of 8",  # cut files continued in full
        "0.750x",  # time after the 4k prompt
        "0.800x",  # KV cache after it
    ]
    assert (
        by_name[
            "long context, go (unseen): zip2zip / base bits per byte at 4,096 positions over the same at 1,024 "
            "<= 1.00x"
        ].met
        is True
    )
    assert "time for 128 new base tokens after a 4,096-token code prompt zip2zip / base <= 0.75x" in by_name
    assert "KV-cache bytes after a 4,096-token code prompt zip2zip / base <= 0.80x" in by_name
    compression = next(bar for bar in bars if "base tokens per generated code" in bar.name)
    assert compression.measured == "1.200"  # runs without generation statistics: the value alone
    code_runs = report["generation"]["results"]["code"]["zip2zip"]
    code_runs[:] = [
        {
            **code_runs[0],
            "prompt": p,
            "stats": {"codes": [codes], "base_tokens": [128], "hypertokens": [hyper]},
        }
        for p, (codes, hyper) in enumerate([(100, 20), (120, 5), (60, 40), (100, 20)])
    ]
    compression, hypertokens = [
        bar for bar in release.bars.release_bars(report) if bar.name.startswith("own greedy continuations")
    ]
    low, high = compression.interval
    assert low < 512 / 380 < high and low >= 128 / 120 and high <= 128 / 60
    assert compression.measured == f"1.200 (95% over prompts: {low:.3f}-{high:.3f})"
    assert hypertokens.interval[0] < 85 / 380 < hypertokens.interval[1]
    time = next(bar for bar in bars if bar.name.startswith("time for the same"))
    assert time.interval is None and time.measured == "0.850x"  # one prompt: no interval
    for config, seconds in (("zip2zip", [8.0, 9.0, 7.0, 10.0]), ("base", [10.0] * 4)):
        runs = report["generation"]["results"]["code"][config]
        runs[:] = [{**runs[0], "prompt": p, "seconds": s} for p, s in enumerate(seconds)]
    (time,) = [bar for bar in release.bars.release_bars(report) if bar.name.startswith("time for the same")]
    assert time.value == pytest.approx(0.85) and 0.7 <= time.interval[0] < 0.85 < time.interval[1] <= 1.0
    repeats = next(bar for bar in bars if bar.name.startswith("repeated 8-grams") and "code" in bar.name)
    assert (
        repeats.measured == "+10.0 points"
    )  # 0.3 - 0.2, a float hair above 10: the tolerance keeps it a pass


def test_bars_miss_just_past_their_limits_and_say_by_how_much(release):
    report = synthetic_report(
        release,
        {"code": 1.101, "prose": 1.051, "math": 1.5, "go": 1.201},
        compression=1.199,
        hypertoken_rate=0.149,
        zip_period=6,
        zip_acc=0.649,
        zip_seconds=8.51,
        long_context=long_context_results(
            gain=1.001, control={1024: 1.101, 4096: 1.121}, zip_full=7, time_ratio=0.751, kv_ratio=0.801
        ),
    )
    bars = release.bars.release_bars(report)
    assert [bar.met for bar in bars] == [False] * 17
    assert [bar.missed_by for bar in bars] == [
        "0.001x",  # bits per byte code, prose, go: each 0.001x over its bar
        "0.001x",
        "0.001x",
        "0.001",  # base tokens per generated code, 1.199 against 1.20
        "0.1 points",  # hypertokens 14.9% against 15%
        "10.0 points",  # repeats +20 points against +10
        "10.0 points",
        "0.1 points",  # accuracy -5.1 points against -5
        "0.1 points",
        "0.001x",  # time 0.851x against 0.85x
        "0.001x",  # long context: zip2zip / base grows by 0.1% from 1,024 to 4,096 on code and go
        "0.001x",
        "0.001x",  # zip2zip / control 1.101x and 1.121x against 1.10x and 1.12x
        "0.001x",
        "1",  # 7 of 8 cut files continued in full
        "0.001x",  # time 0.751x against 0.75x
        "0.001x",  # KV cache 0.801x against 0.80x
    ]
    assert bars[14].measured == "7 of 8"
    summary = release.report._summary(report)
    assert "0 of 17 measured bars met; missed: " in "\n".join(summary)


def test_bars_without_the_unseen_domain_are_not_measured(release):
    report = synthetic_report(release, {"code": 1.0, "prose": 1.0})
    go = next(bar for bar in release.bars.release_bars(report) if "go (unseen)" in bar.name)
    assert go.met is None and go.measured == "not measured"
    text = "\n".join(release.report._summary(report))
    # and a report without section 5 (--no-long-context, or one written before it) measured none of its bars
    assert "9 of 9 measured bars met (8 not measured in this run)." in text
    long_bars = release.bars.long_context_bars(report)
    assert len(long_bars) == 7 and all(bar.met is None for bar in long_bars)
    assert all(
        "| not measured | **not measured** |" in text for text in _bar_rows(release, report, long_bars)
    )


def _bar_rows(release, report: dict, bars: list) -> list[str]:
    """The Bars table's rows of ``bars`` as RESULTS.md shows them."""
    table = release.report._summary(report)
    return [next(line for line in table if line.startswith(f"| {bar.name} |")) for bar in bars]


def test_long_context_control_bars_without_the_control_are_not_measured(release):
    report = synthetic_report(release, AT_THE_BARS, long_context=long_context_results())
    bars = release.bars.long_context_bars(report)
    assert [bar.met for bar in bars] == [True, True, None, None, True, True, True]
    assert [bar.measured for bar in bars][2:4] == ["not measured", "not measured"]
    # one domain without the control's score at a window: the pooled ratio is not measured there, not guessed
    with_control = long_context_results(control={1024: 1.0, 4096: 1.0})
    del with_control["quality"]["prose"]["windows"]["4096"]["control"]
    report = synthetic_report(release, AT_THE_BARS, long_context=with_control)
    assert [bar.value for bar in release.bars.long_context_bars(report)][2:4] == [pytest.approx(1.0), None]
    # a window the run did not score gives no long-context gain
    del with_control["quality"]["code"]["windows"]["4096"]
    assert release.bars.long_context_bars(report)[0].met is None


def test_long_context_pooled_ratio_weighs_domains_by_their_bytes(release):
    long = long_context_results(control={1024: 1.0})
    for domain, zip_bpb, size in (("code", 1.0, 1000), ("prose", 1.0, 1000), ("go", 1.2, 2000)):
        scores = long["quality"][domain]["windows"]["1024"]
        for name, bpb in (("base", 1.0), ("control", 1.0), ("zip2zip", zip_bpb)):
            scores[name] = {**scores[name], "bits_per_byte": bpb, "bytes": size}
    report = synthetic_report(release, AT_THE_BARS, long_context=long)
    # (1.0 * 1000 + 1.0 * 1000 + 1.2 * 2000) / 4000 = 1.1: at the bar (the plain mean of the ratios is 1.067)
    assert release.bars.pooled_long_context_ratio(report, 1024, "control") == pytest.approx(1.1)
    control_1024 = release.bars.long_context_bars(report)[2]
    assert control_1024.met is True and control_1024.measured == "1.100x"
    assert release.bars.pooled_long_context_ratio(report, 2048, "control") is None


def test_endings_bar_counts_the_prompts_it_asked_for(release):
    report = synthetic_report(release, AT_THE_BARS, long_context=long_context_results(zip_full=6, prompts=6))
    endings = release.bars.long_context_bars(report)[4]
    # fewer long files than asked: 6 of 6 measured does not meet "8 of 8"
    assert endings.measured == "6 of 6" and endings.met is False and endings.missed_by == "2"


def test_render_without_control_or_run_says_how_to_get_them(release, tmp_path):
    report = synthetic_report(release, AT_THE_BARS)
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert "| go | 4,000 | 1.0000 | 1.2000 | 1.200x | **PASS** (<= 1.20x) |" in text
    assert "| prose | 4,000 | 1.0000 | 1.0500 | 1.050x | **PASS** (<= 1.05x) |" in text
    header = next(line for line in text.splitlines() if line.startswith("| domain | bytes | bits/byte base"))
    assert "control (M = 1)" in text and "zip2zip / control" not in header
    assert "was not measured in this run" in text and release.settings.CONTROL_COMMAND in text
    assert "The training run's curves were not read" in text
    assert "## 5. Long context\n\nNot measured in this run" in text
    assert "| long context | not measured (`--no-long-context`, or a report from before section 5) |" in text
    assert (
        "| go | 3 | 1,000 | 1.250 | 20.0% | 4.00 -> 5.00 | none | none |" in text
    )  # no paper numbers for Go


def test_render_with_control_and_run(release, tmp_path):
    report = synthetic_report(
        release, AT_THE_BARS, control={"code": 1.0, "prose": 1.02, "math": 1.2, "go": 1.1}
    )
    report["training_run"] = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    header = next(line for line in text.splitlines() if line.startswith("| domain | bytes | bits/byte base"))
    assert "bits/byte control (M = 1)" in header and "zip2zip / control" in header
    assert "| code | 4,000 | 1.0000 | 1.0000 | 1.1000 | 1.100x | **PASS** (<= 1.10x) | 1.100x |" in text
    assert "| prose | 4,000 | 1.0000 | 1.0200 | 1.0500 | 1.050x | **PASS** (<= 1.05x) | 1.029x |" in text
    assert "`/runs/m1` (max_subtokens=1)" in text
    assert "## 4. The long run's curves" in text and "Fit of the pooled held-out curve over 5 points" in text
    assert "| 0 | 0 | 2.0000 |" in text  # the untrained start is shown, though not fitted
    assets = tmp_path / "assets"
    assets.mkdir()
    release.plots.plot_bits_per_byte(report, assets / "bpb.png")
    release.plots.plot_training_curves(report["training_run"], assets / "training_curves.png")
    assert (assets / "bpb.png").stat().st_size > 1000 and (
        assets / "training_curves.png"
    ).stat().st_size > 1000


def test_render_the_long_context_section(release, tmp_path):
    long = long_context_results(gain=1.05, control={1024: 1.0, 4096: 1.1}, zip_full=3)
    report = synthetic_report(release, AT_THE_BARS, long_context=long)
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    section = text[text.index("## 5. Long context") :]
    assert (
        "| long context | windows of 1,024, 2,048, 4,096, 8,192 positions on 2 document(s) of up to 28,000 "
        "characters per domain; 128 new base tokens after a 4,096-token code prompt, 3 repeat(s); 8 code file(s) "
        "cut after about 3,000 characters |" in text
    )
    assert "`measure_quality`; code 28,000 + 15,412 characters; prose" in section
    # the standalone benchmark's table: the control's cells where it was scored, empty where not
    assert "| code | 1,024 | 1.0000 | 1.2000 | 1.200x | 1.2000 | 1.000x | 1.276 |" in section
    assert "| go | 2,048 | 1.0000 | 1.2600 | 1.260x | - | - | 1.302 |" in section
    assert "| go | 4,096 | 1.0000 | 1.2600 | 1.260x | 1.1455 | 1.100x | 1.359 |" in section
    assert (
        "Pooled over the domains (byte-weighted): zip2zip / base 1.200x at 1,024, 1.260x at 2,048, 1.260x at "
        "4,096, 1.260x at 8,192; zip2zip / control 1.000x at 1,024, 1.100x at 4,096." in section
    )
    assert f"![long context]({Path('assets') / 'long_context.png'})" in section
    assert "| prompt positions | 4,096 | 2,954 | 0.721x |" in section
    assert "| time for 128 new base tokens | 10.00 s | 7.50 s (81 steps) | 0.750x |" in section
    assert "| KV cache after the prompt | 180.0 MiB | 144.0 MiB | 0.800x |" in section
    assert (
        "| 1 | 2,990 | 128 | no | 128 | no |" in section and "| 8 | 2,997 | 128 | no | 1 | yes |" in section
    )
    assert "without end-of-sequence: base 8 of 8, zip2zip 3 of 8." in section
    rows = {
        line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| long context, ")
    }
    assert (
        "| 1.050x | **MISS** | 0.050x |"
        in rows[
            "long context, code: zip2zip / base bits per byte at 4,096 positions over the same at 1,024 <= 1.00x"
        ]
    )
    assert "| 3 of 8 | **MISS** | 5 |" in text
    # the control carried from an earlier run is named, and its missing cells explained
    report["run"]["control"] = {
        "folder": "/runs/m1",
        "model_settings": {},
        "carried_from": "old.json (measured x)",
    }
    carried = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert "The control's scores are carried from old.json (measured x) wherever that run scored" in carried
    report["run"]["control"] = None
    for entry in long["quality"].values():
        for scores in entry["windows"].values():
            scores.pop("control", None)
    alone = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert "The no-compression control was not scored here (`--control`)." in alone
    assert "zip2zip / control 1" not in alone


def test_long_context_plot_shows_the_control_where_it_was_scored(release, tmp_path):
    long_context = load_benchmark("long_context")
    quality = long_context_results(control={1024: 1.0, 2048: 1.0, 4096: 1.1, 8192: 1.1})["quality"]
    del quality["prose"]["windows"]["2048"]["control"]  # a carried control without this cell
    long_context.plot(quality, tmp_path / "with_control.png")
    for entry in quality.values():
        for scores in entry["windows"].values():
            scores.pop("control", None)
    long_context.plot(quality, tmp_path / "alone.png")
    assert (tmp_path / "with_control.png").stat().st_size > (tmp_path / "alone.png").stat().st_size > 1000


def test_render_only_draws_the_long_context_section_from_results_json(release, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    report = synthetic_report(release, AT_THE_BARS, long_context=long_context_results(control={1024: 1.0}))
    report["run"]["shipped"] = False
    (assets / "results.json").write_text(json.dumps(report))
    out = tmp_path / "RESULTS.md"
    release.cli.main(["--render-only", "--out", str(out), "--assets", str(assets)])
    text = out.read_text()
    assert "## 5. Long context" in text and "| code | 4,096 | 1.0000 | 1.2000 | 1.200x | - | - |" in text
    assert (assets / "long_context.png").stat().st_size > 1000


def test_long_context_settings_and_flags(release):
    cli = release.cli
    full = cli.resolve_settings(cli.parse_args([]))
    assert full["long_context"] is True and full["long_windows"] == [1024, 2048, 4096, 8192]
    assert (full["long_prompt_tokens"], full["long_new_tokens"], full["long_endings"]) == (4096, 128, 8)
    quick = cli.resolve_settings(
        cli.parse_args(["--quick", "--no-long-context", "--long-windows", "512", "64"])
    )
    assert quick["long_context"] is False and quick["long_windows"] == [64, 512]
    assert quick["long_documents"] == release.settings.QUICK["long_documents"]
    with pytest.raises(SystemExit, match="--long-windows must be at least 16 positions"):
        cli.resolve_settings(cli.parse_args(["--long-windows", "8", "1024"]))
    with pytest.raises(SystemExit, match="--long-endings must be at least 1"):
        cli.resolve_settings(cli.parse_args(["--long-endings", "0"]))


# ------------------------------------------------------------------------------------- the long run's curves


def law(tokens: float) -> float:
    return 1.0 + 0.5 * (tokens / 1e6) ** -0.5


def write_run(folder: Path, points: int) -> Path:
    """A training output folder: ``points`` held-out evaluations on the curve ``law`` after an untrained start,
    and two checkpoints whose names sort differently as text and as numbers."""
    import json

    folder.mkdir(parents=True)
    tokens = [0] + [250_000 * 2**k for k in range(points - 1)]
    entries = [
        {
            "step": k * 100,
            "base_tokens_seen": t,
            "time": 0.0,
            "heldout_bpb": 2.0 if t == 0 else law(t),
            "heldout_bpb_code": 1.5,
            "heldout_bpb_go": 2.5,
        }
        for k, t in enumerate(tokens)
    ]
    (folder / "heldout.json").write_text(json.dumps(entries))
    for step in (2, 10):
        history = [
            {"step": s, "loss": 4.0 - s / 10, "bits_per_byte": 1.6 - s / 100, "num_base_tokens": 2000.0 * s}
            for s in range(1, step + 1)
        ] + [{"step": step, "heldout_bpb": 1.7}]
        (folder / f"checkpoint-{step}").mkdir()
        (folder / f"checkpoint-{step}" / "trainer_state.json").write_text(
            json.dumps({"log_history": history})
        )
    return folder


def test_a_control_whose_folder_is_gone_is_carried_from_an_earlier_report(release, tmp_path):
    control = {"code": 1.0, "prose": 1.02, "math": 1.2, "go": 1.1}
    earlier = tmp_path / "results.json"
    earlier.write_text(json.dumps(synthetic_report(release, AT_THE_BARS, control=control)))
    carried = release.control.read_carried_control(str(earlier))
    assert carried["run"]["carried_from"] == f"{earlier} (measured 2026-01-02 03:04 UTC, commit abc1234)"
    compared = synthetic_report(release, AT_THE_BARS)["bits_per_byte"]["compared"]
    scores = release.control.check_carried_control(carried, compared)
    assert scores["domains"]["go"]["zip2zip"]["bits_per_byte"] == 1.1
    report = synthetic_report(release, AT_THE_BARS, control=control)
    report["run"]["control"] = carried["run"]
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert f"`/runs/m1` (max_subtokens=1); its scores carried from {earlier} (measured" in text
    assert "| go | 4,000 | 1.0000 | 1.1000 |" in text
    # carried again, it still names where it was measured
    report["bits_per_byte"]["control"] = scores
    again = tmp_path / "again.json"
    again.write_text(json.dumps(report))
    assert (
        release.control.read_carried_control(str(again))["run"]["carried_from"]
        == carried["run"]["carried_from"]
    )
    # other texts or other windows are refused
    compared["domains"]["go"]["base"]["bytes"] = 3999
    with pytest.raises(SystemExit, match="on go the carried control read 4000 bytes"):
        release.control.check_carried_control(carried, compared)
    compared["max_length"] = 512
    with pytest.raises(SystemExit, match="windows of 1024 positions"):
        release.control.check_carried_control(carried, compared)
    with pytest.raises(SystemExit, match=r"not a results\.json with the control's scores"):
        release.control.read_carried_control(str(tmp_path / "RESULTS.md"))


def test_a_carried_control_brings_its_long_context_scores_where_the_texts_match(release, tmp_path):
    earlier = tmp_path / "results.json"
    control = {"code": 1.0, "prose": 1.02, "math": 1.2, "go": 1.1}
    long = long_context_results(control={1024: 1.0, 4096: 1.1})
    earlier.write_text(json.dumps(synthetic_report(release, AT_THE_BARS, control=control, long_context=long)))
    carried = release.control.read_carried_control(str(earlier))
    assert sorted(carried["long_context"]["go"]["windows"]) == ["1024", "4096"]

    quality = long_context_results()["quality"]  # this run: the same documents, no control scored
    quality["prose"]["digest"] = "other"  # ... except prose, which read other documents
    quality["go"]["windows"]["1024"]["base"]["bytes"] = 3999  # ... and go at 1,024, other bytes
    left_out = release.control.carry_long_context_control(quality, carried)
    assert (
        quality["code"]["windows"]["4096"]["control"] == long["quality"]["code"]["windows"]["4096"]["control"]
    )
    assert "control" not in quality["code"]["windows"]["2048"]  # never scored in the earlier run
    assert not any("control" in scores for scores in quality["prose"]["windows"].values())
    assert "control" not in quality["go"]["windows"]["1024"] and "control" in quality["go"]["windows"]["4096"]
    assert "prose: the earlier run read other documents" in left_out
    assert "go, window 1024: other bytes or base tokens" in left_out
    assert "code, window 2048: not measured in the earlier run" in left_out

    # an earlier report without section 5 carries the control's bits per byte only
    earlier.write_text(json.dumps(synthetic_report(release, AT_THE_BARS, control=control)))
    carried = release.control.read_carried_control(str(earlier))
    assert carried["long_context"] == {}
    quality = long_context_results()["quality"]
    assert "code: the earlier run has no long-context control scores" in (
        release.control.carry_long_context_control(quality, carried)
    )
    assert not any("control" in s for e in quality.values() for s in e["windows"].values())


def test_measure_long_context_with_tiny_models(release):
    """Section 5's measuring part end to end on held-out text with tiny random models (numbers meaningless)."""
    from _tiny_models import tiny_base_model, tiny_zip2zip
    from _tiny_tokenizers import tiny_bpe_tokenizer

    base_tokenizer = tiny_bpe_tokenizer()
    zip_model, zip_tokenizer = tiny_zip2zip()
    models = {
        "base": tiny_base_model(vocab_size=len(base_tokenizer)),
        "base_tokenizer": base_tokenizer,
        "zip": zip_model,
        "zip_tokenizer": zip_tokenizer,
    }
    settings = {
        "long_windows": [32, 128],
        "long_documents": 1,
        "long_chars": 300,
        "long_prompt_tokens": 48,
        "long_new_tokens": 6,
        "long_repeats": 1,
        "long_endings": 2,
        "long_ending_chars": 200,
    }
    long = release.measure.measure_long_context(models, settings)
    assert list(long["quality"]) == list(release.settings.LONG_CONTEXT_DOMAINS)
    for entry in long["quality"].values():
        assert entry["characters"] == [300] and list(entry["windows"]) == ["32", "128"]
        for scores in entry["windows"].values():
            assert set(scores) == {"base", "zip2zip"}  # no control loaded
            assert scores["base"]["bytes"] == scores["zip2zip"]["bytes"] >= 300  # the same bytes
    assert long["quality"]["code"]["windows"]["32"]["base"]["windows"] > 1  # a short window cuts the text
    continuation = long["continuation"]
    assert continuation["prompt_base_tokens"] == 48 and continuation["new_base_tokens"] == 6
    assert continuation["zip2zip_base_tokens"] == 6  # end of sequence suppressed: the full budget
    kv = long["kv_cache"]
    assert kv["prompt_base_tokens"] == 48 and kv["prompt_codes"] == continuation["prompt_codes"] <= 48
    # the same tiny Llama shape under both: the KV cache holds the same bytes per position
    assert kv["zip2zip"] * 48 == kv["base"] * kv["prompt_codes"] > 0
    endings = long["endings"]
    assert endings["prompts"] == 2 and len(endings["rows"]) == 2
    assert all(row["prompt_chars"] <= 200 for row in endings["rows"])
    assert 0 <= endings["zip2zip_full"] <= 2
    for row in endings["rows"]:
        for model in ("base", "zip2zip"):
            assert 0.0 <= row[model]["p_eos"] <= 1.0
            # a model whose next token after the cut is likely the end stops there
            assert row[model]["p_eos"] < 0.5 or row[model]["ended"]
    report = synthetic_report(release, AT_THE_BARS, long_context=json.loads(json.dumps(long)))
    report["run"]["settings"].update(settings)
    bars = release.bars.long_context_bars(report)
    assert [bar.met is None for bar in bars] == [True, True, True, True, False, False, False]
    assert bars[4].measured.endswith(" of 2")


def test_the_delta_scale_of_the_shipped_weights_is_reported(release, tmp_path):
    from zip2zip.utils.cache import MARKER_FILENAME

    report = synthetic_report(release, AT_THE_BARS)
    assembled = tmp_path / "assembled"
    assembled.mkdir()
    report["run"]["model"] = str(assembled)
    marker = {"source_digest": "d1g3st", "delta_scale": 0.9}
    (assembled / MARKER_FILENAME).write_text(json.dumps(marker))
    release.provenance.backfill_delta_scale(report["run"])  # an older report, its assembly still there
    assert report["run"]["delta_scale"] == 0.9
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert "(max_subtokens=4); its low-rank delta applied at scale 0.9 (`delta_scale`" in text
    # another assembly (other weights) in that folder says nothing about the measured ones
    other = synthetic_report(release, AT_THE_BARS)
    other["run"]["model"] = str(assembled)
    marker["source_digest"] = "0ther"
    (assembled / MARKER_FILENAME).write_text(json.dumps(marker))
    release.provenance.backfill_delta_scale(other["run"])
    assert "delta_scale" not in other["run"]


def write_control(folder: Path) -> Path:
    """A control run still training: held-out points between the long run's, and its planned 800 steps."""
    entries = [
        {
            "step": step,
            "base_tokens_seen": t,
            "heldout_bpb": 1.0,
            "heldout_bpb_code": 1.2,
            "heldout_bpb_go": 2.0,
        }
        for step, t in ((0, 0), (150, 375_000), (400, 1_000_000))
    ]
    (folder / "checkpoint-400").mkdir(parents=True)
    (folder / "heldout.json").write_text(json.dumps(entries))
    (folder / "checkpoint-400" / "trainer_state.json").write_text(
        json.dumps({"max_steps": 800, "log_history": [{"step": 400, "loss": 3.0, "num_base_tokens": 1e6}]})
    )
    return folder


def test_control_curves_sit_beside_the_run_at_equal_tokens(release, tmp_path):
    control = write_control(tmp_path / "m1")
    curves = release.curves.read_control_run(release.cli.parse_args(["--control", str(control)]))
    assert curves["planned_steps"] == 800 and len(curves["heldout"]) == 3
    run = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    # 375,000 tokens lie between the run's points at 250,000 (2.0) and 500,000 (1 + 0.5 / sqrt(0.5)).
    between = release.curves.at_equal_tokens(run["heldout"], 375_000, "heldout_bpb")
    assert between == pytest.approx((2.0 + law(500_000)) / 2)
    assert (
        release.curves.at_equal_tokens(run["heldout"], 1e9, "heldout_bpb") is None
    )  # beyond the run: no guess

    report = synthetic_report(release, AT_THE_BARS)
    report["training_run"], report["control_run"] = run, curves
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert "### Beside the no-compression control (M = 1)" in text
    assert "at step 400 of 800, still training when read" in text
    assert (
        "| 400 | 1,000,000 | 1.500x (1.500 / 1.000) | 1.250x (1.500 / 1.200) | 1.250x (2.500 / 2.000) |"
        in text
    )
    assets = tmp_path / "assets"
    assets.mkdir()
    release.plots.plot_training_curves(run, assets / "training_curves.png", control=curves)
    assert (assets / "training_curves.png").stat().st_size > 1000


def test_render_only_reads_the_control_curves_into_the_report(release, tmp_path):
    assets = tmp_path / "assets"
    assets.mkdir()
    report = synthetic_report(release, AT_THE_BARS)
    report["run"]["shipped"] = False  # a shipped-model report would also rewrite the package's card summary
    report["training_run"] = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    (assets / "results.json").write_text(json.dumps(report))
    control = write_control(tmp_path / "m1")
    out = tmp_path / "RESULTS.md"
    release.cli.main(
        ["--render-only", "--control-run", str(control), "--out", str(out), "--assets", str(assets)]
    )
    assert json.loads((assets / "results.json").read_text())["control_run"]["planned_steps"] == 800
    assert "### Beside the no-compression control (M = 1)" in out.read_text()


def test_control_curves_from_an_earlier_report_and_a_finished_control(release, tmp_path):
    curves = release.curves.read_control_run(
        release.cli.parse_args(["--control-run", str(write_control(tmp_path / "m1"))])
    )
    report = tmp_path / "results.json"
    report.write_text(json.dumps({"training_run": {"heldout": [{"x": 1}]}, "control_run": curves}))
    again = release.curves.read_control_run(release.cli.parse_args(["--control-run", str(report)]))
    assert again == json.loads(json.dumps(curves))  # the control's curves, not the long run's
    report.write_text(json.dumps({"training_run": curves}))
    with pytest.raises(SystemExit, match=r"--control-run .*no control_run curves in it"):
        release.curves.read_control_run(release.cli.parse_args(["--control-run", str(report)]))
    with pytest.raises(SystemExit, match=r"--control-run .*: no heldout\.json there"):
        release.curves.read_control_run(release.cli.parse_args(["--control-run", str(tmp_path)]))

    run = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    curves["planned_steps"] = 400
    lines = release.report._control_curve_lines(curves, run["heldout"], ["code", "go"])
    assert "finished, 400 steps" in lines[2]
    curves["planned_steps"] = None
    assert (
        "its planned length was not found"
        in release.report._control_curve_lines(curves, run["heldout"], ["go"])[2]
    )


def test_read_training_run_keeps_the_numbers_and_fits(release, tmp_path):
    curves = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    assert curves["checkpoint"] == "checkpoint-10"  # the newest by number, not by name
    assert len(curves["train"]) == 10 and curves["train"][-1] == {
        "step": 10,
        "base_tokens": 20000.0,
        "bits_per_byte": 1.5,
        "loss": 3.0,
    }
    assert [e["base_tokens_seen"] for e in curves["heldout"]][:2] == [0, 250_000]
    assert release.curves.heldout_domains(curves["heldout"]) == ["code", "go"]
    fit = curves["fit"]
    assert fit["points"] == 5 and fit["tokens_seen"] == 4_000_000
    assert fit["a"] == pytest.approx(1.0, abs=1e-3) and fit["c"] == pytest.approx(0.5, abs=1e-2)
    assert fit["extrapolated"]["2x"] == pytest.approx(law(8e6), abs=1e-3)
    assert fit["extrapolated"]["4x"] == pytest.approx(law(16e6), abs=1e-3)
    sentence = release.report.fit_sentence(fit, curves["heldout"])
    assert "over 5 points" in sentence and "at 2x the tokens seen (8.00M)" in sentence
    assert "not a measurement" in sentence


def test_a_continued_run_counts_the_tokens_seen_before_it(release, tmp_path):
    folder = write_run(tmp_path / "run", points=6)
    record = {"init_from": "shipped", "changes": {"protect_whitespace": True}, "base_tokens_seen": 4_000_000}
    record.update(global_step=2000, command="examples/train_smollm2.py --preset cpu-long")
    (folder / "warm_start.json").write_text(json.dumps(record))
    curves = release.curves.read_training_run(folder)
    assert [e["base_tokens_seen"] for e in curves["heldout"]][:2] == [4_000_000, 4_250_000]
    assert [e["step"] for e in curves["heldout"]][:2] == [0, 100]  # steps stay the run's own
    assert curves["train"][-1]["base_tokens"] == 4_020_000.0 and curves["warm_start"] == record
    text = "\n".join(release.report._warm_start_lines(curves["warm_start"]))
    assert "`--init-from shipped`: 4,000,000 base tokens, 2000 steps" in text
    assert "`protect_whitespace=True`" in text


def test_fit_power_law_without_scipy_uses_the_grid(release, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    tokens = [250_000 * 2**k for k in range(5)]
    fit = release.curves.fit_power_law(tokens, [law(t) for t in tokens])
    assert fit["method"].startswith("numpy grid")
    assert fit["c"] == pytest.approx(0.5, abs=0.02) and fit["extrapolated"]["4x"] == pytest.approx(
        law(16e6), abs=0.01
    )


def test_too_few_points_give_no_fit_and_say_so(release, tmp_path):
    curves = release.curves.read_training_run(write_run(tmp_path / "run", points=4))  # three after the start
    assert curves["fit"] is None
    assert release.report.fit_sentence(None, curves["heldout"]).startswith("No fit: 3 held-out point(s)")


def test_a_folder_without_heldout_json_is_named(release, tmp_path):
    with pytest.raises(SystemExit, match=r"no heldout\.json there; pass the --output folder"):
        release.curves.read_training_run(tmp_path)


def test_an_earlier_report_gives_back_its_curves(release, tmp_path):
    """When the run's folder is gone, the curves an earlier results.json kept are reused as they were."""
    curves = release.curves.read_training_run(write_run(tmp_path / "run", points=6))
    report = tmp_path / "results.json"
    report.write_text(json.dumps({"run": {}, "training_run": curves}))
    assert release.curves.read_training_run(report) == json.loads(json.dumps(curves))
    report.write_text(json.dumps({"run": {}}))
    with pytest.raises(SystemExit, match="no training_run curves in it"):
        release.curves.read_training_run(report)


# ------------------------------------------------------------------------------------- the card's summary


def test_summary_carries_the_bars_and_reaches_the_card(release):
    from zip2zip import Zip2ZipConfig
    from zip2zip.bundled.release_summary import RELEASE_SUMMARY_FORMAT
    from zip2zip.hub.model_card import render_model_card

    report = synthetic_report(
        release,
        {"code": 1.504, "prose": 1.05, "go": 1.2},
        zip_acc=0.6,
        control={"code": 1.2, "prose": 1.0, "go": 1.1},
    )
    summary = release.summary.release_summary(report)
    assert summary["format"] == RELEASE_SUMMARY_FORMAT and summary["model_digest"] == "d1g3st"
    assert summary["bits_per_byte"]["domains"]["code"] == {
        "base": 1.0,
        "zip2zip": 1.504,
        "control": 1.2,
        "compression": 1.25,
        "bar": 1.10,
    }
    met = {
        bar["bar"].split(",")[-1].strip(): bar["met"]
        for bar in summary["bars"]
        if bar["bar"].startswith("strict bits per byte")
    }
    assert met == {"code <= 1.10x": False, "prose <= 1.05x": True, "go (unseen) <= 1.20x": True}
    config = Zip2ZipConfig(
        base_vocab_size=49152, max_codebook_size=2048, disabled_ids=[0, 1], dtype="bfloat16"
    )
    card = render_model_card(
        config, repo_id="org/z", base_model="org/base", license="apache-2.0", trained=True, release=summary
    )
    text = str(card)
    assert "It meets **7 of 10** measured bars:" in text
    assert "| strict bits per byte zip2zip / base, code <= 1.10x | 1.504x | **MISS** | 0.404x |" in text
    assert "| code | 1.0000 | 1.2000 | 1.5040 | 1.504x | <= 1.10x | 1.253x |" in text
    assert "Missed: strict bits per byte zip2zip / base, code <= 1.10x (1.504x, by 0.404x)" in text
    assert "| next_line_code | 70.0% | 60.0% |" in text
    assert summary["long_context"] is None and "Long context:" not in text  # section 5 not measured

    report["long_context"] = long_context_results(gain=1.05, control={1024: 1.0, 4096: 1.1}, zip_full=3)
    summary = json.loads(json.dumps(release.summary.release_summary(report)))  # as written and read back
    long = summary["long_context"]
    assert long["domains"]["go"]["4096"] == {
        "base": 1.0,
        "zip2zip": 1.26,
        "control": 1.1455,
        "compression": 1.359,
    }
    assert long["domains"]["go"]["2048"]["control"] is None
    assert (long["time_ratio"], long["kv_ratio"], long["prompt_base_tokens"]) == (0.75, 0.8, 4096)
    assert long["endings"] == {"prompts": 8, "base_full": 8, "zip2zip_full": 3}
    text = str(
        render_model_card(
            config,
            repo_id="org/z",
            base_model="org/base",
            license="apache-2.0",
            trained=True,
            release=summary,
        )
    )
    assert "It meets **11 of 17** measured bars:" in text  # 7 of 10, and 4 of the 7 new ones
    assert "| go (unseen) | base | 1.200x | 1.260x | 1.260x | 1.260x |" in text
    assert "| go (unseen) | control (M = 1) | 1.000x |  | 1.100x |  |" in text
    assert "| held-out code files cut mid-file: zip2zip continuations that write all 128" in text


def test_summary_only_for_a_full_run_of_the_shipped_model(release):
    from zip2zip.bundled.shipped import shipped_checkpoint_dir

    report = synthetic_report(release, AT_THE_BARS)
    assert release.summary.summary_folder(report) == shipped_checkpoint_dir()
    assert release.summary.summary_folder(synthetic_report(release, AT_THE_BARS, quick=True)) is None
    report["run"]["shipped"] = False
    assert release.summary.summary_folder(report) is None


def test_endings_with_token_healing_count_what_the_model_wrote_after_the_healed_prompt():
    """``--token-healing`` continues each cut file a third time, with transformers' token healing, and counts the
    base tokens written after the healed prompt (whose length differs from the prompt's)."""
    import argparse

    from _benchmarks import load_benchmark
    from _tiny_models import tiny_base_model, tiny_zip2zip
    from _tiny_tokenizers import tiny_bpe_tokenizer

    long_context = load_benchmark("long_context")
    base_tokenizer = tiny_bpe_tokenizer()
    zip_model, zip_tokenizer = tiny_zip2zip()
    pairs = {
        "base": (tiny_base_model(vocab_size=len(base_tokenizer)), base_tokenizer),
        "zip2zip": (zip_model, zip_tokenizer),
    }
    args = argparse.Namespace(new_tokens=5, eos_prompts=2, eos_chars=200, token_healing=True)
    endings = long_context.measure_endings(pairs, args)
    assert endings["prompts"] == 2
    for row in endings["rows"]:
        healed = row["zip2zip_token_healing"]
        assert 0 < healed["base_tokens"] <= 5
        assert healed["base_tokens"] == 5 or healed["ended"]
    assert 0 <= endings["zip2zip_token_healing_full"] <= 2


def test_long_context_uncompressed_reading_is_the_same_weights_on_base_tokens(tmp_path):
    from _benchmarks import load_benchmark
    from _saved_models import saved_tiny_zip2zip

    long_context = load_benchmark("long_context")
    folder, model, tokenizer = saved_tiny_zip2zip(tmp_path / "model", max_codebook_size=64)
    plain, plain_tokenizer = long_context.uncompressed_reading(str(folder))
    text = "the cat sat on the mat. the cat sat on the mat. the cat sat on the mat."
    assert len(tokenizer(text)["input_ids"]) < len(plain_tokenizer(text)["input_ids"])
    assert plain_tokenizer(text)["input_ids"] == tokenizer.base(text)["input_ids"]  # base tokens only
    for name, weight in model.state_dict().items():
        assert torch.equal(weight, plain.state_dict()[name]), name

    quality = long_context_results()["quality"]
    for entry in quality.values():
        for scores in entry["windows"].values():
            scores["uncompressed"] = {"bits_per_byte": scores["base"]["bits_per_byte"] * 0.9}
    table = long_context.quality_table(quality)
    assert "zip2zip weights, uncompressed / base" in table.splitlines()[0]
    assert all(row.endswith("(0.900x) |") for row in table.splitlines()[2:])


def test_the_files_own_continuations_are_encoded_after_the_prompts_and_reported(release, tmp_path):
    """What the held-out files write after the generation prompts, LZW-encoded there: the reference beside the
    models' own output compression (real held-out documents, a real byte-level BPE)."""
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from benchmarks.common import heldout_ids, load_prompts
    from zip2zip.model.lzw import LZWCodec

    tok = tiny_bpe_tokenizer()
    codec = LZWCodec(base_vocab_size=len(tok), max_codebook_size=512, max_subtokens=4)
    prompts = {domain: load_prompts(tok, domain, 2, 200) for domain in ("code", "prose")}
    found = release.measure.file_continuations(tok, codec, prompts, new_tokens=64)
    for domain, value in found.items():
        documents = heldout_ids(tok, domain, 2, 216)
        continuations = [document[200:264] for document in documents]
        assert value["base_tokens"] == sum(map(len, continuations)) > 2 * 16
        whole = [
            len(codec.encode(d[: 200 + len(c)])) - len(codec.encode(d[:200]))
            for d, c in zip(documents, continuations)
        ]
        # no code across the prompt's end: at most one more per prompt
        assert value["codes"] <= sum(whole) + 2
        assert value["compression"] == value["base_tokens"] / value["codes"] >= 1.0
    with pytest.raises(ValueError, match="not the starts of the held-out documents"):
        release.measure.file_continuations(tok, codec, {"code": [prompts["code"][0][1:]]}, new_tokens=64)

    report = synthetic_report(release, AT_THE_BARS)
    report["generation"]["file_continuations"] = {
        "code": {"base_tokens": 1024, "codes": 800, "compression": 1.28}
    }
    text = release.report.render(report, tmp_path / "RESULTS.md", tmp_path / "assets")
    assert (
        "LZW-encoded after the prompt, for comparison with the column above: code 1.280 base tokens" in text
    )
