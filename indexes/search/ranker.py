"""The search every engine runs, whatever holds the documents: dense, lexical, fused, by arrays.

    scores, positions = ranker.search(queries, k=10, first_stage="token", fusion="adaptive",
                                      lexical=LexicalQueries.from_texts(texts), allowed=None)
    ids = ranker.doc_ids(positions)

`Ranker.search` is written once; what differs between one index snapshot (`indexes.search.engine.Engine`)
and a set of shards (`indexes.search.shardset.ShardSet`) is how its four parts are answered:

    dense(queries, depth, ...)        top-depth late-interaction (scores, positions)
    lexical_stats(lexical)            BM25 collection statistics of the batch's terms
    bm25(lexical, depth, allowed, stats)   top-depth BM25 (scores, positions) under those statistics
    doc_ids(positions)                the document id of every position (padding left out)
    passage_spans(queries, positions) the characters of each result's best passage
    passage_ranking(queries, positions, k)  the k best passages of those documents

Shapes: queries (n, L, dim) float32 (zero rows: padding); scores (n, depth) float32 best first,
padded with -inf; positions (n, depth) int64, padded with -1; allowed (n_positions,) bool.
"""

from __future__ import annotations

import numpy as np

from indexes.search.fusion import fuse
from indexes.search.bm25 import LexicalQueries, LexicalStats
from indexes.search.timings import Timings, maybe
from indexes.names import DEFAULT_ALPHA, FIRST_STAGES, FUSION_DEPTH, FUSIONS, TERM_STAGES

__all__ = ["Ranker", "merge_top_k", "empty_ranking"]


def empty_ranking(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n, k) all -inf, positions (n, k) all -1)."""
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


def merge_top_k(parts: list[tuple[np.ndarray, np.ndarray]], bases: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top-k of per-part rankings whose positions are local to each part (part i's position
    p is bases[i] + p globally); ties by global position, as one ranking of all of them orders them."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    positions = np.concatenate([np.where(p >= 0, p + bases[i], -1) for i, (_, p) in enumerate(parts)], axis=1)
    tie = np.where(positions >= 0, positions, np.iinfo(np.int64).max)
    # Per row by (-score, position) without a Python loop: by position, then stably by score.
    order = np.argsort(tie, axis=1, kind="stable")
    order = np.take_along_axis(order, np.argsort(-np.take_along_axis(scores, order, 1), axis=1, kind="stable"), 1)
    width = min(k, scores.shape[1])
    out_s, out_p = empty_ranking(len(scores), k)
    out_s[:, :width] = np.take_along_axis(scores, order[:, :width], 1)
    out_p[:, :width] = np.take_along_axis(positions, order[:, :width], 1)
    return out_s, np.where(np.isfinite(out_s), out_p, -1)


class Ranker:
    """Hybrid search over the four parts named in the module docstring (subclasses answer them)."""

    n_positions: int
    has_lexical: bool

    def dense(self, queries: np.ndarray, k: int, *, first_stage: str, allowed: np.ndarray | None,
              term_ids: np.ndarray | None, candidates: list | None,
              timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def lexical_stats(self, lexical: LexicalQueries) -> LexicalStats:
        raise NotImplementedError

    def bm25(self, lexical: LexicalQueries, depth: int, allowed: np.ndarray | None,
             stats: LexicalStats) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def doc_ids(self, positions: np.ndarray) -> list[list[str]]:
        raise NotImplementedError

    def passage_spans(self, queries: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """(n, k, 2) int64 [start, end) characters of each result's best passage in its document's
        text (end -1: to the end; -1 for padding)."""
        raise NotImplementedError

    def passage_ranking(self, queries: np.ndarray, positions: np.ndarray,
                        k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The k best passages of the documents at positions (n, c), by exact MaxSim: (scores (n, k),
        their documents' positions (n, k), spans (n, k, 2)), best first."""
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int = 10, *, first_stage: str = "token", fusion: str = "none",
               alpha: float = DEFAULT_ALPHA, lexical: LexicalQueries | None = None,
               allowed: np.ndarray | None = None, term_ids: np.ndarray | None = None,
               candidates: list | None = None, timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, positions) per query: the dense ranking, or, with a fusion other than
        "none", the dense and BM25 rankings FUSION_DEPTH deep fused (indexes/search/fusion.py).

        lexical: the queries' terms (needed by every fusion but "none"); term_ids: (n, L) vocabulary
        id per query row (-1: none) for "vocab" and "union"; candidates: positions per query for
        "candidates"; allowed: only these positions may be returned; timings: where the time went
        (indexes/search/timings.py), when given."""
        if first_stage not in FIRST_STAGES:
            raise ValueError(f"first_stage must be one of {FIRST_STAGES}, got {first_stage!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        n = len(queries)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self.n_positions,):
                raise ValueError(f"allowed must be ({self.n_positions},) bool, got shape {allowed.shape}")
        if first_stage in TERM_STAGES and fusion != "lexical":
            if term_ids is None:
                raise ValueError(f"the {first_stage!r} first stage needs term_ids (Encoder.query_term_ids)")
            term_ids = np.asarray(term_ids)
            if term_ids.shape != queries.shape[:2]:
                raise ValueError(f"term_ids shape {term_ids.shape} does not match queries {queries.shape[:2]}")
        dense_args = dict(first_stage=first_stage, allowed=allowed, term_ids=term_ids, candidates=candidates)
        if fusion == "none":
            with maybe(timings, "dense"):
                return self.dense(queries, k, **dense_args, timings=timings)
        if lexical is None or len(lexical) != n:
            raise ValueError(f"fusion {fusion!r} needs the terms of every query (lexical=LexicalQueries)")
        depth = max(k, FUSION_DEPTH)
        if fusion == "lexical":
            with maybe(timings, "lexical"):
                dense, stats = empty_ranking(n, 1), self.lexical_stats(lexical)
        else:
            dense, stats = self.dense_and_stats(queries, depth, lexical, dense_args, timings)
        with maybe(timings, "lexical"):
            ranked = self.bm25(lexical, depth, allowed, stats)
        with maybe(timings, "fusion"):
            return fuse(dense, ranked, k, fusion, alpha)

    def dense_and_stats(self, queries: np.ndarray, depth: int, lexical: LexicalQueries, dense_args: dict,
                        timings: Timings | None = None) -> tuple[tuple[np.ndarray, np.ndarray], LexicalStats]:
        """The dense ranking and the BM25 statistics, which do not depend on each other (a shard
        set asks its shards for both in one round trip)."""
        with maybe(timings, "dense"):
            dense = self.dense(queries, depth, **dense_args, timings=timings)
        with maybe(timings, "lexical"):
            return dense, self.lexical_stats(lexical)
