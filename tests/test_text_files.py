"""zip2zip.corpora.text_files: the user's texts for `zip2zip train --data` and `zip2zip eval --data`."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from zip2zip.corpora.text_files import iter_text_files, load_text_dataset, read_texts


def test_folders_jsonl_and_saved_datasets_become_one_dataset(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.txt").write_text("second file")
    (tmp_path / "docs" / "a.txt").write_text("first file")
    (tmp_path / "docs" / "empty.txt").write_text("  \n")
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "third"}) + "\n\n" + json.dumps({"body": "fourth"}))
    Dataset.from_dict({"body": ["fifth"]}).save_to_disk(str(tmp_path / "saved"))
    assert [p.rsplit("/", 1)[1] for p in iter_text_files([tmp_path / "docs"])] == [
        "a.txt",
        "b.txt",
        "empty.txt",
    ]
    data = load_text_dataset([tmp_path / "docs", tmp_path / "c.jsonl", tmp_path / "saved"], "body")
    assert sorted(data["body"]) == ["fifth", "first file", "fourth", "second file", "third"]


def test_bad_files_are_named_with_their_line(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "ok"}) + "\nnot json\n")
    with pytest.raises(ValueError, match=r"a\.jsonl:2 is not a JSON object"):
        read_texts(tmp_path / "a.jsonl")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "x"}))
    with pytest.raises(ValueError, match=r"b\.jsonl:1 has no 'text' field \(fields: \['body'\]\)"):
        read_texts(tmp_path / "b.jsonl")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ValueError, match=r"c\.txt.*UTF-8"):
        read_texts(tmp_path / "c.txt")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_text_dataset([tmp_path / "missing"])
    (tmp_path / "blank.txt").write_text("\n")
    with pytest.raises(ValueError, match="no text found"):
        load_text_dataset([tmp_path / "blank.txt"])
