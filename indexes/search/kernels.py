"""Compiled CPU kernels (numba) for the first search stage; `indexes/search/retrieval.py` is their reference.

Stage 1, `probe_segment`: for each query token, walk its probed centroid lists, score each vector
as <q, centroid> + <q, residual> (the residual part from the per-token lookup table, one lookup
per packed byte), keep the best score per (token, document), and fold it into the document's
running sum as (best - imputed): the imputed score of a token that retrieved nothing from a
document is added once for all documents at the end. Nothing is materialised per (token, vector)
pair; the per-document arrays are workspaces reused across queries (`Workspace`), reset by
walking the documents touched, so a query costs time and memory in what it probes only.

Stage 2, exact MaxSim of the candidates from their stored codes, is in indexes/search/code_maxsim.py.

Kernels are compiled on first use and cached on disk by numba (`cache=True`); numba is a
required dependency.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["Workspace", "probe_segment", "probe_segment_parallel", "merge_workers", "select_candidates"]

# fastmath without the no-inf / no-NaN assumptions: -inf marks "no score yet".
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
_prange = nb.prange


def _jit(fn, parallel: bool = False):
    """Compiled (parallel: with prange loops, whose threads follow numba.set_num_threads)."""
    return nb.njit(cache=True, nogil=True, fastmath=_FASTMATH, parallel=parallel)(fn)


def _pjit(fn):
    return _jit(fn, parallel=True)


class Workspace:
    """Per-document scratch arrays of one index snapshot, reused across queries (not thread-safe:
    one per searching thread), one row per worker of a parallel probe. acc: running sum of
    (best - imputed) per document; best: the current token's best score per document; touched /
    token_touched: lists of documents."""

    def __init__(self, n_positions: int, rows: int = 1):
        self.n_positions = n_positions
        self.acc = np.zeros((rows, n_positions), dtype=np.float32)
        self.seen = np.zeros((rows, n_positions), dtype=np.bool_)
        self.best = np.full((rows, n_positions), -np.inf, dtype=np.float32)
        self.touched = np.zeros((rows, n_positions), dtype=np.int64)
        self.token_touched = np.zeros((rows, n_positions), dtype=np.int64)
        self.n_touched = np.zeros(rows, dtype=np.int64)


@_jit
def probe_segment(probed, centroid_scores, lut, missing, ivf_offsets, ivf_ids, residuals, slot_docs,
                  list_major, base, alive, acc, seen, best, touched, token_touched, n_touched, first=0, step=1):
    """Score every vector of the probed lists of one segment and fold the per-(token, document)
    best into acc (see the module docstring).

    probed: (T, nprobe) int64 centroid ids per token; centroid_scores: (T, C) float32; lut:
    (T, n_bytes * 256) float32, lut[t, p * 256 + b] = <q_t, what byte value b encodes at byte
    position p>; missing: (T,) float32 imputed score per token (finite); ivf_offsets (C + 1,),
    ivf_ids (m,), residuals (m, n_bytes) uint8 of the segment; slot_docs (m,) int32, the document
    of the vector at each list position (doc_of_vector[ivf_ids], read front to back like the
    lists); list_major: residuals are stored in list order (slot i holds vector ivf_ids[i]), else
    in vector order; base: the segment's first global position; alive: (n_positions,) bool. acc, seen, best, touched,
    token_touched, n_touched: one row of the Workspace arrays. Tokens first, first + step, ... only.
    """
    n_tokens, nprobe = probed.shape
    n_bytes = residuals.shape[1]
    n_quads = n_bytes // 4
    for t in range(first, n_tokens, step):
        table = lut[t]
        n_tok = 0
        for j in range(nprobe):
            c = probed[t, j]
            cscore = centroid_scores[t, c]
            for i in range(ivf_offsets[c], ivf_offsets[c + 1]):
                doc = base + slot_docs[i]
                if not alive[doc]:
                    continue
                row = residuals[i] if list_major else residuals[ivf_ids[i]]
                # Four independent sums: the lookups of one vector do not wait on each other.
                s0 = np.float32(0.0)
                s1 = np.float32(0.0)
                s2 = np.float32(0.0)
                s3 = np.float32(0.0)
                for q in range(n_quads):
                    p = 4 * q
                    s0 += table[p * 256 + row[p]]
                    s1 += table[(p + 1) * 256 + row[p + 1]]
                    s2 += table[(p + 2) * 256 + row[p + 2]]
                    s3 += table[(p + 3) * 256 + row[p + 3]]
                for p in range(4 * n_quads, n_bytes):
                    s0 += table[p * 256 + row[p]]
                s = cscore + ((s0 + s1) + (s2 + s3))
                if s > best[doc]:
                    if best[doc] == -np.inf:
                        token_touched[n_tok] = doc
                        n_tok += 1
                    best[doc] = s
        for i in range(n_tok):
            doc = token_touched[i]
            acc[doc] += best[doc] - missing[t]
            best[doc] = -np.inf
            if not seen[doc]:
                seen[doc] = True
                touched[n_touched[0]] = doc
                n_touched[0] += 1


@_pjit
def probe_segment_parallel(probed, centroid_scores, lut, missing, ivf_offsets, ivf_ids, residuals, slot_docs,
                           list_major, base, alive, acc, seen, best, touched, token_touched, n_touched, workers):
    """`probe_segment` with the tokens dealt to `workers` threads, each folding into its own row of
    the (rows, n_positions) workspace arrays; `merge_workers` then adds the rows into row 0."""
    for w in _prange(workers):
        probe_segment(probed, centroid_scores, lut, missing, ivf_offsets, ivf_ids, residuals, slot_docs,
                      list_major, base, alive, acc[w], seen[w], best[w], touched[w], token_touched[w],
                      n_touched[w:w + 1], w, workers)


@_jit
def merge_workers(acc, seen, touched, n_touched, workers):
    """Fold workspace rows 1..workers-1 into row 0 (sums per document, touched lists) and reset them."""
    for w in range(1, workers):
        for i in range(n_touched[w]):
            doc = touched[w, i]
            if not seen[0, doc]:
                seen[0, doc] = True
                touched[0, n_touched[0]] = doc
                n_touched[0] += 1
            acc[0, doc] += acc[w, doc]
            acc[w, doc] = 0.0
            seen[w, doc] = False
        n_touched[w] = 0


@_jit
def _worse(heap_s, heap_d, a, b):
    """Whether heap entry a ranks below entry b (lower score; on a tie, the larger position)."""
    return heap_s[a] < heap_s[b] or (heap_s[a] == heap_s[b] and heap_d[a] > heap_d[b])


@_jit
def _sift_down(heap_s, heap_d, j, size):
    """Restore the min-heap (worst entry at the root) below index j."""
    while True:
        left, right, small = 2 * j + 1, 2 * j + 2, j
        if left < size and _worse(heap_s, heap_d, left, small):
            small = left
        if right < size and _worse(heap_s, heap_d, right, small):
            small = right
        if small == j:
            return
        heap_s[small], heap_s[j] = heap_s[j], heap_s[small]
        heap_d[small], heap_d[j] = heap_d[j], heap_d[small]
        j = small


@_jit
def select_candidates(acc, seen, touched, n_touched, n_candidates, out_docs, out_scores):
    """Top n_candidates touched documents by acc (best first, ties by position) into out_docs /
    out_scores, and reset the workspace for the next query. Returns how many were written."""
    n = n_touched[0]
    k = min(n_candidates, n)
    heap_s = np.empty(k, dtype=np.float32)             # min-heap of the k best so far
    heap_d = np.empty(k, dtype=np.int64)
    size = 0
    for i in range(n):
        doc = touched[i]
        s = acc[doc]
        acc[doc] = 0.0
        seen[doc] = False
        if size < k:
            heap_s[size] = s
            heap_d[size] = doc
            j = size
            size += 1
            while j > 0 and _worse(heap_s, heap_d, j, (j - 1) // 2):          # sift up
                parent = (j - 1) // 2
                heap_s[parent], heap_s[j] = heap_s[j], heap_s[parent]
                heap_d[parent], heap_d[j] = heap_d[j], heap_d[parent]
                j = parent
        elif k > 0 and (s > heap_s[0] or (s == heap_s[0] and doc < heap_d[0])):
            heap_s[0] = s
            heap_d[0] = doc
            _sift_down(heap_s, heap_d, 0, size)
    n_touched[0] = 0
    for i in range(size - 1, -1, -1):                  # pop the worst each time: written back to front
        out_scores[i] = heap_s[0]
        out_docs[i] = heap_d[0]
        heap_s[0] = heap_s[i]
        heap_d[0] = heap_d[i]
        _sift_down(heap_s, heap_d, 0, i)
    return size
