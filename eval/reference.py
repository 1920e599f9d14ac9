"""The reference every quality number is measured against: exhaustive MaxSim over the
uncompressed, unpooled token vectors the encoder produced (float16, from the encoding cache),
with whole queries. A row's "loss vs uncompressed" is what the index (reduction, compression)
and the engine (first stage, query settings) cost, together."""

from __future__ import annotations

import numpy as np

from indexes.search.maxsim import exhaustive_search

__all__ = ["uncompressed_search", "loss_percent"]


def uncompressed_search(query_vectors: np.ndarray, doc_vectors: np.ndarray, lengths: np.ndarray, k: int = 100,
                        *, device=None, group: int = 32, passage_lengths: np.ndarray | None = None,
                        passages: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents of each query by exact MaxSim over every stored token vector.

    query_vectors: (n_queries, L, dim) float32, zero rows for padding; doc_vectors: (n_vectors,
    dim) float16; lengths: (n_docs,) vectors per document; passage_lengths / passages: a
    document's passages (each document scored by its best passage, as the index does). Queries are searched in groups of
    similar length with their padding trimmed (a zero row adds 0 but still costs a product).
    Returns (scores (n_queries, k) float32, positions (n_queries, k) int64), best first.
    """
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    real = (np.abs(query_vectors).sum(axis=2) > 0)
    width = np.where(real.any(axis=1), real.shape[1] - np.argmax(real[:, ::-1], axis=1), 1)
    order = np.argsort(width, kind="stable")
    scores = np.full((len(query_vectors), k), -np.inf, dtype=np.float32)
    positions = np.full((len(query_vectors), k), -1, dtype=np.int64)
    for start in range(0, len(order), group):
        rows = order[start:start + group]
        trimmed = query_vectors[rows, :int(width[rows].max())]
        scores[rows], positions[rows] = exhaustive_search(trimmed, doc_vectors, offsets, k=k, device=device,
                                                          passage_lengths=passage_lengths, passages=passages)
    return scores, positions


def loss_percent(value: float, reference: float) -> float:
    """Relative change of `value` against `reference`, in percent (negative: worse)."""
    return 100.0 * (value - reference) / reference if reference else float("nan")
