"""The seeded-training study end to end on tiny saved models: both arms train for one CPU budget, the seeded arm's
model carries the seed, every score is finite, a rerun trains and scores nothing again, and the bars at their limits."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
from _benchmarks import load_benchmark
from _saved_models import save_tiny_base, save_tiny_zip2zip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = 1.5


@pytest.fixture(scope="module")
def study():
    return load_benchmark("seeded_training")


@pytest.fixture(scope="module")
def run(study, tmp_path_factory):
    """The whole study on a tiny base and its untrained zip2zip model (the "shipped" model), at tiny sizes."""
    root = tmp_path_factory.mktemp("seeded-training")
    base = save_tiny_base(root)
    model = save_tiny_zip2zip(root, base)
    out = root / "out"
    argv = [
        "--out", str(out), "--model", str(model), "--base", str(base), "--threads", "1",
        "--budget-seconds", str(BUDGET), "--batch", "2", "--length", "48", "--docs-per-domain", "2",
        "--seed-size", "16", "--seed-tokens", "20000", "--eval-chars", "600", "--windows", "32,128",
        "--prompts", "2", "--prompt-tokens", "24", "--new-tokens", "8", "--repeats", "1",
        "--step-repeats", "1", "--step-tokens", "4",
    ]  # fmt: skip
    summary = study.main(argv)
    return SimpleNamespace(out=out, argv=argv, summary=summary, model=model)


def test_both_arms_train_for_the_same_cpu_budget_within_a_step(study, run):
    logs = {arm: json.loads((run.out / arm / "log.json").read_text()) for arm in study.ARMS}
    for arm, log in logs.items():
        steps = log["step_cpu_seconds"]
        assert log["done"] and log["steps"] == len(steps) > 1
        assert log["cpu_seconds"] == pytest.approx(sum(steps))
        # the budget ran out in the last step, not before it
        assert sum(steps[:-1]) < BUDGET <= log["cpu_seconds"]
        assert (run.out / arm / "model" / "model.safetensors").is_file()
        assert not list((run.out / arm).glob("checkpoint-*"))  # removed once the model is saved
    longest = max(max(log["step_cpu_seconds"]) for log in logs.values())
    assert abs(logs["plain"]["cpu_seconds"] - logs["seeded"]["cpu_seconds"]) < longest
    assert logs["plain"]["settings"]["initial_codebook"] is None
    assert {k: v for k, v in logs["plain"]["settings"].items() if k != "initial_codebook"} == {
        k: v for k, v in logs["seeded"]["settings"].items() if k != "initial_codebook"
    }


def test_the_seeded_arm_saves_its_seed_and_the_plain_arm_none(run):
    seed = json.loads((run.out / "seed.json").read_text())
    assert len(seed["entries"]) == 16 and seed["domains"] == ["code", "prose", "math", "multilingual", "chat"]
    for arm, expected in (("seeded", seed["entries"]), ("plain", None)):
        for name in ("config.json", "tokenizer_config.json"):
            saved = json.loads((run.out / arm / "model" / name).read_text())
            assert saved.get("initial_codebook") == expected, (arm, name)
    assert json.loads((run.model / "config.json").read_text()).get("initial_codebook") is None  # untouched


def test_scores_are_finite_and_the_seed_sets_the_compression(study, run):
    scores = run.summary["scores"]
    assert set(scores) == set(study.MODELS)
    for name, score in scores.items():
        for window in ("32", "128"):
            entry = score["bits"][window]
            for value in [entry["all"], *entry["domains"].values()]:
                assert math.isfinite(value["bits_per_byte"]) and value["bits_per_byte"] > 0, (name, window)
            assert set(entry["domains"]) == set(study.EVAL_DOMAINS)
    assert all(scores["base"]["bits"][w]["all"]["compression"] == 1.0 for w in ("32", "128"))
    for window in ("32", "128"):
        compression = {
            name: scores[name]["bits"][window]["all"]["compression"] for name in study.ZIP2ZIP_MODELS
        }
        # the windows' codes depend on the codec alone: the seed makes them, training does not
        assert (
            compression["seeded"]
            == compression["shipped+seed"]
            > compression["plain"]
            == compression["shipped"]
        )
    for name in study.ZIP2ZIP_MODELS:
        for domain in study.GENERATION_DOMAINS:
            row = scores[name]["generation"][domain]
            assert row["compression"] >= 1.0 and row["seconds"] > 0 and row["base_seconds"] > 0
    step = run.summary["step_time"]
    assert step["seed_entries"] == 16 and math.isfinite(step["ratio"]) and step["ratio"] > 0
    assert [row["status"] in ("PASS", "MISS") for row in run.summary["bars"]] == [True] * 5
    text = (run.out / "results.md").read_text()
    assert "| shipped+seed |" in text and "3. decoding step with the seed / without" in text
    assert (run.out / "seeded_training.png").stat().st_size > 0


def test_a_rerun_trains_and_scores_nothing_again(study, run, capsys):
    files = [
        *(run.out / arm / "model" / "model.safetensors" for arm in study.ARMS),
        *(run.out / "scores").glob("*.json"),
    ]
    before = {path: path.stat().st_mtime_ns for path in files}
    again = study.main(run.argv)
    assert {path: path.stat().st_mtime_ns for path in files} == before
    assert again["scores"] == run.summary["scores"] and again["training"] == run.summary["training"]
    printed = capsys.readouterr().out
    assert "[plain] trained already" in printed and "[seeded] scored already" in printed
    assert (
        study.main(["--report", "--out", str(run.out), "--windows", "32,128"])["bars"] == run.summary["bars"]
    )
    other = [*run.argv, "--budget-seconds", "3"]  # the last value given wins
    with pytest.raises(SystemExit, match="other settings"):
        study.main(other)


def test_the_step_clock_keeps_the_steps_of_the_checkpoint_it_resumes_from(study, tmp_path):
    log = {"arm": "plain", "step_cpu_seconds": [1.0, 1.0, 1.0, 1.0]}
    clock = study.StepClock(tmp_path / "log.json", log)
    schedule = SimpleNamespace(lr_lambdas=[SimpleNamespace(cpu_seconds=2.0)])
    clock.on_train_begin(None, SimpleNamespace(global_step=2), None, lr_scheduler=schedule)
    schedule.lr_lambdas[0].cpu_seconds = 3.5
    clock.on_step_end(None, SimpleNamespace(global_step=3), None, lr_scheduler=schedule)
    clock.on_save(None, None, None)
    assert json.loads((tmp_path / "log.json").read_text())["step_cpu_seconds"] == [1.0, 1.0, 1.5]


def scores(short: tuple[float, float], long: tuple[float, float], compression: float, seconds: float) -> dict:
    """Score files of the plain and the seeded arm: ``(plain, seeded)`` pooled bits per byte per window, and the
    seeded arm's chat answers against a base model that took one second."""

    def arm(short_bpb: float, long_bpb: float) -> dict:
        return {
            "bits": {
                "128": {"all": {"bits_per_byte": short_bpb}},
                "1024": {"all": {"bits_per_byte": long_bpb}},
            }
        }

    seeded = arm(short[1], long[1])
    seeded["generation"] = {"chat": {"compression": compression, "seconds": seconds, "base_seconds": 1.0}}
    return {"plain": arm(short[0], long[0]), "seeded": seeded}


def step_time(seeded: float) -> dict:
    return {"seconds_per_step": {"plain": 0.5, "seeded": seeded}}


def statuses(study, score_files: dict, timing: dict | None) -> list[str | None]:
    return [row["status"] for row in study.bars(score_files, timing, (128, 1024))]


def test_the_bars_pass_at_their_limits_and_miss_just_beyond(study):
    at_limits = scores(short=(1.0, 1.02), long=(0.5, 0.5), compression=1.15, seconds=0.9)
    assert statuses(study, at_limits, step_time(0.515)) == ["PASS"] * 5
    beyond = scores(short=(1.0, 1.0201), long=(0.5, 0.5001), compression=1.1499, seconds=0.9001)
    assert statuses(study, beyond, step_time(0.5151)) == ["MISS"] * 5
    better = scores(short=(1.0, 0.9), long=(0.5, 0.4), compression=1.3, seconds=0.5)
    assert statuses(study, better, step_time(0.4)) == ["PASS"] * 5
    rows = study.bars(at_limits, step_time(0.515), (128, 1024))
    assert [row["value"] for row in rows] == pytest.approx([1.02, 1.0, 1.15, 0.9, 1.03])
    assert [(row["op"], row["limit"]) for row in rows] == [
        ("<=", 1.02), ("<=", 1.0), (">=", 1.15), ("<=", 0.9), ("<=", 1.03)
    ]  # fmt: skip


def test_bars_not_measured_yet_have_no_status(study):
    only_plain = {"plain": scores((1.0, 1.0), (1.0, 1.0), 1.2, 0.5)["plain"]}
    assert statuses(study, only_plain, None) == [None] * 5
