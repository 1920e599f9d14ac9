"""`Searcher`: encode queries, generate candidates by token retrieval, rescore by exact MaxSim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from indexes.engine import BACKENDS, Engine
from indexes.fusion import FUSIONS, fuse
from indexes.maxsim import pick_device

from .encoder import Encoder
from .index import Index

__all__ = ["SearchResults", "Searcher", "PRESETS", "ENGINES", "fusion_setting", "scaled_nprobe", "MAX_K"]

# First stages: "token" probes centroid lists (XTR / WARP style), "vocab" the lists of the query's
# own terms (COIL style), "union" rescores both candidate sets; "exhaustive" scores every document.
# (the first stages of indexes/engine.py that take query vectors alone, and "vocab" / "union" with term ids)
ENGINES = ("token", "vocab", "union", "exhaustive")

# Hybrid search (BM25 lists stored in the index fused with the dense ranking): on by default, with
# the fusion chosen by measurement on seven collections for the smallest worst-case shortfall
# against the better of dense and BM25 (indexes/fusion.py; docs/benchmarks.md "Hybrid fusion").
# HYBRID_ALPHA is the dense weight of the fixed "interpolate" fusion, when asked for.
HYBRID_FUSION = "adaptive"
HYBRID_ALPHA = 0.65
MAX_K = 1_000               # results per query at most (the server's limit too): k sizes per-query arrays
HYBRID_DEPTH = 100          # results each side contributes before fusion (at least k)

# One knob for users who do not want to tune three numbers: quality -> (nprobe, k_prime, n_candidates).
# Chosen on SciFact and Vaswani (docs/benchmarks.md); recall of the exhaustive top-10 on the two:
# fast 0.97 / 0.93, balanced 0.999 / 0.992, accurate 1.0 / 1.0.
# A preset's nprobe is for an index of NPROBE_BASE_CENTROIDS centroids (SciFact's); a codec sized
# for a larger collection has more, shorter lists, and nprobe grows with the fourth root of the
# centroid count to keep recall (measured on the resampled 50k collection, 8,192 centroids:
# nprobe 8 / 12 / 16 gave recall of the exhaustive top-10 0.967 / 0.989 / 0.995; docs/benchmarks.md).
NPROBE_BASE_CENTROIDS = 2048


def scaled_nprobe(nprobe: int, n_centroids: int) -> int:
    """A preset nprobe for an index of n_centroids centroids (never below the preset's)."""
    return max(nprobe, int(round(nprobe * (n_centroids / NPROBE_BASE_CENTROIDS) ** 0.25)))


PRESETS = {
    "fast": {"nprobe": 4, "k_prime": None, "n_candidates": 32},
    "balanced": {"nprobe": 8, "k_prime": None, "n_candidates": 64},
    "accurate": {"nprobe": 16, "k_prime": None, "n_candidates": 128},
}


@dataclass
class SearchResults:
    """Ranked documents for a batch of queries, best first.

    scores: (n_queries, k) float32, padded with -inf; indices: (n_queries, k) int64 global
    positions in the index, padded with -1; doc_ids: the matching document ids (padding left out).
    """

    scores: np.ndarray
    indices: np.ndarray
    doc_ids: list[list[str]]

    def hits(self, query: int = 0) -> list[tuple[str, float]]:
        """(doc_id, score) pairs of one query."""
        return list(zip(self.doc_ids[query], self.scores[query].tolist()))


def combined_mask(index, allowed: np.ndarray | None, filter: dict | None, ids) -> np.ndarray | None:
    """One (n_positions,) bool mask from a position mask, a filter expression and an id list (None: all)."""
    from .filters import filter_mask, ids_mask

    masks = [m for m in (None if allowed is None else np.asarray(allowed, dtype=bool),
                         None if filter is None else filter_mask(index, filter),
                         None if ids is None else ids_mask(index, ids)) if m is not None]
    if not masks:
        return None
    return np.logical_and.reduce(masks) if len(masks) > 1 else masks[0]


def lexical_rankings(store, texts: Sequence[str], depth: int,
                     allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """BM25 over the store's lexical lists: (scores (n, depth) float32 padded with -inf,
    positions (n, depth) int64 padded with -1), only `allowed` positions when a mask is given."""
    scores = np.full((len(texts), depth), -np.inf, dtype=np.float32)
    positions = np.full((len(texts), depth), -1, dtype=np.int64)
    for i, text in enumerate(texts):
        s, p = store.bm25(text, depth if allowed is None else store.n_positions)
        if allowed is not None:
            keep = allowed[p]
            s, p = s[keep][:depth], p[keep][:depth]
        scores[i, :len(s)], positions[i, :len(p)] = s, p
    return scores, positions


def fuse_rankings(dense: tuple[np.ndarray, np.ndarray] | None, lexical: tuple[np.ndarray, np.ndarray], k: int,
                  fusion: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The top-k (scores (n, k), positions (n, k)) of the dense and the lexical rankings fused
    (indexes/fusion.py; -1 padding ignored); dense None: the lexical ranking alone."""
    if dense is None:
        dense = (np.full((len(lexical[0]), 1), -np.inf, dtype=np.float32), np.full((len(lexical[0]), 1), -1, np.int64))
        fusion = "lexical"
    return fuse(dense, lexical, k, fusion, alpha)


def fusion_setting(engine: str, hybrid: bool | None, fusion: str | None,
                   alpha: float | None) -> tuple[str | None, float]:
    """(fusion, alpha) a searcher runs with; fusion None: hybrid whenever query texts are known."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    chosen = fusion or {True: HYBRID_FUSION, False: "none"}.get(hybrid)
    if chosen is None and engine == "exhaustive":
        chosen = "none"             # the exhaustive engine stays the pure MaxSim reference
    alpha = HYBRID_ALPHA if alpha is None else float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return chosen, alpha


class Searcher:
    """Late-interaction search over an index.

    engine: one of ENGINES: "token" (centroid token retrieval + exact rescoring, the default),
    "vocab" (vocabulary-term lists + rescoring), "union" (both candidate sets, rescored), or
    "exhaustive" (exact MaxSim over every document: the reference). quality: a preset of PRESETS; explicit
    nprobe / k_prime / n_candidates override it.
    encoder: the query encoder; by default the one recorded in the index manifest.
    device: where scoring runs ("cuda", "cpu"); by default CUDA when present.
    hybrid: fuse the dense ranking with BM25 over the index's own lexical lists (HYBRID_FUSION
    "adaptive": the dense weight chosen per query from its scores). None (the default): hybrid
    whenever the query texts are known (strings searched, or texts= given) and the index has
    lexical lists, except with the "exhaustive" engine, which stays the pure MaxSim reference;
    False: dense only. `fusion` names one of indexes.fusion.FUSIONS instead ("adaptive", "rrf",
    "interpolate" with weight `alpha` on the dense side (default HYBRID_ALPHA), "none" = dense
    only, "lexical" = BM25 only).
    """

    def __init__(self, index: Index, encoder: Encoder | None = None, *, engine: str = "token",
                 quality: str = "balanced", nprobe: int | None = None, k_prime: int | None = None,
                 n_candidates: int | None = None, device: str | torch.device | None = None,
                 hybrid: bool | None = None, fusion: str | None = None, alpha: float | None = None,
                 backend: str = "auto"):
        if quality not in PRESETS:
            raise ValueError(f"quality must be one of {sorted(PRESETS)}, got {quality!r}")
        self.fusion, self.alpha = fusion_setting(engine, hybrid, fusion, alpha)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self._engine: Engine | None = None
        self.index = index
        self.engine = engine
        preset = PRESETS[quality]
        self.nprobe = nprobe or preset["nprobe"]
        self._scale_nprobe = nprobe is None      # a preset's nprobe follows the index's centroid count
        self.k_prime = k_prime if k_prime is not None else preset["k_prime"]
        self.n_candidates = n_candidates or preset["n_candidates"]
        self.device = pick_device(device)
        self._encoder = encoder
        if encoder is not None:
            self._check_encoder(encoder)

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use when none was given."""
        if self._encoder is None:
            self._encoder = self.index.load_encoder(device=self.device)
            self._check_encoder(self._encoder)
        return self._encoder

    def _check_encoder(self, encoder: Encoder) -> None:
        expected = self.index.encoder_spec["dim"]
        if encoder.dim != expected:
            raise ValueError(f"encoder {encoder.name!r} gives {encoder.dim}-dim vectors, "
                             f"index {self.index.directory} was built from {expected}-dim vectors")

    def search(self, query: str, k: int = 10, *, filter: dict | None = None,
               ids: Sequence[str] | None = None) -> SearchResults:
        """Top-k documents for one query (a SearchResults with one row); filter / ids as in search_batch."""
        if not isinstance(query, str):
            raise TypeError("search takes one query string; use search_batch for several")
        return self.search_batch([query], k=k, filter=filter, ids=ids)

    def search_batch(self, queries: Sequence[str] | np.ndarray, k: int = 10,
                     term_ids: np.ndarray | None = None, allowed: np.ndarray | None = None,
                     texts: Sequence[str] | None = None, *, filter: dict | None = None,
                     ids: Sequence[str] | None = None) -> SearchResults:
        """Top-k documents for each query.

        queries: strings, or pre-encoded (n_queries, q_len, dim) float32 query embeddings.
        texts: the query strings of pre-encoded queries, needed by hybrid search (its BM25 side).
        term_ids: (n_queries, q_len) int, the vocabulary id of each pre-encoded row (-1: none), as
        `Encoder.query_term_ids` gives; needed by the "vocab" and "union" engines with pre-encoded
        queries (computed here from strings).
        filter: a metadata filter expression (retriever/filters.py), ids: document ids; only
        documents both allow can be returned. The mask applies before rescoring: when the first
        stage's candidates hold fewer than k allowed documents and at most
        indexes.engine.EXACT_FILTER_LIMIT are allowed, all of them are rescored.
        allowed: the same as a (n_positions,) bool mask over this snapshot's positions (for
        callers that already hold one, such as the server's cache; positions change with compaction).
        """
        self.index.check_intact()         # a background verification that found damage raises
        allowed = combined_mask(self.index, allowed, filter, ids)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must lie in 1..{MAX_K}, got {k}")
        if isinstance(queries, np.ndarray):
            embeddings = queries
        else:
            queries = texts = list(queries)
            embeddings = self.encoder.encode_queries(queries)
            if self.engine in ("vocab", "union"):
                term_ids = self.encoder.query_term_ids(queries)
        fusion = self._fusion_for(texts, len(embeddings))
        if self.engine in ("vocab", "union") and fusion != "lexical":
            if term_ids is None:
                raise ValueError(f"the {self.engine!r} engine needs term_ids with pre-encoded queries "
                                 "(Encoder.query_term_ids)")
            term_ids = np.asarray(term_ids)
            if term_ids.shape != embeddings.shape[:2]:
                raise ValueError(f"term_ids shape {term_ids.shape} does not match queries {embeddings.shape[:2]}")
        store = self.index.store
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (store.n_positions,):
                raise ValueError(f"allowed must be ({store.n_positions},) bool, got shape {allowed.shape}")
        if fusion == "none":
            scores, indices = self._dense(embeddings, k, term_ids, allowed)
        else:
            scores, indices = self._hybrid(embeddings, list(texts), k, term_ids, allowed, fusion)
        doc_ids = [[self.index.document(i)["id"] for i in row if i >= 0] for row in indices]
        return SearchResults(scores=scores, indices=indices, doc_ids=doc_ids)

    def _fusion_for(self, texts, n_queries: int) -> str:
        """The fusion one call runs: the one set, else hybrid if the texts are known and every
        segment has lexical lists, else dense only."""
        have_texts = texts is not None and len(texts) == n_queries
        if self.fusion is None:
            lexical = all(s.has_lexical for s in self.index.store.segments)
            return HYBRID_FUSION if have_texts and lexical else "none"
        if self.fusion != "none" and not have_texts:
            raise ValueError(f"fusion {self.fusion!r} needs the query texts (texts=) with pre-encoded queries")
        return self.fusion

    @property
    def dense_engine(self) -> Engine:
        """The engine over the index's current snapshot (made again after the index reloads)."""
        if self._engine is None or self._engine.store is not self.index.store:
            store = self.index.store
            nprobe = scaled_nprobe(self.nprobe, store.codec.n_centroids) if self._scale_nprobe else self.nprobe
            self._engine = Engine(store, nprobe=nprobe, n_candidates=self.n_candidates,
                                  k_prime=self.k_prime, device=self.device, backend=self.backend)
        return self._engine

    def _dense(self, embeddings: np.ndarray, k: int, term_ids, allowed) -> tuple[np.ndarray, np.ndarray]:
        return self.dense_engine.search(embeddings, k, first_stage=self.engine, allowed=allowed, term_ids=term_ids)

    def _hybrid(self, embeddings: np.ndarray, texts: list[str], k: int, term_ids,
                allowed, fusion: str) -> tuple[np.ndarray, np.ndarray]:
        """Dense and BM25 rankings HYBRID_DEPTH deep, fused per query."""
        depth = max(k, HYBRID_DEPTH)
        dense = None if fusion == "lexical" else self._dense(embeddings, depth, term_ids, allowed)
        lexical = lexical_rankings(self.index.store, texts, depth, allowed)
        return fuse_rankings(dense, lexical, k, fusion, self.alpha)

    def candidates(self, query: torch.Tensor, k: int = 0, term_ids: np.ndarray | None = None) -> np.ndarray:
        """First-stage candidate positions of one (q_len, dim) projected query (term_ids: (q_len,)
        for the "vocab" and "union" engines). At least k candidates are kept, so that k results
        can come back; "union" returns up to twice n_candidates."""
        return self.dense_engine.candidates(query, k, self.engine, term_ids)
