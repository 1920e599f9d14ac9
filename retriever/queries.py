"""Queries as the engine takes them: one helper encodes a batch for the Searcher, the server's
micro-batches and eval, so that "encode the query and its term ids" is written once.

    batch = encode_queries(encoder, ["a query", "another"])    # EncodedQueries
    searcher.search_batch(batch[0:1], k=10)                    # rows slice like arrays
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["EncodedQueries", "encode_queries"]


@dataclass
class EncodedQueries:
    """vectors (n, L, dim) float32 (zero rows: padding); term_ids (n, L) int64 vocabulary id of
    each row (-1: none) or None; texts: the n query strings (the lexical side reads them)."""

    vectors: np.ndarray
    term_ids: np.ndarray | None
    texts: list[str]

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, rows) -> "EncodedQueries":
        """The queries at `rows` (a slice, or an array of row numbers)."""
        picked = np.arange(len(self))[rows]
        return EncodedQueries(self.vectors[picked], None if self.term_ids is None else self.term_ids[picked],
                              [self.texts[i] for i in np.atleast_1d(picked).tolist()])


def encode_queries(encoder, texts: Sequence[str], term_ids: bool = True) -> EncodedQueries:
    """Encode query strings with `encoder` (retriever.encoder.Encoder); term_ids=False skips the
    vocabulary ids (only the "vocab" and "union" first stages read them)."""
    if isinstance(texts, str):
        raise TypeError("encode_queries takes a list of strings")
    texts = list(texts)
    return EncodedQueries(encoder.encode_queries(texts), encoder.query_term_ids(texts) if term_ids else None, texts)
