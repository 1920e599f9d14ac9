"""Array fusion of a dense and a lexical ranking (indexes/search/fusion.py), against the per-query
list fusion of eval/hybrid.py as the reference."""

import numpy as np
import pytest

from indexes.search import fusion
from indexes.search.fusion import FUSIONS, adaptive_alpha, fuse, spread
from eval.hybrid import fuse as fuse_lists


def _ranking(rng, n_queries, depth, n_docs, scale=1.0, short=()):
    """Random (scores, positions) rows, best first, distinct positions; rows in `short` padded."""
    scores = np.full((n_queries, depth), -np.inf, dtype=np.float32)
    positions = np.full((n_queries, depth), -1, dtype=np.int64)
    for i in range(n_queries):
        width = depth // 3 if i in short else depth
        positions[i, :width] = rng.choice(n_docs, width, replace=False)
        scores[i, :width] = np.sort(rng.random(width).astype(np.float32) * scale)[::-1]
    return scores, positions


@pytest.fixture
def pair():
    rng = np.random.default_rng(7)
    return _ranking(rng, 12, 40, 120, short={3}), _ranking(rng, 12, 30, 120, scale=25.0, short={5})


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fused_documents_come_from_one_of_the_sides(pair, fusion):
    dense, lexical = pair
    scores, positions = fuse(dense, lexical, 50, fusion)
    assert scores.shape == positions.shape == (12, 50)
    for i in range(12):
        got = positions[i][positions[i] >= 0]
        assert len(set(got.tolist())) == len(got)                       # no document twice
        assert set(got.tolist()) <= set(dense[1][i].tolist()) | set(lexical[1][i].tolist())
        assert np.all(np.diff(scores[i][positions[i] >= 0]) <= 0)       # best first
        assert np.all(np.isneginf(scores[i][positions[i] < 0]))


@pytest.mark.parametrize("fusion,alpha", [("interpolate", 0.65), ("interpolate", 0.2), ("rrf", 0.5)])
def test_array_fusion_equals_the_list_fusion(pair, fusion, alpha):
    dense, lexical = pair
    scores, positions = fuse(dense, lexical, 25, fusion, alpha)
    for i in range(12):
        hits = lambda side: [(p, s) for p, s in zip(side[1][i].tolist(), side[0][i].tolist()) if p >= 0]
        want = fuse_lists(hits(dense), hits(lexical), fusion, alpha)[:25]
        assert [p for p, _ in want] == positions[i][positions[i] >= 0].tolist()
        np.testing.assert_allclose(scores[i][:len(want)], [s for _, s in want], rtol=1e-5, atol=1e-7)


def test_compiled_adaptive_fusion_equals_its_numpy_definition(pair):
    """Per query: the dense weight of adaptive_alpha, then interpolation of the dense list with the
    lexical list's first LEXICAL_DEPTH documents (the list fusion of eval.hybrid)."""
    from eval.hybrid import interpolate_scores

    dense, lexical = pair
    scores, positions = fuse(dense, lexical, 60, "adaptive")
    alpha = adaptive_alpha(dense, lexical)
    assert len(set(np.round(alpha, 3).tolist())) > 1            # the rows really get different weights
    for i in range(12):
        hits = lambda side, depth: [(p, s) for p, s in zip(side[1][i, :depth].tolist(), side[0][i, :depth].tolist())
                                    if p >= 0]
        want = interpolate_scores(hits(dense, None), hits(lexical, fusion.LEXICAL_DEPTH), float(alpha[i]))[:60]
        assert positions[i][positions[i] >= 0].tolist() == [p for p, _ in want]
        np.testing.assert_allclose(scores[i][:len(want)], [s for _, s in want], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fusion", ["adaptive", "interpolate", "rrf"])
def test_sides_that_agree_give_their_ranking(fusion):
    rng = np.random.default_rng(3)
    dense = _ranking(rng, 6, 20, 200)
    lexical = (np.sort(rng.random((6, 20)) * 30, axis=1)[:, ::-1].astype(np.float32), dense[1].copy())
    scores, positions = fuse(dense, lexical, 10, fusion)
    np.testing.assert_array_equal(positions, dense[1][:, :10])


def test_adaptive_fusion_ignores_the_scale_of_either_scorer(pair):
    dense, lexical = pair
    want = fuse(dense, lexical, 30, "adaptive")[1]
    # Both spreads are relative and min-max is affine-invariant: scaling a side changes nothing.
    np.testing.assert_array_equal(fuse(dense, (lexical[0] * 7.5, lexical[1]), 30, "adaptive")[1], want)
    np.testing.assert_array_equal(fuse((dense[0] * 4.0, dense[1]), lexical, 30, "adaptive")[1], want)


def test_adaptive_weight_is_a_pure_function_of_the_scores(pair):
    dense, lexical = pair
    alpha = adaptive_alpha(dense, lexical)
    assert np.all((alpha >= fusion.ALPHA_FLAT) & (alpha <= 1.0))
    np.testing.assert_array_equal(alpha, adaptive_alpha((dense[0].copy(), dense[1].copy()), lexical))
    # Renaming the documents (same scores) changes nothing: only the scores count.
    renamed = np.where(dense[1] >= 0, (dense[1] * 7 + 3) % 1009, -1)
    np.testing.assert_array_equal(alpha, adaptive_alpha((dense[0], renamed), lexical))


def _row(first, last, n=20, start=0):
    return np.linspace(first, last, n, dtype=np.float32)[None], np.arange(start, start + n, dtype=np.int64)[None]


def test_each_side_leads_where_it_is_decisive():
    """Dense scores within 2% of each other (every candidate matched alike): BM25's order wins.
    Dense scores falling by half and BM25 scores within 10% of each other over its head: the dense
    order is kept. Both decisive: the weight of a clear lexical head."""
    flat, sharp = _row(5.0, 4.9), _row(10.0, 5.0)
    reversed_positions = np.arange(20, dtype=np.int64)[None, ::-1].copy()
    lexical_flat = (_row(9.0, 8.1)[0], reversed_positions)
    lexical_sharp = (np.concatenate([[9.0], np.linspace(2.0, 0.5, 19)]).astype(np.float32)[None], reversed_positions)
    assert spread(*flat, 100, 0.0)[0] == pytest.approx(0.02, abs=1e-6)
    assert adaptive_alpha(flat, lexical_sharp)[0] == fusion.ALPHA_FLAT
    assert adaptive_alpha(sharp, lexical_flat)[0] == 1.0
    assert adaptive_alpha(sharp, lexical_sharp)[0] == pytest.approx(fusion.ALPHA_LEXICAL_LEADS)
    assert fuse(flat, lexical_sharp, 3, "adaptive")[1][0, 0] == 19          # the lexical top leads
    assert fuse(flat, lexical_flat, 3, "adaptive")[1][0].tolist() == [19, 18, 17]
    assert fuse(sharp, lexical_flat, 3, "adaptive")[1][0].tolist() == [0, 1, 2]


def test_adaptive_fusion_takes_only_the_lexical_head():
    rng = np.random.default_rng(5)
    dense, lexical = _ranking(rng, 4, 50, 1000), _ranking(rng, 4, 100, 1000)
    _, positions = fuse(dense, lexical, 150, "adaptive")
    for i in range(4):
        got = set(positions[i][positions[i] >= 0].tolist())
        assert got == set(dense[1][i].tolist()) | set(lexical[1][i, :fusion.LEXICAL_DEPTH].tolist())


def test_empty_and_one_sided_rows():
    dense = (np.full((2, 5), -np.inf, dtype=np.float32), np.full((2, 5), -1, dtype=np.int64))
    dense[0][1, :2], dense[1][1, :2] = [3.0, 1.0], [4, 9]
    lexical = (np.full((2, 4), -np.inf, dtype=np.float32), np.full((2, 4), -1, dtype=np.int64))
    lexical[0][0, :3], lexical[1][0, :3] = [8.0, 7.0, 1.0], [2, 3, 5]
    for fusion in FUSIONS:
        scores, positions = fuse(dense, lexical, 4, fusion)
        if fusion != "none":
            assert positions[0, :3].tolist() == [2, 3, 5]        # only the lexical side returned anything
        if fusion != "lexical":
            assert positions[1, :2].tolist() == [4, 9]
    with pytest.raises(ValueError, match="fusion must be one of"):
        fuse(dense, lexical, 4, "max")
    with pytest.raises(ValueError, match="queries"):
        fuse(dense, (lexical[0][:1], lexical[1][:1]), 4)
