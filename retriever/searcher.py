"""`Searcher`: encode queries and rank an index's documents by late interaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from indexes.maxsim import exhaustive_search, pick_device

from .checkpoints import load_encoder
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
    """Exhaustive MaxSim search over an index (the exact reference engine).

    encoder: the encoder used for queries; by default the one recorded in the index manifest,
    loaded with the same settings the documents were encoded with.
    device: where scoring runs ("cuda", "cpu"); by default CUDA when present.
    """

    def __init__(self, index: Index, encoder: Encoder | None = None,
                 device: str | torch.device | None = None):
        self.index = index
        self.device = pick_device(device)
        if encoder is None:
            spec = index.encoder_spec
            config = dict(spec["config"])
            config["skiplist"] = tuple(config["skiplist"])
            encoder = load_encoder(spec["name"], device=self.device, **config)
        if encoder.dim != index.manifest["dim"]:
            raise ValueError(f"encoder {encoder.name!r} gives {encoder.dim}-dim vectors, "
                             f"index {index.directory} holds {index.manifest['dim']}-dim vectors")
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
        scores, indices = exhaustive_search(embeddings, store.vectors, store.offsets, k=k, device=self.device)
        doc_ids = [[store.documents[i]["id"] for i in row if i >= 0] for row in indices]
        return SearchResults(scores=scores, indices=indices, doc_ids=doc_ids)
