"""Hybrid search: fuse a lexical ranking (BM25) with Tessera's late-interaction ranking.

Fusions (the array versions, and "adaptive", the default of a Searcher: indexes/search/fusion.py):
- "rrf": reciprocal-rank fusion, score(d) = sum over rankings of 1 / (rrf_k + rank(d)), ranks from
  1 (Cormack et al. 2009; rrf_k = 60 as there). Needs no score calibration.
- "interpolate": each ranking's scores min-max normalised to [0, 1] over its own list, then
  alpha * neural + (1 - alpha) * lexical; a document missing from one list gets 0 there.
"none" returns the neural ranking alone and "lexical" the lexical one.

The lexical side is any object with `search(query, k) -> [(doc id, score)]`: `LuceneBM25`
(eval/lucene.py) or `BM25s` (eval/bm25.py), which needs no Java.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from indexes.names import FUSIONS   # the one list of fusion names

__all__ = ["FUSIONS", "reciprocal_rank_fusion", "interpolate_scores", "fuse", "HybridSearcher"]


class LexicalSearcher(Protocol):
    def search(self, query: str, k: int = 100) -> list[tuple[str, float]]: ...


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], rrf_k: int = 60,
                           weights: Sequence[float] | None = None) -> list[tuple[str, float]]:
    """Fuse ranked id lists (best first); returns (id, fused score) pairs, best first, ties by id."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (rrf_k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def _min_max(hits: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not hits:
        return {}
    scores = [s for _, s in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {d: (s - low) / span if span > 0 else 1.0 for d, s in hits}


def interpolate_scores(neural: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]],
                       alpha: float = 0.5) -> list[tuple[str, float]]:
    """alpha * normalised neural + (1 - alpha) * normalised lexical, over the union of both lists."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    a, b = _min_max(neural), _min_max(lexical)
    fused = {d: alpha * a.get(d, 0.0) + (1 - alpha) * b.get(d, 0.0) for d in a.keys() | b.keys()}
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def fuse(dense: Sequence[tuple], lexical: Sequence[tuple], fusion: str, alpha: float = 0.5,
         rrf_k: int = 60) -> list[tuple]:
    """Fuse two rankings of (doc, score) pairs, best first (doc: an id or a position); returns
    (doc, fused score) pairs, best first. fusion: one of FUSIONS ("none": dense alone)."""
    if fusion == "none":
        return list(dense)
    if fusion == "lexical":
        return list(lexical)
    if fusion == "rrf":
        return reciprocal_rank_fusion([[d for d, _ in dense], [d for d, _ in lexical]], rrf_k=rrf_k)
    if fusion == "interpolate":
        return interpolate_scores(dense, lexical, alpha)
    if fusion == "adaptive":
        return _adaptive(dense, lexical)
    raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")


def _adaptive(dense: Sequence[tuple], lexical: Sequence[tuple]) -> list[tuple]:
    """indexes.search.fusion's "adaptive" fusion of two (doc, score) lists, docs mapped to positions."""
    import numpy as np

    from indexes.search.fusion import fuse as fuse_arrays

    docs = list(dict.fromkeys([d for d, _ in dense] + [d for d, _ in lexical]))
    number = {d: i for i, d in enumerate(docs)}

    def arrays(hits):
        width = max(1, len(hits))
        scores, positions = np.full((1, width), -np.inf, np.float32), np.full((1, width), -1, np.int64)
        scores[0, :len(hits)] = [s for _, s in hits]
        positions[0, :len(hits)] = [number[d] for d, _ in hits]
        return scores, positions

    scores, positions = fuse_arrays(arrays(dense), arrays(lexical), max(1, len(docs)), "adaptive")
    return [(docs[p], float(s)) for p, s in zip(positions[0].tolist(), scores[0].tolist()) if p >= 0]


class HybridSearcher:
    """A dense Tessera `Searcher` (hybrid=False) and an external lexical searcher, fused per query.
    (A `Searcher` alone already fuses with the BM25 lists stored in its index.)

    depth: how many results each side contributes before fusion (at least k)."""

    def __init__(self, searcher, lexical: LexicalSearcher, depth: int = 100):
        self.searcher = searcher
        self.lexical = lexical
        self.depth = depth

    def search(self, query: str, k: int = 10, fusion: str = "rrf", alpha: float = 0.5,
               rrf_k: int = 60) -> list[tuple[str, float]]:
        """Top-k (doc id, score) pairs for one query, best first. fusion: one of FUSIONS."""
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        depth = max(self.depth, k)
        if fusion == "lexical":
            return self.lexical.search(query, k)
        neural = self.searcher.search(query, k=depth if fusion != "none" else k).hits(0)
        if fusion == "none":
            return neural[:k]
        return fuse(neural, self.lexical.search(query, depth), fusion, alpha, rrf_k)[:k]
