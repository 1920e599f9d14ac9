"""Sharded builds (in-process and on a local Ray cluster) against a single index with the same codec."""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexes.build import TokenBatch, build_index
from indexes.sharded import read_shards
from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
from retriever.sharded import ShardedIndex, ShardedSearcher, build_sharded, shard_ranges
from retriever.cache import concat_embeddings
from retriever.stopwords import stopword_token_ids
from conftest import SAMPLE


def test_shard_ranges_cover_every_document_once():
    ranges = shard_ranges(10, 3)
    assert [list(r) for r in ranges] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match="shards"):
        shard_ranges(2, 3)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


@pytest.fixture(scope="module")
def documents():
    return read_corpus(SAMPLE)


def _single_with_same_codec(path, sharded_dir, documents, encoder):
    """One index of all documents, coded with the sharded build's codec and idf, from the same
    vectors: encoded shard by shard as the sharded build does (a document's vectors differ in the
    last digits with the shape of the batch it was encoded in, which is not what is compared)."""
    shards = read_shards(sharded_dir)["shards"]
    first = Index.open(sharded_dir / shards[0])
    parts = [encoder.encode_documents([documents[i].full_text for i in r], show_progress=False)
             for r in shard_ranges(len(documents), len(shards))]
    e = concat_embeddings(parts)
    build_index(path, TokenBatch(e.vectors, e.token_ids, e.lengths, e.norms), [d.to_dict() for d in documents],
                recipe=first.manifest["recipe"], info={"encoder": first.encoder_spec, "encoding": {}},
                vocab_size=len(encoder.tokenizer), codec=first.store.codec, idf=first.store.idf,
                stopword_ids=stopword_token_ids(encoder.tokenizer, encoder.config.skiplist))
    return Index.open(path)


def _assert_same_results(sharded_dir, single, encoder, **kwargs):
    texts = [q.text for q in read_queries(SAMPLE)]
    a = ShardedSearcher(sharded_dir, encoder=encoder, hybrid=False, **kwargs).search_batch(texts, k=8)
    b = Searcher(single, encoder=encoder, hybrid=False, **kwargs).search_batch(texts, k=8)
    assert a.doc_ids == b.doc_ids
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-5)


def test_sharded_build_equals_single_index_with_the_same_codec(tmp_path, documents, encoder):
    manifest = build_sharded(tmp_path / "sharded", documents, encoder, n_shards=3)
    assert len(manifest["shards"]) == 3 and manifest["n_docs"] == len(documents)
    single = _single_with_same_codec(tmp_path / "single", tmp_path / "sharded", documents, encoder)
    _assert_same_results(tmp_path / "sharded", single, encoder, engine="exhaustive")
    _assert_same_results(tmp_path / "sharded", single, encoder, nprobe=10_000, n_candidates=10_000)
    # A rebuild replaces the shards as a whole: the old build's folders are gone.
    again = build_sharded(tmp_path / "sharded", documents, encoder, n_shards=2)
    assert sorted(p.name for p in (tmp_path / "sharded").iterdir() if p.is_dir()) == sorted(again["shards"])


def test_ray_build_survives_a_killed_worker(tmp_path, documents, encoder):
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install -e '.[ray]')")
    marker = tmp_path / "crashed-once"
    os.environ["TESSERA_CRASH_ONCE"] = str(marker)        # the first shard task kills its worker
    try:
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                 object_store_memory=200 * 2**20)
        manifest = build_sharded(tmp_path / "ray", documents, encoder, n_shards=2, use_ray=True)
        # The same shards searched by Ray actors answer exactly as searched in threads.
        texts = [q.text for q in read_queries(SAMPLE)]
        by_actors = ShardedSearcher(tmp_path / "ray", encoder=encoder, ray=True).search_batch(texts, k=5)
        by_threads = ShardedSearcher(tmp_path / "ray", encoder=encoder).search_batch(texts, k=5)
        assert by_actors.doc_ids == by_threads.doc_ids
        np.testing.assert_allclose(by_actors.scores, by_threads.scores, rtol=1e-6)
    finally:
        del os.environ["TESSERA_CRASH_ONCE"]
        ray.shutdown()
    assert marker.exists(), "no worker was killed: the test did not test a retry"
    assert manifest["ray"] and sum(s["documents"] for s in manifest["build"]["shards"]) == len(documents)
    single = _single_with_same_codec(tmp_path / "single", tmp_path / "ray", documents, encoder)
    _assert_same_results(tmp_path / "ray", single, encoder, engine="exhaustive")
    _assert_same_results(tmp_path / "ray", single, encoder)


def test_cli_builds_and_searches_a_sharded_index(tmp_path, capsys):
    import tessera

    assert tessera.main(["index", "--corpus", str(SAMPLE), "--index", str(tmp_path / "sh"), "--shards", "2"]) == 0
    assert tessera.main(["search", "--index", str(tmp_path / "sh"), "how do solar panels make electricity",
                         "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 shards" in out and "solar-1" in out.splitlines()[-2]
    assert tessera.main(["index", "--corpus", str(SAMPLE), "--index", str(tmp_path / "x"), "--ray"]) == 1


def test_sharded_index_adds_deletes_and_filters_like_one_index(tmp_path, documents, encoder):
    from retriever import Document, ShardedIndex, open_index, searcher_for

    build_sharded(tmp_path / "s", documents[:12], encoder, n_shards=3)
    index = open_index(tmp_path / "s")
    assert isinstance(index, ShardedIndex) and len(index) == 12
    sizes = [len(s) for s in index.shards]
    new = [Document(id="kiwi-1", title="Kiwi fruit", text="Kiwi fruit is rich in vitamin C and grows on vines.")]
    index.add(new, encoder)
    assert [len(s) for s in index.shards][int(np.argmin(sizes))] == min(sizes) + 1   # the smallest shard took it
    searcher = searcher_for(index, encoder, hybrid=False)
    hit = searcher.search("which fruit grows on vines and has vitamin C?", k=3)
    assert hit.doc_ids[0][0] == "kiwi-1"
    assert index.document(int(hit.indices[0, 0]))["id"] == "kiwi-1" == index.document(index.position_of("kiwi-1"))["id"]
    with pytest.raises(KeyError, match="already"):
        index.add(new, encoder)
    home = next(i for i, s in enumerate(index.shards) if s.position_of(documents[0].id) is not None)
    index.add([Document(id=documents[0].id, title="Kiwi fruit too", text=new[0].text)], encoder, upsert=True)
    assert index.shards[home].position_of(documents[0].id) is not None and len(index) == 13   # replaced in place
    # A filter mask over global positions reaches every shard: only the allowed documents come back.
    allowed = np.zeros(index.n_positions, dtype=bool)
    allowed[[index.position_of("kiwi-1"), index.position_of(documents[5].id)]] = True
    for fusion in (None, "none", "lexical"):
        got = searcher_for(index, encoder, fusion=fusion).search_batch(["kiwi vitamin"], k=5, allowed=allowed,
                                                                       texts=["kiwi vitamin"])
        assert set(got.doc_ids[0]) <= {"kiwi-1", documents[5].id} and "kiwi-1" in got.doc_ids[0]
    assert index.delete(["kiwi-1"]) == 1 and index.position_of("kiwi-1") is None and len(index) == 12
    assert "kiwi-1" not in searcher_for(index, encoder).search("kiwi fruit vines", k=13).doc_ids[0]


def test_sharded_hybrid_merges_each_side_then_fuses(tmp_path, documents, encoder):
    """Hybrid over shards: the dense side equals one index's (same codec); BM25 uses each shard's
    own statistics, so the fused list is compared with a fusion of the merged sides."""
    from indexes.fusion import fuse

    build_sharded(tmp_path / "s", documents, encoder, n_shards=2)
    texts = [q.text for q in read_queries(SAMPLE)]
    hybrid = ShardedSearcher(tmp_path / "s", encoder=encoder).search_batch(texts, k=5)
    dense = ShardedSearcher(tmp_path / "s", encoder=encoder, hybrid=False).search_batch(texts, k=100)
    lexical = ShardedSearcher(tmp_path / "s", encoder=encoder, fusion="lexical").search_batch(texts, k=100)
    want_scores, want_positions = fuse((dense.scores, dense.indices), (lexical.scores, lexical.indices), 5, "adaptive")
    for q in range(len(texts)):
        expected = [(p, s) for p, s in zip(want_positions[q].tolist(), want_scores[q].tolist()) if p >= 0]
        assert hybrid.indices[q].tolist() == [p for p, _ in expected]
        np.testing.assert_allclose(hybrid.scores[q], [s for _, s in expected], rtol=1e-6)
        assert hybrid.doc_ids[q] == [ShardedIndex.open(tmp_path / "s").document(p)["id"] for p, _ in expected]
