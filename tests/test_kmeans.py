"""k-means and nearest-centroid assignment (indexes/codec/kmeans.py): the bfloat16 path against faiss's
float32 one — the same codes but for near-ties, centroids as good."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.codec.kmeans import nearest_centroids, spherical_kmeans


def _unit(n, dim, seed, clusters=50):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.7 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_bf16_assignment_finds_the_exact_nearest_centroid():
    x, c = _unit(20_000, 96, 0), _unit(256, 96, 1)
    exact = nearest_centroids(x, c, bf16=False)                                # faiss, float32
    fast = nearest_centroids(x, c, bf16=True)
    scores = x @ c.T
    assert (fast == exact).mean() > 0.999
    # Where they differ, it is a tie in float32 (re-scored candidates, float32 rounding).
    rows = np.flatnonzero(fast != exact)
    np.testing.assert_allclose(scores[rows, fast[rows]], scores[rows, exact[rows]], atol=1e-5)


def test_bf16_kmeans_fits_held_out_vectors_as_well_as_faiss():
    x = _unit(16_000, 64, 2)
    train, held = x[:12_000], x[12_000:]
    fit = {}
    for bf16 in (False, True):
        c = spherical_kmeans(train, 100, niter=10, seed=0, bf16=bf16)
        assert c.shape == (100, 64) and np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-5)
        fit[bf16] = float((held @ c.T).max(1).mean())             # mean cosine to the nearest centroid
    assert fit[True] > fit[False] - 0.003, fit
    few = spherical_kmeans(train, 100, niter=1, seed=0, bf16=True)   # the test can tell a worse fit
    assert float((held @ few.T).max(1).mean()) < fit[True] - 0.003


def test_kmeans_reseeds_empty_centroids_and_refuses_too_few_points():
    x = np.repeat(_unit(20, 32, 3), 50, axis=0)          # 20 distinct points, 30 centroids
    c = spherical_kmeans(x, 30, niter=5, seed=0, bf16=True)
    assert np.isfinite(c).all() and len(np.unique(nearest_centroids(x, c, bf16=False))) == 20
    with pytest.raises(ValueError, match="at least 30"):
        spherical_kmeans(x[:10], 30, bf16=True)
