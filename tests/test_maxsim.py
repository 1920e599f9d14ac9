"""Exhaustive MaxSim against a plain numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexes.search.maxsim import exhaustive_search, maxsim_scores


def numpy_maxsim(query: np.ndarray, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Reference: per document, per query vector, the best dot product; summed. (n_docs,)"""
    q = query.astype(np.float64)
    v = vectors.astype(np.float64)
    return np.array([(q @ v[offsets[d]:offsets[d + 1]].T).max(axis=1).sum() for d in range(len(offsets) - 1)])


def random_collection(seed: int, n_docs: int = 57, dim: int = 24):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 40, size=n_docs)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    vectors = rng.standard_normal((offsets[-1], dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((5, 8, dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=2, keepdims=True)
    queries[0, 5:] = 0  # a short query: zero rows, as the encoder pads them
    return vectors.astype(np.float16), offsets, queries


def test_maxsim_scores_equal_numpy_reference():
    vectors, offsets, queries = random_collection(0)
    got = maxsim_scores(torch.from_numpy(queries), torch.from_numpy(vectors), torch.from_numpy(np.diff(offsets)))
    for i, q in enumerate(queries):
        np.testing.assert_allclose(got[i].numpy(), numpy_maxsim(q, vectors, offsets), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("block_vectors", [1, 50, 333, 1 << 16])
def test_exhaustive_search_ranks_like_reference(block_vectors):
    vectors, offsets, queries = random_collection(1)
    scores, ids = exhaustive_search(queries, vectors, offsets, k=10, block_vectors=block_vectors, device="cpu")
    assert scores.shape == ids.shape == (5, 10)
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    for i, q in enumerate(queries):
        ref = numpy_maxsim(q, vectors, offsets)
        np.testing.assert_allclose(scores[i], np.sort(ref)[::-1][:10], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(ref[ids[i]], scores[i], rtol=1e-5, atol=1e-4)


def test_k_larger_than_collection_is_padded():
    vectors, offsets, queries = random_collection(2, n_docs=3)
    scores, ids = exhaustive_search(queries, vectors, offsets, k=5, device="cpu")
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]


def test_dead_documents_are_never_returned():
    vectors, offsets, queries = random_collection(3, n_docs=20)
    alive = np.ones(20, dtype=bool)
    _, ids = exhaustive_search(queries, vectors, offsets, k=20, device="cpu")
    best = ids[:, 0]
    alive[best] = False
    _, ids2 = exhaustive_search(queries, vectors, offsets, k=20, alive=alive, device="cpu")
    assert not np.isin(ids2[ids2 >= 0], best).any()
    assert ((ids2 >= 0).sum(axis=1) == alive.sum()).all()


def test_wrong_query_shape_is_refused():
    vectors, offsets, _ = random_collection(4)
    with pytest.raises(ValueError, match="queries must be"):
        exhaustive_search(np.zeros((2, 8, 7), np.float32), vectors, offsets)
    with pytest.raises(ValueError, match="k must be"):
        exhaustive_search(np.zeros((2, 8, 24), np.float32), vectors, offsets, k=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_equals_cpu():
    vectors, offsets, queries = random_collection(5)
    cpu = exhaustive_search(queries, vectors, offsets, k=10, device="cpu")
    gpu = exhaustive_search(queries, vectors, offsets, k=10, device="cuda")
    np.testing.assert_allclose(cpu[0], gpu[0], rtol=1e-3, atol=1e-3)
