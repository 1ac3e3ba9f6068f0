"""zip2zip, in the browser: hypertokens forming, the codebook growing, fewer decoding steps.

Run it locally on the embedded default model (offline) with ``python spaces/zip2zip-demo/app.py``, or on
any zip2zip repo with ``--model FOLDER_OR_HUB_ID``. On a Hugging Face Space it runs as ``app.py`` and reads
the model from ``$ZIP2ZIP_DEMO_MODEL`` (default: the model the package ships).

:func:`build_demo` takes the models as objects, so tests build the page around tiny in-process models.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: nothing leaves the machine
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

APP_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(APP_DIR))
try:
    import zip2zip  # noqa: F401
except ImportError:  # a clone without `pip install -e .`: use the package two folders up
    sys.path.insert(0, str(APP_DIR.parent.parent))

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402
from demo_compress import MAX_CODEBOOK_RANGE, MAX_SUBTOKENS_RANGE, DemoInputError, compress  # noqa: E402
from demo_generate import (  # noqa: E402
    DEFAULT_NEW_TOKENS,
    MAX_NEW_TOKENS,
    comparison_markdown,
    generate_side_by_side,
)
from demo_models import DemoModels, load_models  # noqa: E402
from demo_results import ResultsPage, load_results  # noqa: E402

logger = logging.getLogger("zip2zip.demo")

EXAMPLE_TEXT = (
    "def add(a, b):\n    return a + b\n\n"
    "def sub(a, b):\n    return a - b\n\n"
    "def mul(a, b):\n    return a * b\n\n"
    "def div(a, b):\n    return a / b\n\n"
    "The cat sat on the mat. The cat sat on the hat. The cat sat on the mat again.\n"
)
EXAMPLE_PROMPT = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n\ndef mul(a, b):\n"

CSS = """
.z2z-pane { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace;
            font-size: 13px; line-height: 1.7; max-height: 420px; overflow: auto; margin: 0; padding: 8px;
            border: 1px solid #ddd; border-radius: 6px; background: #fff; color: #111; }
.z2z-hyper { border-radius: 3px; outline: 1px solid rgba(0,0,0,.15); }
"""
THEME = gr.themes.Default(  # system fonts: the default theme would fetch web fonts
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)


def _message(error: Exception) -> str:
    """What a visitor sees instead of a stack trace."""
    if isinstance(error, DemoInputError):
        return f"**Please check the input:** {error}"
    logger.exception("request failed")
    return f"**Something went wrong** ({type(error).__name__}): {error}"


def _counts_markdown(counts: dict[str, Any]) -> str:
    return "| measure | value |\n|---|---:|\n" + "\n".join(
        f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in counts.items()
    )


def _header(models: DemoModels) -> str:
    V = models.zip2zip_tokenizer.base_vocab_size
    tok = models.zip2zip_tokenizer
    lines = [
        "# zip2zip: adaptive tokenization, live",
        "An online LZW compressor merges runs of base tokens that repeat in a text into per-text "
        "**hypertokens** (ids from "
        f"{V} on); the zip2zip model reads and writes them, so prompts take fewer positions and answers fewer "
        "decoding steps.",
        f"zip2zip model: **{models.name}** (M = {tok.max_subtokens} base tokens per hypertoken at most, "
        f"C = {tok.max_codebook_size} hypertokens per text at most); base model: **{models.base_name}**.",
    ]
    if not models.trained:
        lines.append(
            "**Note: this zip2zip model is untrained** (fresh hyper-encoders): compression and step counts are "
            "real, its text is not that of a trained model."
        )
    return "\n\n".join(lines)


def build_demo(models: DemoModels, results: ResultsPage | None = None) -> gr.Blocks:
    """The page: Compress, Generate and Results tabs around ``models`` (queue it with :func:`launch`)."""
    tok = models.zip2zip_tokenizer

    def on_compress(text: str, m: Any, c: Any, progress: gr.Progress = gr.Progress()):  # noqa: B008
        try:
            progress(0.1, desc="tokenizing and compressing")
            result = compress(tok, text, m, c)
            progress(0.9, desc="rendering")
        except Exception as error:
            return _message(error), "", "", "", None, None
        growth = pd.DataFrame(result.growth, columns=["codes read", "codebook entries"])
        rows = pd.DataFrame(
            result.codebook_rows, columns=["id", "created at code", "base tokens", "constituents", "uses"]
        )
        status = (
            f"{result.counts['hypertokens']} hypertokens; {result.counts['base tokens']} base tokens became "
            f"{result.counts['codes']} codes."
        )
        return status, _counts_markdown(result.counts), result.base_html, result.zip2zip_html, rows, growth

    def on_generate(prompt: str, chat: bool, new_tokens: Any) -> Iterator[tuple[str, str, str, str]]:
        try:
            frame = None
            for frame in generate_side_by_side(models, prompt, chat, new_tokens):
                who = "zip2zip model" if frame.base.done else "base model"
                status = "Done." if frame.done else f"Generating with the {who}..."
                yield status, frame.base_html, frame.zip2zip_html, comparison_markdown(frame)
        except Exception as error:
            yield _message(error), gr.skip(), gr.skip(), gr.skip()

    with gr.Blocks(title="zip2zip demo") as demo:
        gr.Markdown(_header(models), elem_id="header")
        with gr.Tabs():
            with gr.Tab("Compress", id="compress"):
                gr.Markdown(
                    "Paste a text: left, the base tokenizer's tokens (alternating grey); right, zip2zip's codes, "
                    "with every hypertoken coloured (hover one to see its constituents). Repetitive text "
                    "(code, lists, tables) compresses most. M and C apply here only: the model keeps its own."
                )
                text = gr.Textbox(
                    value=EXAMPLE_TEXT, lines=8, max_lines=20, label="Text", elem_id="compress-text"
                )
                with gr.Row():
                    m = gr.Slider(
                        *MAX_SUBTOKENS_RANGE,
                        value=tok.max_subtokens,
                        step=1,
                        label="M: base tokens per hypertoken at most",
                        elem_id="compress-m",
                    )
                    c = gr.Slider(
                        *MAX_CODEBOOK_RANGE,
                        value=tok.max_codebook_size,
                        step=1,
                        label="C: hypertokens per text at most",
                        elem_id="compress-c",
                    )
                run_compress = gr.Button("Compress", variant="primary", elem_id="compress-button")
                compress_status = gr.Markdown(elem_id="compress-status")
                with gr.Row():
                    counts = gr.Markdown(elem_id="compress-counts")
                    growth = gr.LinePlot(
                        x="codes read",
                        y="codebook entries",
                        title="The codebook as it grows",
                        height=260,
                        elem_id="compress-growth",
                    )
                with gr.Row(equal_height=False):
                    with gr.Column():
                        gr.Markdown("**Base tokenizer**")
                        base_view = gr.HTML(elem_id="compress-base")
                    with gr.Column():
                        gr.Markdown("**zip2zip** (hypertokens highlighted)")
                        zip_view = gr.HTML(elem_id="compress-zip2zip")
                codebook = gr.Dataframe(
                    label="Codebook, in creation order", elem_id="compress-codebook", max_height=320
                )
                run_compress.click(
                    on_compress,
                    [text, m, c],
                    [compress_status, counts, base_view, zip_view, codebook, growth],
                    concurrency_limit=4,
                )
            with gr.Tab("Generate", id="generate"):
                gr.Markdown(
                    "The base model and the zip2zip model continue the same prompt (greedy), one after the "
                    f"other, each for the same number of new base tokens (at most {MAX_NEW_TOKENS}). One request "
                    "runs at a time; others wait in the queue."
                )
                prompt = gr.Textbox(value=EXAMPLE_PROMPT, lines=5, label="Prompt", elem_id="generate-prompt")
                with gr.Row():
                    chat = gr.Checkbox(
                        value=False, label="Chat (apply the chat template)", elem_id="generate-chat"
                    )
                    new_tokens = gr.Slider(
                        1,
                        MAX_NEW_TOKENS,
                        value=DEFAULT_NEW_TOKENS,
                        step=1,
                        label="New base tokens",
                        elem_id="generate-tokens",
                    )
                run_generate = gr.Button("Generate", variant="primary", elem_id="generate-button")
                generate_status = gr.Markdown(elem_id="generate-status")
                with gr.Row(equal_height=False):
                    with gr.Column():
                        gr.Markdown("**Base model**")
                        base_out = gr.HTML(elem_id="generate-base")
                    with gr.Column():
                        gr.Markdown("**zip2zip model** (hypertokens highlighted)")
                        zip_out = gr.HTML(elem_id="generate-zip2zip")
                comparison = gr.Markdown(elem_id="generate-comparison")
                run_generate.click(
                    on_generate,
                    [prompt, chat, new_tokens],
                    [generate_status, base_out, zip_out, comparison],
                    concurrency_limit=1,
                    concurrency_id="models",
                )
            with gr.Tab("Results", id="results"):
                _results_tab(results)
    return demo


def _results_tab(results: ResultsPage | None) -> None:
    if results is None:
        gr.Markdown(
            "No measurements found (benchmarks/RESULTS.md, or RESULTS.md beside app.py). Regenerate them with "
            "`python -m benchmarks.release`.",
            elem_id="results-missing",
        )
        return
    gr.Markdown(
        "The shipped model against its base, measured once with `benchmarks.release` "
        f"(`{Path(results.source).name}`):\n\n{results.intro}",
        elem_id="results-intro",
    )
    for section in results.sections:
        gr.Markdown(f"## {section.title}\n\n{section.markdown}", elem_classes=["results-section"])
        for caption, path in section.images:
            gr.Image(path, label=caption, show_label=True, interactive=False, elem_classes=["results-plot"])


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, **kwargs: Any) -> str:
    """Queue and start ``demo`` without blocking; returns its local URL. Nothing is shared or fetched."""
    demo.queue(default_concurrency_limit=1, max_size=32)
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        share=False,
        quiet=True,
        show_error=False,
        ssr_mode=False,
        mcp_server=False,
        theme=THEME,
        css=CSS,
        footer_links=[],
        **kwargs,
    )
    return url


def set_threads(threads: int | None = None) -> int:
    """Torch CPU threads for the page (:func:`zip2zip.utils.hardware.set_cpu_threads`: by default the idle cores)."""
    from zip2zip.utils.hardware import set_cpu_threads

    return set_cpu_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The zip2zip web demo (Gradio).")
    parser.add_argument(
        "--model",
        default=os.environ.get("ZIP2ZIP_DEMO_MODEL"),
        help="zip2zip model folder or Hub repo id (default: $ZIP2ZIP_DEMO_MODEL, else the shipped model)",
    )
    parser.add_argument(
        "--base", default=None, help="base model folder or Hub id (default: the one it names)"
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: the idle cores)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the server's own local health checks
    set_threads(args.threads)
    print("Loading the models (the first run assembles the shipped model once, about 20 s)...", flush=True)
    models = load_models(args.model, args.base)
    demo = build_demo(models, load_results())
    url = launch(demo, args.host, args.port)
    print(f"zip2zip demo running at {url} (Ctrl+C to stop)", flush=True)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
