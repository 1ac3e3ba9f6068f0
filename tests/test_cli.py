"""The `zip2zip` command line: help, colour and pipes, compress, generate, train (tiny models) and the demo."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._saved_models import save_tiny_base, save_tiny_zip2zip
from tests._tiny_tokenizers import tiny_bpe_tokenizer
from zip2zip.cli import COMMANDS, compression_stats, main
from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer
from zip2zip.recipe import PRESETS, ZIP2ZIP_SETTINGS


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """The CLI picks torch's thread count for its process; keep that from leaking into other tests."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


TEXT = "the cat sat on the mat. the cat sat on the hat. the cat sat on the mat.\n" * 6


def test_compress_prints_counts_matching_the_codec(tmp_path, capsys):
    base = tiny_bpe_tokenizer()
    base.save_pretrained(tmp_path / "base")
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    code = main(
        [
            "compress",
            str(tmp_path / "a.txt"),
            "--tokenizer",
            str(tmp_path / "base"),
            "--no-color",
            "--context",
            "64",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    tokenizer = Zip2ZipTokenizer.from_base(base, ZIP2ZIP_SETTINGS)
    stats = compression_stats(tokenizer, TEXT, 64)
    ids = base(TEXT, add_special_tokens=False)["input_ids"]
    windows = [ids[i : i + 64] for i in range(0, len(ids), 64)]
    assert stats["codes"] == sum(len(tokenizer.codec.encode(w)) for w in windows)
    assert stats["base_tokens"] == len(ids)
    assert f"{stats['base_tokens']:,}" in out and f"{stats['codes']:,}" in out
    assert f"{stats['ratio']:.3f}" in out
    assert "[" in out  # hypertokens bracketed in the plain view


def test_compress_reports_unreadable_files(tmp_path):
    base = tiny_bpe_tokenizer()
    base.save_pretrained(tmp_path / "base")
    with pytest.raises(SystemExit, match="cannot read"):
        main(["compress", str(tmp_path / "missing.txt"), "--tokenizer", str(tmp_path / "base")])


@pytest.mark.slow
def test_demo_runs_on_the_embedded_model(smollm2_path, capsys):
    assert main(["demo", "--no-color", "--samples", "2", "--context", "256", "--new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "Base SmolLM2 vs zip2zip (trained)" in out
    # The side-by-side table: every domain's prompt takes fewer positions as codes than as base tokens.
    rows = re.findall(r"^(\w+) +(\d+) +(\d+) +(\d+) +(\d+) +[\d.]+ +[\d.]+ +[\d.]+x$", out, re.M)
    assert len(rows) >= 2, out[-2000:]
    for domain, prompt_base, prompt_codes, steps_base, steps in rows:
        assert int(prompt_codes) < int(prompt_base), domain
        assert int(steps_base) > 0 and int(steps) > 0, domain


# ------------------------------------------------------------------------------------ help, colour, pipes

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "datasets", "trl", "peft")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**env, **extra}


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"]])
def test_help_answers_at_once_without_importing_torch(argv):
    code = (
        "import json, sys\nfrom zip2zip.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    subprocess.run([sys.executable, "-c", "pass"], check=True)  # warm the interpreter's files
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True
    )
    seconds = time.perf_counter() - start
    assert "usage: zip2zip" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert seconds < 5.0, (
        f"`zip2zip {' '.join(argv)} took {seconds:.2f} s"
    )  # measured 0.2 s; heavy imports cost >5 s


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines; compare words


@pytest.mark.parametrize("command", [command.__name__.rsplit(".", 1)[1] for command in COMMANDS])
def test_every_subcommand_has_help(command, capsys):
    assert f"usage: zip2zip {command}" in _help([command], capsys)


def test_help_states_what_each_length_flag_counts_and_what_the_defaults_are(capsys):
    generate = _help(["generate"], capsys)
    assert (
        "--max-new-tokens STEPS decoding steps at most" in generate and "the API's max_new_tokens" in generate
    )
    assert "--max-new-base-tokens N generated text budget in base tokens" in generate
    demo = _help(["demo"], capsys)
    assert (
        "until a trained checkpoint ships" not in demo
        and "trained zip2zip model shipped with the package" in demo
    )
    export = _help(["export"], capsys)
    assert (
        "--measure N" in export
        and "without either the card says that no quality measurement is included" in export
    )
    train = _help(["train"], capsys)
    assert f"(default {ZIP2ZIP_SETTINGS['max_codebook_size']})" in train
    steps = ", ".join(f"{name} {preset.steps}" for name, preset in PRESETS.items())
    assert f"optimizer steps (the preset's: {steps})" in train


def test_colour_only_on_a_terminal_and_never_with_no_color(tmp_path):
    base = tiny_bpe_tokenizer()
    base.save_pretrained(tmp_path / "base")
    (tmp_path / "a.txt").write_text(TEXT, encoding="utf-8")
    argv = [
        sys.executable,
        "-m",
        "zip2zip.cli",
        "compress",
        str(tmp_path / "a.txt"),
        "--tokenizer",
        str(tmp_path / "base"),
    ]

    def on_terminal(**env: str) -> str:
        primary, secondary = pty.openpty()
        try:
            done = subprocess.run(
                argv, stdout=secondary, stderr=subprocess.PIPE, env=_env(**env), timeout=120
            )
            assert done.returncode == 0, done.stderr.decode()[-2000:]
            os.close(secondary)
            chunks = []
            while True:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the terminal is closed once everything is read
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", "replace")
        finally:
            os.close(primary)

    piped = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=120, check=True)
    assert "ratio" in piped.stdout and "\x1b[" not in piped.stdout and "[" in piped.stdout
    assert "\x1b[" in on_terminal()
    assert "\x1b[" not in on_terminal(NO_COLOR="1")


# ------------------------------------------------------------------------------------ generate, train


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    base = save_tiny_base(root)
    return base, save_tiny_zip2zip(root, base)


@pytest.mark.parametrize(
    ("flags", "api"),
    [
        (["--max-new-tokens", "3"], {"max_new_tokens": 3}),
        (["--max-new-base-tokens", "5"], {"max_new_base_tokens": 5}),
        ([], {"max_new_base_tokens": 128}),
    ],
)
def test_generate_length_flags_mean_what_the_api_means(saved, flags, api, capsys):
    from zip2zip.loading import load_zip2zip

    _, folder = saved
    prompt = "the cat sat on the mat. the cat sat on the"
    assert main(["generate", prompt, "--model", str(folder), "--threads", "1", *flags]) == 0
    captured = capsys.readouterr()
    model, tok, _ = load_zip2zip(folder)
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, **api, do_sample=False, return_dict_in_generate=True)
    answer = tok.decode(out.sequences[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
    stats = out.generation_stats
    assert captured.out.rstrip("\n") == answer.rstrip("\n")
    assert f"{sum(stats.base_tokens)} base tokens in {stats.steps} decoding steps" in captured.err
    assert "UNTRAINED" in captured.err and "UNTRAINED" not in captured.out


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    "prompt", ["def f(x):\n    y = x\n", "the cat sat on the mat. the cat sat on the ma"]
)
def test_generate_token_healing_prints_what_follows_the_prompts_text(saved, prompt, stream, capsys):
    from zip2zip.loading import load_zip2zip

    _, folder = saved
    flags = [] if stream else ["--no-stream"]
    argv = ["generate", prompt, "--model", str(folder), "--threads", "1", "--max-new-base-tokens", "12"]
    assert main([*argv, "--token-healing", *flags]) == 0
    printed = capsys.readouterr().out
    model, tok, _ = load_zip2zip(folder)
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, max_new_base_tokens=12, do_sample=False, token_healing=True, tokenizer=tok)
    text = tok.decode(out[0], skip_special_tokens=True)
    assert text.startswith(prompt)
    assert printed.rstrip("\n") == text[len(prompt) :].rstrip("\n")


def test_generate_token_healing_refuses_chat(saved):
    _, folder = saved
    with pytest.raises(SystemExit, match="--token-healing continues a raw prompt"):
        main(["generate", "hello", "--chat", "--token-healing", "--model", str(folder)])


def test_train_follows_the_recipe_resumes_and_the_result_loads_as_trained(saved, tmp_path, capsys):
    """Two steps on a folder of texts and a JSON Lines file follow the preset and the recipe; asked for four
    steps, the same command resumes from the checkpoint and logs each step once; the result loads as trained."""
    from zip2zip.loading import is_trained, load_zip2zip

    base, _ = saved
    (tmp_path / "docs").mkdir()
    for i in range(4):
        (tmp_path / "docs" / f"doc{i}.txt").write_text(TEXT[: 60 + i])
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps({"text": TEXT[: 70 + i]}) for i in range(4)))
    out = tmp_path / "run"
    argv = ["train", "--base", str(base), "--data", str(tmp_path / "docs"), str(tmp_path / "data.jsonl")]
    argv += ["--output", str(out), "--preset", "cpu", "--max-length", "64", "--max-codebook-size", "64"]
    argv += ["--encoder-layers", "1", "--lora-r", "4", "--save-steps", "2", "--no-progress"]
    argv += ["--logging-steps", "1", "--device", "cpu"]
    assert main([*argv, "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "resuming" not in printed and json.loads(printed.strip().splitlines()[-1])["global_step"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["max_codebook_size"] == 64 and config["encoder_num_layers"] == 1
    for name in ("max_subtokens", "encoder_init", "protect_digits", "position_mode", "tie_encoders"):
        assert config[name] == ZIP2ZIP_SETTINGS[name], name
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["train_batch_size"] == PRESETS["cpu"].batch_size
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == PRESETS["cpu"].lora_alpha

    assert main([*argv, "--steps", "4"]) == 0
    assert f"resuming from {out / 'checkpoint-2'}" in capsys.readouterr().out
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
    model, _, trained = load_zip2zip(out)
    assert trained and is_trained(out) and model.config.max_codebook_size == 64


def test_train_data_is_the_files_given_else_the_recipe_mix(tmp_path):
    """`--data` paths win over the domains (how they are read is tested in test_text_files.py); without them
    the recipe's mix of the domains is read."""
    from zip2zip.cli.train import load_training_data
    from zip2zip.corpora.mixing import training_mix

    (tmp_path / "a.jsonl").write_text(json.dumps({"body": "mine"}) + "\n")
    assert load_training_data([str(tmp_path / "a.jsonl")], ["code"], "body")["body"] == ["mine"]
    data = load_training_data(None, ["code"], docs_per_domain=3, seed=1)
    assert data["text"] == training_mix(docs_per_domain=3, seed=1, domains=("code",))["text"]
