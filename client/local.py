"""Search an index opened in this process and get its stored documents back (the adapters' in-process path)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["search_documents"]


def search_documents(searcher, index, query: str, k: int, filter: dict | None = None,
                     ids: Sequence[str] | None = None) -> list[tuple[dict, float]]:
    """(stored document, score) pairs of one query, best first (searcher: a retriever SearchEngine
    over `index`); each document dict also holds "passage": {start, end, text}, its best passage."""
    results = searcher.search(query, k=k, filter=filter, ids=ids, passages=True)
    positions = [p for p in results.indices[0].tolist() if p >= 0]
    return [({**index.document(p), "passage": passage.to_dict()}, float(s))
            for p, s, passage in zip(positions, results.scores[0].tolist(), results.passages[0])]
