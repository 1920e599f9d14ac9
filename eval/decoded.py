"""The rescoring path before code scoring, kept as the baseline eval.rescoring measures against:
decode every candidate vector to float32 (normalize(centroid + residual), byte by byte), then one
matrix product and a max per document. Same inputs and outputs as CompiledSearch.rescore.

    scores = rescore_decoded(search, query, positions, threads=1)     # search: a CompiledSearch
"""

from __future__ import annotations

import threading

import numba as nb
import numpy as np
import torch

from indexes.positions import expand_ranges
from indexes.search.kernels import _jit, _pjit, _prange

__all__ = ["rescore_decoded"]

_BLOCK_VECTORS = 4096      # candidate vectors decoded per block (a 6 MiB float32 buffer at 384 dims)
_local = threading.local()


def _buffer(dim: int, rows: int = _BLOCK_VECTORS) -> np.ndarray:
    """This thread's decoding buffer of at least `rows` rows."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or buffer.shape[1] != dim or len(buffer) < rows:
        buffer = _local.buffer = np.empty((max(rows, _BLOCK_VECTORS), dim), dtype=np.float32)
    return buffer


def rescore_decoded(search, query: np.ndarray, positions: np.ndarray, threads: int = 1) -> np.ndarray:
    """(c,) float32 exact MaxSim of one (T, dim) query against the documents at `positions`, by
    decoding them first; threads > 1 decodes in numba's parallel loop."""
    buffer = _buffer(search.store.codec.dim)
    query_t = torch.from_numpy(np.ascontiguousarray(np.asarray(query, dtype=np.float32).T))   # (dim, T)
    out = np.zeros(len(positions), dtype=np.float32)
    for _, which, codes, residuals, starts, lengths, segment in search.by_segment(np.asarray(positions, np.int64)):
        first = 0
        while first < len(which):
            # As many whole documents as fit in the buffer (at least one; a longer one grows it).
            end = first + max(1, int(np.searchsorted(np.cumsum(lengths[first:]), len(buffer), side="right")))
            rows = segment.slots(expand_ranges(starts[first:end], lengths[first:end]))
            if len(rows) > len(buffer):
                buffer = _buffer(buffer.shape[1], len(rows))
            if threads > 1:
                nb.set_num_threads(min(threads, nb.config.NUMBA_NUM_THREADS))   # this thread only
                decode_into_parallel(codes, residuals, rows, search._centroids, search._byte_table, buffer)
            else:
                decode_into(codes, residuals, rows, search._centroids, search._byte_table, buffer)
            sims = (torch.from_numpy(buffer[:len(rows)]) @ query_t).numpy()        # (n_rows, T)
            block = np.empty(end - first, dtype=np.float32)
            maxsim_block(sims, lengths[first:end], block)
            out[which[first:end]] = block
            first = end
    return out


def _decode_into(codes, residuals, rows, centroids, byte_table, out):
    """Decode stored vectors `rows` (slots in codes / residuals) into out[:len(rows)] as unit
    float32 rows: normalize(centroids[code] + residual decoded byte by byte). byte_table:
    (n_bytes * 256, per_byte) float32, what byte b decodes to at position p (row p * 256 + b).
    Rows are visited in slot order (a candidate's vectors lie in many lists; reading the stored
    arrays front to back lets the hardware prefetch them), each written to its own out row."""
    n_bytes = residuals.shape[1]
    per_byte = byte_table.shape[1]
    dim = out.shape[1]
    flat = byte_table.ravel()
    visit = np.argsort(rows)
    for k in _prange(len(rows)):
        r = visit[k]
        v = rows[r]
        row = residuals[v]
        target = out[r]
        for p in range(n_bytes):                         # residual: one small table row per byte
            start = (p * 256 + row[p]) * per_byte
            for j in range(per_byte):
                target[p * per_byte + j] = flat[start + j]
        centroid = centroids[codes[v]]
        norm = np.float32(0.0)
        for d in range(dim):                             # + centroid, and the norm: contiguous, vectorised
            x = target[d] + centroid[d]
            target[d] = x
            norm += x * x
        scale = np.float32(1.0) / max(np.sqrt(norm), np.float32(1e-12))
        for d in range(dim):
            target[d] *= scale


decode_into = _jit(_decode_into)
decode_into_parallel = _pjit(_decode_into)   # the same loop over rows, split over numba's threads


@_jit
def maxsim_block(sims, doc_lengths, out):
    """sims: (n_vectors, T) similarities of consecutive documents' vectors to T query tokens;
    doc_lengths: vectors per document. out[d] = sum over tokens of the max over its vectors."""
    row = 0
    for d in range(len(doc_lengths)):
        total = 0.0
        for t in range(sims.shape[1]):
            m = -np.inf
            for i in range(row, row + doc_lengths[d]):
                if sims[i, t] > m:
                    m = sims[i, t]
            total += m
        out[d] = total
        row += doc_lengths[d]
