"""`Searcher`: encode queries and rank an index's documents by late interaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from indexes.maxsim import pick_device, search_blocks

from .encoder import Encoder
from .index import Index

__all__ = ["SearchResults", "Searcher"]


@dataclass
class SearchResults:
    """Ranked documents for a batch of queries, best first.

    scores: (n_queries, k) float32, padded with -inf; indices: (n_queries, k) int64 positions
    in the index, padded with -1; doc_ids: the matching document ids (padding left out).
    """

    scores: np.ndarray
    indices: np.ndarray
    doc_ids: list[list[str]]

    def hits(self, query: int = 0) -> list[tuple[str, float]]:
        """(doc_id, score) pairs of one query."""
        return list(zip(self.doc_ids[query], self.scores[query].tolist()))


class Searcher:
    """Exhaustive MaxSim search over an index's decompressed vectors (the reference engine).

    encoder: the encoder used for queries; by default the one recorded in the index manifest,
    loaded with the same settings the documents were encoded with.
    device: where scoring runs ("cuda", "cpu"); by default CUDA when present.
    """

    def __init__(self, index: Index, encoder: Encoder | None = None,
                 device: str | torch.device | None = None):
        self.index = index
        self.device = pick_device(device)
        encoder = encoder or index.load_encoder(device=self.device)
        expected = index.encoder_spec["dim"]
        if encoder.dim != expected:
            raise ValueError(f"encoder {encoder.name!r} gives {encoder.dim}-dim vectors, "
                             f"index {index.directory} was built from {expected}-dim vectors")
        self.encoder = encoder

    def search(self, query: str, k: int = 10) -> SearchResults:
        """Top-k documents for one query (a SearchResults with one row)."""
        if not isinstance(query, str):
            raise TypeError("search takes one query string; use search_batch for several")
        return self.search_batch([query], k=k)

    def search_batch(self, queries: Sequence[str] | np.ndarray, k: int = 10) -> SearchResults:
        """Top-k documents for each query.

        queries: strings, or pre-encoded (n_queries, q_len, dim) float32 query embeddings.
        """
        if isinstance(queries, np.ndarray):
            embeddings = queries
        else:
            embeddings = self.encoder.encode_queries(list(queries))
        store = self.index.store
        n_q, q_len, dim = embeddings.shape
        # A PCA index scores in its projected space; zero (padding) rows stay zero.
        embeddings = store.codec.project(embeddings.reshape(n_q * q_len, dim)).reshape(n_q, q_len, -1)
        scores, indices = search_blocks(embeddings, store.blocks(), store.n_positions, k=k, dim=store.codec.dim,
                                        alive=store.alive, device=self.device)
        doc_ids = [[store.document(i)["id"] for i in row if i >= 0] for row in indices]
        return SearchResults(scores=scores, indices=indices, doc_ids=doc_ids)
