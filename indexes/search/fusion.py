"""Fusion of two rankings of one query batch (dense late interaction and BM25), arrays end to end.

Every function takes and returns (scores, positions) pairs: scores (n_queries, depth) float32
padded with -inf, positions (n_queries, depth) int64 padded with -1, best first. The fused
ranking holds only documents that one of the two sides returned.

Fusions (FUSIONS):
- "adaptive" (the default): min-max interpolation whose dense weight is set per query by how
  decisive each side is about its own list, measured from its scores alone:
  * the dense side's spread: the relative drop of its MaxSim score from the first document to
    the DENSE_SPREAD_RANK-th (MaxSim is a sum of cosines with a natural zero). A spread near 0
    means the query's tokens match every candidate alike (words that are in every document,
    records that share one template) and the dense order among them is noise: below
    DENSE_FLAT the lexical side leads (dense weight ALPHA_FLAT);
  * the lexical side's spread: the relative drop of BM25 from its first document to its
    LEXICAL_SPREAD_RANK-th. A clear lexical head (rare words of the query found together in a
    few documents) earns the lexical side weight up to 1 - ALPHA_LEXICAL_LEADS; a lexical list
    of near-equal partial matches earns it none (dense weight 1: the dense order is kept, BM25
    only appends candidates).
  Only the lexical side's first LEXICAL_DEPTH documents take part: BM25 adds candidates and a
  bounded bonus, its long tail of partial matches never dilutes the dense ranking. No labels,
  no training at query time. Constants chosen for the smallest worst case over seven
  collections, checked leave-one-out (docs/benchmarks.md "Hybrid fusion").
- "interpolate": min-max normalisation over each list, alpha * dense + (1 - alpha) * lexical
  (a document missing from a list gets 0 there).
- "rrf": reciprocal-rank fusion, sum over the lists of 1 / (RRF_K + rank), ranks from 1
  (Cormack et al. 2009).
- "none": the dense ranking alone; "lexical": the lexical ranking alone.
"""

from __future__ import annotations

import numba
import numpy as np

from indexes.names import FUSIONS


__all__ = ["FUSIONS", "fuse", "spread", "adaptive_alpha", "RRF_K"]

RRF_K = 60
DENSE_SPREAD_RANK, DENSE_FLAT, DENSE_SHARP = 100, 0.15, 0.30  # dense spread ramp: flat below, decisive above
ALPHA_FLAT = 0.3                          # dense weight when the dense list is flat
LEXICAL_SPREAD_RANK, LEXICAL_FLAT, LEXICAL_SHARP = 10, 0.65, 0.85  # lexical spread ramp
ALPHA_LEXICAL_LEADS = 0.5                 # dense weight when the lexical head is clear (and dense is not flat)
LEXICAL_DEPTH = 20                        # lexical documents that take part in "adaptive"


def spread(scores: np.ndarray, positions: np.ndarray, rank: int, short: float) -> np.ndarray:
    """(n_queries,) float64: (first score - score at `rank`) / |first score| of each row (ranks
    from 1). A row with fewer documents than `rank` uses its last one when it has at least two,
    and gets `short` otherwise."""
    returned = (positions >= 0).sum(axis=1)
    at = np.clip(np.minimum(returned, rank) - 1, 0, None)
    last = scores[np.arange(len(scores)), at].astype(np.float64)
    first = scores[:, 0].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (first - last) / np.abs(first)
    return np.where((returned >= 2) & np.isfinite(out), out, short)


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def adaptive_alpha(dense: tuple[np.ndarray, np.ndarray], lexical: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(n_queries,) dense weight of "adaptive", in [ALPHA_FLAT, 1] (module docstring)."""
    # Fewer than LEXICAL_SPREAD_RANK lexical hits: only those documents hold the query's words,
    # a clear head. A dense list of one document has nothing to separate: flat.
    lexical_spread = spread(*lexical, LEXICAL_SPREAD_RANK, short=1.0)
    dense_spread = spread(*dense, DENSE_SPREAD_RANK, short=0.0)
    lexical_returned = (lexical[1] >= 0).sum(axis=1)
    lexical_spread = np.where((lexical_returned > 0) & (lexical_returned < LEXICAL_SPREAD_RANK), 1.0, lexical_spread)
    decisive = 1.0 - (1.0 - ALPHA_LEXICAL_LEADS) * _ramp(lexical_spread, LEXICAL_FLAT, LEXICAL_SHARP)
    return ALPHA_FLAT + (decisive - ALPHA_FLAT) * _ramp(dense_spread, DENSE_FLAT, DENSE_SHARP)


_INTERPOLATE, _ADAPTIVE, _RRF = 0, 1, 2


@numba.njit(cache=True, nogil=True)
def _row_range(scores, positions, i, width):
    """(low, high, count) of row i's first `width` returned scores (padding: position -1)."""
    low, high, count = np.inf, -np.inf, 0
    for j in range(width):
        if positions[i, j] >= 0:
            v = np.float64(scores[i, j])
            low, high, count = min(low, v), max(high, v), count + 1
    return low, high, count


@numba.njit(cache=True, nogil=True)
def _spread_at(scores, positions, i, width, rank, short):
    """As `spread` for row i over its first `width` entries."""
    first, last, seen = 0.0, 0.0, 0
    for j in range(width):
        if positions[i, j] >= 0:
            if seen == 0:
                first = np.float64(scores[i, j])
            if seen < rank:
                last = np.float64(scores[i, j])
            seen += 1
    if seen < 2 or first == 0.0:
        return short
    return (first - last) / abs(first)


@numba.njit(cache=True, nogil=True)
def _adaptive_weight(dense_s, dense_p, lex_s, lex_p, i, dd, params):
    """Row i's dense weight under "adaptive" (adaptive_alpha, one row, in the compiled loop)."""
    d_spread = _spread_at(dense_s, dense_p, i, dd, int(params[0]), 0.0)
    l_count_all = 0
    for j in range(lex_p.shape[1]):
        l_count_all += lex_p[i, j] >= 0
    rank = int(params[4])
    l_spread = 1.0 if 0 < l_count_all < rank else _spread_at(lex_s, lex_p, i, lex_p.shape[1], rank, 1.0)
    lead = 1.0 - (1.0 - params[7]) * min(max((l_spread - params[5]) / (params[6] - params[5]), 0.0), 1.0)
    ramp = min(max((d_spread - params[1]) / (params[2] - params[1]), 0.0), 1.0)
    return params[3] + (lead - params[3]) * ramp


@numba.njit(cache=True, nogil=True)
def _fuse_rows(dense_s, dense_p, lex_s, lex_p, mode, alpha, lex_width, params, k, out_s, out_p):
    """Every row at once: normalise both sides, weigh them (mode), merge, top k by fused value
    (ties by position). params: the adaptive constants (module docstring), in the order of
    `_adaptive_params`."""
    n, dd = dense_p.shape
    dl = min(lex_p.shape[1], lex_width)
    pos = np.empty(dd + dl, dtype=np.int64)
    val = np.empty(dd + dl, dtype=np.float64)
    for i in range(n):
        d_low, d_high, d_count = _row_range(dense_s, dense_p, i, dd)
        l_low, l_high, l_count = _row_range(lex_s, lex_p, i, dl)
        w = _adaptive_weight(dense_s, dense_p, lex_s, lex_p, i, dd, params) if mode == _ADAPTIVE else alpha
        m = 0
        rank_d = 0
        for j in range(dd):
            if dense_p[i, j] >= 0:
                rank_d += 1
                if mode == _RRF:
                    v = 1.0 / (params[8] + rank_d)
                else:
                    span = d_high - d_low
                    v = w * ((np.float64(dense_s[i, j]) - d_low) / span if span > 0 else 1.0)
                pos[m], val[m] = dense_p[i, j], v
                m += 1
        dense_end = m
        rank_l = 0
        for j in range(dl):
            p = lex_p[i, j]
            if p < 0:
                continue
            rank_l += 1
            if mode == _RRF:
                v = 1.0 / (params[8] + rank_l)
            else:
                span = l_high - l_low
                v = (1.0 - w) * ((np.float64(lex_s[i, j]) - l_low) / span if span > 0 else 1.0)
            found = -1
            for t in range(dense_end):            # both lists are short: a scan beats a hash
                if pos[t] == p:
                    found = t
                    break
            if found >= 0:
                val[found] += v
            else:
                pos[m], val[m] = p, v
                m += 1
        by_position = np.argsort(pos[:m], kind="mergesort")
        order = by_position[np.argsort(-val[:m][by_position], kind="mergesort")]   # ties: lower position first
        for r in range(min(k, m)):
            out_s[i, r] = val[order[r]]
            out_p[i, r] = pos[order[r]]


def _adaptive_params() -> np.ndarray:
    return np.array([DENSE_SPREAD_RANK, DENSE_FLAT, DENSE_SHARP, ALPHA_FLAT, LEXICAL_SPREAD_RANK, LEXICAL_FLAT,
                     LEXICAL_SHARP, ALPHA_LEXICAL_LEADS, RRF_K + 0.0], dtype=np.float64)


def fuse(dense: tuple[np.ndarray, np.ndarray], lexical: tuple[np.ndarray, np.ndarray], k: int,
         fusion: str = "adaptive", alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Top-k fused (scores (n, k) float32 padded with -inf, positions (n, k) int64 padded with -1)
    of a dense and a lexical (scores, positions) pair of the same n queries (any depths).
    alpha: the dense weight of "interpolate"."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if len(dense[0]) != len(lexical[0]):
        raise ValueError(f"dense has {len(dense[0])} queries, lexical {len(lexical[0])}")
    if fusion in ("none", "lexical"):
        s, p = dense if fusion == "none" else lexical
        out_s = np.full((len(s), k), -np.inf, dtype=np.float32)
        out_p = np.full((len(s), k), -1, dtype=np.int64)
        width = min(k, s.shape[1])
        out_s[:, :width], out_p[:, :width] = s[:, :width], p[:, :width]
        return out_s, np.where(np.isfinite(out_s), out_p, -1)
    if fusion == "interpolate" and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    n = len(dense[0])
    mode = {"interpolate": _INTERPOLATE, "adaptive": _ADAPTIVE, "rrf": _RRF}[fusion]
    lex_width = LEXICAL_DEPTH if fusion == "adaptive" else lexical[1].shape[1]
    fused = np.full((n, k), -np.inf, dtype=np.float64)
    positions = np.full((n, k), -1, dtype=np.int64)
    _fuse_rows(np.ascontiguousarray(dense[0]), np.ascontiguousarray(dense[1], dtype=np.int64),
               np.ascontiguousarray(lexical[0]), np.ascontiguousarray(lexical[1], dtype=np.int64),
               mode, float(alpha), lex_width, _adaptive_params(), k, fused, positions)
    return fused.astype(np.float32), positions
