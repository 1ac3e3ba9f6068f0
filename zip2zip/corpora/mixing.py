"""Training mixes of the project's corpora: whole documents, sampled to a mix's shares of characters."""

from __future__ import annotations

from zip2zip.corpora.store import load_files
from zip2zip.recipe import MIXES


def training_mix(
    docs_per_domain: int | None = 400,
    seed: int = 0,
    domains: tuple[str, ...] | None = None,
    *,
    mix: str | dict[str, float] = "study",
    max_passes: float = 1.0,
):
    """The project's corpora sampled to a mix's shares of characters and shuffled, as a `datasets.Dataset`.

    Each text is a whole document: a source file, a handbook page, a run of a manual
    (:func:`zip2zip.corpora.store.load_files`), so its end-of-sequence token marks where a real document ends; the
    trainer splits a text longer than `max_length` codes into rows at line ends
    (`Zip2ZipSFTConfig.split_long_texts`). `docs_per_domain` caps the documents read per domain; `domains`
    default to every domain of the mix. The scarcest domain (its characters relative to its share) is read
    `max_passes` times (whole passes, then a prefix), and every other domain gets the characters of its share:
    whole passes over its documents, then a prefix of them.
    """
    from datasets import Dataset

    table = MIXES[mix] if isinstance(mix, str) else mix
    domains = tuple(table) if domains is None else domains
    unknown = sorted(set(domains) - set(table))
    if unknown:
        raise ValueError(f"domains {unknown} have no share in the mix {table}; give each domain a share")
    corpora = {domain: load_files(domain, "train", max_files=docs_per_domain) for domain in domains}
    chars = {domain: sum(map(len, texts)) for domain, texts in corpora.items()}
    total = min(chars[domain] * max_passes / table[domain] for domain in domains if chars[domain])
    texts: list[str] = []
    for domain in domains:
        texts += _passes(corpora[domain], total * table[domain])
    return Dataset.from_dict({"text": texts}).shuffle(seed=seed)


def _passes(docs: list[str], chars: float) -> list[str]:
    """Documents holding about `chars` characters: whole passes over `docs` in order, then a prefix."""
    size = sum(map(len, docs))
    if not size:
        return []
    whole, rest = divmod(chars, size)
    picked = docs * int(whole)
    for doc in docs:
        if rest < len(doc) / 2:
            break
        picked.append(doc)
        rest -= len(doc)
    return picked
