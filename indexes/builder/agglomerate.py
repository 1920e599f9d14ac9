"""Agglomerative clustering of every document's vectors at once, compiled (numba): the pooling
step of index builds ("pool<N>": Ward linkage cut into ceil(n / N) clusters; "merge<C>": complete
linkage on cosine distance cut at 1 - C/100).

    labels = cluster_documents(vectors, lengths, "ward", n_clusters=np.ceil(lengths / 2))
    labels = cluster_documents(vectors, lengths, "complete", max_distance=0.1)

Each document's Gram matrix comes from one batched matrix product (torch, over documents of
similar length), then the nearest-neighbour-chain algorithm (Müllner 2011, "Modern hierarchical,
agglomerative clustering algorithms") merges clusters with Lance-Williams updates in O(n^2) per
document, documents in parallel. Cutting the tree: the n - k lowest merges (Ward), or every merge
at or below the height (complete), applied in height order with a union-find, as scipy's
`fcluster` does. `indexes.builder.reduce.threshold_labels` / `_cluster_labels` (scipy) are the reference;
the partitions are equal (tests/test_agglomerate.py). Importing this module needs numba.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["cluster_documents", "pool_by_labels", "document_frequencies"]

_WARD, _COMPLETE = 0, 1
_GRAM_BUDGET = 1 << 24          # Gram entries computed per batch of documents (64 MiB of float32)


@nb.njit(cache=True, nogil=True)
def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@nb.njit(cache=True, nogil=True)
def _cluster_one(gram: np.ndarray, n: int, method: int, n_clusters: int, max_distance: float,
                 labels: np.ndarray) -> None:
    """Labels 0.. (in order of each cluster's first member) of one document from its (>= n, >= n)
    Gram matrix, written into labels[:n]."""
    dist = _distances(gram, n, method)
    size = np.ones(n, dtype=np.float64)
    active = np.ones(n, dtype=np.bool_)
    chain = np.empty(n, dtype=np.int64)
    merge_a = np.empty(n - 1, dtype=np.int64)
    merge_b = np.empty(n - 1, dtype=np.int64)
    height = np.empty(n - 1, dtype=np.float64)
    depth = 0
    for step in range(n - 1):
        if depth == 0:
            for i in range(n):
                if active[i]:
                    chain[0] = i
                    depth = 1
                    break
        while True:           # grow the chain of nearest neighbours until two are mutual
            x = chain[depth - 1]
            y, best = -1, np.inf
            if depth >= 2:    # the predecessor wins ties, so the chain cannot cycle
                y = chain[depth - 2]
                best = dist[x, y]
            for i in range(n):
                if active[i] and i != x and dist[x, i] < best:
                    best, y = dist[x, i], i
            if depth >= 2 and y == chain[depth - 2]:
                break
            chain[depth] = y
            depth += 1
        depth -= 2
        merge_a[step], merge_b[step], height[step] = x, y, best
        active[x] = False             # the merged cluster lives in slot y
        nx, ny = size[x], size[y]
        for i in range(n):
            if active[i] and i != y:
                if method == _WARD:
                    ni = size[i]
                    d = ((nx + ni) * dist[x, i] + (ny + ni) * dist[y, i] - ni * best) / (nx + ny + ni)
                else:
                    d = max(dist[x, i], dist[y, i])
                dist[y, i] = d
                dist[i, y] = d
        size[y] = nx + ny
    _cut(merge_a, merge_b, height, n, method, n_clusters, max_distance, labels)


@nb.njit(cache=True, nogil=True)
def _distances(gram: np.ndarray, n: int, method: int) -> np.ndarray:
    """(n, n) float64 pairwise distances of one document's vectors from their Gram matrix."""
    dist = np.empty((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(n):
            if method == _WARD:       # squared euclidean: Ward's Lance-Williams update is exact on it
                dist[i, j] = max(float(gram[i, i]) + float(gram[j, j]) - 2.0 * float(gram[i, j]), 0.0)
            else:                     # cosine distance
                dist[i, j] = 1.0 - float(gram[i, j]) / max(np.sqrt(float(gram[i, i]) * float(gram[j, j])), 1e-30)
    return dist


@nb.njit(cache=True, nogil=True)
def _cut(merge_a, merge_b, height, n, method, n_clusters, max_distance, labels) -> None:
    """Apply the dendrogram's merges, lowest first, down to n_clusters (Ward) or up to
    max_distance (complete linkage), and number the clusters by their first member."""
    order = np.argsort(height, kind="mergesort")          # the dendrogram, lowest merge first
    n_merges = n - n_clusters if method == _WARD else n - 1
    parent = np.arange(n)
    for m in range(max(n_merges, 0)):
        s = order[m]
        if method == _COMPLETE and height[s] > max_distance:
            break
        a, b = _find(parent, merge_a[s]), _find(parent, merge_b[s])
        parent[max(a, b)] = min(a, b)
    first = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for i in range(n):
        root = _find(parent, i)
        if first[root] < 0:
            first[root] = next_label
            next_label += 1
        labels[i] = first[root]


@nb.njit(cache=True, nogil=True, parallel=True)
def _cluster_batch(grams: np.ndarray, lengths: np.ndarray, out_starts: np.ndarray, method: int,
                   n_clusters: np.ndarray, max_distance: float, labels: np.ndarray) -> None:
    for b in nb.prange(len(lengths)):
        n = lengths[b]
        if n >= 2 and not (method == _WARD and n_clusters[b] >= n):
            _cluster_one(grams[b], n, method, n_clusters[b], max_distance, labels[out_starts[b]:out_starts[b] + n])
        else:
            for i in range(n):
                labels[out_starts[b] + i] = i


def cluster_documents(vectors: np.ndarray, lengths: np.ndarray, method: str, *,
                      n_clusters: np.ndarray | None = None, max_distance: float = 0.0) -> np.ndarray:
    """(n,) int64 cluster label of each vector within its document, numbered from 0 in order of
    each cluster's first vector.

    vectors: (n, dim) float16 or float32 (products in float32; float64 is kept, for exact
    comparisons with scipy); lengths: (n_docs,) int64
    runs of consecutive rows. method "ward": n_clusters (n_docs,) clusters per document (a
    document of at most that many vectors keeps each vector alone); "complete": clusters whose
    every pair lies within max_distance (cosine distance).
    """
    if method not in ("ward", "complete"):
        raise ValueError(f"method must be 'ward' or 'complete', got {method!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    labels = np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], lengths)   # each alone
    if method == "ward":
        if n_clusters is None:
            raise ValueError("ward needs n_clusters per document")
        n_clusters = np.minimum(np.asarray(n_clusters, dtype=np.int64), lengths)
        todo = np.flatnonzero((lengths >= 2) & (n_clusters < lengths))
    else:
        n_clusters = lengths.copy()
        todo = np.flatnonzero(lengths >= 2)
    x = torch.from_numpy(np.ascontiguousarray(vectors))
    by_length = todo[np.argsort(lengths[todo], kind="stable")]
    # Batches of similar length: documents in one power-of-two length band, at most
    # _GRAM_BUDGET / band_max^2 of them, so a batch's padded Gram block stays within the budget.
    band = np.ceil(np.log2(np.maximum(lengths[by_length], 1))).astype(np.int64)
    per_batch = np.maximum(1, _GRAM_BUDGET >> (2 * band))
    rank_in_band = np.arange(len(band)) - np.searchsorted(band, band)
    key = band * (len(band) + 1) + rank_in_band // per_batch
    bounds = np.append(np.flatnonzero(np.diff(key, prepend=-1)), len(key))
    # A bar only in a terminal and only for a stage past 2 s (large collections).
    bar = tqdm(total=len(by_length), desc="pooling", unit="doc", disable=None, delay=2, leave=False)
    for start, end in zip(bounds[:-1], bounds[1:]):
        docs = by_length[start:end]
        longest = max(int(lengths[docs].max()), 1)
        rows = offsets[docs][:, None] + np.arange(longest)[None, :]               # (B, longest)
        valid = np.arange(longest)[None, :] < lengths[docs][:, None]
        # Rows past a document's end repeat row 0; the clustering reads only the top-left n x n block.
        picked = x.index_select(0, torch.from_numpy(np.where(valid, rows, 0).ravel()))   # faster than x[2-d index]
        padded = picked.view(len(docs), longest, -1).to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        grams = torch.bmm(padded, padded.transpose(1, 2)).numpy()                  # (B, longest, longest)
        _cluster_batch(grams, lengths[docs], offsets[docs], _WARD if method == "ward" else _COMPLETE,
                       n_clusters[docs], float(max_distance), labels)
        bar.update(end - start)
    bar.close()
    return labels


@nb.njit(cache=True, nogil=True, parallel=True)
def _cluster_sums(vectors: np.ndarray, offsets: np.ndarray, labels: np.ndarray, out_offsets: np.ndarray,
                  out: np.ndarray) -> None:
    for d in nb.prange(len(offsets) - 1):
        for i in range(offsets[d], offsets[d + 1]):
            row = out_offsets[d] + labels[i]
            for j in range(vectors.shape[1]):
                out[row, j] += vectors[i, j]
        for row in range(out_offsets[d], out_offsets[d + 1]):
            norm = 0.0
            for j in range(out.shape[1]):
                norm += out[row, j] * out[row, j]
            scale = 1.0 / max(np.sqrt(norm), 1e-12)
            for j in range(out.shape[1]):
                out[row, j] *= scale


def pool_by_labels(vectors: np.ndarray, lengths: np.ndarray, labels: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each document's clusters as renormalised means, in label order.

    vectors: (n, dim) float32, C-contiguous; lengths: (n_docs,) int64 (0 allowed); labels: (n,) from
    `cluster_documents`. Returns pooled (m, dim) float32, pooled lengths (n_docs,) int64,
    member order (n,) int64 (row indices grouped by output vector) and members per output
    vector (m,) int64.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n_out = np.zeros(len(lengths), dtype=np.int64)
    filled = lengths > 0                  # an empty document has no clusters (reduceat needs non-empty runs)
    if filled.any():
        n_out[filled] = np.maximum.reduceat(labels, offsets[:-1][filled]) + 1
    out_offsets = np.concatenate([[0], np.cumsum(n_out)]).astype(np.int64)
    # torch.zeros: a fresh numpy array would take its page faults inside the kernel, ~1 s per GB here.
    pooled = torch.zeros((int(out_offsets[-1]), vectors.shape[1]), dtype=torch.float32).numpy()
    _cluster_sums(vectors, offsets, labels, out_offsets, pooled)
    destination = np.repeat(out_offsets[:-1], lengths) + labels
    return (pooled, n_out.astype(np.int64), np.argsort(destination, kind="stable"),
            np.bincount(destination, minlength=len(pooled)).astype(np.int64))


@nb.njit(cache=True, nogil=True)
def document_frequencies(token_ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
    """(vocab_size,) int64 number of documents holding each token id (one pass, a stamp per id)."""
    df = np.zeros(vocab_size, dtype=np.int64)
    last = np.full(vocab_size, -1, dtype=np.int64)
    start = 0
    for d in range(len(lengths)):
        for i in range(start, start + lengths[d]):
            t = token_ids[i]
            if last[t] != d:
                last[t] = d
                df[t] += 1
        start += lengths[d]
    return df
