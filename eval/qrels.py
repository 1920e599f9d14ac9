"""Read relevance judgements: BEIR `qrels/<split>.tsv` and TREC `qid 0 docid rel` files."""

from __future__ import annotations

from pathlib import Path

__all__ = ["QrelsFormatError", "read_qrels"]


class QrelsFormatError(ValueError):
    """A qrels line that cannot be read; the message names file, line and field."""


def read_qrels(path: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """Judgements as {query_id: {doc_id: relevance}}.

    path: a BEIR folder (reads qrels/<split>.tsv), a BEIR .tsv (`query-id corpus-id score`,
    tab-separated, header optional) or a TREC qrels file (`qid iter docid rel`, whitespace).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "qrels" / f"{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such qrels file")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            cells = line.split("\t") if "\t" in line else line.split()
            cells = [c.strip() for c in cells]
            if line_no == 1 and cells[0].lower() in ("query-id", "qid", "query_id"):
                continue
            if len(cells) == 3:
                qid, did, rel = cells
            elif len(cells) == 4:
                qid, _, did, rel = cells
            else:
                raise QrelsFormatError(f"{path}:{line_no}: {len(cells)} fields, expected "
                                       "'query-id corpus-id score' or 'qid iter docid rel'")
            try:
                relevance = int(float(rel))
            except ValueError:
                raise QrelsFormatError(f"{path}:{line_no}: field 'score' is not a number: {rel!r}") from None
            qrels.setdefault(qid, {})[did] = relevance
    return qrels
