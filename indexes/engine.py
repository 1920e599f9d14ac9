"""The dense search engine over one index snapshot: arrays in, arrays out, no model code.

    engine = Engine(store, nprobe=8, n_candidates=64)
    scores, positions = engine.search(queries, k=10, first_stage="token", allowed=None, term_ids=None)

queries: (n, L, dim) float32 query token vectors in the encoder's space (zero rows: padding);
returns scores (n, k) float32 best first, padded with -inf, and positions (n, k) int64, padded
with -1 (`IndexStore.document(position)` names the document). First stages are pure functions in
one table, `FIRST_STAGES`; each gives one query's candidate positions, which exact MaxSim then
rescores ("exhaustive" scores every document instead):

    token        centroid token retrieval with imputation (XTR / WARP style; indexes/retrieval.py)
    vocab        the lists of the query's own terms (COIL style; indexes/vocab.py), needs term_ids
    union        both candidate sets
    candidates   positions supplied by the caller (a BM25 or any external first stage)
    exhaustive   exact MaxSim over every document (the reference)

On the CPU the token first stage and the rescoring run as compiled kernels (indexes/compiled.py)
when numba is installed and the index is residual-coded; `backend="reference"` forces the
numpy / torch path, which also serves CUDA, float16 indexes and k'.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch

from . import compiled
from .maxsim import pick_device, search_blocks
from .retrieval import rescore, retrieve_candidates
from .store import IndexStore
from .vocab import retrieve_by_term

__all__ = ["Engine", "FIRST_STAGES", "BACKENDS", "EXACT_FILTER_LIMIT"]

BACKENDS = ("auto", "compiled", "reference")
EXACT_FILTER_LIMIT = 512   # a filter allowing at most this many documents may rescore them all (memory-bound)


def _token(engine: "Engine", query: torch.Tensor, n: int, threads: int = 1, **_) -> np.ndarray:
    fast = engine.compiled_path(query.device)
    if fast is not None:
        return fast.candidates(query.numpy(), nprobe=engine.nprobe, n_candidates=n, threads=threads)[0]
    return retrieve_candidates(engine.store, query, nprobe=engine.nprobe, k_prime=engine.k_prime, n_candidates=n)[0]


def _vocab(engine: "Engine", query: torch.Tensor, n: int, term_ids=None, **_) -> np.ndarray:
    if term_ids is None:
        raise ValueError("the 'vocab' and 'union' first stages need term_ids (Encoder.query_term_ids)")
    return retrieve_by_term(engine.store, query, term_ids, n_candidates=n)[0]


def _union(engine: "Engine", query: torch.Tensor, n: int, threads: int = 1, **kwargs) -> np.ndarray:
    return np.unique(np.concatenate([_token(engine, query, n, threads), _vocab(engine, query, n, **kwargs)]))


def _supplied(engine: "Engine", query: torch.Tensor, n: int, candidates=None, **_) -> np.ndarray:
    if candidates is None:
        raise ValueError("the 'candidates' first stage needs candidates= (positions per query)")
    positions = np.unique(np.asarray(candidates, dtype=np.int64))
    return positions[engine.store.alive[positions]]


# name -> function(engine, one query's real rows (T, dim) tensor, n candidates, term_ids=, candidates=)
FIRST_STAGES: dict[str, Callable | None] = {"token": _token, "vocab": _vocab, "union": _union,
                                            "candidates": _supplied, "exhaustive": None}


class Engine:
    """Search settings and workspaces for one index snapshot (see the module docstring)."""

    def __init__(self, store: IndexStore, *, nprobe: int = 8, n_candidates: int = 64, k_prime: int | None = None,
                 device: str | torch.device | None = None, backend: str = "auto"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "compiled" and not compiled.kernels.available():
            raise ImportError("the compiled backend needs numba: pip install numba (or use backend='reference')")
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

    def search(self, queries: np.ndarray, k: int = 10, *, first_stage: str = "token",
               allowed: np.ndarray | None = None, term_ids: np.ndarray | None = None,
               candidates: list[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) per query; see the module docstring.

        allowed: (n_positions,) bool, only these documents may be returned (applied to the
        candidates; a filter allowing at most EXACT_FILTER_LIMIT documents rescores all of them
        when the candidates hold fewer than k). term_ids: (n, L) vocabulary id per query row (-1:
        none), for "vocab" and "union". candidates: one positions array per query, for "candidates".
        """
        if first_stage not in FIRST_STAGES:
            raise ValueError(f"first_stage must be one of {sorted(FIRST_STAGES)}, got {first_stage!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        store = self.store
        n_q, q_len, dim = queries.shape
        # A PCA index scores in its projected space; zero (padding) rows stay zero.
        projected = store.codec.project(queries.reshape(n_q * q_len, dim)).reshape(n_q, q_len, -1)
        if first_stage == "exhaustive":
            alive = store.alive if allowed is None else store.alive & allowed
            return search_blocks(projected, store.blocks(), store.n_positions, k=k, dim=store.codec.dim,
                                 alive=alive, device=self.device)
        stage = FIRST_STAGES[first_stage]
        tensor = torch.as_tensor(projected, device=self.device)
        scores = np.full((n_q, k), -np.inf, dtype=np.float32)
        indices = np.full((n_q, k), -1, dtype=np.int64)
        real_rows = (tensor.norm(dim=2) > 0).cpu().numpy()   # zero (padding) rows add 0 to every score
        if allowed is not None and (allowed & store.alive).sum() <= EXACT_FILTER_LIMIT:
            selective = np.flatnonzero(allowed & store.alive)   # few enough to rescore all if need be
        else:
            selective = None

        workers = min(n_q, torch.get_num_threads())
        parallel_queries = workers > 1 and self.compiled_path(self.device) is not None

        def one(i: int) -> None:
            real = tensor[i][torch.from_numpy(real_rows[i]).to(self.device)]
            threads = 1 if parallel_queries else torch.get_num_threads()
            positions = stage(self, real, max(self.n_candidates, k), threads=threads,
                              term_ids=None if term_ids is None else np.asarray(term_ids)[i][real_rows[i]],
                              candidates=None if candidates is None else candidates[i])
            if allowed is not None:
                positions = positions[allowed[positions]]
                if len(positions) < k and selective is not None:
                    positions = selective       # a selective filter: score every allowed document
            exact = self.rescore(real, positions, threads=threads)
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
        return FIRST_STAGES[first_stage](self, query[torch.from_numpy(real).to(query.device)],
                                         max(self.n_candidates, k),
                                         term_ids=None if term_ids is None else np.asarray(term_ids)[real])

    def rescore(self, query: torch.Tensor, positions: np.ndarray, threads: int = 1) -> np.ndarray:
        """(c,) float32 exact MaxSim of one (T, dim) projected query against `positions`."""
        fast = self.compiled_path(query.device)
        if fast is not None:
            return fast.rescore(query.numpy(), positions, threads)
        return rescore(self.store, query[None], positions)[0].cpu().numpy()
