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

Held-out split: a document belongs to the held-out split when the SHA-256 of its *group* falls in the
first ``HELDOUT_PERCENT`` percent; the group is the source file for code, the handbook section (the same
for every language, so a held-out section's translations are held out too), and the chunk itself for the
PARI manual (a dozen very unequal files would make a lopsided split). Identical texts are kept once per
domain, so the two splits never share a document.

Sources that are not installed are fetched with ``apt-get download`` (no root needed; after one
``apt-get update`` when the package lists are empty and we are root) and unpacked with ``dpkg-deb`` into
a temporary folder. Only the extracted text is kept: ``<cache root>/corpora-v1/<domain>.jsonl.gz``, with
the cache root of :func:`zip2zip.defaults.cache_root`.
"""

from __future__ import annotations

import gzip
import hashlib
import html.parser
import json
import os
import re
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from .debian_packages import CorpusUnavailableError, debian_tree
from .defaults import cache_root
from .text_files import iter_text_files  # the user's own files; kept importable from here

__all__ = [
    "DOMAINS",
    "EXTRA_DOMAINS",
    "HELDOUT_PERCENT",
    "MULTILINGUAL_LANGUAGES",
    "UNSEEN_DOMAINS",
    "CorpusUnavailableError",
    "Document",
    "corpus_dir",
    "ensure_sources",
    "iter_text_files",
    "languages",
    "load_corpus",
    "load_documents",
    "load_files",
    "split_of",
]

DOMAINS: tuple[str, ...] = ("code", "prose", "math", "multilingual")
# Training domains beyond the four above, added to broaden the long-run mix: with Python as its only
# programming language a model read the unseen Go 1.29x worse than its base while matching it elsewhere.
EXTRA_DOMAINS: tuple[str, ...] = ("rust",)
# Domains that no training mix may use: they measure how a model generalises to text it never saw.
UNSEEN_DOMAINS: tuple[str, ...] = ("go",)
SPLITS: tuple[str, ...] = ("train", "heldout", "all")
HELDOUT_PERCENT = 10
CORPUS_FORMAT = "v1"  # bump when extraction or chunking changes: old caches are then ignored
TARGET_CHARS = 4000  # a chunk closes at the first blank line past this many characters
MAX_CHARS = 8000  # and is cut harder (at lines, then anywhere) past this many
MIN_CHARS = 64  # shorter chunks (empty __init__.py files, lone headings) are dropped

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


@dataclass(frozen=True)
class Document:
    """One chunk of a source file: ``id`` is unique, ``group`` decides the split, ``index`` is its
    position in the domain's natural (reading) order."""

    id: str
    group: str
    lang: str
    index: int
    text: str

    @property
    def split(self) -> str:
        return split_of(self.group)


def split_of(group: str) -> str:
    """Return ``"heldout"`` or ``"train"`` for a split group, a pure function of the group name."""
    digest = hashlib.sha256(f"zip2zip-split:{group}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") % 100 < HELDOUT_PERCENT else "train"


def corpus_dir() -> Path:
    """Folder of the extracted corpora (created on first write)."""
    return cache_root() / f"corpora-{CORPUS_FORMAT}"


def load_corpus(
    domain: str,
    split: str = "train",
    max_docs: int | None = None,
    order: str = "hashed",
    lang: str | None = None,
) -> list[str]:
    """Return the texts of :func:`load_documents`."""
    return [doc.text for doc in load_documents(domain, split, max_docs, order, lang)]


def load_documents(
    domain: str,
    split: str = "train",
    max_docs: int | None = None,
    order: str = "hashed",
    lang: str | None = None,
) -> list[Document]:
    """Load one domain's documents, building its cache (and fetching its source) on first use.

    Args:
        domain: one of :data:`DOMAINS`.
        split: ``"train"``, ``"heldout"`` or ``"all"``.
        max_docs: keep only the first this many documents (after ordering).
        order: ``"hashed"`` (a fixed pseudo-random order, so any prefix is a fair sample) or
            ``"natural"`` (reading order: file by file, chunk by chunk).
        lang: keep only this language (``"fr-FR"``; ``"en-US"`` for prose, ``"python"`` for code,
            ``"tex"`` for math); see :func:`languages`.
    """
    _check_domain(domain)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if order not in ("hashed", "natural"):
        raise ValueError(f"order must be 'hashed' or 'natural', got {order!r}")
    if max_docs is not None and max_docs < 0:
        raise ValueError(f"max_docs must be >= 0 or None, got {max_docs}")
    docs = _read_cache(ensure_sources(domain))
    if lang is not None:
        known = sorted({doc.lang for doc in docs})
        if lang not in known:
            raise ValueError(f"domain {domain!r} has no language {lang!r}; it has {known}")
        docs = [doc for doc in docs if doc.lang == lang]
    if domain in UNSEEN_DOMAINS:
        if split == "train":
            raise ValueError(
                f"domain {domain!r} is never used for training (it measures generalisation to unseen text); "
                "load its 'heldout' split"
            )
    else:
        docs = [doc for doc in docs if split == "all" or doc.split == split]
    if order == "hashed":
        docs.sort(key=lambda doc: hashlib.sha256(doc.id.encode()).digest())
    return docs if max_docs is None else docs[:max_docs]


def languages(domain: str) -> list[str]:
    """The languages present in ``domain``, in reading order."""
    return list(dict.fromkeys(doc.lang for doc in _read_cache(ensure_sources(domain))))


def load_files(
    domain: str,
    split: str = "train",
    max_files: int | None = None,
    order: str = "hashed",
    lang: str | None = None,
) -> list[str]:
    """Return whole source files (a handbook page, a stdlib module, a TeX chapter) instead of chunks.

    Why: chunks are about 1000 tokens, too short to fill a 2048-token context. Consecutive chunks of
    one file are joined back (the extracted text of the file, less tiny or duplicate chunks). Where a
    split holds only some chunks of a file (the PARI manual is split chunk by chunk), each run of
    consecutive chunks is one text. The other arguments work as in :func:`load_documents`, on files.
    """
    if max_files is not None and max_files < 0:
        raise ValueError(f"max_files must be >= 0 or None, got {max_files}")
    runs: list[tuple[str, list[str]]] = []
    previous: tuple[str, int] | None = None
    for doc in load_documents(domain, split, order="natural", lang=lang):
        source = doc.id.rpartition("#")[0]
        if previous == (source, doc.index - 1):  # the next chunk of the domain, from the same file
            runs[-1][1].append(doc.text)
        else:
            runs.append((doc.id, [doc.text]))
        previous = (source, doc.index)
    if order == "hashed":
        runs.sort(key=lambda run: hashlib.sha256(run[0].encode()).digest())
    texts = ["".join(parts) for _, parts in runs]
    return texts if max_files is None else texts[:max_files]


def ensure_sources(domain: str, install: bool = True) -> Path:
    """Make sure ``domain``'s extracted text is cached, fetching its source if needed; return the file.

    With ``install=False`` a missing source raises :class:`CorpusUnavailableError` instead of being
    fetched.
    """
    _check_domain(domain)
    path = _cache_path(domain)
    if path.is_file():
        return path
    builder = _BUILDERS[domain]
    corpora = builder(install)
    for name, docs in corpora.items():
        _write_cache(_cache_path(name), docs)
    return path


# ---------------------------------------------------------------------------------------------- cache


def _check_domain(domain: str) -> None:
    known = DOMAINS + EXTRA_DOMAINS + UNSEEN_DOMAINS
    if domain not in known:
        raise ValueError(f"unknown corpus domain {domain!r}; choose one of {known}")


def _cache_path(domain: str) -> Path:
    if domain == "code":  # the standard library differs between interpreter versions
        version = ".".join(map(str, sys.version_info[:3]))
        return corpus_dir() / f"code-py{version}.jsonl.gz"
    return corpus_dir() / f"{domain}.jsonl.gz"


def _write_cache(path: Path, docs: list[Document]) -> None:
    """Write atomically: a reader sees either no file or a complete one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            for doc in docs:
                out.write((json.dumps(asdict(doc), ensure_ascii=False) + "\n").encode())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp files are private; the cache is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> list[Document]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [Document(**json.loads(line)) for line in lines]


def _finish(records: Iterable[tuple[str, str, str, str]]) -> list[Document]:
    """Turn ``(id, group, lang, text)`` records into documents: drop tiny and duplicate texts, number them."""
    docs: list[Document] = []
    seen: set[str] = set()
    for doc_id, group, lang, text in records:
        if len(text.strip()) < MIN_CHARS or text in seen:
            continue
        seen.add(text)
        docs.append(Document(doc_id, group, lang, len(docs), text))
    return docs


def chunk_text(text: str, target: int = TARGET_CHARS, limit: int = MAX_CHARS) -> list[str]:
    """Cut ``text`` into chunks of about ``target`` characters at blank lines, none longer than ``limit``.

    Joining the chunks gives back ``text`` exactly.
    """
    pieces = re.split(r"(?<=\n\n)", text)  # keep the blank line with the paragraph it ends
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        for part in _hard_split(piece, limit):
            if current and len(current) + len(part) > limit:
                chunks.append(current)
                current = ""
            current += part
            if len(current) >= target:
                chunks.append(current)
                current = ""
    if current:
        chunks.append(current)
    return chunks


def _hard_split(piece: str, limit: int) -> Iterator[str]:
    """Split a paragraph longer than ``limit`` at line ends, and a line longer than that anywhere."""
    if len(piece) <= limit:
        yield piece
        return
    buffer = ""
    for line in piece.splitlines(keepends=True):
        while len(line) > limit:
            if buffer:
                yield buffer
                buffer = ""
            yield line[:limit]
            line = line[limit:]
        if len(buffer) + len(line) > limit:
            yield buffer
            buffer = ""
        buffer += line
    if buffer:
        yield buffer


# ----------------------------------------------------------------------------------------------- code


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


# ------------------------------------------------------------------------------------------- handbook


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


# ----------------------------------------------------------------------------------------------- math


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


# ------------------------------------------------------------------------------------- extra: Rust


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


# -------------------------------------------------------------------------------------- unseen: Go


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
