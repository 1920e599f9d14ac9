"""Dataset loaders: BEIR splits and the MS MARCO passage TSV format with its quirks."""

from __future__ import annotations

import pytest

from eval.datasets import load_dataset
from retriever.corpus import CorpusFormatError
from conftest import SAMPLE


def msmarco(tmp_path, collection="007\tfirst passage\twith a tab inside\n7\tsecond passage\n"):
    (tmp_path / "collection.tsv").write_text(collection)
    (tmp_path / "queries.dev.small.tsv").write_text("100\twhat is the first passage\n200\tunjudged query\n")
    (tmp_path / "qrels.dev.small.tsv").write_text("100\t0\t007\t1\n")
    return tmp_path


def test_msmarco_quirks(tmp_path):
    data = load_dataset(msmarco(tmp_path))
    assert [(d.id, d.text) for d in data.documents] == [("007", "first passage\twith a tab inside"),
                                                       ("7", "second passage")]
    assert [q.id for q in data.queries] == ["100"]           # only judged queries
    assert data.qrels == {"100": {"007": 1}}


def test_msmarco_bad_line(tmp_path):
    with pytest.raises(CorpusFormatError, match=r"collection\.tsv:2: field 'text' missing"):
        load_dataset(msmarco(tmp_path, collection="1\tok\n2\n"))


def test_msmarco_missing_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="queries.train.tsv"):
        load_dataset(msmarco(tmp_path), split="train")


def test_beir_split():
    data = load_dataset(SAMPLE)
    assert len(data.documents) == 30 and len(data.queries) == 10 and data.qrels["q7"]["moon-1"] == 1
    with pytest.raises(FileNotFoundError):
        load_dataset(SAMPLE, split="dev")
