"""Vocabulary-term inverted lists: construction, completeness, scores against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexes.builder.pipeline import add_to_index, build_index, compact_index
from indexes.storage.store import IndexStore
from indexes.storage.writes import delete_documents
from indexes.search.vocab import retrieve_by_term
from indexes.storage.vocab_lists import build_vocab_lists
from conftest import synthetic_batch, synthetic_docs, stored

VOCAB = 500


def test_lists_hold_each_term_vector_pair_once():
    # Three stored vectors: v0 stands for tokens [5, 7], v1 for [7, 7] (pooled twice), v2 for [2].
    offsets, ids = build_vocab_lists(np.array([5, 7, 7, 7, 2]), np.array([2, 2, 1]), vocab_size=10)
    lists = {t: ids[offsets[t]:offsets[t + 1]].tolist() for t in range(10) if offsets[t + 1] > offsets[t]}
    assert lists == {2: [2], 5: [0], 7: [0, 1]}
    assert offsets.shape == (11,) and offsets[-1] == len(ids) == 4


def test_out_of_range_token_ids_are_refused():
    with pytest.raises(ValueError, match="token ids"):
        build_vocab_lists(np.array([3, 12]), np.array([1, 1]), vocab_size=10)


@pytest.fixture(scope="module", params=["pool2,res2", "fp16"])
def store_and_batch(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab")
    batch = synthetic_batch(n_docs=80, dim=32, seed=3)
    build_index(path, batch, synthetic_docs(80), recipe=request.param, info={"encoder": {}}, vocab_size=VOCAB)
    return IndexStore.open(path), batch


def _docs_containing(batch, term: int) -> set[int]:
    offsets = np.concatenate([[0], np.cumsum(batch.lengths)])
    return {d for d in range(len(batch.lengths)) if term in batch.token_ids[offsets[d]:offsets[d + 1]]}


def test_a_term_list_reaches_every_document_containing_the_term(store_and_batch):
    store, batch = store_and_batch
    q = torch.from_numpy(batch.vectors[:1].astype(np.float32))
    for term in np.unique(batch.token_ids)[:40]:
        positions, _ = retrieve_by_term(store, q, np.array([term]), n_candidates=10_000)
        assert set(positions.tolist()) == _docs_containing(batch, int(term)), term


def test_scores_are_best_same_term_similarity_summed_over_query_tokens(store_and_batch):
    store, batch = store_and_batch
    seg = store.segments[0]
    decoded = store.codec.decompress(*stored(seg), normalize=store.codec.nbits == 16).numpy()
    members = np.split(np.asarray(seg.member_token_ids), np.cumsum(seg.member_counts)[:-1])
    rng = np.random.default_rng(0)
    q = batch.vectors[rng.choice(len(batch.vectors), 5)].astype(np.float32)
    terms = np.array([batch.token_ids[3], batch.token_ids[50], -1, batch.token_ids[99], 499])
    positions, scores = retrieve_by_term(store, torch.from_numpy(q), terms, n_candidates=10_000)
    reference = {}
    for d in range(len(batch.lengths)):
        rows = range(int(seg.doc_offsets[d]), int(seg.doc_offsets[d + 1]))
        total, hit = 0.0, False
        for i, t in enumerate(terms):
            sims = [float(q[i] @ decoded[v]) for v in rows if t >= 0 and t in members[v]]
            if sims:
                total, hit = total + max(sims), True
        if hit:
            reference[d] = total
    assert set(positions.tolist()) == set(reference)
    np.testing.assert_allclose(scores, [reference[p] for p in positions.tolist()], rtol=1e-4, atol=2e-3)
    assert np.all(np.diff(scores) <= 1e-6)   # best first


def test_lists_survive_add_delete_and_compact(tmp_path):
    batch = synthetic_batch(n_docs=30, dim=32, seed=4)
    more = synthetic_batch(n_docs=20, dim=32, seed=5)
    build_index(tmp_path, batch, synthetic_docs(30), recipe="res2", info={"encoder": {}}, vocab_size=VOCAB)
    add_to_index(tmp_path, more, synthetic_docs(20, prefix="e"))
    store = IndexStore.open(tmp_path)
    delete_documents(tmp_path, ["d0", "e1"])
    store = IndexStore.open(tmp_path)
    term = int(more.token_ids[0])
    q = torch.from_numpy(more.vectors[:1].astype(np.float32))
    expected = ({f"d{d}" for d in _docs_containing(batch, term)} | {f"e{d}" for d in _docs_containing(more, term)}) \
        - {"d0", "e1"}
    found = lambda s: {s.document(p)["id"] for p in retrieve_by_term(s, q, np.array([term]), n_candidates=999)[0]}
    assert found(store) == expected
    compact_index(tmp_path)
    assert found(IndexStore.open(tmp_path)) == expected
