"""Evaluation collections: BEIR folders and MS MARCO passage TSV folders.

BEIR: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv` (split: test, dev, train).
MS MARCO passage: `collection.tsv` (`pid<TAB>passage`), `queries.<split>.tsv` (`qid<TAB>query`),
`qrels.<split>.tsv` (`qid 0 pid 1`), split e.g. `dev.small` (the official MRR@10 set) or `train`.
MS MARCO quirks handled: a line is split at its first tab only (text may hold more tabs), and ids
stay strings ("007" is not 7). Only judged queries are evaluated (BEIR's convention).

The full MS MARCO evaluation, where the data exists:
    tessera eval --dataset /data/msmarco-passage --split dev.small --index /data/idx-msmarco
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retriever.corpus import MAX_TEXT_CHARS, CorpusFormatError, Document, Query, read_corpus, read_queries

from .qrels import read_qrels

__all__ = ["Dataset", "load_dataset", "read_msmarco_tsv"]


@dataclass
class Dataset:
    """documents, the judged queries of one split, and their judgements {qid: {doc_id: relevance}}."""

    name: str
    documents: list[Document]
    queries: list[Query]
    qrels: dict[str, dict[str, int]]


def read_msmarco_tsv(path: Path) -> list[tuple[str, str]]:
    """(id, text) per line of an MS MARCO TSV; text is everything after the first tab."""
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            ident, tab, text = line.partition("\t")
            if not tab:
                raise CorpusFormatError(path, line_no, "field 'text' missing (expected id<TAB>text)")
            if not ident:
                raise CorpusFormatError(path, line_no, "field 'id' is empty")
            if ident in seen:
                raise CorpusFormatError(path, line_no, f"duplicate id {ident!r}")
            seen.add(ident)
            rows.append((ident, text))
    return rows


def _msmarco(folder: Path, split: str) -> Dataset:
    queries_file, qrels_file = folder / f"queries.{split}.tsv", folder / f"qrels.{split}.tsv"
    for path in (queries_file, qrels_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (MS MARCO split {split!r})")
    qrels = read_qrels(qrels_file)
    documents = [Document(id=i, text=t) for i, t in read_msmarco_tsv(folder / "collection.tsv")]
    queries = [Query(id=i, text=t) for i, t in read_msmarco_tsv(queries_file) if i in qrels]
    return Dataset(folder.name, documents, queries, qrels)


def load_dataset(folder: str | Path, split: str | None = None, max_text_chars: int = MAX_TEXT_CHARS) -> Dataset:
    """A BEIR folder (default split "test") or an MS MARCO passage folder (default "dev.small");
    a title or text over max_text_chars characters is refused by file and line, as `tessera index` does."""
    folder = Path(folder)
    if (folder / "collection.tsv").is_file():
        return _msmarco(folder, split or "dev.small")
    if (folder / "corpus.jsonl").is_file():
        qrels = read_qrels(folder, split=split or "test")
        queries = [q for q in read_queries(folder) if q.id in qrels]
        return Dataset(folder.name, read_corpus(folder, max_text_chars=max_text_chars), queries, qrels)
    raise FileNotFoundError(f"{folder}: neither a BEIR folder (corpus.jsonl) nor MS MARCO (collection.tsv)")
