"""Index-time token reduction: pruning rules, then pooling, per document.

Pruning (Lassance et al., "A study on token pruning for ColBERT") drops vectors by named,
composable rules; pooling (Clavié et al. 2024, token pooling) merges similar vectors of a
document into their renormalised mean. Pooling by a fixed factor ("hierarchical", "kmeans")
halves every document alike, merging distinct content in a document of many distinct facts;
"threshold" pooling merges only near-duplicates (complete linkage cut at a cosine distance,
so every pair in a merged group has cosine >= the threshold): repeated phrasing shrinks,
distinct attributes stay apart. Every document keeps at least one vector, and every
kept vector remembers the token ids of the original vectors it stands for ("members"), which
the vocabulary lists of a later step need.

All inputs are the concatenated form: vectors (n, dim), per-vector arrays (n,), and
`lengths` (n_docs,) giving each document's consecutive run of rows.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

try:
    from indexes.builder import agglomerate as _agglomerate
except ImportError:                      # no numba: the per-document scipy path below serves
    _agglomerate = None

__all__ = ["PruneRules", "Reduced", "prune_mask", "pool_tokens", "reduce_tokens", "idf_from_token_ids",
           "threshold_labels", "pooled_counts"]


@dataclass(frozen=True)
class PruneRules:
    """Which vectors to drop before compression; all rules off by default.

    stopwords: drop vectors whose token id is in `stopword_ids` (stopwords, punctuation).
    idf_fraction: drop this fraction of each document's vectors with the lowest IDF.
    first_k: keep only each document's first k vectors (0 = off).
    norm_fraction: drop this fraction of each document's vectors with the smallest norm
        before normalisation.
    """

    stopwords: bool = False
    idf_fraction: float = 0.0
    first_k: int = 0
    norm_fraction: float = 0.0

    def active(self) -> list[str]:
        names = []
        if self.stopwords:
            names.append("stopwords")
        if self.idf_fraction > 0:
            names.append("idf")
        if self.first_k > 0:
            names.append("first_k")
        if self.norm_fraction > 0:
            names.append("norm")
        return names


@dataclass
class Reduced:
    """Vectors after reduction.

    vectors: (m, dim) float32 unit rows; lengths: (n_docs,) int64, each >= 1;
    member_offsets: (m + 1,) int64 and member_token_ids: (n_members,) int32, the token ids
    each kept vector stands for; removed: vectors dropped by each rule, and by pooling.
    """

    vectors: np.ndarray
    lengths: np.ndarray
    member_offsets: np.ndarray
    member_token_ids: np.ndarray
    removed: dict[str, int]


def idf_from_token_ids(token_ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
    """(vocab_size,) float32 IDF, log((1 + N) / (1 + df)), df counted once per document."""
    if _agglomerate is not None:
        df = _agglomerate.document_frequencies(np.asarray(token_ids), np.asarray(lengths, dtype=np.int64), vocab_size)
    else:
        doc_of = np.repeat(np.arange(len(lengths)), lengths)
        pairs = np.unique(doc_of.astype(np.int64) * vocab_size + token_ids.astype(np.int64))
        df = np.bincount(pairs % vocab_size, minlength=vocab_size)
    return np.log((1 + len(lengths)) / (1 + df)).astype(np.float32)


def _drop_lowest(scores: np.ndarray, lengths: np.ndarray, fraction: float) -> np.ndarray:
    """Keep-mask dropping floor(fraction * len) lowest-scoring vectors of each document."""
    keep = np.ones(len(scores), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    order = np.lexsort((scores, doc_of))                 # by document, then by score ascending
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(len(scores)) - np.repeat(starts, lengths)
    n_drop = np.floor(fraction * lengths).astype(np.int64)
    keep[rank < np.repeat(n_drop, lengths)] = False
    return keep


def prune_mask(rules: PruneRules, token_ids: np.ndarray, lengths: np.ndarray, *,
               stopword_ids: np.ndarray | None = None, idf: np.ndarray | None = None,
               norms: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
    """(n,) bool keep-mask for the rules, and how many vectors each rule removed.

    Rules apply in the order stopwords, idf, first_k, norm; each counts only the vectors it
    removed itself. A document that would lose every vector keeps its first one.
    """
    n = len(token_ids)
    keep = np.ones(n, dtype=bool)
    removed: dict[str, int] = {}
    positions = np.arange(n) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    if rules.stopwords:
        if stopword_ids is None:
            raise ValueError("the stopwords rule needs stopword_ids")
        rule = ~np.isin(token_ids, stopword_ids)
        removed["stopwords"] = int((keep & ~rule).sum())
        keep &= rule
    if rules.idf_fraction > 0:
        if idf is None:
            raise ValueError("the idf rule needs the collection's idf")
        rule = _drop_lowest(idf[token_ids], lengths, rules.idf_fraction)
        removed["idf"] = int((keep & ~rule).sum())
        keep &= rule
    if rules.first_k > 0:
        rule = positions < rules.first_k
        removed["first_k"] = int((keep & ~rule).sum())
        keep &= rule
    if rules.norm_fraction > 0:
        if norms is None:
            raise ValueError("the norm rule needs the vectors' norms before normalisation")
        rule = _drop_lowest(np.asarray(norms, dtype=np.float32), lengths, rules.norm_fraction)
        removed["norm"] = int((keep & ~rule).sum())
        keep &= rule
    # Never empty a document: restore its first vector.
    kept_per_doc = np.add.reduceat(keep, np.concatenate([[0], np.cumsum(lengths)[:-1]])) if n else keep
    empty = np.flatnonzero(kept_per_doc == 0)
    if len(empty):
        keep[np.concatenate([[0], np.cumsum(lengths)[:-1]])[empty]] = True
        removed["restored"] = len(empty)
    return keep, removed


def _spherical_kmeans(vectors: np.ndarray, n_clusters: int, n_iter: int = 10) -> np.ndarray:
    """Post-hoc k-means of one document (CRISP-style pooling) on the unit sphere.

    Seeded with evenly spaced positions (neighbouring tokens are often alike, so this spreads
    the seeds over the text); deterministic. Empty clusters keep their previous centre.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
    centres = x[torch.linspace(0, len(x) - 1, n_clusters).round().long()].clone()
    for _ in range(n_iter):
        labels = (x @ centres.T).argmax(dim=1)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        filled = sums.norm(dim=1) > 0
        centres[filled] = torch.nn.functional.normalize(sums[filled], dim=1)
    return (x @ centres.T).argmax(dim=1).numpy()


def threshold_labels(vectors: np.ndarray, min_cosine: float) -> np.ndarray:
    """(n,) cluster labels from 0 of one document's unit rows such that any two rows sharing a
    label have cosine >= min_cosine: complete linkage (a cluster's height is its largest pairwise
    distance) cut at cosine distance 1 - min_cosine."""
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.int64)
    tree = linkage(vectors.astype(np.float64), method="complete", metric="cosine")
    return fcluster(tree, t=1.0 - min_cosine, criterion="distance") - 1


def _cluster_labels(vectors: np.ndarray, n_clusters: int, method: str, seed: int) -> np.ndarray:
    """Cluster label in [0, n_clusters) for each row of one document."""
    if method == "hierarchical":
        from scipy.cluster.hierarchy import fcluster, linkage
        # Ward on unit vectors: squared euclidean distance is 2 - 2 cos, so this is cosine Ward.
        tree = linkage(vectors.astype(np.float64), method="ward")
        return fcluster(tree, t=n_clusters, criterion="maxclust") - 1
    if method == "kmeans":
        return _spherical_kmeans(vectors, n_clusters)
    raise ValueError(f"unknown pooling method {method!r}; valid: 'hierarchical', 'kmeans', 'threshold'")


def pooled_counts(lengths: np.ndarray, pool_factor: int, min_vectors: int = 0) -> np.ndarray:
    """(n_docs,) int64 clusters each document pools to: ceil(n / pool_factor), but never fewer than
    min(n, min_vectors) (a short document keeps every vector: its few vectors are what tells it
    apart), and documents of at most 2 vectors, or pool_factor 1, keep theirs."""
    lengths = np.asarray(lengths, dtype=np.int64)
    k = np.where((lengths <= 2) | (pool_factor == 1), lengths, -(-lengths // max(pool_factor, 1)))
    return np.maximum(k, np.minimum(lengths, max(int(min_vectors), 0)))


def pool_tokens(vectors: np.ndarray, lengths: np.ndarray, token_ids: np.ndarray, pool_factor: int,
                method: str = "hierarchical", seed: int = 0, workers: int | None = None,
                min_cosine: float = 1.0, min_vectors: int = 0) -> Reduced:
    """Merge each document's vectors into renormalised cluster means: `pooled_counts` clusters
    ("hierarchical", "kmeans": ceil(n / pool_factor), at least min(n, min_vectors)), or with method
    "threshold" as many as it takes for every pair within a cluster to have cosine >= min_cosine
    (pool_factor and min_vectors are then unused).

    vectors: (n, dim) unit rows; lengths: (n_docs,); token_ids: (n,) int32.
    Documents with at most 2 vectors, or with pool_factor 1, are left as they are.
    Ward ("hierarchical") and complete linkage ("threshold") run compiled over all documents at
    once when numba is installed (`indexes.builder.agglomerate`, equal partitions); otherwise, and for
    "kmeans", documents are clustered one by one with scipy / torch in `workers` threads
    (default one per CPU core).
    """
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be >= 1, got {pool_factor}")
    if method not in ("hierarchical", "kmeans", "threshold"):
        raise ValueError(f"unknown pooling method {method!r}; valid: 'hierarchical', 'kmeans', 'threshold'")
    vectors = _float32(vectors)
    lengths = np.asarray(lengths, dtype=np.int64)
    if _agglomerate is not None and method != "kmeans" and len(lengths):
        return _pool_compiled(vectors, lengths, token_ids, pool_factor, method, min_cosine, min_vectors)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    workers = max(1, workers or os.cpu_count() or 1)
    bounds = np.linspace(0, len(lengths), min(workers * 4, max(len(lengths), 1)) + 1).astype(np.int64)

    def pool_range(first: int, end: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return [_pool_document(vectors[offsets[d]:offsets[d + 1]], token_ids[offsets[d]:offsets[d + 1]],
                               pool_factor, method, seed, min_cosine, min_vectors) for d in range(first, end)]

    with ThreadPoolExecutor(workers) as pool:
        parts = [doc for chunk in pool.map(pool_range, bounds[:-1], bounds[1:]) for doc in chunk]
    counts = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
    pooled = Reduced(
        vectors=np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, vectors.shape[1]), np.float32),
        lengths=np.array([len(p[2]) for p in parts], dtype=np.int64),
        member_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        member_token_ids=(np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)).astype(np.int32),
        removed={},
    )
    pooled.removed["pooling"] = int(len(vectors) - len(pooled.vectors))
    return pooled


def _float32(vectors: np.ndarray) -> np.ndarray:
    """C-contiguous float32 rows; float16 converted by torch (8x numpy's speed on 1M x 384)."""
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float16:
        import torch
        return torch.from_numpy(np.ascontiguousarray(vectors)).float().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _pool_compiled(vectors: np.ndarray, lengths: np.ndarray, token_ids: np.ndarray, pool_factor: int,
                   method: str, min_cosine: float, min_vectors: int = 0) -> Reduced:
    if method == "threshold":
        if min_cosine >= 1.0:
            labels = np.arange(len(vectors)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        else:
            labels = _agglomerate.cluster_documents(vectors, lengths, "complete", max_distance=1.0 - min_cosine)
    else:
        k = pooled_counts(lengths, pool_factor, min_vectors)
        labels = _agglomerate.cluster_documents(vectors, lengths, "ward", n_clusters=k)
    pooled, pooled_lengths, members, counts = _agglomerate.pool_by_labels(vectors, lengths, labels)
    return Reduced(vectors=pooled, lengths=pooled_lengths,
                   member_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   member_token_ids=np.asarray(token_ids)[members].astype(np.int32),
                   removed={"pooling": int(len(vectors) - len(pooled))})


def _pool_document(doc: np.ndarray, ids: np.ndarray, pool_factor: int, method: str,
                   seed: int, min_cosine: float = 1.0,
                   min_vectors: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One document's pooled vectors (c, dim), member token ids in cluster order, members per cluster (c,)."""
    n = len(doc)
    if method == "threshold":
        labels = threshold_labels(doc, min_cosine) if n >= 2 and min_cosine < 1.0 else np.arange(n)
        if labels.max(initial=-1) + 1 >= n:
            return doc, ids, np.ones(n, dtype=np.int64)
    else:
        n_clusters = int(pooled_counts(np.array([n]), pool_factor, min_vectors)[0])
        if n_clusters >= n:
            return doc, ids, np.ones(n, dtype=np.int64)
        labels = _cluster_labels(doc, n_clusters, method, seed)
    order = np.argsort(labels, kind="stable")
    counts = np.unique(labels, return_counts=True)[1]                   # clusters in label order
    sums = np.add.reduceat(doc[order], np.concatenate([[0], np.cumsum(counts)[:-1]]), axis=0)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return sums, ids[order], counts


def reduce_tokens(vectors: np.ndarray, token_ids: np.ndarray, lengths: np.ndarray, *,
                  rules: PruneRules = PruneRules(), pool_factor: int = 1, pool_method: str = "hierarchical",
                  stopword_ids: np.ndarray | None = None, idf: np.ndarray | None = None,
                  norms: np.ndarray | None = None, seed: int = 0, min_cosine: float = 1.0,
                  min_vectors: int = 0) -> Reduced:
    """Prune, then pool. Shapes as in `Reduced`; counts of removed vectors per rule."""
    keep, removed = prune_mask(rules, token_ids, lengths, stopword_ids=stopword_ids, idf=idf, norms=norms)
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    kept_lengths = np.bincount(doc_of[keep], minlength=len(lengths)).astype(np.int64)
    every = keep.all()                 # the default recipe prunes nothing: no copy
    pooled = pool_tokens(vectors if every else np.asarray(vectors)[keep], kept_lengths,
                         token_ids if every else np.asarray(token_ids)[keep], pool_factor, pool_method, seed,
                         min_cosine=min_cosine, min_vectors=min_vectors)
    pooled.removed = {**removed, **pooled.removed}
    return pooled
