"""Bad training data fails at preparation, naming the row; empty rows are skipped and counted.

Every kind of row the trainer takes is covered: plain text, prompt/completion (plain and conversational),
messages, and pre-tokenised `input_ids`, in map-style and streamed datasets. Tiny in-process models only.
"""

from __future__ import annotations

import itertools
import logging
import math
import os

import pytest
from _tiny_tokenizers import TRAINING_TEXT
from _training import build, config
from datasets import Dataset, IterableDataset

from zip2zip.trainer.data import tokenize_example
from zip2zip.trainer.data_validation import check_example
from zip2zip.trainer.sft_trainer import Zip2ZipSFTTrainer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return build()


def make_trainer(tmp_path, tiny, train, eval_dataset=None, **overrides):
    model, tok = tiny
    args = config(tmp_path, max_steps=2, **overrides)
    return Zip2ZipSFTTrainer(
        model=model, args=args, train_dataset=train, eval_dataset=eval_dataset, processing_class=tok
    )


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def skip_warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "zip2zip.trainer.data_validation" and "skipping" in r.getMessage()
    ]


# ------------------------------------------------------------------------------------------ wrong types


@pytest.mark.parametrize("value", [0, 1, False, [], ["a", "b"], 2.5])
def test_a_text_of_the_wrong_type_names_row_field_and_value(tmp_path, tiny, value):
    # Row 0 is a missing value (None, skipped); row 1 has the wrong type.
    data = Dataset.from_dict({"text": [None, value]})
    with pytest.raises(TypeError) as error:
        make_trainer(tmp_path, tiny, data)
    message = str(error.value)
    assert "row 1 of the train dataset" in message and "field 'text'" in message
    assert f"({type(value).__name__})" in message and repr(value) in message


def test_wrong_types_in_prompt_completion_rows(tmp_path, tiny):
    cases = [
        ({"prompt": ["a", "b"], "completion": ["x", None], "k": [0, 1]}, None),  # fine: row 1 is only empty
        (
            {"prompt": ["a", "b"], "completion": [1, 2]},
            r"row 0 .*field 'completion' must be a string.*\(int\)",
        ),
        ({"prompt": [3, 4], "completion": ["x", "y"]}, r"row 0 .*field 'prompt' must be a string.*\(int\)"),
    ]
    for data, match in cases:
        if match is None:
            trainer = make_trainer(tmp_path, tiny, Dataset.from_dict(data))
            assert trainer.train_dataset.num_rows == 1  # the row with no completion is skipped
            continue
        with pytest.raises(TypeError, match=match):
            make_trainer(tmp_path, tiny, Dataset.from_dict(data))

    def mixed():  # a chat prompt with a plain-text completion
        yield {"prompt": "plain", "completion": "fine"}
        yield {"prompt": [user("hi")], "completion": "plain"}

    # A stream is checked as it is read: the bad row stops training when it comes.
    trainer = make_trainer(tmp_path, tiny, IterableDataset.from_generator(mixed))
    with pytest.raises(TypeError, match=r"row 1 .*both be strings or both be lists of messages"):
        trainer.train()


def test_wrong_types_in_messages(tmp_path, tiny):
    def rows():
        yield {"messages": [user("hi"), assistant("hello")]}
        yield {"messages": ["hi", "hello"]}

    trainer = make_trainer(tmp_path, tiny, IterableDataset.from_generator(rows))
    with pytest.raises(
        TypeError, match=r"row 1 of the train dataset: field 'messages': message 0 must be a dict"
    ):
        trainer.train()
    with pytest.raises(
        TypeError, match=r"row 0 .*'messages' must be a list of messages .*, got 'hi' \(str\)"
    ):
        make_trainer(tmp_path, tiny, IterableDataset.from_generator(lambda: iter([{"messages": "hi"}])))
    with pytest.raises(TypeError, match=r"'content' of message 0 must be a string, got 5 \(int\)"):
        check_example({"messages": [{"role": "user", "content": 5}]})


def test_wrong_types_in_pre_tokenised_rows(tmp_path, tiny):
    with pytest.raises(
        TypeError, match=r"row 0 .*'input_ids': element 0 must be an integer id, got 'a' \(str\)"
    ):
        make_trainer(tmp_path, tiny, Dataset.from_dict({"input_ids": [["a", "b"]]}))
    with pytest.raises(
        TypeError, match=r"row 0 .*'input_ids': element 0 must be an integer id, got 1.5 \(float\)"
    ):
        make_trainer(tmp_path, tiny, Dataset.from_dict({"input_ids": [[1.5, 2.0]]}))
    with pytest.raises(ValueError, match=r"row 0 .*'labels' has 1 entries but 'input_ids' has 3"):
        make_trainer(tmp_path, tiny, Dataset.from_dict({"input_ids": [[5, 6, 7]], "labels": [[5]]}))
    with pytest.raises(TypeError, match=r"element 0 must be an integer id, got True \(bool\)"):
        check_example({"input_ids": [True, 5]})


def test_tokenize_example_refuses_bad_and_empty_examples(tiny):
    _, tok = tiny
    with pytest.raises(TypeError, match=r"field 'text' must be a string, got 0 \(int\)"):
        tokenize_example({"text": 0}, tok)
    with pytest.raises(TypeError, match=r"field 'text' must be a string, got \['a'\] \(list\)"):
        tokenize_example({"text": ["a"]}, tok)
    for example in ({"text": ""}, {"text": None}, {"prompt": "p", "completion": None}, {"messages": []}):
        with pytest.raises(ValueError, match="nothing to train on"):
            tokenize_example(example, tok)
    with pytest.raises(ValueError, match=r"no 'text' field \(fields: \['body'\]\)"):
        tokenize_example({"body": "x"}, tok)


# ------------------------------------------------------------------------------------------ empty rows


def test_empty_text_rows_are_skipped_counted_and_training_works(tmp_path, tiny, caplog):
    texts = [TRAINING_TEXT[0], "", TRAINING_TEXT[1], None, TRAINING_TEXT[2], ""]
    with caplog.at_level(logging.WARNING, logger="zip2zip.trainer.data"):
        trainer = make_trainer(tmp_path, tiny, Dataset.from_dict({"text": texts}))
    assert skip_warnings(caplog) == [
        "skipping 3 of the 6 rows of the train dataset: nothing to train on (3 with an empty 'text')"
    ]
    assert trainer.train_dataset.num_rows == 3
    # No eos-only row is left: every row has text beyond its eos.
    assert min(len(row) for row in trainer.train_dataset["input_ids"]) > 5
    loss = trainer.train().training_loss
    assert math.isfinite(loss) and loss > 1.0


def test_empty_rows_of_every_kind_are_skipped_with_their_field(tmp_path, tiny, caplog):
    chat = [user("what is a cat"), assistant("a cat sat on the mat")]
    datasets = {
        "completion": Dataset.from_dict(
            {"prompt": ["the cat", "the dog", "def add"], "completion": [" sat on the mat", None, ""]}
        ),
        "messages": Dataset.from_dict({"messages": [chat, [], None, chat]}),
        "input_ids": Dataset.from_dict({"input_ids": [[5, 6, 7], [], None]}),
    }
    expected_kept = {"completion": 1, "messages": 2, "input_ids": 1}
    for field, data in datasets.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="zip2zip.trainer.data"):
            trainer = make_trainer(tmp_path, tiny, data)
        skipped = data.num_rows - expected_kept[field]
        assert skip_warnings(caplog) == [
            f"skipping {skipped} of the {data.num_rows} rows of the train dataset: nothing to train on "
            f"({skipped} with an empty {field!r})"
        ], field
        assert trainer.train_dataset.num_rows == expected_kept[field], field

    # Conversational prompt/completion: an empty completion list is empty, an empty prompt is not.
    data = Dataset.from_dict(
        {
            "prompt": [[user("hi")], [user("hi")], []],
            "completion": [[assistant("hello")], [], [assistant("yo")]],
        }
    )
    assert make_trainer(tmp_path, tiny, data).train_dataset.num_rows == 2


@pytest.mark.parametrize(
    "data, field",
    [
        ({"text": [None, None]}, "text"),
        ({"text": ["", ""]}, "text"),
        ({"text": ["", None, ""]}, "text"),
        ({"prompt": ["a", "b"], "completion": [None, ""]}, "completion"),
        ({"prompt": [None, None], "completion": ["a", "b"]}, "prompt"),
        ({"messages": [[], None]}, "messages"),
        ({"input_ids": [[], []]}, "input_ids"),
    ],
)
def test_a_dataset_with_no_usable_row_is_refused_before_training(tmp_path, tiny, data, field):
    rows = len(next(iter(data.values())))
    with pytest.raises(
        ValueError, match=rf"no row with anything to train on: all {rows} rows are empty .*{field!r}"
    ):
        make_trainer(tmp_path, tiny, Dataset.from_dict(data))


def test_a_dataset_with_no_rows_is_refused(tmp_path, tiny):
    for data in (
        Dataset.from_dict({"text": []}),
        IterableDataset.from_generator(lambda: iter([])),
    ):
        with pytest.raises(ValueError, match="the train dataset has no rows"):
            make_trainer(tmp_path, tiny, data)
    with pytest.raises(ValueError, match="the train dataset has no rows"):
        make_trainer(tmp_path, tiny, Dataset.from_dict({"messages": []}), assistant_only_loss=True)


def test_an_empty_eval_dataset_is_refused_by_name(tmp_path, tiny):
    train = Dataset.from_dict({"text": TRAINING_TEXT})
    with pytest.raises(ValueError, match="the eval dataset has no row with anything to train on"):
        make_trainer(tmp_path, tiny, train, eval_dataset=Dataset.from_dict({"text": ["", None]}))


def test_streamed_datasets_skip_empty_rows_and_refuse_all_empty_ones(tmp_path, tiny, caplog):
    def rows():
        yield {"text": TRAINING_TEXT[0]}
        yield {"text": ""}
        yield {"text": TRAINING_TEXT[1]}
        yield {"text": None}

    with caplog.at_level(logging.WARNING, logger="zip2zip.trainer.data"):
        trainer = make_trainer(tmp_path, tiny, IterableDataset.from_generator(rows))
        loss = trainer.train().training_loss
    assert math.isfinite(loss) and loss > 1.0
    warnings = skip_warnings(caplog)
    assert len(warnings) == 1 and "streamed train dataset" in warnings[0] and "row 1" in warnings[0]

    with pytest.raises(ValueError, match="the train dataset has no rows with anything to train on"):
        make_trainer(
            tmp_path, tiny, IterableDataset.from_generator(lambda: iter([{"text": ""}, {"text": None}]))
        )


def test_truncation_that_leaves_no_trained_token_is_refused(tmp_path, tiny):
    long_prompt = " ".join(TRAINING_TEXT)
    data = Dataset.from_dict({"prompt": [long_prompt, long_prompt], "completion": [" done", " over"]})
    with pytest.raises(ValueError, match=r"has no rows left with a trained token within max_length=4"):
        make_trainer(tmp_path, tiny, data, max_length=4)


def test_each_preparation_step_is_labelled_once(tmp_path, tiny, monkeypatch):
    labels: list[str] = []
    original = Dataset.map

    def recording_map(self, *args, **kwargs):
        labels.append(kwargs.get("desc"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Dataset, "map", recording_map)
    data = Dataset.from_dict({"body": list(TRAINING_TEXT[:2])})
    model, tok = tiny
    Zip2ZipSFTTrainer(
        model=model,
        args=config(tmp_path, max_steps=2),
        train_dataset=data,
        processing_class=tok,
        formatting_func=lambda example: example["body"],
    )
    assert labels.count("Compressing train dataset") == 1
    assert "Formatting train dataset" in labels


def test_pieces_that_go_on_train_without_end_of_sequence(tmp_path, tiny):
    from zip2zip.trainer.data import ENDS_DOCUMENT

    model, tok = tiny
    data = Dataset.from_dict({"text": list(TRAINING_TEXT[:2]), ENDS_DOCUMENT: [False, True]})
    trainer = Zip2ZipSFTTrainer(
        model=model, args=config(tmp_path, max_steps=1), train_dataset=data, processing_class=tok
    )
    rows = {
        tok.decode(row["input_ids"], skip_special_tokens=True): row["input_ids"]
        for row in trainer.train_dataset
    }
    assert rows[TRAINING_TEXT[0]][-1] != tok.eos_token_id
    assert rows[TRAINING_TEXT[1]][-1] == tok.eos_token_id
    assert ENDS_DOCUMENT not in trainer.train_dataset.column_names
    trainer.train()


LONG_TEXT = "".join(f"line {i}: the cat sat on the mat, the dog sat on the log\n" for i in range(60))


def _base_ids_of_rows(tok, rows):
    ids = []
    for row in rows:
        ids += tok.codec.decode(row["input_ids"])
    return ids


def test_a_long_text_is_split_into_rows_not_truncated(tmp_path, tiny):
    _model, tok = tiny
    trainer = make_trainer(tmp_path, tiny, Dataset.from_dict({"text": [LONG_TEXT]}), max_length=48)
    rows = list(trainer.train_dataset)
    whole = tok.base(LONG_TEXT)["input_ids"] + [tok.eos_token_id]
    assert len(rows) > 3
    assert all(len(row["input_ids"]) <= 48 for row in rows)
    # every base token of the text is trained on, once, in order: the rows join back to the text
    assert _base_ids_of_rows(tok, rows) == whole
    assert sum(row["num_base_tokens"] for row in rows) == len(whole)
    # only the text's last row ends with end-of-sequence; the others end at a line end
    assert [row["input_ids"][-1] == tok.eos_token_id for row in rows] == [False] * (len(rows) - 1) + [True]
    for row in rows[:-1]:
        assert tok.decode(row["input_ids"]).endswith("\n")
    # each row is compressed with a codebook of its own (it is read from its start)
    for row in rows:
        assert tok.codec.encode(tok.codec.decode(row["input_ids"])) == row["input_ids"]


def test_splitting_can_be_turned_off_and_truncation_is_reported(tmp_path, tiny, caplog):
    with caplog.at_level(logging.WARNING, logger="zip2zip.trainer.data"):
        trainer = make_trainer(
            tmp_path, tiny, Dataset.from_dict({"text": [LONG_TEXT]}), max_length=48, split_long_texts=False
        )
    _model, tok = tiny
    (row,) = list(trainer.train_dataset)
    whole = len(tok.base(LONG_TEXT)["input_ids"]) + 1
    dropped = whole - row["num_base_tokens"]
    assert len(row["input_ids"]) == 48 and dropped > 0
    assert f"{dropped} of {whole} base tokens" in caplog.text
    assert "num_dropped_base_tokens" not in trainer.train_dataset.column_names


def test_truncated_completions_are_reported(tmp_path, tiny, caplog):
    data = Dataset.from_dict({"prompt": ["the cat", "the dog"], "completion": [LONG_TEXT, " sat."]})
    with caplog.at_level(logging.WARNING, logger="zip2zip.trainer.data"):
        trainer = make_trainer(tmp_path, tiny, data, max_length=40)
    assert len(trainer.train_dataset) == 2  # prompt/completion rows are truncated, never split
    assert "truncated 1 of the 2 rows" in caplog.text


def test_describe_rows_counts_rows_tokens_and_passes(tmp_path, tiny):
    from zip2zip.trainer.data import describe_rows

    trainer = make_trainer(tmp_path, tiny, Dataset.from_dict({"text": [LONG_TEXT]}), max_length=48)
    rows = trainer.train_dataset
    text = describe_rows(rows, rows_per_step=4, steps=3)
    tokens = sum(rows["num_base_tokens"])
    assert f"{rows.num_rows:,} rows ({tokens:,} base tokens)" in text
    assert f"{12 / rows.num_rows:.2f} times" in text


# A function body: every line after the first is indented, so a cut after any line end changes the tokens (the
# tokenizer merges a newline with the next line's indentation only when it reads them together).
INDENTED_TEXT = "def f(x):\n" + "".join(f"    y{i} = x + {i}\n" for i in range(40)) + "    return y0\n"


def _pieces(tok, text, cut):
    first = tok.base(text[:cut])["input_ids"]
    return first, tok.base(text[cut:], add_special_tokens=False)["input_ids"]


def test_a_cut_text_is_tokenised_as_a_prompt_and_what_follows_it(tiny):
    from zip2zip.trainer.data import line_cuts, tokenize_rows

    _model, tok = tiny
    (cut,) = line_cuts(INDENTED_TEXT, 1.0)
    assert 0 < cut < len(INDENTED_TEXT) and INDENTED_TEXT[cut - 1] == "\n"
    first, rest = _pieces(tok, INDENTED_TEXT, cut)
    whole = tok.base(INDENTED_TEXT)["input_ids"]
    assert first + rest != whole  # the cut changes the tokens ...
    assert (
        tok.base.decode(first[-1:]) == "\n"
    )  # ... the first piece ends with a bare newline, as a prompt would
    (row,) = tokenize_rows({"text": INDENTED_TEXT}, tok, line_cut_share=1.0)
    assert tok.codec.decode(row["input_ids"]) == first + rest + [tok.eos_token_id]
    assert tok.decode(row["input_ids"], skip_special_tokens=True) == INDENTED_TEXT  # ... but not the text
    # the same text is cut at the same place every time (a resumed run sees the rows it saw)
    assert tokenize_rows({"text": INDENTED_TEXT}, tok, line_cut_share=1.0) == [row]
    (uncut,) = tokenize_rows({"text": INDENTED_TEXT}, tok, line_cut_share=0.0)
    assert tok.codec.decode(uncut["input_ids"]) == whole + [tok.eos_token_id]


def test_line_cuts_picks_about_its_share_of_texts_and_only_line_ends_inside_them():
    from zip2zip.trainer.data import line_cuts

    texts = [f"text {i}\nline two of {i}\nline three\n" for i in range(400)]
    cuts = [line_cuts(text, 0.25) for text in texts]
    assert 60 <= sum(bool(cut) for cut in cuts) <= 140
    for text, cut in zip(texts, cuts, strict=True):
        assert len(cut) <= 1 and all(text[k - 1] == "\n" and k < len(text) for k in cut)
    assert all(line_cuts(text, 0.0) == [] for text in texts)
    assert all(len(line_cuts(text, 1.0)) == 1 for text in texts)
    # nothing to cut: no line end, or only the final one
    assert line_cuts("one line", 1.0) == [] and line_cuts("one line\n", 1.0) == []


def test_several_cuts_per_text_fall_on_distinct_inner_line_ends_and_keep_the_text(tiny):
    from zip2zip.trainer.data import line_cuts, tokenize_rows

    _model, tok = tiny
    cuts = line_cuts(INDENTED_TEXT, 1.0, count=3)
    inner = [k + 1 for k, char in enumerate(INDENTED_TEXT[:-1]) if char == "\n"]
    assert len(inner) >= 3 and len(cuts) == 3 and cuts == sorted(set(cuts)) and set(cuts) <= set(inner)
    assert line_cuts(INDENTED_TEXT, 1.0, count=3) == cuts  # drawn from the text: alike on resume
    assert line_cuts(INDENTED_TEXT, 1.0, count=10_000) == inner  # no more cuts than line ends
    bounds = [0, *cuts, len(INDENTED_TEXT)]
    pieces = [
        tok.base(INDENTED_TEXT[a:b], add_special_tokens=k == 0)["input_ids"]
        for k, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    (row,) = tokenize_rows({"text": INDENTED_TEXT}, tok, line_cut_share=1.0, line_cuts_per_text=3)
    assert tok.codec.decode(row["input_ids"]) == [x for piece in pieces for x in piece] + [tok.eos_token_id]
    assert tok.decode(row["input_ids"], skip_special_tokens=True) == INDENTED_TEXT
    # every piece but the last ends with the bare newline a prompt cut there ends with
    assert all(tok.base.decode(piece[-1:]) == "\n" for piece in pieces[:-1])
    (one,) = tokenize_rows({"text": INDENTED_TEXT}, tok, line_cut_share=1.0)
    assert row != one


def test_cut_texts_split_into_rows_join_back_to_their_pieces(tmp_path, tiny):
    _model, tok = tiny
    trainer = make_trainer(
        tmp_path, tiny, Dataset.from_dict({"text": [INDENTED_TEXT]}), max_length=40, line_cut_share=1.0
    )
    from zip2zip.trainer.data import line_cuts

    rows = list(trainer.train_dataset)
    first, rest = _pieces(tok, INDENTED_TEXT, *line_cuts(INDENTED_TEXT, 1.0))
    assert len(rows) > 2 and all(len(row["input_ids"]) <= 40 for row in rows)
    assert _base_ids_of_rows(tok, rows) == first + rest + [tok.eos_token_id]
    assert [row["input_ids"][-1] == tok.eos_token_id for row in rows] == [False] * (len(rows) - 1) + [True]
    trainer.train()


def test_prompt_completion_and_chat_examples_are_never_cut(tiny):
    from zip2zip.trainer.data import tokenize_rows

    _model, tok = tiny
    for example in (
        {"prompt": "def f(x):\n", "completion": "    return x\n    pass\n"},
        {"messages": [user("write\n    code\n"), assistant("def f():\n    return 1\n    pass\n")]},
    ):
        assert tokenize_rows(example, tok, line_cut_share=1.0) == tokenize_rows(
            example, tok, line_cut_share=0.0
        )


@pytest.mark.parametrize("share", [-0.5, 1.01, True, "all"])
def test_the_config_refuses_a_line_cut_share_outside_zero_to_one(tmp_path, share):
    with pytest.raises(ValueError, match=r"line_cut_share .*\[0, 1\]"):
        config(tmp_path, line_cut_share=share)


@pytest.mark.parametrize("cuts", [0, -1, 2.0, True])
def test_the_config_refuses_line_cuts_per_text_below_one(tmp_path, cuts):
    with pytest.raises(ValueError, match=r"line_cuts_per_text .*int >= 1; got"):
        config(tmp_path, line_cuts_per_text=cuts)
