"""The web demo in a real browser: headless Chromium (Debian's package) driven by Playwright.

The app is started on 127.0.0.1 by the test, around tiny in-process models, and visited like a person
would: paste a repetitive text and compress it, generate, open the results. A slow test does the same on
the real shipped model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _web_demo import REPETITIVE, import_app, tiny_demo_models

PROMPT = "the cat sat on the mat. the cat"
NEW_TOKENS = 12


def _need_browser():
    app = import_app()
    pytest.importorskip("playwright", reason="the browser tests need playwright (pip install -e '.[dev]')")
    import demo_browser

    if demo_browser.chromium_path() is None:
        pytest.skip("no Chromium: `apt-get install chromium` (make setup installs it)")
    return app, demo_browser


def _tour(models, tmp_path_factory, text, prompt, new_tokens):
    app, demo_browser = _need_browser()
    from demo_results import load_results

    demo = app.build_demo(models, load_results())
    url = app.launch(demo, host="127.0.0.1", port=demo_browser.free_port())
    try:
        assert url.startswith("http://127.0.0.1:")
        return demo_browser.run_tour(url, text, prompt, new_tokens, tmp_path_factory.mktemp("shots"))
    finally:
        demo.close()


@pytest.fixture(scope="module")
def tiny_models():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_demo_models()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tour(tiny_models, tmp_path_factory):
    return _tour(tiny_models, tmp_path_factory, REPETITIVE, PROMPT, NEW_TOKENS)


def test_highlighted_hypertokens_in_the_page_are_the_tokenizers(tour, tiny_models):
    tok = tiny_models.zip2zip_tokenizer
    codes = tok(REPETITIVE, add_special_tokens=False)["input_ids"]
    expected = sum(c >= tok.base_vocab_size for c in codes)
    assert expected > 5
    assert tour.hypertokens_in_page == expected
    assert f"{expected} hypertokens" in tour.compress_status


def test_bad_input_gets_a_message_not_a_stack_trace(tour):
    assert "empty" in tour.empty_text_status and "Traceback" not in tour.empty_text_status
    assert "at most 50,000" in tour.oversize_status and "Traceback" not in tour.oversize_status


def test_streamed_text_ends_as_the_final_text(tour, tiny_models):
    assert tour.generate_status.strip() == "Done."
    assert len(tour.streamed) >= 2, "the zip2zip pane should update while generating"
    assert all(tour.final_zip2zip.startswith(s) for s in tour.streamed)
    assert tour.streamed[-1] == tour.final_zip2zip
    z_tok = tiny_models.zip2zip_tokenizer
    enc = z_tok(PROMPT, return_tensors="pt")
    out = tiny_models.zip2zip_model.generate(**enc, max_new_base_tokens=NEW_TOKENS, do_sample=False)
    assert tour.final_zip2zip == z_tok.decode(out[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "decoding steps" in tour.comparison and "time per byte" in tour.comparison


def test_every_tab_is_screenshotted_and_nothing_leaves_the_machine(tour):
    assert tour.results_images >= 1, "the Results tab shows the plots of RESULTS.md"
    for name in ("compress", "generate", "results"):
        with open(tour.screenshots[name], "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert tour.outside_requests == []


@pytest.mark.slow
def test_the_shipped_model_in_the_browser(tmp_path_factory):
    """The same visit on the real shipped zip2zip model and the embedded SmolLM2 (about a minute)."""
    _need_browser()
    from demo_models import load_models

    models = load_models()
    text = Path(__file__).read_text(encoding="utf-8")[:3000]
    tour = _tour(models, tmp_path_factory, text, "def fib(n):\n", 16)
    tok = models.zip2zip_tokenizer
    codes = tok(text, add_special_tokens=False)["input_ids"]
    assert tour.hypertokens_in_page == sum(c >= tok.base_vocab_size for c in codes) > 20
    assert tour.streamed and tour.streamed[-1] == tour.final_zip2zip and tour.final_base
    assert tour.outside_requests == []
