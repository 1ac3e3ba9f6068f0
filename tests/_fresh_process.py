"""Run a Python script in a fresh process where the zip2zip package cannot be imported, as on a user's machine
that only has torch and transformers: the one harness every "loads without the package" test uses.

``python -I`` keeps PYTHONPATH, the user site and the working directory off ``sys.path``; the editable
install's import hooks (registered from a ``.pth`` file in site-packages) are removed before the script runs;
the environment holds only PATH, a fresh HOME and HF cache, offline mode and one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_DROP_EDITABLE = (
    "import sys\n"
    "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
    "sys.path_hooks[:] = [h for h in sys.path_hooks if '__editable__' not in getattr(h, '__module__', '')]\n"
    "sys.path[:] = [p for p in sys.path if '__editable__' not in p]\n"
    "sys.path_importer_cache.clear()\n"
)


def run_without_package(
    script: str, *args: str, workdir: Path, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run ``script`` (source text) with ``args`` in ``workdir``; fails the test with its stderr if it fails."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_MODULES_CACHE": str(workdir / "modules"),
        "HF_HOME": str(workdir / "hf"),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-I", "-c", _DROP_EDITABLE + script, *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_json_line(result: subprocess.CompletedProcess):
    """The JSON a script printed on its last line of output."""
    return json.loads(result.stdout.strip().splitlines()[-1])


GENERATION_REPORT = '''
import json, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline


def load(folder):
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
    return model.eval(), tok


def report(model, tok, prompts, new=10):
    """What a user does with a loaded model: batched greedy generate with scores, transition scores, prompt
    lookup, the text pipeline, and a batch of chats through it (next to generate on the chat template)."""
    settings = dict(max_new_tokens=new, do_sample=False)
    enc = tok(prompts, return_tensors="pt", padding=True)
    P = enc["input_ids"].shape[1]
    out = model.generate(**enc, return_dict_in_generate=True, output_scores=True, **settings)
    scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    one = tok(prompts[0], return_tensors="pt")
    plain = model.generate(**one, return_dict_in_generate=True, **settings)
    looked = model.generate(**one, prompt_lookup_num_tokens=4, return_dict_in_generate=True, **settings)
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    chats = [[{"role": "user", "content": p}] for p in prompts]
    chat_generated = []
    for chat in chats:
        c = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        chat_out = model.generate(**c, **settings)
        chat_generated.append(tok.decode(chat_out[0][c["input_ids"].shape[1]:], skip_special_tokens=True))
    return {
        "dtype": str(next(model.parameters()).dtype),
        "module": type(model).__module__,
        "tok_module": type(tok).__module__,
        "ids": one["input_ids"][0].tolist(),
        "texts": [tok.decode(row[P:], skip_special_tokens=True) for row in out.sequences],
        "single": tok.decode(plain.sequences[0][one["input_ids"].shape[1]:], skip_special_tokens=True),
        "scores": scores.tolist(),
        "steps": out.generation_stats.steps,
        "lookup_codes": looked.codes[0].tolist(),
        "plain_codes": plain.codes[0].tolist(),
        "proposed": looked.generation_stats.proposed_codes,
        "piped": pipe(prompts[0], return_full_text=False, **settings)[0]["generated_text"],
        "answers": [r[0]["generated_text"][-1]["content"] for r in pipe(chats, **settings)],
        "chat_generated": chat_generated,
    }


if __name__ == "__main__":
    import importlib.util

    assert importlib.util.find_spec("zip2zip") is None, "the zip2zip package is importable"
    torch.set_num_threads(1)
    model, tok = load(sys.argv[1])
    result = report(model, tok, json.loads(sys.argv[2]))
    result["imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "zip2zip")
    print(json.dumps(result))
'''
"""A script that loads a model folder and reports what a user does with it (``report``); run it in a fresh
process with :func:`fresh_generation_report`, or exec it here with :func:`generation_report`, so that both
sides run the same code."""


def generation_report(model, tok, prompts: list[str]) -> dict:
    """``report`` of :data:`GENERATION_REPORT` on a model of this process."""
    namespace: dict = {"__name__": "generation_report"}
    exec(compile(GENERATION_REPORT, "generation_report", "exec"), namespace)
    return namespace["report"](model, tok, prompts)


def fresh_generation_report(folder: Path, prompts: list[str], workdir: Path) -> dict:
    """``report`` of :data:`GENERATION_REPORT` on ``folder`` loaded in a fresh process without the package."""
    result = last_json_line(
        run_without_package(GENERATION_REPORT, str(folder), json.dumps(prompts), workdir=workdir)
    )
    assert result.pop("imported") == [], "the script imported the zip2zip package"
    assert result["module"].startswith("transformers_modules") and result["tok_module"].startswith(
        "transformers_modules"
    )
    return result


def assert_same_report(got: dict, expected: dict, atol: float = 1e-5) -> None:
    """Two reports agree (module names aside), and each holds what generation promises: finite transition
    scores <= 0, prompt lookup changes nothing, a batched row equals the row alone, a chat through the
    pipeline equals generate on the chat template."""
    import torch

    for report in (got, expected):
        scores = torch.tensor(report["scores"])
        assert bool(torch.isfinite(scores).all() and (scores <= 0).all()), scores
        assert report["lookup_codes"] == report["plain_codes"] and report["proposed"] > 0
        assert report["texts"][0] == report["single"] == report["piped"]
        assert report["answers"] == report["chat_generated"]
    torch.testing.assert_close(
        torch.tensor(got["scores"]), torch.tensor(expected["scores"]), atol=atol, rtol=0
    )
    keys = set(expected) - {"module", "tok_module", "scores"}
    assert {k: got[k] for k in keys} == {k: expected[k] for k in keys}
