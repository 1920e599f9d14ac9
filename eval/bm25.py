"""BM25 without Java: bm25s over documents' title + text (English stopwords), in memory.

The fallback lexical side of hybrid search when Pyserini is not installed; `LuceneBM25`
(eval/lucene.py) is the reference implementation.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["BM25s"]


class BM25s:
    """BM25 (bm25s defaults: k1 1.5, b 0.75, Lucene idf) over a list of retriever.corpus.Document."""

    def __init__(self, documents: Sequence):
        import bm25s

        self._bm25s = bm25s
        self.ids = [d.id for d in documents]
        self._index = bm25s.BM25()
        self._index.index(bm25s.tokenize([d.full_text for d in documents], stopwords="en", show_progress=False),
                          show_progress=False)

    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 100) -> list[list[tuple[str, float]]]:
        """(doc id, score) pairs per query, best first; documents scoring 0 are left out."""
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", show_progress=False)
        ids, scores = self._index.retrieve(tokens, k=min(k, len(self.ids)), show_progress=False)
        return [[(self.ids[j], float(s)) for j, s in zip(row_ids, row_scores) if s > 0]
                for row_ids, row_scores in zip(ids, scores)]
