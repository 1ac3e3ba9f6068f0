"""The corpora on disk: loading a domain's documents or whole files, building (and fetching) them on first use.

Held-out split: a document belongs to the held-out split when the SHA-256 of its *group* falls in the
first ``HELDOUT_PERCENT`` percent; the group is the source file for code, the handbook section (the same
for every language, so a held-out section's translations are held out too), and the chunk itself for the
PARI manual (a dozen very unequal files would make a lopsided split). Identical texts are kept once per
domain, so the two splits never share a document.

Sources that are not installed are fetched with ``apt-get download`` (no root needed; after one
``apt-get update`` when the package lists are empty and we are root) and unpacked with ``dpkg-deb`` into
a temporary folder. Only the extracted text is kept: ``<cache root>/corpora-v1/<domain>.jsonl.gz``, with
the cache root of :func:`zip2zip.utils.cache.cache_root`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from zip2zip.corpora.documents import SPLITS, Document
from zip2zip.corpora.sources import _BUILDERS, EXTRA_DOMAINS, UNSEEN_DOMAINS
from zip2zip.recipe import DOMAINS
from zip2zip.utils.cache import cache_root

CORPUS_FORMAT = "v1"  # bump when extraction or chunking changes: old caches are then ignored


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
