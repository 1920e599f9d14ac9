"""The compiled agglomerative clustering (indexes/builder/agglomerate.py) gives scipy's partitions: Ward cut
into k clusters and complete linkage on cosine distance cut at a height, on documents of many
lengths, including ones left alone."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from indexes.builder.agglomerate import cluster_documents  # noqa: E402
from indexes.builder.reduce import _cluster_labels, threshold_labels  # noqa: E402


def _partition(labels: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)}


def _documents(seed: int, n_docs: int = 60, dim: int = 24):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 90, size=n_docs)
    lengths[:3] = [1, 2, 3]
    # Documents with structure: a few topics per document plus noise, so clusters are uneven.
    parts = []
    for n in lengths:
        topics = rng.normal(size=(max(1, n // 8), dim))
        x = topics[rng.integers(0, len(topics), size=n)] + 0.6 * rng.normal(size=(n, dim))
        parts.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return np.concatenate(parts), lengths


@pytest.mark.parametrize("pool_factor", [2, 3])
def test_ward_partitions_equal_scipy(pool_factor):
    vectors, lengths = _documents(seed=pool_factor)
    k = np.ceil(lengths / pool_factor).astype(np.int64)
    labels = cluster_documents(vectors, lengths, "ward", n_clusters=k)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    clustered = 0
    for d, n in enumerate(lengths):
        mine = labels[offsets[d]:offsets[d + 1]]
        assert mine[0] == 0 and set(mine.tolist()) == set(range(mine.max() + 1))   # numbered by first member
        if k[d] >= n:
            np.testing.assert_array_equal(mine, np.arange(n))
            continue
        reference = _cluster_labels(vectors[offsets[d]:offsets[d + 1]], int(k[d]), "hierarchical", 0)
        assert _partition(mine) == _partition(reference), f"document {d} ({n} vectors)"
        clustered += 1
    assert clustered > 40


@pytest.mark.parametrize("min_cosine", [0.5, 0.8])
def test_complete_linkage_partitions_equal_scipy(min_cosine):
    vectors, lengths = _documents(seed=7)
    labels = cluster_documents(vectors, lengths, "complete", max_distance=1 - min_cosine)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    merged = 0
    for d in range(len(lengths)):
        doc = vectors[offsets[d]:offsets[d + 1]]
        mine, reference = labels[offsets[d]:offsets[d + 1]], threshold_labels(doc, min_cosine)
        assert _partition(mine) == _partition(reference), f"document {d}"
        for label in np.unique(mine):          # the guarantee merge<C> gives: every pair within C
            members = doc[mine == label]
            assert (members @ members.T).min() >= min_cosine - 1e-9
        merged += len(np.unique(mine)) < len(mine)
    assert merged > 20


def test_float32_batches_agree_with_float64():
    vectors, lengths = _documents(seed=3, n_docs=30, dim=64)
    k = np.ceil(lengths / 2).astype(np.int64)
    a = cluster_documents(vectors, lengths, "ward", n_clusters=k)
    b = cluster_documents(vectors.astype(np.float32), lengths, "ward", n_clusters=k)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    same = sum(_partition(a[offsets[d]:offsets[d + 1]]) == _partition(b[offsets[d]:offsets[d + 1]])
               for d in range(len(lengths)))
    assert same >= len(lengths) - 1            # float32 Gram rounding may flip a near-tie at most once here


def test_bad_arguments_are_named():
    vectors, lengths = _documents(seed=1, n_docs=3)
    with pytest.raises(ValueError, match="method"):
        cluster_documents(vectors, lengths, "single")
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_documents(vectors, lengths, "ward")


def test_document_frequencies_count_each_document_once():
    from indexes.builder.agglomerate import document_frequencies

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=200)
    token_ids = rng.integers(0, 50, size=lengths.sum()).astype(np.int32)
    doc_of = np.repeat(np.arange(len(lengths)), lengths)
    expected = np.array([len(np.unique(doc_of[token_ids == t])) for t in range(60)])
    np.testing.assert_array_equal(document_frequencies(token_ids, lengths, 60), expected)


@pytest.mark.parametrize("method, pool_factor, min_cosine", [("hierarchical", 2, 1.0), ("threshold", 1, 0.5)])
def test_compiled_pooling_equals_the_per_document_path_with_empty_documents(method, pool_factor, min_cosine,
                                                                            monkeypatch):
    from indexes.builder import reduce

    vectors, lengths = _documents(seed=11, n_docs=12)
    lengths = np.insert(lengths, [0, 5, 12], 0)                  # empty first, middle and last documents
    token_ids = np.arange(lengths.sum(), dtype=np.int32)
    compiled = reduce.pool_tokens(vectors, lengths, token_ids, pool_factor, method, min_cosine=min_cosine)
    monkeypatch.setattr(reduce, "_agglomerate", None)
    reference = reduce.pool_tokens(vectors, lengths, token_ids, pool_factor, method, min_cosine=min_cosine)
    np.testing.assert_array_equal(compiled.lengths, reference.lengths)
    assert compiled.removed == reference.removed

    def groups(r):                        # pooled vectors keyed by their members (cluster order may differ)
        members = np.split(r.member_token_ids, r.member_offsets[1:-1])
        return {tuple(sorted(m.tolist())): v for m, v in zip(members, r.vectors)}
    a, b = groups(compiled), groups(reference)
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.array([a[k] for k in b]), np.array(list(b.values())), atol=1e-5)
