"""Visit the demo on the real shipped model in headless Chromium and save a screenshot of each tab.

    python spaces/zip2zip-demo/take_screenshots.py            # writes benchmarks/results/demo/*.png

It compresses the start of the codec's source file, continues a code prompt with both models and opens the
Results tab, checks what the page showed against the tokenizer, and prints a summary.
"""

from __future__ import annotations

import argparse
import sys

import app  # sets up the import paths and the offline environment first
import demo_browser
from demo_models import load_models
from demo_results import load_results

REPO = app.APP_DIR.parent.parent
PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n\n\ndef factorial(n):\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo"))
    parser.add_argument(
        "--model", default=None, help="zip2zip model folder or Hub id (default: the shipped one)"
    )
    parser.add_argument("--new-tokens", type=int, default=40)
    args = parser.parse_args(argv)

    text = (REPO / "zip2zip" / "lzw.py").read_text(encoding="utf-8")[:4000]
    app.set_threads()
    models = load_models(args.model)
    demo = app.build_demo(models, load_results())
    url = app.launch(demo, host="127.0.0.1", port=demo_browser.free_port())
    try:
        tour = demo_browser.run_tour(url, text, PROMPT, args.new_tokens, args.out)
    finally:
        demo.close()
    tok = models.zip2zip_tokenizer
    expected = sum(c >= tok.base_vocab_size for c in tok(text, add_special_tokens=False)["input_ids"])
    print(f"hypertokens highlighted in the page: {tour.hypertokens_in_page} (tokenizer: {expected})")
    print(
        f"streamed states of the zip2zip pane: {len(tour.streamed)}; last equals final: "
        f"{bool(tour.streamed) and tour.streamed[-1] == tour.final_zip2zip}"
    )
    print(tour.comparison)
    print(f"requests leaving 127.0.0.1: {tour.outside_requests or 'none'}")
    for name, path in tour.screenshots.items():
        print(f"{name}: {path}")
    ok = tour.hypertokens_in_page == expected and tour.streamed[-1] == tour.final_zip2zip
    return 0 if ok and not tour.outside_requests else 1


if __name__ == "__main__":
    sys.exit(main())
