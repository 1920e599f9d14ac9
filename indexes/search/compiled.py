"""The compiled CPU search path: `indexes/search/kernels.py` driven over an index snapshot.

Same inputs and outputs as `retrieval.retrieve_candidates` and `retrieval.rescore` (their
reference), with numpy arrays instead of torch tensors. Used by the `Searcher` on the CPU for
residual-coded indexes (res1/res2/res4) without k'; everything else takes the reference path.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from indexes.search import kernels
from indexes.search.code_maxsim import maxsim_codes, maxsim_codes_parallel, rescoring_tables
from indexes.positions import expand_ranges
from indexes.search.passages import DEFAULT_AGGREGATION, aggregate
from indexes.storage.store import IndexStore

__all__ = ["supports", "CompiledSearch"]


def supports(store: IndexStore, k_prime: int | None = None) -> bool:
    """Whether the compiled path can serve this index and setting."""
    return store.codec.nbits != 16 and k_prime is None


def token_tables(codec, query: np.ndarray) -> np.ndarray:
    """(T, n_bytes * 256) float32 lookup tables, one contiguous block per query token: entry
    [t, p * 256 + b] = <q_t, the residual dimensions byte value b encodes at byte position p>."""
    _, table = codec.device_tables("cpu")                                  # (n_bytes, 256, per_byte)
    per_byte = table.shape[2]
    q = torch.from_numpy(query).reshape(len(query), -1, per_byte)            # (T, n_bytes, per_byte)
    return torch.einsum("pbk,tpk->tpb", table, q).reshape(len(query), -1).contiguous().numpy()


class CompiledSearch:
    """Workspaces for one index snapshot, one set per thread, reused across queries."""

    def __init__(self, store: IndexStore):
        self.store = store
        self._local = threading.local()
        codec = store.codec
        self._centroids = np.ascontiguousarray(codec.centroids, dtype=np.float32)
        # Matrix products go through torch so that they follow torch's thread setting (numpy's BLAS
        # would start threads of its own that contend with torch's on a small machine).
        self._centroids_t = torch.from_numpy(self._centroids)
        self._byte_table = np.ascontiguousarray(codec.byte_table, dtype=np.float32)
        self._alive = np.ascontiguousarray(store.alive)
        # Per segment: lists, the document of each list position (read in list order, so the first
        # stage never looks a document up at random), stored arrays, document offsets.
        self._segments = [(np.asarray(s.ivf_offsets), np.asarray(s.ivf_vector_ids),
                           s.doc_of_vector[np.asarray(s.ivf_vector_ids)], np.asarray(s.codes),
                           np.asarray(s.residuals), np.asarray(s.doc_offsets), s)
                          for s in store.segments]
        # 1 / |c + r| per stored slot, filled as vectors are rescored (np.zeros: pages the OS maps
        # only when written, so untouched parts of a large index cost no memory).
        self._inverse_norms = [np.zeros(len(s.codes), dtype=np.float32) for s in store.segments]

    def _workspace(self) -> kernels.Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            rows = kernels.nb.config.NUMBA_NUM_THREADS    # one row per worker of a parallel probe
            ws = self._local.ws = kernels.Workspace(self.store.n_positions, rows)
        return ws

    def centroid_scores(self, query: np.ndarray) -> np.ndarray:
        """(T, C) float32 <q_t, centroid c> of one (T, dim) query: both stages read them."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        return (torch.from_numpy(query) @ self._centroids_t.T).numpy()

    def candidates(self, query: np.ndarray, *, nprobe: int, n_candidates: int, threads: int = 1,
                   centroid_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positions (c,) int64, first-stage scores (c,) float32), best first, c <= n_candidates,
        for one (T, dim) float32 projected query of real tokens (see retrieve_candidates).
        threads > 1 deals the query's tokens to that many numba threads; centroid_scores: the
        query's (T, C) `centroid_scores`, when the caller already has them."""
        ws = self._workspace()
        query = np.ascontiguousarray(query, dtype=np.float32)
        scores = self.centroid_scores(query) if centroid_scores is None else centroid_scores   # (T, C)
        n_c = scores.shape[1]
        nprobe = min(nprobe, n_c)
        if nprobe < n_c:
            top = np.argpartition(-scores, nprobe, axis=1)[:, :nprobe + 1]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            probed = np.ascontiguousarray(top[:, :nprobe], dtype=np.int64)
            missing = np.take_along_axis(scores, top[:, nprobe:nprobe + 1], axis=1)[:, 0].astype(np.float32)
        else:        # every list probed: no document misses a token, nothing to impute
            probed = np.ascontiguousarray(np.argsort(-scores, axis=1), dtype=np.int64)
            missing = np.zeros(len(query), dtype=np.float32)
        lut = token_tables(self.store.codec, query)
        bases = self.store.segment_bases
        workers = min(threads, len(ws.acc), len(query))
        if workers > 1:
            kernels.nb.set_num_threads(workers)           # this calling thread only
        for s, (ivf_offsets, ivf_ids, slot_docs, _, residuals, _, segment) in enumerate(self._segments):
            args = (probed, scores, lut, missing, ivf_offsets, ivf_ids, residuals, slot_docs, segment.list_major,
                    int(bases[s]), self._alive)
            if workers > 1:
                kernels.probe_segment_parallel(*args, ws.acc, ws.seen, ws.best, ws.touched, ws.token_touched,
                                               ws.n_touched, workers)
            else:
                kernels.probe_segment(*args, ws.acc[0], ws.seen[0], ws.best[0], ws.touched[0], ws.token_touched[0],
                                      ws.n_touched[:1])
        if workers > 1:
            kernels.merge_workers(ws.acc, ws.seen, ws.touched, ws.n_touched, workers)
        docs = np.empty(n_candidates, dtype=np.int64)
        top_scores = np.empty(n_candidates, dtype=np.float32)
        n = kernels.select_candidates(ws.acc[0], ws.seen[0], ws.touched[0], ws.n_touched[:1], n_candidates, docs,
                                      top_scores)
        return docs[:n], top_scores[:n] + np.float32(missing.sum())

    def rescore(self, query: np.ndarray, positions: np.ndarray, threads: int = 1,
                centroid_scores: np.ndarray | None = None, aggregation: str = DEFAULT_AGGREGATION) -> np.ndarray:
        """(c,) float32 exact MaxSim of one (T, dim) query against the documents at `positions`,
        scored from their stored codes (indexes/search/code_maxsim.py) passage by passage and
        aggregated per document (indexes/search/passages.py); threads > 1 splits the passages over
        numba's parallel loop (never called from several threads at once: some numba threading
        layers do not allow it). centroid_scores: as in `candidates`."""
        out = np.zeros(len(positions), dtype=np.float32)
        for which, block, counts in self._unit_scores(query, positions, threads, centroid_scores,
                                                      whole=aggregation == "union"):
            out[which] = block if counts is None else aggregate(block, counts, aggregation)[0]
        return out

    def passage_scores(self, query: np.ndarray, positions: np.ndarray,
                       centroid_scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores (P,) float32 of every passage of the documents at `positions`, document after
        document in that order; counts (c,) int64 passages per document)."""
        positions = np.asarray(positions, dtype=np.int64)
        counts = self.store.passage_counts(positions)
        first = np.cumsum(counts) - counts
        out = np.zeros(int(counts.sum()), dtype=np.float32)
        for which, block, _ in self._unit_scores(query, positions, 1, centroid_scores):
            out[expand_ranges(first[which], counts[which])] = block       # each segment's passages, in place
        return out, counts

    def _unit_scores(self, query, positions, threads, centroid_scores, whole: bool = False):
        """Per segment: (which (indices into positions), MaxSim of each unit (float32), passages per
        document or None when every unit is a document); a unit is a passage, or with `whole` a
        document scored over all its vectors."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.int64)
        scores = self.centroid_scores(query) if centroid_scores is None else centroid_scores
        scores_t = np.ascontiguousarray(scores.T)                                   # (C, T)
        tables = rescoring_tables(self.store.codec, query)                         # (n_bytes * 256, T)
        for s, which, codes, residuals, starts, lengths, segment in self.by_segment(positions):
            counts = None
            if not whole and segment.doc_passages is not None:
                starts, lengths, counts = segment.passages_of(positions[which] - int(self.store.segment_bases[s]))
            rows = np.asarray(segment.slots(expand_ranges(starts, lengths)), dtype=np.int64)
            n_units = len(lengths)
            starts = np.zeros(n_units, dtype=np.int64)          # where each unit's rows begin in rows
            np.cumsum(lengths[:-1], out=starts[1:])
            scratch = self._scratch(n_units, len(query))
            norms = self._inverse_norms[s]
            block = np.empty(n_units, dtype=np.float32)
            if threads > 1:
                kernels.nb.set_num_threads(min(threads, kernels.nb.config.NUMBA_NUM_THREADS))   # this thread only
                maxsim_codes_parallel(rows, starts, lengths, codes, residuals, scores_t, tables, self._centroids,
                                      self._byte_table, norms, scratch, block)
            else:
                maxsim_codes(rows, starts, lengths, codes, residuals, scores_t, tables, self._centroids,
                             self._byte_table, norms, scratch, block)
            yield which, block, counts

    def by_segment(self, positions: np.ndarray):
        """For each segment holding some of `positions`: (segment number, which (indices into
        positions), codes, residuals, starts and lengths of those documents' vectors (vector ids in
        the segment), the Segment)."""
        bases = self.store.segment_bases
        segment_of = np.searchsorted(bases, positions, side="right") - 1
        for s in np.unique(segment_of):
            _, _, _, codes, residuals, doc_offsets, segment = self._segments[s]
            which = np.flatnonzero(segment_of == s)
            local = positions[which] - int(bases[s])
            starts = doc_offsets[local]
            yield int(s), which, codes, residuals, starts, doc_offsets[local + 1] - starts, segment

    def _scratch(self, n_docs: int, n_tokens: int) -> np.ndarray:
        """A (n_docs, 2, n_tokens) float32 workspace of this thread, grown when a query needs more."""
        scratch = getattr(self._local, "scratch", None)
        if scratch is None or scratch.shape[0] < n_docs or scratch.shape[2] != n_tokens:
            scratch = self._local.scratch = np.empty((max(n_docs, 256), 2, n_tokens), dtype=np.float32)
        return scratch
