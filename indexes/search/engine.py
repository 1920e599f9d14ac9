"""The search engine over one index snapshot: arrays in, arrays out, no model code.

    engine = Engine(store, nprobe=8, n_candidates=64)
    scores, positions = engine.search(queries, k=10, first_stage="token", fusion="adaptive",
                                      lexical=LexicalQueries.from_texts(texts))
    ids = engine.doc_ids(positions)

queries: (n, L, dim) float32 query token vectors in the encoder's space (zero rows: padding);
returns scores (n, k) float32 best first, padded with -inf, and positions (n, k) int64, padded
with -1. `search` (indexes/search/ranker.py, shared with shard sets) runs the dense side here, BM25 over
the snapshot's lexical lists and the fusion. Dense: a first stage (indexes/names.py; each a pure
function in `_STAGES` giving one query's candidate positions), then exact MaxSim rescoring
("exhaustive" scores every document instead).

On the CPU the token first stage and the rescoring run as compiled kernels (indexes/search/compiled.py)
when the index is residual-coded; `backend="reference"` forces the numpy / torch path, which
also serves CUDA, float16 indexes and k'.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from indexes.search import compiled
from indexes.search.bm25 import LexicalQueries, LexicalStats, store_bm25, store_lexical_stats
from indexes.positions import expand_ranges
from indexes.search.maxsim import maxsim_scores, pick_device, search_blocks
from indexes.search.passages import DEFAULT_AGGREGATION, aggregate, check_aggregation
from indexes.names import FIRST_STAGES
from indexes.search.ranker import Ranker
from indexes.search.timings import Timings
from indexes.search.retrieval import rescore, retrieve_candidates
from indexes.storage.store import IndexStore
from indexes.search.vocab import retrieve_by_term

__all__ = ["Engine", "FIRST_STAGES", "BACKENDS", "EXACT_FILTER_LIMIT"]

BACKENDS = ("auto", "compiled", "reference")
EXACT_FILTER_LIMIT = 512   # a filter allowing at most this many documents may rescore them all (memory-bound)


def _token(engine: "Engine", query: torch.Tensor, n: int, threads: int = 1, centroid_scores=None, **_) -> np.ndarray:
    fast = engine.compiled_path(query.device)
    if fast is not None:
        return fast.candidates(query.numpy(), nprobe=engine.nprobe, n_candidates=n, threads=threads,
                               centroid_scores=centroid_scores)[0]
    return retrieve_candidates(engine.store, query, nprobe=engine.nprobe, k_prime=engine.k_prime, n_candidates=n)[0]


def _vocab(engine: "Engine", query: torch.Tensor, n: int, term_ids=None, **_) -> np.ndarray:
    if term_ids is None:
        raise ValueError("the 'vocab' and 'union' first stages need term_ids (Encoder.query_term_ids)")
    return retrieve_by_term(engine.store, query, term_ids, n_candidates=n)[0]


def _union(engine: "Engine", query: torch.Tensor, n: int, threads: int = 1, centroid_scores=None,
           **kwargs) -> np.ndarray:
    return np.unique(np.concatenate([_token(engine, query, n, threads, centroid_scores),
                                     _vocab(engine, query, n, **kwargs)]))


def _supplied(engine: "Engine", query: torch.Tensor, n: int, candidates=None, **_) -> np.ndarray:
    if candidates is None:
        raise ValueError("the 'candidates' first stage needs candidates= (positions per query)")
    positions = np.unique(np.asarray(candidates, dtype=np.int64))
    return positions[engine.store.alive[positions]]


# name -> function(engine, one query's real rows (T, dim) tensor, n candidates, term_ids=, candidates=)
_STAGES: dict[str, Callable | None] = {"token": _token, "vocab": _vocab, "union": _union,
                                       "candidates": _supplied, "exhaustive": None}
assert tuple(sorted(_STAGES)) == tuple(sorted(FIRST_STAGES))


def _selective(store: IndexStore, allowed: np.ndarray | None) -> np.ndarray | None:
    """The allowed live positions when few enough to rescore them all if need be, else None."""
    if allowed is not None and (allowed & store.alive).sum() <= EXACT_FILTER_LIMIT:
        return np.flatnonzero(allowed & store.alive)
    return None


def _clock(device: torch.device, timings: Timings | None) -> float:
    """time.perf_counter(), after the device's queued kernels finish when a CUDA search is timed
    (a stage's time is its kernels', not their launch)."""
    if timings is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class Engine(Ranker):
    """Search settings and workspaces for one index snapshot (see the module docstring)."""

    def __init__(self, store: IndexStore, *, nprobe: int = 8, n_candidates: int = 64, k_prime: int | None = None,
                 device: str | torch.device | None = None, backend: str = "auto",
                 aggregation: str = DEFAULT_AGGREGATION):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.aggregation = check_aggregation(aggregation)
        self.store, self.nprobe, self.n_candidates, self.k_prime = store, nprobe, n_candidates, k_prime
        self.device = pick_device(device)
        self.backend = backend
        self._compiled: compiled.CompiledSearch | None = None

    def compiled_path(self, device: torch.device) -> "compiled.CompiledSearch | None":
        """The compiled path for this snapshot, or None where the reference path must serve."""
        if self.backend == "reference" or device.type != "cpu" or not compiled.supports(self.store, self.k_prime):
            if self.backend == "compiled":
                raise ValueError("the compiled backend serves residual-coded indexes on the CPU without k_prime; "
                                 "use backend='auto' or 'reference'")
            return None
        if self._compiled is None:
            self._compiled = compiled.CompiledSearch(self.store)
        return self._compiled

    @property
    def n_positions(self) -> int:
        return self.store.n_positions

    @property
    def has_lexical(self) -> bool:
        return self.store.has_lexical

    def lexical_stats(self, lexical: LexicalQueries) -> LexicalStats:
        return store_lexical_stats(self.store, lexical)

    def bm25(self, lexical: LexicalQueries, depth: int, allowed: np.ndarray | None,
             stats: LexicalStats) -> tuple[np.ndarray, np.ndarray]:
        return store_bm25(self.store, lexical, depth, allowed, stats)

    def doc_ids(self, positions: np.ndarray) -> list[list[str]]:
        return self.store.doc_ids(positions)

    def dense(self, queries: np.ndarray, k: int, first_stage: str = "token", allowed: np.ndarray | None = None,
              term_ids: np.ndarray | None = None, candidates: list | None = None,
              timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k late-interaction (scores, positions) per query (arguments: Ranker.search).

        A filter (`allowed`) applies to the candidates; one allowing at most EXACT_FILTER_LIMIT
        documents rescores all of them when the candidates hold fewer than k."""
        store = self.store
        n_q, q_len, dim = queries.shape
        # A PCA index scores in its projected space; zero (padding) rows stay zero.
        projected = store.codec.project(queries.reshape(n_q * q_len, dim)).reshape(n_q, q_len, -1)
        if first_stage == "exhaustive":
            alive = store.alive if allowed is None else store.alive & allowed
            return search_blocks(projected, store.blocks(), store.n_positions, k=k, dim=store.codec.dim,
                                 alive=alive, device=self.device)
        stage = _STAGES[first_stage]
        tensor = torch.as_tensor(projected, device=self.device)
        scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        indices = np.full((n_q, k), -1, dtype=np.int64)
        real_rows = (tensor.norm(dim=2) > 0).cpu().numpy()   # zero (padding) rows add 0 to every score
        selective = _selective(store, allowed)

        fast = self.compiled_path(self.device)
        workers = min(n_q, torch.get_num_threads())
        parallel_queries = workers > 1 and fast is not None

        def one(i: int) -> None:
            real = tensor[i][torch.from_numpy(real_rows[i]).to(self.device)]
            threads = 1 if parallel_queries else torch.get_num_threads()
            started = _clock(self.device, timings)
            # The query's centroid scores serve both compiled stages: computed once.
            shared = fast.centroid_scores(real.numpy()) if fast is not None else None
            positions = stage(self, real, max(self.n_candidates, k), threads=threads, centroid_scores=shared,
                              term_ids=None if term_ids is None else np.asarray(term_ids)[i][real_rows[i]],
                              candidates=None if candidates is None else candidates[i])
            if allowed is not None:
                positions = positions[allowed[positions]]
                if len(positions) < k and selective is not None:
                    positions = selective       # a selective filter: score every allowed document
            middle = _clock(self.device, timings)
            exact = self.rescore(real, positions, threads=threads, centroid_scores=shared)
            if timings is not None:
                timings.add("first_stage", middle - started)
                timings.add("rescoring", _clock(self.device, timings) - middle)
            n = min(k, len(positions))
            top = np.lexsort((positions, -exact))[:n]       # best first, ties by position
            scores[i, :n] = exact[top]
            indices[i, :n] = positions[top]

        if parallel_queries:
            # Queries of a batch in parallel, one per torch thread: the kernels release the GIL and
            # keep one workspace per thread. The pool lives for this call only.
            with ThreadPoolExecutor(workers, thread_name_prefix="tessera-query") as pool:
                list(pool.map(one, range(n_q)))
        else:
            for i in range(n_q):
                one(i)
        return scores, indices

    def candidates(self, query: torch.Tensor, k: int = 0, first_stage: str = "token",
                   term_ids: np.ndarray | None = None) -> np.ndarray:
        """First-stage candidate positions of one projected (L, dim) query (padding rows dropped)."""
        real = (query.norm(dim=1) > 0).cpu().numpy()
        return _STAGES[first_stage](self, query[torch.from_numpy(real).to(query.device)],
                                         max(self.n_candidates, k),
                                         term_ids=None if term_ids is None else np.asarray(term_ids)[real])

    def rescore(self, query: torch.Tensor, positions: np.ndarray, threads: int = 1,
                centroid_scores: np.ndarray | None = None) -> np.ndarray:
        """(c,) float32 exact MaxSim of one (T, dim) projected query against `positions`, each
        document scored from its passages by the engine's aggregation (centroid_scores: the query's
        (T, C) scores against the centroids, when already known)."""
        fast = self.compiled_path(query.device)
        if fast is not None:
            return fast.rescore(query.numpy(), positions, threads, centroid_scores=centroid_scores,
                                aggregation=self.aggregation)
        return rescore(self.store, query[None], positions, self.aggregation)[0].cpu().numpy()

    def passage_scores(self, query: torch.Tensor, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (P,) float32 exact MaxSim of one (T, dim) projected query against every passage of
        the documents at `positions`, document after document; counts (c,) int64 passages each)."""
        fast = self.compiled_path(query.device)
        if fast is not None:
            return fast.passage_scores(query.numpy(), positions)
        scores, counts = [], []
        for position in np.asarray(positions).tolist():
            segment, local = self.store.locate(position)
            starts, lengths, n = segment.passages_of(np.array([local]))
            rows = expand_ranges(starts, lengths)
            vectors = self.store.codec.decompress(segment.vector_codes(rows), segment.vector_residuals(rows),
                                                  query.device)
            scores.append(maxsim_scores(query[None], vectors, torch.as_tensor(lengths, device=query.device))[0])
            counts.append(int(n[0]))
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return torch.cat(scores).cpu().numpy(), np.array(counts, dtype=np.int64)

    def _real_rows(self, queries: np.ndarray) -> list[torch.Tensor]:
        """Each query's projected real (non-padding) rows."""
        n_q, q_len, dim = queries.shape
        projected = self.store.codec.project(queries.reshape(n_q * q_len, dim)).reshape(n_q, q_len, -1)
        return [torch.as_tensor(q[np.linalg.norm(q, axis=1) > 0], device=self.device) for q in projected]

    def passage_spans(self, queries: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(n, k, 2) int64 [start, end) characters of the best passage of each result (a document's
        text; end -1: to its end; -1 rows for padding), for queries (n, L, dim) and positions (n, k)
        as `search` returned them. Only documents stored as several passages are scored again."""
        positions = np.asarray(positions, dtype=np.int64)
        spans = np.full((*positions.shape, 2), -1, dtype=np.int64)
        spans[positions >= 0] = (0, -1)
        for i, real in enumerate(self._real_rows(queries)):
            columns = np.flatnonzero(positions[i] >= 0)
            split = columns[self.store.passage_counts(positions[i, columns]) > 1]
            if not len(split):
                continue
            best = aggregate(*self.passage_scores(real, positions[i, split]), "maxp")[1]
            for column, number in zip(split.tolist(), best.tolist()):
                segment, local = self.store.locate(int(positions[i, column]))
                spans[i, column] = segment.passage_span(local, number)
        return spans

    def passage_ranking(self, queries: np.ndarray, positions: np.ndarray,
                        k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k best passages of the documents at `positions` (n, c) for each query (n, L, dim), by
        exact MaxSim: (scores (n, k) float32, their documents' positions (n, k) int64, spans (n, k, 2)
        int64 as `passage_spans`), best first, ties by position then passage; padding -inf / -1."""
        positions = np.asarray(positions, dtype=np.int64)
        out_s = np.full((len(positions), k), -np.inf, dtype=np.float32)
        out_p = np.full((len(positions), k), -1, dtype=np.int64)
        out_spans = np.full((len(positions), k, 2), -1, dtype=np.int64)
        for i, real in enumerate(self._real_rows(queries)):
            docs = positions[i][positions[i] >= 0]
            scores, counts = self.passage_scores(real, docs)
            owner = np.repeat(docs, counts)
            number = np.arange(len(scores)) - np.repeat(np.cumsum(counts) - counts, counts)
            top = np.lexsort((number, owner, -scores))[:k]
            out_s[i, :len(top)], out_p[i, :len(top)] = scores[top], owner[top]
            for j, (position, n) in enumerate(zip(owner[top].tolist(), number[top].tolist())):
                segment, local = self.store.locate(position)
                out_spans[i, j] = segment.passage_span(local, n)
        return out_s, out_p, out_spans
