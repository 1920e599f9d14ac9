"""Per-document term weights from token vectors, for a sparse (impact) first stage in Lucene.

COIL scores a document by exact-term contextual similarity, sum_i max_{j: term_j = term_i}
<q_i, d_j>. Projecting both sides on the term's query-independent centroid c_t (the normalised
mean of all the collection's vectors for term t) gives a rank-one approximation that factors
into a query weight times a document weight, which an inverted index of integers can serve:

    w_d(t) = max over d's vectors standing for t of <d_j, c_t>    (how typical d's use of t is)
    w_q(t) = sum over query rows for t of <q_i, c_t>

With weighting "centroid-idf" both sides are also scaled by sqrt(idf(t)), so that a rare
term's match counts more, as BM25 would have it. docs/benchmarks.md compares the weightings.
Weights are quantised to integers (x `scale`) because Lucene impact postings store integers.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

__all__ = ["WEIGHTINGS", "term_centroids", "document_term_weights", "query_term_weights", "quantise"]

WEIGHTINGS = ("centroid", "centroid-idf", "tf-idf")


def _pairs(segment) -> tuple[np.ndarray, np.ndarray]:
    """(term, vector id) for every distinct pair of a segment, from its vocabulary lists."""
    offsets = np.asarray(segment.vocab_offsets)
    terms = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return terms, np.asarray(segment.vocab_vector_ids).astype(np.int64)


def term_centroids(store, vocab_size: int, chunk: int = 200_000) -> np.ndarray:
    """(vocab_size, dim) float32 unit rows: the mean direction of each term's stored vectors
    (all zero for a term the collection never uses). Deleted documents count too."""
    sums = np.zeros((vocab_size, store.codec.dim), dtype=np.float64)
    for segment in store.segments:
        terms, vectors = _pairs(segment)
        for start in range(0, len(terms), chunk):
            v = vectors[start:start + chunk]
            decoded = store.codec.decompress(segment.vector_codes(v), segment.vector_residuals(v)).numpy()
            np.add.at(sums, terms[start:start + chunk], decoded)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def _idf(store, vocab_size: int) -> np.ndarray:
    idf = np.asarray(store.idf, dtype=np.float32)
    return idf if len(idf) == vocab_size else np.ones(vocab_size, np.float32)


def document_term_weights(store, centroids: np.ndarray, weighting: str = "centroid-idf"
                          ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """For each live document: (doc id, term ids (n,) int64, weights (n,) float32).

    centroids: (vocab_size, dim) from `term_centroids`. weighting: one of WEIGHTINGS
    ("tf-idf" ignores the vectors: (1 + log tf) * idf, a lexical baseline)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    vocab_size = len(centroids)
    scale = np.sqrt(_idf(store, vocab_size)) if weighting == "centroid-idf" else np.ones(vocab_size, np.float32)
    base = 0
    for segment in store.segments:
        if weighting == "tf-idf":   # one entry per original token occurrence (pooled vectors' members)
            terms = np.asarray(segment.member_token_ids, dtype=np.int64)
            vectors = np.repeat(np.arange(len(segment.member_counts)), np.asarray(segment.member_counts, np.int64))
            values = np.ones(len(terms), dtype=np.float32)
        else:
            terms, vectors = _pairs(segment)
            decoded = store.codec.decompress(segment.vector_codes(vectors),
                                             segment.vector_residuals(vectors)).numpy()
            values = np.einsum("pd,pd->p", decoded, centroids[terms]) * scale[terms]
        doc = segment.doc_of_vector[vectors].astype(np.int64)
        # Group by (document, term): the max (vector weights) or the sum (term counts).
        key = doc * vocab_size + terms
        order = np.argsort(key, kind="stable")
        key, values = key[order], values[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        reduced = (np.add if weighting == "tf-idf" else np.maximum).reduceat(values, starts) if len(key) else values
        if weighting == "tf-idf":
            reduced = (1 + np.log(reduced)) * _idf(store, vocab_size)[key[starts] % vocab_size]
        doc_of_group = key[starts] // vocab_size
        bounds = np.searchsorted(doc_of_group, np.arange(segment.n_docs + 1))
        alive = store.alive[base:base + segment.n_docs]
        for d in range(segment.n_docs):
            if alive[d]:
                g = slice(bounds[d], bounds[d + 1])
                yield segment.documents[d]["id"], key[starts][g] % vocab_size, reduced[g].astype(np.float32)
        base += segment.n_docs


def query_term_weights(query: np.ndarray, term_ids: np.ndarray, centroids: np.ndarray, idf: np.ndarray | None,
                       weighting: str = "centroid-idf") -> dict[int, float]:
    """Term id -> weight for one query. query: (q_len, dim) float32; term_ids: (q_len,) int, -1
    for rows that stand for no term; idf: (vocab_size,) float32 (used by the idf weightings)."""
    out: dict[int, float] = {}
    for row, t in zip(query, np.asarray(term_ids).tolist()):
        if t < 0:
            continue
        if weighting == "tf-idf":
            w = 1.0
        else:
            w = float(row @ centroids[t]) * (float(np.sqrt(idf[t])) if weighting == "centroid-idf" else 1.0)
        out[t] = out.get(t, 0.0) + w
    return out


def quantise(weights: np.ndarray | list[float], scale: float = 100.0) -> np.ndarray:
    """Integer impacts for Lucene: round(weight * scale), at least 1 so a matching term never vanishes."""
    return np.maximum(1, np.rint(np.asarray(weights, dtype=np.float64) * scale)).astype(np.int64)
