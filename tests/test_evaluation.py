"""Bits per byte, compression, the evaluate measurement modules and the lm-eval model class, on tiny models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests._saved_models import save_model
from tests._tiny_models import tiny_zip2zip
from tests.lm_eval_tasks.utils import rolling_texts
from zip2zip.evaluation.scoring import Scorer, bits_per_byte, compare_on_domains, compression_statistics

TASKS = Path(__file__).parent / "lm_eval_tasks"
TEXTS = [
    "the cat sat on the mat. the cat sat on the hat. the dog sat on the log. " * 4,
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n" * 2,
    "日本語 😀",
]


def build(max_subtokens: int = 3, seed: int = 0):
    """Base model, base tokenizer, the untrained zip2zip model over that base and its tokenizer (the base has
    embedding rows beyond the tokenizer's, as padded checkpoints do)."""
    model, tok = tiny_zip2zip(seed=seed, max_subtokens=max_subtokens, perturb=0.0, extra_vocab=4, encoders={})
    return model.language_model, tok.base, model, tok


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return build()


def reference_logprob(model, ids: list[int]) -> float:
    """log p(ids[1:] | ids[0]) by a plain forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[:-1], -1)
    return float(logprobs.gather(-1, torch.tensor(ids[1:])[:, None]).sum())


def test_base_model_bits_per_byte_is_the_plain_log_likelihood_in_windows(tiny):
    base, base_tok, _, _ = tiny
    text = TEXTS[0]
    ids = base_tok(text, add_special_tokens=False)["input_ids"]
    prefix = base_tok.bos_token_id
    size = 31
    expected = sum(reference_logprob(base, [prefix, *ids[i : i + size]]) for i in range(0, len(ids), size))
    score = bits_per_byte(base, base_tok, [text], max_length=size + 1)
    assert score.windows == math.ceil(len(ids) / size) and score.codes == score.base_tokens == len(ids)
    assert score.logprob == pytest.approx(expected, abs=1e-4)
    assert score.bits_per_byte == pytest.approx(-expected / math.log(2) / len(text.encode()), abs=1e-6)


def test_zip2zip_scores_the_canonical_code_stream_of_each_window(tiny):
    _, _, model, tok = tiny
    text = TEXTS[0]
    ids = tok.base(text, add_special_tokens=False)["input_ids"]
    size = 40
    expected, codes = 0.0, 0
    for i in range(0, len(ids), size):
        window = tok.codec.encode(ids[i : i + size])
        codes += len(window)
        expected += reference_logprob(model, [tok.base.bos_token_id, *window])
    score = bits_per_byte(model, tok, [text], max_length=size + 1)
    assert score.codes == codes < score.base_tokens == len(ids)
    assert score.hypertokens > 0 and score.compression == pytest.approx(len(ids) / codes)
    assert score.logprob == pytest.approx(expected, abs=1e-4)


def test_merge_size_one_equals_the_base_model_and_batching_changes_nothing():
    base, base_tok, model, tok = build(max_subtokens=1)
    plain = bits_per_byte(base, base_tok, TEXTS, max_length=48)
    same = bits_per_byte(model, tok, TEXTS, max_length=48)
    assert same.codes == plain.codes and same.bytes == plain.bytes
    assert same.bits_per_byte == pytest.approx(plain.bits_per_byte, abs=1e-5)
    batched = bits_per_byte(model, tok, TEXTS, max_length=48, batch_size=4)
    assert batched.bits_per_byte == pytest.approx(same.bits_per_byte, abs=1e-5)


def test_compression_statistics_use_the_scoring_windows(tiny):
    _, _, model, tok = tiny
    stats = compression_statistics(tok, TEXTS, max_length=41)
    score = bits_per_byte(model, tok, TEXTS, max_length=41)
    assert (stats["codes"], stats["base_tokens"], stats["windows"]) == (
        score.codes,
        score.base_tokens,
        score.windows,
    )
    assert stats["bytes"] == sum(len(t.encode()) for t in TEXTS)
    with pytest.raises(TypeError, match="Zip2ZipTokenizer"):
        compression_statistics(tok.base, TEXTS)


def test_compare_on_domains_sums_domains(tiny):
    base, base_tok, model, tok = tiny
    result = compare_on_domains({"a": TEXTS[:1], "b": TEXTS[1:]}, model, tok, base, base_tok, max_length=64)
    a, b = result["domains"]["a"], result["domains"]["b"]
    assert result["overall"]["base"]["bytes"] == a["base"]["bytes"] + b["base"]["bytes"]
    assert result["overall"]["zip2zip"]["logprob"] == pytest.approx(
        a["zip2zip"]["logprob"] + b["zip2zip"]["logprob"]
    )
    assert a["zip2zip"]["bytes"] == a["base"]["bytes"]


def test_continuation_is_scored_on_its_own_codes(tiny):
    _, _, model, tok = tiny
    scorer = Scorer(model, tok, max_length=128)
    context, continuation = "the cat sat on the mat. the cat sat on", " the mat. the cat"
    codes, start = scorer.pair(context, continuation)
    whole = tok.base(context + continuation, add_special_tokens=False)["input_ids"]
    n_context = len(tok.base(context, add_special_tokens=False)["input_ids"])
    # The continuation's codes stand for exactly its base ids: no code spans the boundary.
    assert tok.codec.decode(codes)[1:] == whole
    assert tok.codec.decode(codes)[: n_context + 1] == tok.codec.decode(codes[:start])
    assert codes[:start] == tok.codec.encode([tok.base.bos_token_id, *whole[:n_context]])
    assert any(c >= tok.base_vocab_size for c in codes[start:])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([codes])).logits[0].float(), -1)
    targets = torch.tensor(codes[start:])
    expected = float(logprobs[start - 1 : -1].gather(-1, targets[:, None]).sum())
    greedy = bool((logprobs[start - 1 : -1].argmax(-1) == targets).all())
    [(logprob, is_greedy)] = scorer.loglikelihood([(context, continuation)])
    assert logprob == pytest.approx(expected, abs=1e-4) and is_greedy == greedy
    # A trailing space of the context moves to the continuation, as in lm-eval's own models.
    assert scorer.pair(context + " ", "the mat. the cat") == (codes, start)


def test_too_long_requests_name_max_length(tiny):
    _, _, model, tok = tiny
    scorer = Scorer(model, tok, max_length=16)
    with pytest.raises(ValueError, match=r"request 0: .* max_length=16. Raise max_length"):
        scorer.loglikelihood([(TEXTS[1], " end")])
    with pytest.raises(ValueError, match="max_position_embeddings"):
        Scorer(model, tok, max_length=100_000)


# ----------------------------------------------------------------------------------------- lm-eval


@pytest.fixture(scope="module")
def lm_eval_results(tiny):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from zip2zip.evaluation.harness import Zip2ZipLM

    base, base_tok, model, tok = tiny
    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    results = {}
    for name, (m, t) in {"base": (base, base_tok), "zip2zip": (model, tok)}.items():
        lm = Zip2ZipLM(pretrained=m, tokenizer=t, max_length=128)
        results[name] = lm_eval.simple_evaluate(
            model=lm,
            tasks=["zip2zip_mc", "zip2zip_rolling", "zip2zip_gen"],
            task_manager=manager,
            log_samples=True,
            verbosity="ERROR",
        )
    return results


@pytest.mark.parametrize("which", ["base", "zip2zip"])
def test_lm_eval_rolling_bits_per_byte_match_bits_per_byte(tiny, lm_eval_results, which):
    base, base_tok, model, tok = tiny
    m, t = (base, base_tok) if which == "base" else (model, tok)
    reported = lm_eval_results[which]["results"]["zip2zip_rolling"]["bits_per_byte,none"]
    ours = bits_per_byte(m, t, rolling_texts(), max_length=128).bits_per_byte
    assert reported == pytest.approx(ours, abs=1e-6)


@pytest.mark.parametrize("which", ["base", "zip2zip"])
def test_lm_eval_multiple_choice_uses_loglikelihood(tiny, lm_eval_results, which):
    base, base_tok, model, tok = tiny
    m, t = (base, base_tok) if which == "base" else (model, tok)
    samples = lm_eval_results[which]["samples"]["zip2zip_mc"]
    assert len(samples) == 8
    scorer = Scorer(m, t, max_length=128)
    correct = 0
    for sample in samples:
        pairs = (
            [tuple(args) for args in sample["arguments"].values()]
            if isinstance(sample["arguments"], dict)
            else [tuple(a) for a in sample["arguments"]]
        )
        expected = [lp for lp, _ in scorer.loglikelihood(pairs)]
        got = [resp[0][0] for resp in sample["resps"]]
        assert got == pytest.approx(expected, abs=1e-5)
        correct += max(range(len(expected)), key=expected.__getitem__) == int(sample["target"])
    # The accuracy lm-eval reports is the share of questions whose gold choice scores best.
    assert lm_eval_results[which]["results"]["zip2zip_mc"]["acc,none"] == pytest.approx(
        correct / len(samples)
    )


def test_lm_eval_generate_until_decodes_the_whole_output(tiny, lm_eval_results):
    _, _, model, tok = tiny
    samples = lm_eval_results["zip2zip"]["samples"]["zip2zip_gen"]
    for sample in samples:
        prompt = sample["doc"]["prompt"]
        enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=16, max_new_base_tokens=16, do_sample=False)
        text = tok.decode(out[0], skip_special_tokens=True)[len(prompt) :].split("\n")[0]
        assert sample["resps"][0][0] == text
        assert "\n" not in sample["resps"][0][0]


def test_lm_eval_model_is_registered():
    from lm_eval.api.registry import get_model

    from zip2zip.evaluation.harness import Zip2ZipLM

    assert get_model("zip2zip") is Zip2ZipLM


# ----------------------------------------------------------------------------------------- evaluate modules


def test_measurement_modules_load_by_path_offline(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    import evaluate

    root = Path(__file__).resolve().parent.parent / "measurements"
    _, _, model, tok = tiny
    compression = evaluate.load(str(root / "zip2zip_compression"), module_type="measurement")
    stats = compression.compute(data=TEXTS, tokenizer=tok, max_length=41)
    assert stats == compression_statistics(tok, TEXTS, max_length=41)
    measured = evaluate.load(str(root / "zip2zip_bits_per_byte"), module_type="measurement")
    result = measured.compute(data=TEXTS, model=model, tokenizer=tok, max_length=41)
    assert result["bits_per_byte"] == pytest.approx(
        bits_per_byte(model, tok, TEXTS, max_length=41).bits_per_byte
    )


# ----------------------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def saved_pair(tiny, tmp_path_factory):
    base, base_tok, model, tok = tiny
    root = tmp_path_factory.mktemp("saved")
    return save_model(root / "base", base, base_tok), save_model(root / "zip2zip", model, tok)


def test_cli_eval_table_and_json_match_bits_per_byte(tiny, saved_pair, tmp_path, capsys):
    from zip2zip.cli import main

    base, base_tok, model, tok = tiny
    base_dir, model_dir = saved_pair
    out = tmp_path / "eval.json"
    data = str(TASKS / "rolling.jsonl")
    argv = ["eval", "--model", str(model_dir), "--base", str(base_dir), "--data", data, "--max-length", "128"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    import json

    result = json.loads(out.read_text())
    texts = rolling_texts()
    expected = bits_per_byte(model, tok, texts, max_length=128).bits_per_byte
    assert result["overall"]["zip2zip"]["bits_per_byte"] == pytest.approx(expected, abs=1e-6)
    assert result["overall"]["base"]["bits_per_byte"] == pytest.approx(
        bits_per_byte(base, base_tok, texts, max_length=128).bits_per_byte, abs=1e-6
    )
    assert f"{expected:.4f}" in printed and "rolling" in printed and "UNTRAINED" in printed


def test_cli_generate_streams_and_shows_hypertokens(tiny, saved_pair, capsys):
    from zip2zip.cli import main

    _, _, model, tok = tiny
    _, model_dir = saved_pair
    prompt = "the cat sat on the mat. the cat sat on the"
    argv = ["generate", prompt, "--model", str(model_dir), "--max-new-tokens", "8", "--show-hypertokens"]
    assert main([*argv, "--no-color"]) == 0
    captured = capsys.readouterr()
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, max_new_base_tokens=8, do_sample=False)
    answer = tok.decode(out[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert captured.out.startswith(answer)
    assert "hypertokens highlighted" in captured.out and "[" in captured.out
    assert "decoding steps" in captured.err


# ----------------------------------------------------------------------------------------- SmolLM2 (the bar)


@pytest.mark.slow
def test_smollm2_lm_eval_matches_zip2zip_eval_to_three_decimals(smollm2_path, tmp_path, capsys):
    """lm-eval (registered `zip2zip` model, by folder) and `zip2zip eval` report the same bits per byte."""
    import json

    import lm_eval
    from lm_eval.tasks import TaskManager

    from zip2zip.cli import main
    from zip2zip.conversion import zip2zip_from_base

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = zip2zip_from_base(smollm2_path, max_codebook_size=2048, max_subtokens=4)
        folder = tmp_path / "smollm2-zip2zip"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        out = tmp_path / "eval.json"
        data = str(TASKS / "rolling.jsonl")
        argv = ["eval", "--model", str(folder), "--base", smollm2_path, "--data", data, "--json", str(out)]
        assert main([*argv, "--threads", "1"]) == 0
        ours = json.loads(out.read_text())["overall"]
        manager = TaskManager(include_path=str(TASKS), include_defaults=False)
        for which, path in (("zip2zip", folder), ("base", smollm2_path)):
            result = lm_eval.simple_evaluate(
                model="zip2zip",
                model_args=f"pretrained={path}",
                tasks=["zip2zip_mc", "zip2zip_rolling"],
                task_manager=manager,
                verbosity="ERROR",
            )["results"]
            reported = result["zip2zip_rolling"]["bits_per_byte,none"]
            print(
                which,
                "lm-eval",
                reported,
                "zip2zip eval",
                ours[which]["bits_per_byte"],
                "mc acc",
                result["zip2zip_mc"]["acc,none"],
            )
            assert round(reported, 3) == round(ours[which]["bits_per_byte"], 3)
            assert result["zip2zip_mc"]["acc,none"] >= 0.5  # the questions are easy for SmolLM2
    finally:
        torch.set_num_threads(threads)


def test_lm_eval_builtin_models_still_resolve_after_registering_zip2zip():
    """Registering "zip2zip" must not hide lm-eval's own models (it loads them only into an empty registry)."""
    from lm_eval.api.registry import get_model

    import zip2zip.evaluation  # noqa: F401

    assert get_model("zip2zip").__name__ == "Zip2ZipLM"
    assert get_model("hf").__name__ == "HFLM"
