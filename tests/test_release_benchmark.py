"""The release benchmark's multiple-choice item builder (no model needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

RELEASE = Path(__file__).resolve().parents[1] / "benchmarks" / "release.py"


@pytest.fixture(scope="module")
def release():
    spec = importlib.util.spec_from_file_location("zip2zip_release_benchmark", RELEASE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_doc(n: int) -> str:
    lines = [
        f"def function_{n}_{k}(value_{k}):\n    return value_{k} * {n + k} + offset_{n}\n" for k in range(8)
    ]
    return "\n".join(lines)


def prose_doc(n: int) -> str:
    sentences = [
        f"Sentence number {k} of document {n} says something about topic {n * 7 + k}." for k in range(9)
    ]
    return " ".join(sentences[:5]) + "\n\n" + " ".join(sentences[5:])


DOCS = {"code": [code_doc(n) for n in range(6)], "prose": [prose_doc(n) for n in range(6)]}


def test_items_are_deterministic_and_well_formed(release):
    items = release.build_next_line_items(DOCS, per_domain=10, seed=3)
    assert items == release.build_next_line_items(DOCS, per_domain=10, seed=3)
    assert items != release.build_next_line_items(DOCS, per_domain=10, seed=4)
    assert [item["domain"] for item in items] == ["code"] * 10 + ["prose"] * 10
    for item in items:
        choices, label = item["choices"], item["label"]
        assert len(choices) == 4 and 0 <= label < 4
        doc = DOCS[item["domain"]][item["doc"]]
        # the gold choice is what really follows the context in its document (separator included)
        assert item["context"] + choices[label] in doc
        assert choices[label].strip() == item["answer"].strip()
        separator = choices[label][: len(choices[label]) - len(item["answer"])]
        assert separator.strip() == ""
        distractors = [c for i, c in enumerate(choices) if i != label]
        assert len({c.strip() for c in choices}) == 4  # distractors differ from the answer and each other
        for distractor in distractors:
            assert distractor.startswith(separator)
            text = distractor[len(separator) :]
            assert text != item["answer"]
            assert text not in doc  # drawn from other documents
            assert any(text in other for other in DOCS[item["domain"]])
    assert len({item["label"] for item in items}) > 1  # the gold position is drawn, not fixed


def test_context_ends_where_the_answer_starts(release):
    items = release.build_next_line_items(DOCS, per_domain=5, context_units=2)
    code = next(item for item in items if item["domain"] == "code")
    assert code["context"].count("\n") >= 1  # two lines of context
    prose = next(item for item in items if item["domain"] == "prose")
    assert prose["answer"].startswith("Sentence number")
    assert prose["answer"].endswith(".")


def test_too_few_positions_says_what_to_do(release):
    with pytest.raises(ValueError, match="use fewer items"):
        release.build_next_line_items({"code": DOCS["code"][:1]}, per_domain=1000)
