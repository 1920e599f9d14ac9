"""Corpus and query readers: the formats they accept and the errors they give."""

from __future__ import annotations

import json

import pytest

from retriever.corpus import CorpusFormatError, read_corpus, read_queries
from conftest import SAMPLE, SHARED_DATA


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_sample_collection_reads():
    docs = read_corpus(SAMPLE)
    assert len(docs) == 30 and docs[0].id == "solar-1" and docs[0].title == "How solar panels work"
    assert docs[0].full_text.startswith("How solar panels work Photovoltaic")
    assert len(read_queries(SAMPLE)) == 10


@pytest.mark.skipif(not (SHARED_DATA / "scifact").is_dir(), reason="../shared/data/scifact not present")
def test_scifact_reads():
    docs = read_corpus(SHARED_DATA / "scifact")
    assert len(docs) == 5183 and all(d.id for d in docs)
    assert len(read_queries(SHARED_DATA / "scifact")) == 1109


def test_jsonl_accepts_id_or__id_and_numeric_ids(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({"id": 7, "text": "a"}), json.dumps({"_id": "x", "text": "b"})])
    assert [d.id for d in read_corpus(path)] == ["7", "x"]


def test_tsv_with_and_without_title(tmp_path):
    path = write_lines(tmp_path / "c.tsv", ["id\ttext\ttitle", "1\tfirst text\tT1", "2\tsecond text"])
    docs = read_corpus(path)
    assert [(d.id, d.text, d.title) for d in docs] == [("1", "first text", "T1"), ("2", "second text", "")]


@pytest.mark.parametrize("line, problem", [
    ('{"_id": "a", "text": "ok"', "3: invalid JSON"),
    ('{"_id": "a"}', "3: missing field 'text'"),
    ('{"text": "no id"}', "3: missing field '_id'"),
    ('{"_id": "a", "text": 5}', "3: field 'text' must be a string"),
    ('{"_id": "d1", "text": "again"}', "3: duplicate id 'd1'"),
    ('[1, 2]', "3: expected a JSON object"),
    ('{"_id": "a", "text": "t", "metadata": 3}', "3: field 'metadata' must be an object"),
])
def test_malformed_jsonl_line_names_file_line_and_field(tmp_path, line, problem):
    path = write_lines(tmp_path / "corpus.jsonl", [json.dumps({"_id": "d1", "text": "x"}), "",
                                                   line, json.dumps({"_id": "d9", "text": "y"})])
    with pytest.raises(CorpusFormatError) as err:
        read_corpus(path)
    assert str(err.value).startswith(f"{path}:{problem}")
    assert err.value.line == 3


def test_malformed_tsv_line(tmp_path):
    path = write_lines(tmp_path / "c.tsv", ["1\tok", "2"])
    with pytest.raises(CorpusFormatError, match=r"c\.tsv:2: field 'text' missing"):
        read_corpus(path)


def test_skip_mode_keeps_reading_and_warns(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", ['{"_id": "a", "text": "1"}', "{broken", '{"_id": "b", "text": "2"}'])
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        docs = read_corpus(path, on_error="skip")
    assert [d.id for d in docs] == ["a", "b"]


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no corpus.jsonl"):
        read_corpus(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_corpus(tmp_path / "none.jsonl")


def test_undecodable_and_unstorable_lines_are_named(tmp_path):
    from retriever import CorpusFormatError, read_corpus

    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "caf\xe9"}\n')
    with pytest.raises(CorpusFormatError, match=r"c.jsonl:2: not UTF-8"):
        read_corpus(path)
    path.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "bad \\ud800"}\n')
    with pytest.raises(CorpusFormatError, match=r":2: .*lone surrogate"):
        read_corpus(path)
    path.write_text('{"_id": "a", "text": "x", "metadata": {"v": NaN}}\n')
    with pytest.raises(CorpusFormatError, match=r":1: .*NaN"):
        read_corpus(path)
    path.write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": "x", "metadata": {"year": 1' + "0" * 400 + '}}\n')
    with pytest.raises(CorpusFormatError, match=r":2: field 'metadata'.year: an integer of about 401 digits is beyond"):
        read_corpus(path)
    path.write_text('{"_id": "b", "text": "x", "metadata": {"year": 1' + "0" * 5000 + '}}\n')
    with pytest.raises(CorpusFormatError, match=r":1: invalid JSON value"):
        read_corpus(path)
    tsv = tmp_path / "c.tsv"
    tsv.write_bytes(b"a\tfine\nb\t\xff\xfe binary\n")
    with pytest.raises(CorpusFormatError, match=r"c.tsv:2: not UTF-8"):
        read_corpus(tsv)


def test_texts_over_the_limit_are_refused_by_file_line_and_field(tmp_path):
    from retriever.corpus import MAX_TEXT_CHARS, Document
    from retriever.index import check_documents

    path = tmp_path / "c.jsonl"
    assert MAX_TEXT_CHARS == 10_000_000          # a guard against runaway fields, not a window: passages keep all
    path.write_text('{"_id": "a", "text": "fine"}\n{"_id": "b", "text": "' + "x" * 100_001 + '"}\n')
    with pytest.raises(CorpusFormatError, match=r"c.jsonl:2: field 'text': 100,001 characters, over the limit of 100,000"):
        read_corpus(path, max_text_chars=100_000)
    assert [d.id for d in read_corpus(path, max_text_chars=100_000, on_error="skip")] == ["a"]
    assert len(read_corpus(path)) == 2
    with pytest.raises(ValueError, match=r"document 'z': field 'title': 12 characters, over the limit of 10"):
        check_documents([Document(id="z", text="short", title="a long title")], max_text_chars=10)
