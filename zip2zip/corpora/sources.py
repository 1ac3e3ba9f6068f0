"""Per-domain text corpora for benchmarks, the training recipe and evaluation, built from local packages.

Why: the paper measures compression and quality per domain (code, math, chat, multilingual, web), on
data sets that cannot be downloaded here. These corpora come only from the Python interpreter itself and
from Debian packages, so every machine with the package registries can rebuild them bit for bit.

Domains and sources (each document is a chunk of a few thousand characters, cut at blank lines):

``code``
    The Python standard library of the running interpreter (``sysconfig`` "stdlib" folder), ``*.py``
    files outside test folders and generated tables (``encodings/``, ``pydoc_data/``). License: PSF
    License 2.0. Always available. The documents depend on the interpreter version, so the cache file
    names it.
``prose``
    *The Debian Administrator's Handbook* (Raphaël Hertzog and Roland Mas), English original, from the
    Debian package ``debian-handbook``: a book of continuous English prose about running Debian, with
    shell sessions and listings removed. License: GPL-2.0+ or CC-BY-SA-3.0.
``math``
    The PARI/GP User's Guide, tutorials and developer guide as TeX source, from the Debian package
    ``pari-doc``: number theory and algebra with inline and display formulas (elliptic curves, number
    fields, modular forms, L-functions). TeX comment lines are removed. License: GPL-2.0+.
``rust`` (an extra training domain, for the long-run mix)
    The Rust standard library (crates ``core``, ``alloc``, ``std``) of the Debian package ``rust-src``
    (Rust 1.63), ``*.rs`` files outside test and bench folders: a C-family language with types, braces and
    long doc comments, added because a model trained on Python alone read the unseen Go poorly. License:
    MIT or Apache-2.0.
``multilingual``
    The same handbook in ten translations (``de-DE es-ES fr-FR it-IT pt-BR nl-NL ja-JP zh-CN ar-MA
    ru-RU``, close to the FineWeb-2 languages of the paper's training mix). Translations are partial;
    paragraphs left identical to the English original are dropped, so only translated text remains.
    License: GPL-2.0+ or CC-BY-SA-3.0.
"""

from __future__ import annotations

import html.parser
import re
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

from zip2zip.corpora.debian import CorpusUnavailableError, debian_tree
from zip2zip.corpora.documents import Document, _finish, chunk_text

# Training domains beyond the four above, added to broaden the long-run mix: with Python as its only
# programming language a model read the unseen Go 1.29x worse than its base while matching it elsewhere.
EXTRA_DOMAINS: tuple[str, ...] = ("rust",)


# Domains that no training mix may use: they measure how a model generalises to text it never saw.
UNSEEN_DOMAINS: tuple[str, ...] = ("go",)


HANDBOOK_PACKAGE = "debian-handbook"


HANDBOOK_HTML = "usr/share/doc/debian-handbook/html"


HANDBOOK_ENGLISH = "en-US"


MULTILINGUAL_LANGUAGES: tuple[str, ...] = (
    "de-DE",
    "es-ES",
    "fr-FR",
    "it-IT",
    "pt-BR",
    "nl-NL",
    "ja-JP",
    "zh-CN",
    "ar-MA",
    "ru-RU",
)


# Unseen domain "go": the Go standard library (BSD-3-Clause), a programming language absent from the training
# mix (its code is Python). Non-test sources of a fixed set of packages, all held out.
GO_PACKAGE = "golang-1.19-src"


GO_SRC = "usr/share/go-1.19/src"


GO_DIRS: tuple[str, ...] = (
    "bufio", "bytes", "container", "encoding/csv", "encoding/json", "errors", "flag", "fmt", "html",
    "io", "math/big", "net/url", "path", "regexp", "sort", "strconv", "strings", "text/template", "time",
    "unicode",
)  # fmt: skip


# Extra domain "rust": the Rust standard library (core, alloc, std; MIT or Apache-2.0), a C-family language
# with braces, types and doc comments; source files outside test and bench folders.
RUST_PACKAGE = "rust-src"


RUST_SRC = "usr/src/rustc-1.63.0/library"


RUST_CRATES: tuple[str, ...] = ("core", "alloc", "std")


RUST_EXCLUDED_DIRS = frozenset({"tests", "benches", "test"})


PARI_PACKAGE = "pari-doc"


PARI_TEX = "usr/share/pari/doc"


PARI_FILES = re.compile(r"^(usersch\d+|tutorial|tutorial-mf|develop|appb|appd)\.tex$")


# Tests (fixtures in odd encodings, deliberately broken files), installed packages, and generated tables
# (charmap codecs, the pydoc topic dump) whose repetitiveness would overstate the compression of code.
CODE_EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "encodings", "pydoc_data"}
)


def _build_code(install: bool) -> dict[str, list[Document]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise CorpusUnavailableError(f"The Python standard library folder {root} does not exist.")
    records = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if CODE_EXCLUDED_DIRS.intersection(relative.parts[:-1]):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a few test fixtures use other encodings on purpose
        name = relative.as_posix()
        for part, chunk in enumerate(chunk_text(text)):
            records.append((f"stdlib/{name}#{part}", f"stdlib/{name}", "python", chunk))
    return {"code": _finish(records)}


def _with_debian_tree(
    package: str, subdir: str, install: bool, build: Callable[[Path], dict[str, list[Document]]]
) -> dict[str, list[Document]]:
    with tempfile.TemporaryDirectory(prefix="zip2zip-corpus-") as tmp:
        return build(debian_tree(package, subdir, install, Path(tmp)))


class _HandbookText(html.parser.HTMLParser):
    """Extract the running text of a DocBook/Publican HTML page: one paragraph per line.

    Skips navigation (banner, title bar, prev/next lists, tables of contents), ``<pre>`` listings and
    shell sessions, and the ``<head>``.
    """

    BLOCKS = frozenset(
        [
            "p",
            "div",
            "li",
            "dt",
            "dd",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "table",
            "title",
            "blockquote",
            "br",
            "section",
            "ul",
            "ol",
            "dl",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_tag: str | None = None
        self.skip_depth = 0

    def _skipped(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        return (
            tag in ("pre", "head", "script", "style")
            or values.get("id") in ("banner", "title")
            or bool(classes & {"docnav", "toc"})
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is not None:
            self.skip_depth += tag == self.skip_tag
            return
        if self._skipped(tag, attrs):
            self.skip_tag, self.skip_depth = tag, 1
            return
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip_tag is None and tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag is not None:
            self.skip_depth -= tag == self.skip_tag
            if self.skip_depth == 0:
                self.skip_tag = None
            return
        if tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_tag is None:  # line breaks inside a paragraph are source formatting, not text
            self.parts.append(re.sub(r"\s+", " ", data))

    def paragraphs(self) -> list[str]:
        lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(self.parts).split("\n"))
        return [line for line in lines if line]


def handbook_paragraphs(html_text: str) -> list[str]:
    """Paragraphs of one handbook page, in reading order."""
    parser = _HandbookText()
    parser.feed(html_text)
    parser.close()
    return parser.paragraphs()


def _build_handbook(install: bool) -> dict[str, list[Document]]:
    return _with_debian_tree(HANDBOOK_PACKAGE, HANDBOOK_HTML, install, _handbook_documents)


def _handbook_documents(root: Path) -> dict[str, list[Document]]:
    english_dir = root / HANDBOOK_ENGLISH
    pages = sorted(path.name for path in english_dir.glob("*.html"))
    if not pages:
        raise CorpusUnavailableError(f"No English handbook pages in {english_dir}.")
    english = {name: handbook_paragraphs(_read(english_dir / name)) for name in pages}
    prose = []
    for name in pages:
        text = "\n\n".join(english[name]) + "\n"
        prose.extend(_chunk_records(f"handbook/{HANDBOOK_ENGLISH}/{name}", name, HANDBOOK_ENGLISH, text))
    multilingual = []
    for lang in MULTILINGUAL_LANGUAGES:
        for name in pages:
            path = root / lang / name
            if not path.is_file():
                continue
            original = set(english[name])
            translated = [p for p in handbook_paragraphs(_read(path)) if p not in original]
            if translated:
                text = "\n\n".join(translated) + "\n"
                multilingual.extend(_chunk_records(f"handbook/{lang}/{name}", name, lang, text))
    return {"prose": _finish(prose), "multilingual": _finish(multilingual)}


def _chunk_records(doc_id: str, group: str, lang: str, text: str) -> list[tuple[str, str, str, str]]:
    return [(f"{doc_id}#{part}", group, lang, chunk) for part, chunk in enumerate(chunk_text(text))]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def _build_math(install: bool) -> dict[str, list[Document]]:
    return _with_debian_tree(PARI_PACKAGE, PARI_TEX, install, _pari_documents)


def _pari_documents(root: Path) -> dict[str, list[Document]]:
    files = sorted(path for path in root.glob("*.tex") if PARI_FILES.match(path.name))
    if not files:
        raise CorpusUnavailableError(f"No PARI/GP manual sources in {root}.")
    records = []
    for path in files:
        lines = _read(path).splitlines(keepends=True)
        text = "".join(line for line in lines if not line.lstrip().startswith("%"))
        for part, chunk in enumerate(chunk_text(text)):
            doc_id = f"pari/{path.name}#{part}"
            records.append((doc_id, doc_id, "tex", chunk))
    return {"math": _finish(records)}


def _build_rust(install: bool) -> dict[str, list[Document]]:
    return _with_debian_tree(RUST_PACKAGE, RUST_SRC, install, _rust_documents)


def _rust_documents(root: Path) -> dict[str, list[Document]]:
    records = []
    for crate in RUST_CRATES:
        source = root / crate / "src"
        for path in sorted(source.rglob("*.rs")):
            relative = path.relative_to(source)
            if RUST_EXCLUDED_DIRS.intersection(relative.parts[:-1]) or path.name in (
                "tests.rs",
                "benches.rs",
            ):
                continue
            name = f"{crate}/{relative.as_posix()}"
            for part, chunk in enumerate(chunk_text(_read(path))):
                records.append((f"rust/{name}#{part}", f"rust/{name}", "rust", chunk))
    if not records:
        raise CorpusUnavailableError(f"No Rust sources under {root} ({', '.join(RUST_CRATES)}).")
    return {"rust": _finish(records)}


def _build_go(install: bool) -> dict[str, list[Document]]:
    return _with_debian_tree(GO_PACKAGE, GO_SRC, install, _go_documents)


def _go_documents(root: Path) -> dict[str, list[Document]]:
    records = []
    for folder in GO_DIRS:
        for path in sorted((root / folder).glob("*.go")):
            if path.name.endswith("_test.go"):
                continue
            name = path.relative_to(root).as_posix()
            for part, chunk in enumerate(chunk_text(_read(path))):
                records.append((f"go/{name}#{part}", f"go/{name}", "go", chunk))
    if not records:
        raise CorpusUnavailableError(f"No Go sources under {root} ({GO_DIRS[0]}, ...).")
    return {"go": _finish(records)}


_BUILDERS: dict[str, Callable[[bool], dict[str, list[Document]]]] = {
    "code": _build_code,
    "prose": _build_handbook,
    "multilingual": _build_handbook,
    "math": _build_math,
    "go": _build_go,
    "rust": _build_rust,
}
