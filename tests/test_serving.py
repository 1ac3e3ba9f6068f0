"""`zip2zip serve`: transformers' OpenAI-compatible server with zip2zip's adaptation (zip2zip/serving.py).

One server per module, in a subprocess on 127.0.0.1 and a free port, serving a tiny untrained zip2zip model
saved to a folder; the official `openai` client talks to it. Replies are compared with what `generate` gives
in this process for the same prompt, and usage with `last_generation_stats`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _benchmarks import load_benchmark

SERVING = load_benchmark("serving")  # starts and stops servers for the benchmark and these tests alike

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 180.0
REQUEST_TIMEOUT = 60.0
MAX_TOKENS = 12
CHAT = [{"role": "user", "content": "the cat sat on the mat. the cat sat on the"}]
PROMPTS = [
    "the cat sat on the mat.",
    "def add(a, b):\n    return a + b\n",
    "The quick brown fox jumps",
    "for i in range(10):\n",
    "In the beginning the universe",
    "the dog sat on the log. the dog",
    "def sub(a, b):\n    return",
    "The lazy dog sleeps. The lazy",
]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "OMP_NUM_THREADS": "1",
    }


def start_server(model: str, log: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    """`zip2zip serve MODEL` on one CPU thread, as the serving benchmark starts it."""
    return SERVING.start_server(
        model, log, "--device", "cpu", "--threads", "1", *flags, env=_env(), timeout=STARTUP_TIMEOUT
    )


stop_server = SERVING.stop_server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests._saved_models import save_tiny_base, save_tiny_zip2zip

    root = tmp_path_factory.mktemp("serving")
    folder = save_tiny_zip2zip(root, save_tiny_base(root))
    process, url = start_server(str(folder), root / "server.log")
    try:
        yield folder, url
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def reference(served):
    """The same model in this process, and what `generate` gives for a prompt (greedy, MAX_TOKENS base tokens)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = served
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()

    def generate(
        prompt: str | None = None, messages: list | None = None, max_tokens: int = MAX_TOKENS, **options
    ):
        if messages is not None:
            inputs = tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        else:
            inputs = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                max_new_base_tokens=max_tokens,
                do_sample=False,
                tokenizer=tok,
                **options,
            )
        text = tok.decode(out[0][inputs["input_ids"].shape[-1] :], skip_special_tokens=True)
        if options.get("token_healing"):  # the healed prompt is shorter: the reply follows the prompt's text
            given = tok.decode(inputs["input_ids"][0], skip_special_tokens=True)
            text = tok.decode(out[0], skip_special_tokens=True)[len(given) :]
        return text, model.last_generation_stats

    return generate


@pytest.fixture(scope="module")
def client(served):
    _, url = served
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=REQUEST_TIMEOUT, max_retries=0)


def model_name(client) -> str:
    return client.models.list().data[0].id


def check_usage(usage, stats) -> None:
    extra = usage.model_extra["zip2zip"]
    assert usage.completion_tokens == sum(stats.base_tokens) == extra["completion_base_tokens"]
    assert extra["completion_codes"] == sum(stats.codes)
    assert extra["completion_hypertokens"] == sum(stats.hypertokens)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert extra["prompt_codes"] <= usage.prompt_tokens


def test_models_lists_the_served_name(served, client):
    folder, _ = served
    assert [m.id for m in client.models.list().data] == [folder.name]


def test_chat_streamed_equals_non_streamed_equals_generate(client, reference):
    expected, stats = reference(messages=CHAT)
    name = model_name(client)
    reply = client.chat.completions.create(model=name, messages=CHAT, max_tokens=MAX_TOKENS, temperature=0)
    assert reply.choices[0].message.content == expected
    check_usage(reply.usage, stats)
    assert reply.choices[0].finish_reason == ("length" if sum(stats.base_tokens) >= MAX_TOKENS else "stop")

    chunks = list(
        client.chat.completions.create(
            model=name, messages=CHAT, max_tokens=MAX_TOKENS, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    check_usage(chunks[-1].usage, stats)


def check_completion(client, prompt: str, expected: str, stats) -> Any:
    """A greedy completion of ``prompt``, non-streamed and streamed, is ``expected`` with the usage of ``stats``;
    returns the non-streamed reply's usage."""
    name = model_name(client)
    reply = client.completions.create(model=name, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0)
    assert reply.choices[0].text == expected
    check_usage(reply.usage, stats)

    chunks = list(
        client.completions.create(
            model=name, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    check_usage(chunks[-1].usage, stats)
    return reply.usage


def test_completions_streamed_equals_non_streamed_equals_generate(client, reference):
    check_completion(client, PROMPTS[0], *reference(prompt=PROMPTS[0]))


def test_max_tokens_counts_base_tokens(client):
    reply = client.completions.create(
        model=model_name(client), prompt=PROMPTS[1], max_tokens=5, temperature=0
    )
    assert reply.usage.completion_tokens <= 5
    assert reply.usage.model_extra["zip2zip"]["completion_codes"] <= reply.usage.completion_tokens


def test_concurrent_clients_each_get_their_own_answer(client, reference):
    expected = [reference(prompt=p) for p in PROMPTS]
    name = model_name(client)

    def ask(prompt: str):
        return client.completions.create(model=name, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0)

    with ThreadPoolExecutor(max_workers=len(PROMPTS)) as pool:
        replies = list(pool.map(ask, PROMPTS, timeout=REQUEST_TIMEOUT * 4))
    for reply, (text, stats) in zip(replies, expected):
        assert reply.choices[0].text == text
        check_usage(reply.usage, stats)


def test_greedy_by_prefix_flag_serves_what_generate_gives_with_it(served, reference, tmp_path):
    folder, _ = served
    process, url = start_server(str(folder), tmp_path / "server.log", "--greedy-by", "prefix")
    try:
        prefix_client = openai.OpenAI(
            base_url=f"{url}/v1", api_key="unused", timeout=REQUEST_TIMEOUT, max_retries=0
        )
        name = model_name(prefix_client)
        differs = 0
        for prompt in PROMPTS[:4]:
            response = prefix_client.completions.create(
                model=name, prompt=prompt, max_tokens=MAX_TOKENS, temperature=0
            )
            text, stats = reference(prompt, greedy_by="prefix")
            assert response.choices[0].text == text
            check_usage(response.usage, stats)
            differs += text != reference(prompt)[0]
        assert differs, "the flag changed no answer: the check would not tell it from plain greedy"
    finally:
        stop_server(process)


def test_token_healing_flag_serves_completions_as_generate_heals_them(served, reference, tmp_path):
    from transformers import AutoTokenizer

    folder, _ = served
    process, url = start_server(str(folder), tmp_path / "server.log", "--token-healing")
    try:
        healing = openai.OpenAI(
            base_url=f"{url}/v1", api_key="unused", timeout=REQUEST_TIMEOUT, max_retries=0
        )
        healed = 0
        base_tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True).base
        for prompt in (PROMPTS[1], PROMPTS[2], PROMPTS[3], PROMPTS[5]):
            usage = check_completion(healing, prompt, *reference(prompt, token_healing=True))
            # The prompt counted is the one generate() read: the given one, or it less its last base token.
            given = len(base_tokenizer(prompt)["input_ids"])
            assert usage.prompt_tokens in (given, given - 1)
            healed += usage.prompt_tokens == given - 1
        assert healed, "no prompt was healed: the check would not tell the flag from plain greedy"
        # Chat prompts end with the template's assistant header: never healed.
        chat, stats = reference(messages=CHAT)
        reply = healing.chat.completions.create(
            model=model_name(healing), messages=CHAT, max_tokens=MAX_TOKENS, temperature=0
        )
        assert reply.choices[0].message.content == chat
        check_usage(reply.usage, stats)
    finally:
        stop_server(process)


def test_sampling_with_a_seed_repeats(client):
    name = model_name(client)

    def ask(seed: int) -> str:
        return (
            client.completions.create(
                model=name, prompt=PROMPTS[2], max_tokens=MAX_TOKENS, temperature=1.0, top_p=0.9, seed=seed
            )
            .choices[0]
            .text
        )

    assert ask(7) == ask(7)


def test_stop_ends_the_reply_at_the_stop_string(client, reference):
    expected, _ = reference(prompt=PROMPTS[3], max_tokens=MAX_TOKENS)
    stop = expected[len(expected) // 2 : len(expected) // 2 + 1]
    if not stop.strip():
        pytest.skip("the tiny model's reply has no usable stop character")
    text = (
        client.completions.create(
            model=model_name(client), prompt=PROMPTS[3], max_tokens=MAX_TOKENS, temperature=0, stop=[stop]
        )
        .choices[0]
        .text
    )
    assert stop in text and expected.startswith(text) and len(text) <= len(expected)


BAD_REQUESTS = [
    ("unknown model", {"model": "no-such-model", "messages": CHAT}, 404, "is not served here"),
    ("empty messages", {"messages": []}, 400, "messages must be a non-empty list"),
    (
        "message without role",
        {"messages": [{"content": "hi"}]},
        400,
        "messages[0] must be an object with a role",
    ),
    ("message not an object", {"messages": ["hi"]}, 400, "messages[0] must be an object with a role"),
    ("content not text", {"messages": [{"role": "user", "content": 3}]}, 400, "messages[0].content must be"),
    ("max_tokens zero", {"messages": CHAT, "max_tokens": 0}, 400, "max_tokens must be a positive integer"),
    (
        "max_tokens negative",
        {"messages": CHAT, "max_tokens": -5},
        400,
        "max_tokens must be a positive integer",
    ),
    ("max_tokens beyond context", {"messages": CHAT, "max_tokens": 10**6}, 400, "does not fit"),
    (
        "1 MB prompt",
        {"messages": [{"role": "user", "content": "a" * 1_000_000}]},
        400,
        "characters; this server",
    ),
    ("temperature out of range", {"messages": CHAT, "temperature": 9}, 400, "temperature must be a number"),
]


@pytest.mark.parametrize(
    ("body", "status", "message"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_request_gets_a_4xx_and_the_server_stays_up(served, client, body, status, message):
    _, url = served
    body = {"model": model_name(client), **body}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]
    assert_still_serving(client)


def test_bad_request_through_the_openai_client_raises_with_the_message(client):
    with pytest.raises(openai.BadRequestError, match="max_tokens must be a positive integer"):
        client.chat.completions.create(model=model_name(client), messages=CHAT, max_tokens=0)
    assert_still_serving(client)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "not UTF-8"),
        (b'{"messages": [', "not a valid JSON"),
    ],
    ids=["non-UTF-8", "truncated JSON"],
)
def test_undecodable_body_gets_a_400(served, client, content, message):
    _, url = served
    response = httpx.post(
        f"{url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]
    assert_still_serving(client)


def test_client_disconnecting_mid_stream_leaves_the_server_up(served, client):
    _, url = served
    body = {
        "model": model_name(client),
        "messages": CHAT,
        "max_tokens": 200,
        "stream": True,
        "temperature": 0,
    }
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=REQUEST_TIMEOUT) as response:
        assert response.status_code == 200
        for _line in response.iter_lines():
            break  # the first event, then hang up
    assert_still_serving(client)


def assert_still_serving(client) -> None:
    reply = client.completions.create(
        model=model_name(client), prompt=PROMPTS[0], max_tokens=3, temperature=0
    )
    assert reply.usage.completion_tokens >= 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--continuous-batching"], "continuous batching is not supported"),
        (["--token-healing", "--prompt-lookup", "4"], "token healing and prompt lookup cannot be combined"),
    ],
)
def test_modes_zip2zip_cannot_run_are_refused_at_start_up(served, flags, message):
    folder, _ = served
    result = subprocess.run(
        [sys.executable, "-m", "zip2zip.cli", "serve", str(folder), *flags],
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.slow
def test_serving_section_snippet_against_the_shipped_model(tmp_path):
    """The README's Serving snippet, run against `zip2zip serve` of the shipped model."""
    from zip2zip.bundled.shipped import SHIPPED_MODEL_NAME, shipped_zip2zip_path

    path = shipped_zip2zip_path()
    assert path is not None, "the package ships a trained model"
    readme = (ROOT / "README.md").read_text()
    (snippet,) = [b for b in readme.split("```python\n")[1:] if "OpenAI(base_url" in b.split("```", 1)[0]]
    snippet = snippet.split("```", 1)[0]
    process, url = start_server(path, tmp_path / "server.log", "--served-model-name", SHIPPED_MODEL_NAME)
    try:
        snippet = snippet.replace("http://127.0.0.1:8000", url)
        result = subprocess.run(
            [sys.executable, "-c", snippet], env=_env(), capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip()
        assert json.loads(result.stdout.strip().splitlines()[-1])["completion_tokens"] > 0
    finally:
        stop_server(process)


def test_the_serving_benchmark_sends_held_out_prompts():
    """Code prompts are held-out files cut at a line end with the file going on; chat prompts are held-out
    questions; none is a training document's."""
    from zip2zip.corpora.chat import chat_conversations
    from zip2zip.corpora.store import load_corpus

    prompts = SERVING.heldout_prompts(count=3, code_chars=600)
    heldout = load_corpus("code", "heldout")
    assert len(prompts["code"]) == 3 and len(prompts["chat"]) == 3
    for prompt in prompts["code"]:
        assert prompt.endswith("\n") and len(prompt) <= 600
        doc = next(doc for doc in heldout if doc.startswith(prompt))
        assert len(doc) > len(prompt), "the file goes on after the prompt"
    train = {conversation[0]["content"] for conversation in chat_conversations("train", 50)}
    assert prompts["chat"] == [c[0]["content"] for c in chat_conversations("heldout", 3)]
    assert not train & set(prompts["chat"])


def test_the_serving_benchmark_gives_code_decoding_an_interval_over_prompts():
    """Per-request records make a 95% interval over the code prompts that holds the pooled speed ratio; rows
    without them (an older results.json) give none."""

    def row(model, round_, speeds):
        requests = [
            {"kind": "code", "prompt": p, "ttft": 0.5, "latency": 0.5 + 128 / speed, "base_tokens": 128}
            for p, speed in enumerate(speeds)
        ] + [{"kind": "chat", "prompt": 0, "ttft": 0.5, "latency": 9.0, "base_tokens": 128}]
        return {"model": model, "round": round_, "clients": 1, "per_request": requests}

    zip_speeds = [30.0, 32.0, 60.0, 28.0]  # one prompt the model copies from its file
    level = [row("base", r, [25.0] * 4) for r in range(2)] + [row("zip2zip", r, zip_speeds) for r in range(2)]
    low, high = SERVING.code_decode_interval(level)
    pooled = (4 * 128 / sum(128 / s for s in zip_speeds)) / 25.0
    assert low < pooled < high and low >= 28 / 25 - 1e-9 and high <= 60 / 25 + 1e-9
    assert SERVING.code_decode_interval([{**r, "per_request": []} for r in level]) is None


def test_a_benchmark_level_records_every_request(client):
    """`run_level` against a real server: each request's kind, prompt, times and base tokens, which the interval
    over prompts and the summary read."""
    model_id = client.models.list().data[0].id
    prompts = {"code": PROMPTS[1:4:2], "chat": [CHAT[0]["content"], PROMPTS[0]]}
    row = SERVING.run_level(client, model_id, clients=2, requests=6, max_tokens=MAX_TOKENS, prompts=prompts)
    records = sorted(row["per_request"], key=lambda r: (r["kind"], r["prompt"]))
    assert [(r["kind"], r["prompt"]) for r in records] == [("chat", 0), ("chat", 0), ("chat", 1)] + [
        ("code", 0),
        ("code", 0),
        ("code", 1),
    ]
    assert all(0 < r["base_tokens"] <= MAX_TOKENS and 0 <= r["ttft"] <= r["latency"] for r in records)
    assert row["requests"] == 6 and row["base_tokens"] == sum(r["base_tokens"] for r in records)
