"""Serving benchmark: `zip2zip serve` with the base model and with the zip2zip model, side by side.

The same server (``python -m zip2zip.cli serve``, transformers' OpenAI-compatible server) serves the base model and
the zip2zip model, both started at once on 127.0.0.1; 1, 4 and 16 concurrent clients send greedy streaming requests
(continuations of held-out Python files to /v1/completions and held-out chat questions to /v1/chat/completions,
alternating) of ``--max-tokens`` base tokens. The servers take turns: in each round every concurrency level runs
on one model and then on the other, the order flipping from round to round, so that the machine's drift between
minutes falls on both alike; ratios are taken within a round and their median over ``--rounds`` is reported.
Reported per model and concurrency: requests/s, p50/p95 time to first token and total latency, base tokens/s
(completion base tokens from ``usage`` over wall time), and per request kind the decoding speed (a request's base
tokens over its time after its first token: requests are served one at a time, so this is its own speed at any
concurrency), with a 95% interval over the code prompts for zip2zip / base decoding speed (a few prompts make
that figure; :func:`code_decode_interval`). Writes ``results.json`` (every request's record too) and
``serving.png`` under benchmarks/results/serving/.

    python -m benchmarks.serving             # the full run (slow on CPU)
    python -m benchmarks.serving --quick     # a few requests, to check that it runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zip2zip.utils.hardware import describe_cpu

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "serving"
STARTUP_TIMEOUT = 900.0
REQUEST_TIMEOUT = 600.0

PROMPTS_PER_KIND = 8


def heldout_prompts(count: int = PROMPTS_PER_KIND, code_chars: int = 1500) -> dict[str, list[str]]:
    """Held-out prompts of both kinds: the first ``code_chars`` characters of held-out Python files (cut at a line
    end, the file going on after it) and the first user turn of held-out chat conversations
    (``zip2zip.corpora.chat``: a question about a handbook or code passage)."""
    from benchmarks.common import cut_at_line_end
    from zip2zip.corpora.chat import chat_conversations
    from zip2zip.corpora.store import load_corpus

    code = []
    for doc in load_corpus("code", "heldout"):
        if len(doc) < 2 * code_chars:
            continue
        code.append(cut_at_line_end(doc, code_chars))
        if len(code) == count:
            break
    chat = [conversation[0]["content"] for conversation in chat_conversations("heldout", count)]
    return {"code": code, "chat": chat}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    model: str, log: Path, *flags: str, env: dict[str, str] | None = None, timeout: float = STARTUP_TIMEOUT
) -> tuple[subprocess.Popen, str]:
    """``zip2zip serve MODEL *FLAGS`` on 127.0.0.1 and a free port; returns the process and base URL once /health
    answers (the tests start their servers with it too)."""
    import urllib.request

    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "zip2zip.cli",
        "serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = subprocess.Popen([*command, *flags], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the server for {model} exited with {process.returncode}; {log}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(
        f"the server for {model} did not answer within {timeout} s; {log}:\n{log.read_text()[-3000:]}"
    )


def stop_server(process: subprocess.Popen) -> None:
    """Stop a server of :func:`start_server`: politely, then for good."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


def one_request(client: Any, model: str, kind: str, prompt: str, max_tokens: int) -> dict[str, float]:
    """One greedy streaming request: time to first text, total latency, completion base tokens."""
    start = time.perf_counter()
    first = None
    usage = None
    if kind == "code":
        stream = client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True
        )
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].text:
                first = time.perf_counter()
            usage = chunk.usage or usage
    else:
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
        )
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
            usage = chunk.usage or usage
    end = time.perf_counter()
    return {
        "ttft": (first or end) - start,
        "latency": end - start,
        "base_tokens": usage.completion_tokens if usage is not None else 0,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_level(
    client: Any, model: str, clients: int, requests: int, max_tokens: int, prompts: dict[str, list[str]]
) -> dict[str, Any]:
    """``requests`` requests (code and chat alternating) from ``clients`` concurrent clients."""
    jobs = []
    for i in range(requests):
        kind = "code" if i % 2 == 0 else "chat"
        jobs.append((kind, (i // 2) % len(prompts[kind])))
    lock = threading.Lock()
    done: list[dict[str, Any]] = []

    def work(job: tuple[str, int]) -> None:
        kind, index = job
        result = {
            "kind": kind,
            "prompt": index,
            **one_request(client, model, kind, prompts[kind][index], max_tokens),
        }
        with lock:
            done.append(result)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(work, job) for job in jobs]:
            future.result(timeout=REQUEST_TIMEOUT * max(1, requests // clients + 1))
    wall = time.perf_counter() - start
    ttft = [r["ttft"] for r in done]
    latency = [r["latency"] for r in done]
    tokens = sum(r["base_tokens"] for r in done)
    by_kind = {}
    for kind in ("code", "chat"):
        mine = [r for r in done if r["kind"] == kind]
        kind_tokens = sum(r["base_tokens"] for r in mine)
        # what one such request's client sees (queueing included), and its decoding speed after the first token
        seconds = sum(r["latency"] for r in mine)
        decoding = sum(r["latency"] - r["ttft"] for r in mine)
        by_kind[f"{kind}_base_tokens_per_request_s"] = kind_tokens / seconds if seconds else float("nan")
        by_kind[f"{kind}_decode_base_tokens_per_s"] = kind_tokens / decoding if decoding else float("nan")
    return {
        "clients": clients,
        "requests": len(done),
        "wall_s": wall,
        "requests_per_s": len(done) / wall,
        "ttft_p50_s": statistics.median(ttft),
        "ttft_p95_s": percentile(ttft, 0.95),
        "latency_p50_s": statistics.median(latency),
        "latency_p95_s": percentile(latency, 0.95),
        "base_tokens": tokens,
        "base_tokens_per_s": tokens / wall,
        **by_kind,
        "per_request": done,
    }


@contextlib.contextmanager
def running_servers(
    models: dict[str, str], args: argparse.Namespace, warm_up: str
) -> Iterator[dict[str, tuple[Any, str]]]:
    """Every model's server started at once (each idles while the other serves); yields label -> (client, the
    served model's id), each warmed up with one short completion of ``warm_up``."""
    from openai import OpenAI

    threads = ("--threads", str(args.threads)) if args.threads else ()
    with contextlib.ExitStack() as stack:
        served = {}
        for label, model in models.items():
            extra = tuple(shlex.split(args.zip2zip_flags)) if label == "zip2zip" else ()
            process, url = start_server(model, args.out / f"server-{label}.log", *threads, *extra)
            stack.callback(stop_server, process)
            client = OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=REQUEST_TIMEOUT, max_retries=0)
            served[label] = (client, client.models.list().data[0].id)
        for client, model_id in served.values():
            one_request(client, model_id, "code", warm_up, 4)  # warm-up, not counted
        yield served


RATIO_KEYS = (
    "base_tokens_per_s",
    "code_base_tokens_per_request_s",
    "chat_base_tokens_per_request_s",
    "code_decode_base_tokens_per_s",
    "chat_decode_base_tokens_per_s",
)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency: each model's medians over rounds, and the medians of the rounds' zip2zip / base ratios."""
    summary = []
    for clients in sorted({r["clients"] for r in rows}):
        level = [r for r in rows if r["clients"] == clients]
        entry: dict[str, Any] = {"clients": clients, "rounds": len({r["round"] for r in level})}
        for label in ("base", "zip2zip"):
            mine = [r for r in level if r["model"] == label]
            entry[label] = {
                key: statistics.median(r[key] for r in mine)
                for key in mine[0]
                if key not in ("model", "round", "clients") and isinstance(mine[0][key], (int, float))
            }
        for key in RATIO_KEYS:
            ratios = []
            for round_ in sorted({r["round"] for r in level}):
                pair = {r["model"]: r[key] for r in level if r["round"] == round_}
                if pair.get("base") and "zip2zip" in pair:
                    ratios.append(pair["zip2zip"] / pair["base"])
            entry[f"zip2zip_over_base_{key}"] = statistics.median(ratios) if ratios else float("nan")
            entry[f"zip2zip_over_base_{key}_rounds"] = ratios
        entry["zip2zip_over_base_code_decode_interval"] = code_decode_interval(level)
        summary.append(entry)
    return summary


def code_decode_interval(level: list[dict[str, Any]]) -> tuple[float, float] | None:
    """95% interval over the code prompts (:func:`benchmarks.common.bootstrap_interval`) of zip2zip / base decoding
    speed, pooled over a level's rounds: a few prompts make the figure, and one continuation that repeats its
    file writes many base tokens per step. None without per-request records for two prompts or more."""
    from benchmarks.common import bootstrap_interval

    seconds = {"base": defaultdict(float), "zip2zip": defaultdict(float)}
    tokens = {"base": defaultdict(float), "zip2zip": defaultdict(float)}
    for row in level:
        for request in row.get("per_request", []):
            if request["kind"] == "code" and row["model"] in seconds:
                seconds[row["model"]][request["prompt"]] += request["latency"] - request["ttft"]
                tokens[row["model"]][request["prompt"]] += request["base_tokens"]
    prompts = [p for p in seconds["zip2zip"] if tokens["base"].get(p) and seconds["zip2zip"][p] > 0]
    if len(prompts) < 2:
        return None
    # speed ratio = (zip tokens / zip seconds) / (base tokens / base seconds): per prompt, the base's time for the
    # zip2zip model's tokens over the zip2zip model's time, pooled
    return bootstrap_interval(
        [seconds["base"][p] * tokens["zip2zip"][p] / tokens["base"][p] for p in prompts],
        [seconds["zip2zip"][p] for p in prompts],
    )


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("requests_per_s", "requests/s"),
        ("base_tokens_per_s", "base tokens/s"),
        ("ttft_p50_s", "time to first token p50 (s)"),
        ("latency_p95_s", "latency p95 (s)"),
    ]
    clients = [entry["clients"] for entry in summary]
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(4 * (len(metrics) + 1), 3.4))
    for ax, (key, title) in zip(axes, metrics):
        for label in ("base", "zip2zip"):
            ax.plot(clients, [entry[label][key] for entry in summary], marker="o", label=label)
        ax.set_title(title + " (median of rounds)", fontsize=9)
    ratio_ax = axes[-1]
    for key, label in (
        ("base_tokens_per_s", "all requests"),
        ("code_decode_base_tokens_per_s", "code, decoding"),
        ("chat_decode_base_tokens_per_s", "chat, decoding"),
    ):
        ratio_ax.plot(
            clients, [entry[f"zip2zip_over_base_{key}"] for entry in summary], marker="o", label=label
        )
    ratio_ax.axhline(1.0, color="grey", lw=0.8)
    ratio_ax.set_title("zip2zip / base base tokens/s", fontsize=9)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", default=None, help="base model folder or Hub id (default: the embedded SmolLM2)"
    )
    parser.add_argument(
        "--zip2zip", default=None, help="zip2zip model folder or Hub id (default: the shipped one)"
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument(
        "--min-requests", type=int, default=8, help="requests per level at least (half code, half chat)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every level on both models")
    parser.add_argument("--max-tokens", type=int, default=128, help="new base tokens per request")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of each server")
    parser.add_argument(
        "--zip2zip-flags",
        default="",
        help="extra `zip2zip serve` flags of the zip2zip server, e.g. '--greedy-by prefix'",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--prompt-chars",
        type=int,
        default=1500,
        help="characters of each held-out code prompt (cut at a line end)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 and 4 clients, 2 requests each, 16 tokens, one round"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests_per_client, args.min_requests = [1, 4], 1, 2
        args.max_tokens, args.rounds = 16, 1
    args.out.mkdir(parents=True, exist_ok=True)

    from zip2zip.bundled.base import default_base_path
    from zip2zip.bundled.shipped import shipped_zip2zip_path

    base = args.base or default_base_path()
    zip2zip_model = args.zip2zip or shipped_zip2zip_path()
    if zip2zip_model is None:
        raise SystemExit("serving.py: no trained model ships with this checkout; pass --zip2zip")
    models = {"base": os.fspath(base), "zip2zip": os.fspath(zip2zip_model)}
    prompts = heldout_prompts(code_chars=args.prompt_chars)
    rows = []
    with running_servers(models, args, prompts["code"][0]) as served:
        for round_ in range(args.rounds):
            order = list(models) if round_ % 2 == 0 else list(models)[::-1]
            for clients in args.clients:
                requests = max(args.min_requests, args.requests_per_client * clients)
                for label in order:
                    client, model_id = served[label]
                    row = run_level(client, model_id, clients, requests, args.max_tokens, prompts)
                    row.update(model=label, round=round_)
                    rows.append(row)
                    print(
                        f"round {round_} {label:8s} clients={clients:3d} requests={row['requests']:4d} "
                        f"req/s={row['requests_per_s']:.3f} ttft p50={row['ttft_p50_s']:.2f}s "
                        f"latency p50={row['latency_p50_s']:.2f}s p95={row['latency_p95_s']:.2f}s "
                        f"base tok/s={row['base_tokens_per_s']:.1f} (decoding: code "
                        f"{row['code_decode_base_tokens_per_s']:.1f}, chat {row['chat_decode_base_tokens_per_s']:.1f})",
                        flush=True,
                    )
    summary = summarize(rows)
    for entry in summary:
        print(
            f"clients={entry['clients']:3d} zip2zip / base (median of {entry['rounds']} rounds): all "
            f"{entry['zip2zip_over_base_base_tokens_per_s']:.3f}x, code requests "
            f"{entry['zip2zip_over_base_code_base_tokens_per_request_s']:.3f}x (decoding "
            f"{entry['zip2zip_over_base_code_decode_base_tokens_per_s']:.3f}x), chat requests "
            f"{entry['zip2zip_over_base_chat_base_tokens_per_request_s']:.3f}x (decoding "
            f"{entry['zip2zip_over_base_chat_decode_base_tokens_per_s']:.3f}x)"
        )
        if entry["zip2zip_over_base_code_decode_interval"] is not None:
            low, high = entry["zip2zip_over_base_code_decode_interval"]
            print(f"  code decoding zip2zip / base, 95% over prompts: {low:.3f}x-{high:.3f}x")
    record = {
        "settings": {
            **models,
            "clients": args.clients,
            "requests_per_client": args.requests_per_client,
            "min_requests": args.min_requests,
            "rounds": args.rounds,
            "max_tokens": args.max_tokens,
            "threads": args.threads,
            "quick": args.quick,
            "decoding": "greedy, streaming; held-out code prompts to /v1/completions, held-out chat questions to "
            "/v1/chat/completions; both servers up, taking turns level by level",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": describe_cpu()},
        },
        "summary": summary,
        "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(summary, args.out / "serving.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'serving.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
