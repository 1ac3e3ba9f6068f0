"""The prefix-greedy benchmark's reference measure: a continuation held against what the file says next."""

from __future__ import annotations

import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def prefix_greedy():
    return load_benchmark("prefix_greedy")


def test_the_file_itself_matches_in_full(prefix_greedy):
    reference = "x = 1\n    return x\n"
    assert prefix_greedy.continuation_match(reference, reference) == {
        "line_exact": 1.0,
        "line_similarity": 1.0,
        "similarity": 1.0,
    }


def test_a_wrong_last_line_is_not_exact_but_close(prefix_greedy):
    match = prefix_greedy.continuation_match("x = 2\n    return x\n", "x = 1\n    return x\n")
    assert match["line_exact"] == 0.0
    assert match["line_similarity"] == pytest.approx(0.8)
    assert 0.8 < match["similarity"] < 1.0


def test_trailing_spaces_do_not_count_and_text_past_the_reference_is_ignored(prefix_greedy):
    match = prefix_greedy.continuation_match("total)  \nprint(total)\nmore text", "total)\nprint(total)\n")
    assert match["line_exact"] == 1.0
    assert match["similarity"] < 1.0  # the two trailing spaces shift the text
    assert prefix_greedy.continuation_match("ab\ncd\nmore", "ab\ncd\n")["similarity"] == 1.0


def test_unrelated_text_scores_low(prefix_greedy):
    match = prefix_greedy.continuation_match("zzzz\nqqqq", "def f():\n    pass\n")
    assert match["line_exact"] == 0.0 and match["line_similarity"] == 0.0
    assert match["similarity"] < 0.2


def test_paired_counts_wins_ties_and_losses_per_prompt(prefix_greedy):
    assert prefix_greedy.paired([1.0, 0.5, 0.2, 0.0], [0.0, 0.5, 0.3, 0.0]) == {
        "wins": 1,
        "ties": 2,
        "losses": 1,
    }
    with pytest.raises(ValueError):
        prefix_greedy.paired([1.0], [1.0, 2.0])
