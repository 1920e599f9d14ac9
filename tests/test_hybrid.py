"""Hybrid fusion on hand-built rankings, and HybridSearcher's per-query choice of fusion."""

from __future__ import annotations

import pytest

from eval.hybrid import HybridSearcher, interpolate_scores, reciprocal_rank_fusion


def test_rrf_sums_reciprocal_ranks():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], rrf_k=60)
    expected = {"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63}
    assert [d for d, _ in fused] == ["a", "c", "b", "d"]
    for d, s in fused:
        assert s == pytest.approx(expected[d])


def test_rrf_weights_and_ties():
    # Equal fused scores fall back to id order, so the output is deterministic.
    assert [d for d, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]
    weighted = reciprocal_rank_fusion([["x"], ["y"]], weights=[1.0, 2.0])
    assert [d for d, _ in weighted] == ["y", "x"]


def test_interpolation_normalises_each_list_and_fills_missing_with_zero():
    neural = [("a", 30.0), ("b", 20.0), ("c", 10.0)]        # -> a 1.0, b 0.5, c 0.0
    lexical = [("c", 8.0), ("d", 4.0)]                      # -> c 1.0, d 0.0
    fused = dict(interpolate_scores(neural, lexical, alpha=0.25))
    assert fused == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75, "d": 0.0})
    only_neural = interpolate_scores(neural, lexical, alpha=1.0)
    assert [d for d, _ in only_neural][:3] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="alpha"):
        interpolate_scores(neural, lexical, alpha=1.5)


def test_single_hit_list_normalises_to_one():
    assert dict(interpolate_scores([("a", 3.0)], [], alpha=0.5)) == {"a": 0.5}


class _Results:
    def __init__(self, hits):
        self._hits = hits

    def hits(self, query=0):
        return self._hits


class _Neural:
    def search(self, query, k=10):
        return _Results([("n1", 9.0), ("shared", 8.0), ("n2", 7.0)][:k])


class _Lexical:
    def search(self, query, k=100):
        return [("shared", 12.0), ("l1", 11.0)][:k]


def test_hybrid_searcher_picks_fusion_per_query():
    hybrid = HybridSearcher(_Neural(), _Lexical(), depth=10)
    assert hybrid.search("q", k=2, fusion="none") == [("n1", 9.0), ("shared", 8.0)]
    assert hybrid.search("q", k=2, fusion="lexical") == [("shared", 12.0), ("l1", 11.0)]
    assert [d for d, _ in hybrid.search("q", k=2, fusion="rrf")] == ["shared", "n1"]
    interpolated = hybrid.search("q", k=4, fusion="interpolate", alpha=0.5)
    assert interpolated[0][0] == "shared" and len(interpolated) == 4
    with pytest.raises(ValueError, match="fusion"):
        hybrid.search("q", fusion="max")
