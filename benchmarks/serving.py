"""Serving benchmark: `zip2zip serve` with the base model and with the zip2zip model, side by side.

The same server (``python -m zip2zip.cli serve``, transformers' OpenAI-compatible server) serves the base model,
then the zip2zip model; for each, 1, 4 and 16 concurrent clients send greedy streaming requests (continuations of
held-out Python files to /v1/completions and held-out chat questions to /v1/chat/completions, alternating) of
``--max-tokens`` base tokens.
Reported per model and concurrency: requests/s, p50/p95 time to first token and total latency, base tokens/s
(completion base tokens from ``usage`` over wall time). Writes ``results.json`` and ``serving.png`` under
benchmarks/results/serving/.

    python -m benchmarks.serving             # the full run (slow on CPU)
    python -m benchmarks.serving --quick     # a few requests, to check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
        jobs.append((kind, prompts[kind][(i // 2) % len(prompts[kind])]))
    lock = threading.Lock()
    done: list[dict[str, float]] = []

    def work(job: tuple[str, str]) -> None:
        result = {"kind": job[0], **one_request(client, model, job[0], job[1], max_tokens)}
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
    for kind in ("code", "chat"):  # per request: its base tokens over its own latency, summed over the kind
        mine = [r for r in done if r["kind"] == kind]
        seconds = sum(r["latency"] for r in mine)
        by_kind[f"{kind}_base_tokens_per_request_s"] = (
            sum(r["base_tokens"] for r in mine) / seconds if seconds else float("nan")
        )
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
    }


def bench_model(label: str, model: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from openai import OpenAI

    threads = ("--threads", str(args.threads)) if args.threads else ()
    process, url = start_server(model, args.out / f"server-{label}.log", *threads)
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=REQUEST_TIMEOUT, max_retries=0)
        served = client.models.list().data[0].id
        prompts = heldout_prompts(code_chars=args.prompt_chars)
        one_request(client, served, "code", prompts["code"][0], 4)  # warm-up, not counted
        rows = []
        for clients in args.clients:
            requests = max(clients, args.requests_per_client * clients)
            row = run_level(client, served, clients, requests, args.max_tokens, prompts)
            row["model"] = label
            rows.append(row)
            print(
                f"{label:8s} clients={clients:3d} requests={row['requests']:4d} "
                f"req/s={row['requests_per_s']:.3f} ttft p50={row['ttft_p50_s']:.2f}s p95={row['ttft_p95_s']:.2f}s "
                f"latency p50={row['latency_p50_s']:.2f}s p95={row['latency_p95_s']:.2f}s "
                f"base tok/s={row['base_tokens_per_s']:.1f} (per request: code "
                f"{row['code_base_tokens_per_request_s']:.1f}, chat {row['chat_base_tokens_per_request_s']:.1f})",
                flush=True,
            )
        return rows
    finally:
        stop_server(process)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("requests_per_s", "requests/s"),
        ("base_tokens_per_s", "base tokens/s"),
        ("ttft_p50_s", "time to first token p50 (s)"),
        ("latency_p95_s", "latency p95 (s)"),
    ]
    labels = sorted({r["model"] for r in rows}, key=lambda m: m != "base")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    for ax, (key, title) in zip(axes, metrics):
        for label in labels:
            points = sorted((r["clients"], r[key]) for r in rows if r["model"] == label)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent clients")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend()
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
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128, help="new base tokens per request")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--prompt-chars",
        type=int,
        default=1500,
        help="characters of each held-out code prompt (cut at a line end)",
    )
    parser.add_argument("--quick", action="store_true", help="1 and 4 clients, one request each, 16 tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests_per_client, args.max_tokens = [1, 4], 1, 16
    args.out.mkdir(parents=True, exist_ok=True)

    from zip2zip.bundled.base import default_base_path
    from zip2zip.bundled.shipped import shipped_zip2zip_path

    base = args.base or default_base_path()
    zip2zip_model = args.zip2zip or shipped_zip2zip_path()
    if zip2zip_model is None:
        raise SystemExit("serving.py: no trained model ships with this checkout; pass --zip2zip")
    rows = bench_model("base", os.fspath(base), args) + bench_model("zip2zip", os.fspath(zip2zip_model), args)
    record = {
        "settings": {
            "base": os.fspath(base),
            "zip2zip": os.fspath(zip2zip_model),
            "clients": args.clients,
            "requests_per_client": args.requests_per_client,
            "max_tokens": args.max_tokens,
            "quick": args.quick,
            "decoding": "greedy, streaming; held-out code prompts to /v1/completions, held-out chat questions to /v1/chat/completions",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        },
        "rows": rows,
    }
    (args.out / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    plot(rows, args.out / "serving.png")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'serving.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
