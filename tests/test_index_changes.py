"""add / delete / compact: results equal those of an index built directly from the same documents."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.builder.pipeline import TokenBatch, add_to_index, build_index, compact_index
from indexes.search.maxsim import search_blocks
from indexes.storage.store import IndexStore
from indexes.storage.writes import delete_documents
from conftest import synthetic_batch, synthetic_docs


def search(path, queries, k=15):
    store = IndexStore.open(path)
    scores, positions = search_blocks(queries, store.blocks(block_vectors=200), store.n_positions, k,
                                      dim=store.codec.dim, alive=store.alive, device="cpu")
    return scores, [[store.document(p)["id"] for p in row if p >= 0] for row in positions]


def queries(seed=9, dim=32):
    q = synthetic_batch(n_docs=6, dim=dim, seed=seed, min_len=8, max_len=9).vectors.astype(np.float32)
    return q.reshape(6, 8, dim)


def slice_batch(b: TokenBatch, docs: slice) -> TokenBatch:
    offsets = np.concatenate([[0], np.cumsum(b.lengths)])
    rows = slice(int(offsets[docs.start]), int(offsets[docs.stop]))
    return TokenBatch(b.vectors[rows], b.token_ids[rows], b.lengths[docs], b.norms[rows])


def build(path, batch, docs, recipe):
    build_index(path, batch, docs, recipe=recipe, info={"encoder": {}}, vocab_size=500)


def test_add_then_delete_equals_fresh_build_fp16(tmp_path):
    full = synthetic_batch(n_docs=60, seed=1)
    docs = synthetic_docs(60)
    build(tmp_path / "a", slice_batch(full, slice(0, 40)), docs[:40], "fp16")
    add_to_index(tmp_path / "a", slice_batch(full, slice(40, 60)), docs[40:])
    deleted = ["d3", "d41", "d59"]
    delete_documents(tmp_path / "a", deleted)
    keep = [i for i in range(60) if f"d{i}" not in deleted]
    offsets = np.concatenate([[0], np.cumsum(full.lengths)])
    rows = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in keep])
    fresh = TokenBatch(full.vectors[rows], full.token_ids[rows], full.lengths[keep], full.norms[rows])
    build(tmp_path / "b", fresh, [docs[i] for i in keep], "fp16")
    q = queries()
    (s1, ids1), (s2, ids2) = search(tmp_path / "a", q), search(tmp_path / "b", q)
    assert ids1 == ids2
    np.testing.assert_allclose(s1, s2, rtol=1e-6)
    assert not any(d in row for row in ids1 for d in deleted)


def test_add_then_delete_restores_compressed_results(tmp_path):
    base = synthetic_batch(n_docs=50, seed=2)
    build(tmp_path, base, synthetic_docs(50), "pool2,res2")
    q = queries()
    before = search(tmp_path, q)
    add_to_index(tmp_path, synthetic_batch(n_docs=30, seed=3), synthetic_docs(30, "new"))
    assert any(d.startswith("new") for row in search(tmp_path, q)[1] for d in row)
    delete_documents(tmp_path, [f"new{i}" for i in range(30)])
    after = search(tmp_path, q)
    assert after[1] == before[1]
    np.testing.assert_array_equal(after[0], before[0])
    compact_index(tmp_path)
    compacted = search(tmp_path, q)
    assert compacted[1] == before[1] and len(IndexStore.open(tmp_path).segments) == 1
    np.testing.assert_allclose(compacted[0], before[0], rtol=1e-6)


def test_duplicate_ids_and_upsert(tmp_path):
    build(tmp_path, synthetic_batch(n_docs=20, seed=4), synthetic_docs(20), "res2")
    with pytest.raises(ValueError, match="already in the index"):
        add_to_index(tmp_path, synthetic_batch(n_docs=2, seed=5), synthetic_docs(2))
    replacement = [{"id": "d1", "text": "new version"}]
    add_to_index(tmp_path, synthetic_batch(n_docs=1, seed=6), replacement, upsert=True)
    store = IndexStore.open(tmp_path)
    assert store.n_docs == 20 and store.document(store.position_of["d1"])["text"] == "new version"
    with pytest.raises(KeyError, match="not in the index"):
        delete_documents(tmp_path, ["nope"])
    assert delete_documents(tmp_path, ["nope", "d2"], missing_ok=True) == 1


def test_compact_with_retraining_keeps_rankings_close(tmp_path):
    build(tmp_path, synthetic_batch(n_docs=80, seed=7), synthetic_docs(80), "res4")
    add_to_index(tmp_path, synthetic_batch(n_docs=40, seed=8), synthetic_docs(40, "x"))
    delete_documents(tmp_path, ["d0", "x0"])
    q = queries()
    before = search(tmp_path, q, k=10)[1]
    old_codec = IndexStore.open(tmp_path).manifest["codec"]["name"]
    compact_index(tmp_path, retrain=True)
    store = IndexStore.open(tmp_path)
    assert store.manifest["codec"]["name"] != old_codec and store.n_docs == 118
    after = search(tmp_path, q, k=10)[1]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(before, after)])
    assert overlap >= 0.8


def test_an_outgrown_codec_is_refitted_by_maintenance(tmp_path):
    from conftest import synthetic_batch, synthetic_docs
    from indexes.builder.pipeline import add_to_index, build_index
    from retriever import Index

    build_index(tmp_path, synthetic_batch(20, seed=0), synthetic_docs(20, "a"), recipe="res2",
                info={"encoder": {"name": "t"}}, vocab_size=500)
    index = Index.open(tmp_path)
    first = index.growth()
    assert not first["retrain"]
    for chunk in range(6):                            # the collection grows ~20x after the build
        add_to_index(tmp_path, synthetic_batch(60, seed=10 + chunk), synthetic_docs(60, f"b{chunk}-"))
    index.reload()
    grown = index.growth()
    assert grown["retrain"] and grown["sized_centroids"] >= 2 * grown["centroids"] == 2 * first["centroids"]
    assert index.stats()["growth"]["retrain"]
    ids = sorted(index.store.position_of)
    index.maintain()
    after = index.growth()
    assert after["centroids"] == grown["sized_centroids"] and not after["retrain"] and after["segments"] == 1
    assert sorted(index.store.position_of) == ids
