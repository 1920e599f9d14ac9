"""Search an index opened in this process and get its stored documents back (the adapters' in-process path)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["search_documents"]


def search_documents(searcher, index, query: str, k: int, filter: dict | None = None,
                     ids: Sequence[str] | None = None) -> list[tuple[dict, float]]:
    """(stored document, score) pairs of one query, best first (searcher: a retriever SearchEngine over `index`)."""
    results = searcher.search(query, k=k, filter=filter, ids=ids)
    return [(index.document(p), float(s)) for p, s in zip(results.indices[0].tolist(), results.scores[0].tolist())
            if p >= 0]
