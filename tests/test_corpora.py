"""Per-domain corpora: deterministic, disjoint splits; chunking; text extraction; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from zip2zip.corpora import debian, documents, sources, store
from zip2zip.corpora.debian import debian_tree


def test_chunks_rejoin_exactly_and_respect_the_limit() -> None:
    text = "".join(f"paragraph {i} " + "word " * (i % 50) + "\n\n" for i in range(500))
    text += "x" * 20000 + "\n" + "tail\n"
    chunks = documents.chunk_text(text, target=1000, limit=2000)
    assert "".join(chunks) == text
    assert all(len(chunk) <= 2000 for chunk in chunks)
    assert all(len(chunk) >= 1000 for chunk in chunks[:-3]), "chunks close only past the target"


def test_split_is_a_pure_function_of_the_group() -> None:
    groups = [f"group-{i}" for i in range(2000)]
    first = [documents.split_of(g) for g in groups]
    assert first == [documents.split_of(g) for g in groups]
    share = first.count("heldout") / len(groups)
    assert abs(share - documents.HELDOUT_PERCENT / 100) < 0.03


def test_bad_arguments_name_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown corpus domain 'poetry'"):
        store.load_corpus("poetry")
    with pytest.raises(ValueError, match="split must be one of"):
        store.load_corpus("code", split="test")
    with pytest.raises(ValueError, match="order must be"):
        store.load_corpus("code", order="random")


def test_cache_lives_under_the_zip2zip_cache_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZIP2ZIP_CACHE", str(tmp_path))
    assert store.corpus_dir().parent == tmp_path
    assert store.corpus_dir().name == f"corpora-{store.CORPUS_FORMAT}"


def test_handbook_extraction_keeps_prose_and_drops_navigation_and_listings() -> None:
    page = """<html><head><title>T</title></head><body><div id="banner"><span>Download</span></div>
    <ul class="docnav top"><li>Prev</li></ul><div class="toc"><dl><dt>1. Intro</dt></dl></div>
    <div class="section"><h2>1.1. Title</h2><div class="para">Some <code>apt</code>
    running   text.</div><pre class="screen"><code>$ ls</code></pre><div class="para">More.</div></div>
    <ul class="docnav"><li>Next</li></ul></body></html>"""
    assert sources.handbook_paragraphs(page) == ["1.1. Title", "Some apt running text.", "More."]


def test_missing_debian_source_without_install_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(debian.CorpusUnavailableError, match="apt-get install no-such-package"):
        debian_tree("no-such-package", "no/such/folder/anywhere", install=False, workdir=tmp_path)


@pytest.fixture(scope="module")
def code_docs() -> list[documents.Document]:
    return store.load_documents("code", split="all", order="natural")


def test_code_splits_are_deterministic_and_disjoint(code_docs: list[documents.Document]) -> None:
    train = store.load_documents("code", "train")
    heldout = store.load_documents("code", "heldout")
    assert [d.id for d in train] == [d.id for d in store.load_documents("code", "train")]
    assert train and heldout
    assert not {d.id for d in train} & {d.id for d in heldout}
    assert not {d.text for d in train} & {d.text for d in heldout}
    assert not {d.group for d in train} & {d.group for d in heldout}, "a source file is never split"
    assert len(train) + len(heldout) == len(code_docs)
    assert 0.04 < len(heldout) / len(code_docs) < 0.2


def test_code_documents_are_stdlib_chunks(code_docs: list[documents.Document]) -> None:
    assert [d.index for d in code_docs] == list(range(len(code_docs)))
    assert all(documents.MIN_CHARS <= len(d.text) <= documents.MAX_CHARS for d in code_docs)
    assert any(d.group == "stdlib/json/decoder.py" for d in code_docs)
    assert not any("/test/" in f"/{d.group}" for d in code_docs)
    first = store.load_corpus("code", "heldout", max_docs=5)
    assert len(first) == 5 and first == store.load_corpus("code", "heldout", max_docs=5)


@pytest.mark.parametrize("domain", ["prose", "math", "multilingual"])
def test_fetched_domains_split_cleanly(domain: str) -> None:
    try:
        store.ensure_sources(domain)
    except debian.CorpusUnavailableError as error:
        pytest.skip(f"{domain} source unavailable here: {error}")
    train = store.load_documents(domain, "train")
    heldout = store.load_documents(domain, "heldout")
    assert len(train) > 100 and len(heldout) > 10
    assert not {d.text for d in train} & {d.text for d in heldout}
    assert not {d.group for d in train} & {d.group for d in heldout}
    if domain == "multilingual":
        assert {d.lang for d in train} == set(sources.MULTILINGUAL_LANGUAGES)
    if domain == "math":
        assert sum("$" in d.text for d in train) > len(train) / 2, "math text has formulas"


def test_files_rejoin_their_chunks(code_docs: list[documents.Document]) -> None:
    files = store.load_files("code", "all", order="natural")
    assert len(files) == len({d.group for d in code_docs})
    assert "".join(files) == "".join(d.text for d in code_docs)
    heldout = store.load_files("code", "heldout")
    assert heldout == store.load_files("code", "heldout") and len(heldout) < len(files)
    assert len(store.load_files("code", "heldout", max_files=3)) == 3


def test_language_filter() -> None:
    assert store.languages("code") == ["python"]
    assert store.load_corpus("code", "heldout", lang="python") == store.load_corpus("code", "heldout")
    with pytest.raises(ValueError, match="has no language 'fr-FR'"):
        store.load_corpus("code", lang="fr-FR")
