"""The web demo's functions on tiny in-process models: compress, the streamed generation, the results loader.

The page itself is tested in a real browser in test_web_demo_browser.py.
"""

from __future__ import annotations

import re
import threading

import pytest
import torch
from _web_demo import REPETITIVE, import_app, tiny_demo_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    return tiny_demo_models()


@pytest.fixture(scope="module")
def demo_modules():
    import_app()
    import demo_compress
    import demo_generate
    import demo_results

    return demo_compress, demo_generate, demo_results


def test_compress_matches_the_tokenizer_and_marks_every_hypertoken(models, demo_modules):
    demo_compress, _, _ = demo_modules
    tok = models.zip2zip_tokenizer
    result = demo_compress.compress(tok, REPETITIVE, tok.max_subtokens, tok.max_codebook_size)

    codes = tok(REPETITIVE, add_special_tokens=False)["input_ids"]
    n_hyper = sum(c >= tok.base_vocab_size for c in codes)
    assert n_hyper > 5, "a repetitive text should make hypertokens"
    assert result.counts["codes"] == len(codes) and result.counts["hypertokens"] == n_hyper
    assert result.zip2zip_html.count('class="z2z-hyper"') == n_hyper
    assert result.base_html.count('class="z2z-base"') == result.counts["base tokens"]
    assert result.counts["compression (base tokens per code)"] == pytest.approx(
        result.counts["base tokens"] / len(codes), abs=1e-3
    )
    # The panes read exactly as the text (every piece is a slice of it).
    import html

    for pane in (result.base_html, result.zip2zip_html):
        assert html.unescape(re.sub(r"<[^>]+>", "", pane)) == REPETITIVE
    # The codebook table lists every entry in creation order, and its growth curve ends at its size.
    ids = [row[0] for row in result.codebook_rows]
    assert ids == list(range(tok.base_vocab_size, tok.base_vocab_size + len(ids)))
    assert result.growth[-1] == (len(codes), len(ids))
    assert sum(row[4] for row in result.codebook_rows) == n_hyper


def test_compress_settings_change_the_codec(models, demo_modules):
    demo_compress, _, _ = demo_modules
    tok = models.zip2zip_tokenizer
    no_merging = demo_compress.compress(tok, REPETITIVE, 1, 64)
    assert (
        no_merging.counts["hypertokens"] == 0
        and no_merging.counts["codes"] == no_merging.counts["base tokens"]
    )
    small_book = demo_compress.compress(tok, REPETITIVE, 4, 3)
    assert small_book.counts["codebook entries"] == 3


@pytest.mark.parametrize(
    ("text", "m", "c", "message"),
    [
        ("", 4, 64, "empty"),
        ("   \n", 4, 64, "empty"),
        ("x" * 1_048_576, 4, 64, "1,048,576 characters"),
        ("abc", 0, 64, "M (max subtokens) must be a whole number from 1 to 16, got 0"),
        ("abc", 4, 10**6, "C (max codebook size) must be a whole number from 0 to 8192"),
        ("abc", 2.5, 64, "got 2.5"),
        ("abc", "four", 64, "got 'four'"),
    ],
)
def test_compress_rejects_bad_input_with_a_message(models, demo_modules, text, m, c, message):
    demo_compress, _, _ = demo_modules
    with pytest.raises(demo_compress.DemoInputError, match=re.escape(message)):
        demo_compress.compress(models.zip2zip_tokenizer, text, m, c)


def test_generation_streams_the_final_text_step_by_step(models, demo_modules):
    _, demo_generate, _ = demo_modules
    prompt = "the cat sat on the mat. the cat"
    frames = list(demo_generate.generate_side_by_side(models, prompt, False, 24))
    last = frames[-1]
    assert last.done and last.base.done and last.zip2zip.done

    # What streamed is, step after step, a prefix of the final text of each model.
    for side in ("base", "zip2zip"):
        texts = [getattr(f, f"{side}_text") for f in frames]
        assert all(texts[-1].startswith(t) for t in texts)

    # The final texts are those of plain generate() calls.
    tok, z_tok = models.base_tokenizer, models.zip2zip_tokenizer
    enc = tok(prompt, return_tensors="pt")
    base_out = models.base_model.generate(
        **enc, max_new_tokens=24, do_sample=False, pad_token_id=tok.pad_token_id
    )
    assert last.base_text == tok.decode(base_out[0][enc["input_ids"].shape[1] :], skip_special_tokens=True)
    z_enc = z_tok(prompt, return_tensors="pt")
    z_out = models.zip2zip_model.generate(
        **z_enc, max_new_base_tokens=24, do_sample=False, return_dict_in_generate=True
    )
    n = z_enc["input_ids"].shape[1]
    assert last.zip2zip_text == z_tok.decode(z_out.sequences[0][n:], skip_special_tokens=True)
    stats = z_out.generation_stats
    assert (
        last.zip2zip.steps == stats.steps and last.base.steps == base_out.shape[1] - enc["input_ids"].shape[1]
    )
    # Each step writes its code's expansion, the last one cut to the base-token budget. The page marks a step
    # as a hypertoken when it wrote more than one base token: a last hypertoken cut to one is a plain token there.
    codes = z_out.codes[0].tolist()
    expansions = [
        len(z_tok.codec.decode(codes[: i + 1])) - len(z_tok.codec.decode(codes[:i]))
        for i in range(n, len(codes))
    ]
    assert sum(e > 1 for e in expansions) == stats.hypertokens[0] > 0, "the loud tiny model emits hypertokens"
    written = [*expansions[:-1], stats.base_tokens[0] - sum(expansions[:-1])]
    assert last.zip2zip.hypertokens == sum(w > 1 for w in written)
    assert last.zip2zip_html.count('class="z2z-hyper"') == last.zip2zip.hypertokens
    assert last.zip2zip.seconds > 0 and last.zip2zip.ms_per_byte > 0

    note = demo_generate.comparison_markdown(last)
    assert ("The two texts differ" in note) == (last.base_text != last.zip2zip_text)
    assert f"| decoding steps | {last.base.steps} | {last.zip2zip.steps} |" in note


def test_generation_chat_prompt_and_caps(models, demo_modules):
    demo_compress, demo_generate, _ = demo_modules
    last = list(demo_generate.generate_side_by_side(models, "hello there", True, 6))[-1]
    assert last.done and last.zip2zip.prompt_positions > 2, "the chat template wraps the prompt"
    for prompt, tokens, message in [
        ("", 8, "empty"),
        ("hi", demo_generate.MAX_NEW_TOKENS + 1, "from 1 to 128"),
        ("hi", 0, "from 1 to 128"),
        ("x" * (demo_generate.MAX_PROMPT_CHARS + 1), 8, "at most 4,000"),
    ]:
        with pytest.raises(demo_compress.DemoInputError, match=message):
            next(demo_generate.generate_side_by_side(models, prompt, False, tokens))


def test_generation_holds_the_models_lock(models, demo_modules):
    """A second request waits until the first has finished with the models."""
    _, demo_generate, _ = demo_modules
    stream = demo_generate.generate_side_by_side(models, "the cat", False, 4)
    next(stream)  # the first request is generating
    assert models.lock.locked()
    waited = threading.Event()

    def second():
        with models.lock:
            waited.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not waited.wait(0.2)
    for _ in stream:
        pass
    thread.join(5)
    assert waited.is_set() and not models.lock.locked()


def test_step_streamer_skips_the_prompt_and_keeps_step_boundaries(demo_modules):
    _, demo_generate, _ = demo_modules
    streamer = demo_generate.StepStreamer(timeout=5)
    streamer.put(torch.tensor([[1, 2, 3]]))
    streamer.put(torch.tensor([7]))
    streamer.put(torch.tensor([8, 9]))
    streamer.end()
    assert list(streamer) == [[7], [8, 9]]


def test_results_loader_reads_the_shipped_measurements(demo_modules, tmp_path):
    _, _, demo_results = demo_modules
    page = demo_results.load_results()
    assert page is not None and page.source.endswith("RESULTS.md")
    titles = [s.title for s in page.sections]
    assert "Bars" in titles and any(t.startswith("2. Generation") for t in titles)
    images = [path for s in page.sections for _, path in s.images]
    assert images and all(p.endswith(".png") for p in images)
    assert all("![" not in s.markdown for s in page.sections)
    assert any("| bar | measured |" in s.markdown for s in page.sections)

    (tmp_path / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "R.md").write_text(
        "# T\nintro [raw](data.json)\n## A\n| a |\n|---|\n| 1 |\n![p](plot.png)\n![gone](missing.png)\n## B\ntext\n"
    )
    page = demo_results.load_results(tmp_path / "R.md")
    assert page.intro == "# T\nintro raw (`data.json`)"
    assert [(s.title, s.images) for s in page.sections] == [
        ("A", [("p", str(tmp_path / "plot.png"))]),
        ("B", []),
    ]
    assert demo_results.load_results(tmp_path / "none.md") is None


def test_load_models_reads_a_saved_zip2zip_repo_and_its_base(models, tmp_path):
    """The one loader: a zip2zip folder (as a Hub repo id would be) and its base model folder."""
    import_app()
    from demo_models import load_models

    models.zip2zip_model.save_pretrained(tmp_path / "z2z")
    models.zip2zip_tokenizer.save_pretrained(tmp_path / "z2z")
    models.base_model.save_pretrained(tmp_path / "base")
    models.base_tokenizer.save_pretrained(tmp_path / "base")
    loaded = load_models(str(tmp_path / "z2z"), base=str(tmp_path / "base"))
    assert loaded.name == str(tmp_path / "z2z") and not loaded.trained  # its config says it never trained
    models.zip2zip_model.config.trained = True
    models.zip2zip_model.save_pretrained(tmp_path / "z2z-trained")
    models.zip2zip_tokenizer.save_pretrained(tmp_path / "z2z-trained")
    models.zip2zip_model.config.trained = False
    assert load_models(str(tmp_path / "z2z-trained"), base=str(tmp_path / "base")).trained
    text = "the cat sat on the mat. the cat sat"
    assert loaded.zip2zip_tokenizer(text)["input_ids"] == models.zip2zip_tokenizer(text)["input_ids"]
    assert not loaded.zip2zip_model.training and not loaded.base_model.training
    with pytest.raises(ValueError, match="not a zip2zip model"):
        load_models(str(tmp_path / "base"), base=str(tmp_path / "base"))
