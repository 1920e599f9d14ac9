"""Token pooling and pruning rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexes.builder.reduce import PruneRules, idf_from_token_ids, pool_tokens, pooled_counts, prune_mask, reduce_tokens
from conftest import synthetic_batch


@pytest.mark.parametrize("pool_factor", [1, 2, 3, 4])
def test_hierarchical_pooling_counts_and_members(pool_factor):
    b = synthetic_batch(n_docs=30, seed=pool_factor, min_len=1, max_len=40)
    pooled = pool_tokens(b.vectors, b.lengths, b.token_ids, pool_factor)
    expected = [n if n <= 2 or pool_factor == 1 else math.ceil(n / pool_factor) for n in b.lengths.tolist()]
    assert pooled.lengths.tolist() == expected
    assert (pooled.lengths >= 1).all()
    np.testing.assert_allclose(np.linalg.norm(pooled.vectors, axis=1), 1.0, atol=1e-3)  # float16 input
    # Every original token is the member of exactly one pooled vector of its own document.
    assert pooled.member_offsets[-1] == len(b.token_ids)
    start = 0
    pstart = 0
    for n, m in zip(b.lengths.tolist(), pooled.lengths.tolist()):
        members = pooled.member_token_ids[pooled.member_offsets[pstart]:pooled.member_offsets[pstart + m]]
        assert sorted(members.tolist()) == sorted(b.token_ids[start:start + n].tolist())
        start, pstart = start + n, pstart + m


@pytest.mark.parametrize("method", ["hierarchical", "kmeans"])
@pytest.mark.parametrize("min_vectors", [4, 12])
def test_short_documents_keep_the_minimum_of_vectors(method, min_vectors):
    b = synthetic_batch(n_docs=40, seed=min_vectors, min_len=1, max_len=40)
    pooled = pool_tokens(b.vectors, b.lengths, b.token_ids, 3, method, min_vectors=min_vectors)
    n = b.lengths
    want = np.maximum(np.where(n <= 2, n, -(-n // 3)), np.minimum(n, min_vectors))
    assert pooled.lengths.tolist() == want.tolist() == pooled_counts(n, 3, min_vectors).tolist()
    assert (pooled.lengths[n <= min_vectors] == n[n <= min_vectors]).all()          # short ones keep all
    assert (pooled.lengths >= np.minimum(n, min_vectors)).all()
    long = n >= 3 * min_vectors
    assert (pooled.lengths[long] == np.ceil(n[long] / 3)).all()                      # long ones pool as before
    unbounded = pool_tokens(b.vectors, b.lengths, b.token_ids, 3, method)
    assert pooled.lengths.sum() >= unbounded.lengths.sum()


def test_a_recipe_with_a_minimum_builds_with_it(tmp_path):
    from indexes.builder.pipeline import build_index
    from indexes.storage.store import IndexStore
    from conftest import synthetic_docs

    b = synthetic_batch(n_docs=30, seed=1, min_len=3, max_len=30)
    build_index(tmp_path / "i", b, synthetic_docs(30), recipe="pool2,min10,res2", info={"encoder": {}}, vocab_size=500)
    store = IndexStore.open(tmp_path / "i")
    assert store.manifest["recipe"] == "pool2,min10,res2"
    assert sum(s.entry["n_vectors"] for s in store.segments) == int(pooled_counts(b.lengths, 2, 10).sum())


def test_pooled_vector_is_mean_of_its_members():
    rng = np.random.default_rng(0)
    a = np.array([1, 0, 0, 0], np.float32)
    b = np.array([0, 1, 0, 0], np.float32)
    doc = np.stack([a, a + 0.01 * rng.standard_normal(4), b, b + 0.01 * rng.standard_normal(4)]).astype(np.float32)
    doc /= np.linalg.norm(doc, axis=1, keepdims=True)
    pooled = pool_tokens(doc, np.array([4]), np.array([1, 2, 3, 4], np.int32), 2)
    assert pooled.lengths.tolist() == [2]
    groups = [sorted(pooled.member_token_ids[pooled.member_offsets[i]:pooled.member_offsets[i + 1]].tolist())
              for i in range(2)]
    assert sorted(groups) == [[1, 2], [3, 4]]
    for i, g in enumerate(groups):
        mean = doc[[t - 1 for t in g]].mean(axis=0)
        np.testing.assert_allclose(pooled.vectors[i], mean / np.linalg.norm(mean), atol=1e-6)


def test_kmeans_pooling_never_empties_and_keeps_members():
    b = synthetic_batch(n_docs=20, seed=7)
    pooled = pool_tokens(b.vectors, b.lengths, b.token_ids, 3, method="kmeans")
    assert (pooled.lengths >= 1).all() and (pooled.lengths <= np.ceil(b.lengths / 3)).all()
    assert pooled.member_offsets[-1] == len(b.token_ids)
    with pytest.raises(ValueError, match="unknown pooling method"):
        pool_tokens(b.vectors, b.lengths, b.token_ids, 2, method="nope")


def test_prune_rules_each_counted():
    lengths = np.array([4, 3])
    token_ids = np.array([1, 2, 3, 4, 1, 1, 5], np.int32)
    idf = np.array([0, 0.1, 2, 3, 4, 5], np.float32)
    norms = np.array([5, 1, 4, 3, 2, 9, 8], np.float32)
    keep, removed = prune_mask(PruneRules(stopwords=True), token_ids, lengths, stopword_ids=np.array([1]))
    assert keep.tolist() == [False, True, True, True, False, False, True] and removed == {"stopwords": 3}
    keep, removed = prune_mask(PruneRules(idf_fraction=0.5), token_ids, lengths, idf=idf)
    assert keep.tolist() == [False, False, True, True, False, True, True] and removed == {"idf": 3}
    keep, removed = prune_mask(PruneRules(first_k=2), token_ids, lengths)
    assert keep.tolist() == [True, True, False, False, True, True, False] and removed == {"first_k": 3}
    keep, removed = prune_mask(PruneRules(norm_fraction=0.5), token_ids, lengths, norms=norms)
    assert keep.tolist() == [True, False, True, False, False, True, True] and removed == {"norm": 3}


def test_pruning_never_empties_a_document():
    lengths = np.array([2, 3])
    token_ids = np.array([7, 7, 7, 8, 9], np.int32)
    keep, removed = prune_mask(PruneRules(stopwords=True), token_ids, lengths, stopword_ids=np.array([7]))
    assert keep.tolist() == [True, False, False, True, True]
    assert removed == {"stopwords": 3, "restored": 1}


def test_rules_compose_and_pool_after_pruning():
    b = synthetic_batch(n_docs=25, seed=3)
    idf = idf_from_token_ids(b.token_ids, b.lengths, 500)
    out = reduce_tokens(b.vectors, b.token_ids, b.lengths, rules=PruneRules(idf_fraction=0.2, first_k=10),
                        pool_factor=2, idf=idf)
    assert set(out.removed) >= {"idf", "first_k", "pooling"}
    assert (out.lengths >= 1).all() and (out.lengths <= 5).all()
    assert out.member_offsets[-1] == len(b.token_ids) - out.removed["idf"] - out.removed["first_k"]


def test_idf_counts_documents_not_occurrences():
    idf = idf_from_token_ids(np.array([3, 3, 3, 4], np.int32), np.array([3, 1]), 5)
    assert idf[3] == pytest.approx(np.log(3 / 2)) and idf[4] == pytest.approx(np.log(3 / 2))
    assert idf[0] == pytest.approx(np.log(3))


@pytest.mark.parametrize("min_cosine", [0.6, 0.8, 0.9, 0.95])
def test_threshold_pooling_never_merges_vectors_below_its_cosine(min_cosine):
    b = synthetic_batch(n_docs=25, seed=7, min_len=1, max_len=60)
    vectors = b.vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = np.arange(len(vectors), dtype=np.int32)         # token id = original row, to find members again
    pooled = pool_tokens(vectors, b.lengths, rows, 1, method="threshold", min_cosine=min_cosine)
    assert pooled.member_offsets[-1] == len(vectors) and (pooled.lengths >= 1).all()
    merged_any = False
    for v in range(len(pooled.vectors)):
        members = pooled.member_token_ids[pooled.member_offsets[v]:pooled.member_offsets[v + 1]]
        if len(members) > 1:
            merged_any = True
            cos = vectors[members] @ vectors[members].T
            assert cos.min() >= min_cosine - 1e-5
        mean = vectors[members].mean(axis=0)                # each pooled row: its members' renormalised mean
        np.testing.assert_allclose(pooled.vectors[v], mean / np.linalg.norm(mean), atol=1e-5)
    assert merged_any or min_cosine > 0.8                  # same-topic synthetic vectors have cosine ~0.8


def test_threshold_pooling_shrinks_repeated_text_and_keeps_distinct_content():
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((40, 32)).astype(np.float32)          # near-orthogonal: nothing to merge
    phrase = rng.standard_normal((5, 32)).astype(np.float32)
    repeated = np.tile(phrase, (8, 1)) + 0.01 * rng.standard_normal((40, 32)).astype(np.float32)
    docs = np.concatenate([distinct, repeated])
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    pooled = pool_tokens(docs, np.array([40, 40]), np.zeros(80, np.int32), 1, method="threshold", min_cosine=0.9)
    assert pooled.lengths.tolist() == [40, 5]
