"""Token retrieval and rescoring against numpy references on synthetic indexes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexes.builder.pipeline import build_index
from indexes.search.maxsim import search_blocks
from indexes.search.retrieval import rescore, retrieve_candidates
from indexes.storage.store import IndexStore
from indexes.storage.writes import delete_documents
from conftest import synthetic_batch, synthetic_docs, stored


@pytest.fixture(scope="module", params=["res2", "fp16"])
def store(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param)
    build_index(path, synthetic_batch(n_docs=120, dim=32, seed=11), synthetic_docs(120), recipe=request.param,
                info={"encoder": {}}, vocab_size=500)
    return IndexStore.open(path)


def queries(n=4, seed=5):
    return synthetic_batch(n_docs=n, dim=32, seed=seed, min_len=6, max_len=7).vectors.astype(np.float32).reshape(n, 6, 32)


def reference_first_stage(store, q, nprobe, k_prime=None):
    """Dict position -> first-stage score, computed vector by vector."""
    seg = store.segments[0]
    approx = store.codec.decompress(*stored(seg), normalize=store.codec.nbits == 16).numpy()
    sims = q @ approx.T                                                  # (n_tokens, m)
    cs = q @ store.codec.centroids.T
    order = np.argsort(-cs, axis=1)
    probed = order[:, :nprobe]
    missing = cs[np.arange(len(q)), order[:, nprobe]]
    codes = seg.vector_codes(slice(None)).astype(np.int64)
    doc_of = seg.doc_of_vector
    retrieved = []  # per token: list of (score, doc)
    for i in range(len(q)):
        mask = np.isin(codes, probed[i])
        pairs = sorted(zip(sims[i, mask].tolist(), doc_of[mask].tolist()), reverse=True)
        if k_prime is not None:
            if len(pairs) >= k_prime:
                missing[i] = min(missing[i], pairs[k_prime - 1][0])
            pairs = pairs[:k_prime]
        retrieved.append(pairs)
    docs = {d for pairs in retrieved for _, d in pairs}
    out = {}
    for d in docs:
        total = 0.0
        for i, pairs in enumerate(retrieved):
            mine = [s for s, dd in pairs if dd == d]
            total += max(mine) if mine else missing[i]
        out[d] = total
    return out


@pytest.mark.parametrize("nprobe, k_prime", [(1, None), (3, None), (3, 25), (1, 5)])
def test_first_stage_scores_match_reference_with_imputation(store, nprobe, k_prime):
    for q in queries():
        expected = reference_first_stage(store, q, nprobe, k_prime)
        positions, scores = retrieve_candidates(store, torch.from_numpy(q), nprobe=nprobe, k_prime=k_prime,
                                                n_candidates=10_000)
        assert sorted(positions.tolist()) == sorted(expected)
        np.testing.assert_allclose(scores, [expected[p] for p in positions], rtol=1e-4, atol=1e-4)
        assert (np.diff(scores) <= 1e-6).all()


def test_n_candidates_keeps_the_best(store):
    q = torch.from_numpy(queries()[0])
    all_pos, all_scores = retrieve_candidates(store, q, nprobe=4, n_candidates=10_000)
    top_pos, top_scores = retrieve_candidates(store, q, nprobe=4, n_candidates=7)
    assert len(top_pos) == 7
    np.testing.assert_allclose(top_scores, all_scores[:7], rtol=1e-6)


def test_probing_everything_equals_exhaustive(store):
    q = queries()
    ref_scores, ref_pos = search_blocks(q, store.blocks(), store.n_positions, 10, dim=32, device="cpu")
    for i in range(len(q)):
        positions, _ = retrieve_candidates(store, torch.from_numpy(q[i]), nprobe=store.codec.n_centroids,
                                           n_candidates=store.n_positions)
        assert len(positions) == store.n_positions
        exact = rescore(store, torch.from_numpy(q[i:i + 1]), positions)[0]
        top = exact.topk(10)
        np.testing.assert_array_equal(positions[top.indices.numpy()], ref_pos[i])
        np.testing.assert_allclose(top.values.numpy(), ref_scores[i], rtol=1e-5, atol=1e-5)


def test_rescore_follows_given_order(store):
    q = torch.from_numpy(queries()[:2])
    positions = np.array([17, 3, 99, 3, 40])
    scores = rescore(store, q, positions)
    for j, p in enumerate(positions):
        single = rescore(store, q, np.array([p]))[:, 0]
        np.testing.assert_allclose(scores[:, j], single, rtol=1e-6)


def test_deleted_documents_are_not_candidates(tmp_path):
    build_index(tmp_path, synthetic_batch(n_docs=50, dim=32, seed=3), synthetic_docs(50), recipe="res2",
                info={"encoder": {}}, vocab_size=500)
    q = torch.from_numpy(queries()[0])
    store = IndexStore.open(tmp_path)
    positions, _ = retrieve_candidates(store, q, nprobe=64, n_candidates=100)
    gone = [store.document(p)["id"] for p in positions[:5]]
    delete_documents(tmp_path, gone)
    store = IndexStore.open(tmp_path)
    positions, _ = retrieve_candidates(store, q, nprobe=64, n_candidates=100)
    assert not {store.document(p)["id"] for p in positions} & set(gone)


@pytest.mark.parametrize("n_bytes", [12, 16])   # byte-by-byte and 8-byte-word transposes
def test_residual_scores_cpu_path_equals_generic_gather(n_bytes):
    """The CPU path and the accelerator path (run here on the CPU) against a per-pair sum."""
    rng = np.random.default_rng(0)
    tables = torch.from_numpy(rng.standard_normal((n_bytes, 5, 256)).astype(np.float32))   # (n_bytes, n_tokens, 256)
    tokens = rng.integers(0, 5, size=300)
    packed = rng.integers(0, 256, size=(300, n_bytes)).astype(np.uint8)
    from indexes.search.retrieval import residual_scores
    expected = np.array([sum(tables[p, t, packed[j, p]].item() for p in range(n_bytes)) for j, t in enumerate(tokens)])
    np.testing.assert_allclose(residual_scores(tables, tokens, packed).numpy(), expected, rtol=1e-5, atol=1e-5)
    from indexes.search.retrieval import _residual_scores_torch
    np.testing.assert_allclose(_residual_scores_torch(tables, tokens, packed).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_centroid_only_first_stage_scores_vectors_by_their_centroid(store):
    """residuals=False (PLAID's centroid interaction): each vector counts as its centroid."""
    if store.codec.nbits == 16:
        pytest.skip("an fp16 index has no residuals to leave out")
    q = queries(1, seed=9)[0]
    seg = store.segments[0]
    cs = q @ store.codec.centroids[seg.vector_codes(slice(None)).astype(np.int64)].T          # (n_tokens, m)
    offsets = np.asarray(seg.doc_offsets)
    expected = {d: float(cs[:, offsets[d]:offsets[d + 1]].max(axis=1).sum()) for d in range(seg.n_docs)}
    positions, scores = retrieve_candidates(store, torch.from_numpy(q), nprobe=store.codec.n_centroids,
                                            n_candidates=10_000, residuals=False)
    assert set(positions.tolist()) == set(expected)
    np.testing.assert_allclose(scores, [expected[p] for p in positions.tolist()], rtol=1e-4, atol=1e-4)
