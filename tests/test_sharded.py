"""One Searcher over a single index and over 1- and 3-shard sets: identical rankings (dense,
hybrid, lexical, filtered), identical stats() keys, writes; sharded builds in process and on Ray."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.storage.sharded import commit_shards, new_shard_names, read_shards
from retriever import Document, Index, Searcher, ShardedIndex, load_encoder, open_index, read_corpus, read_queries
from retriever.checkpoints import encoder_spec
from retriever.sharded import build_shard, shard_ranges
from conftest import SAMPLE

SETTINGS = [dict(), dict(hybrid=False), dict(engine="exhaustive"), dict(engine="vocab"), dict(engine="union"),
            dict(fusion="lexical"), dict(fusion="rrf"), dict(quality="fast", hybrid=False)]


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
    docs = read_corpus(SAMPLE)
    for i, d in enumerate(docs):
        d.metadata = {"topic": d.id.split("-")[0], "n": i}
    return docs


@pytest.fixture(scope="module")
def indexes(tmp_path_factory, documents, encoder):
    """A 3-shard build (Index.build), then a single index and a 1-shard set written with its
    codec and idf from the same vectors: the three must rank alike."""
    root = tmp_path_factory.mktemp("conformance")
    three = Index.build(root / "three", documents, encoder, shards=3, show_progress=False)
    assert isinstance(three, ShardedIndex) and len(three.shards) == 3
    first = three.shards[0].store
    e = encoder.encode_documents([d.full_text for d in documents], show_progress=False)
    from indexes.builder.pipeline import TokenBatch, build_index
    from retriever.stopwords import stopword_token_ids

    batch = TokenBatch(e.vectors, e.token_ids, e.lengths, e.norms)
    build_index(root / "single", batch, [d.to_dict() for d in documents], recipe=three.manifest["recipe"],
                info={"encoder": encoder_spec(encoder), "encoding": {}}, vocab_size=len(encoder.tokenizer),
                codec=first.codec, idf=first.idf, stopword_ids=stopword_token_ids(encoder.tokenizer, encoder.config.skiplist))
    names = new_shard_names(1)
    (root / "one").mkdir()
    build_shard(str(root / "one" / names[0]), [d.to_dict() for d in documents], encoder_spec(encoder), first.codec,
                first.idf, three.manifest["recipe"], batch, {})
    commit_shards(root / "one", names, {"n_docs": len(documents), "recipe": three.manifest["recipe"],
                                        "encoder": encoder_spec(encoder)})
    return {"single": open_index(root / "single"), "one shard": open_index(root / "one"), "three shards": three}


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_one_searcher_ranks_a_single_index_and_shard_sets_alike(indexes, encoder, settings):
    texts = [q.text for q in read_queries(SAMPLE)] + ["kiwi"]
    got = {name: Searcher(index, encoder=encoder, **settings).search_batch(texts, k=8)
           for name, index in indexes.items()}
    want = got["single"]
    assert any(len(row) for row in want.doc_ids)
    for name, r in got.items():
        assert r.doc_ids == want.doc_ids, name
        np.testing.assert_allclose(r.scores, want.scores, rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(r.indices >= 0, want.indices >= 0)


def test_filters_ids_and_positions_agree_across_shards(indexes, encoder):
    query = "how do plants turn sunlight into sugar"
    for kwargs in (dict(filter={"n": {"gte": 10}}), dict(ids=["wind-1", "solar-2", "nope"]),
                   dict(filter={"$not": {"topic": "solar"}})):
        rows = {name: Searcher(index, encoder=encoder).search(query, k=6, **kwargs) for name, index in indexes.items()}
        assert len({tuple(r.doc_ids[0]) for r in rows.values()}) == 1, kwargs
        for name, r in rows.items():
            index = indexes[name]
            assert [index.document(int(p))["id"] for p in r.indices[0] if p >= 0] == r.doc_ids[0]
            assert all(index.position_of(d) == int(p) for d, p in zip(r.doc_ids[0], r.indices[0]))


def test_stats_have_the_same_keys(indexes):
    keys = {name: set(index.stats()) for name, index in indexes.items()}
    assert keys["single"] == keys["one shard"] == keys["three shards"]
    assert indexes["three shards"].stats()["shards"] == 3 and indexes["three shards"].stats()["documents"] == 30


def test_rebuild_replaces_the_shards_as_a_whole_and_refuses_a_single_index_folder(tmp_path, documents, encoder):
    Index.build(tmp_path / "s", documents, encoder, shards=3, show_progress=False)
    again = Index.build(tmp_path / "s", documents, encoder, shards=2, show_progress=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir() if p.is_dir()) == sorted(again.manifest["shards"])
    assert all(s["encoding"]["tokens_per_second"] > 0 for s in read_shards(tmp_path / "s")["build"]["shards"])
    Index.build(tmp_path / "one", documents[:5], encoder, show_progress=False)
    with pytest.raises(ValueError, match="single index"):
        Index.build(tmp_path / "one", documents, encoder, shards=2, show_progress=False)
    with pytest.raises(ValueError, match="sharded index"):
        Index.build(tmp_path / "s", documents, encoder, show_progress=False)


def test_cli_builds_and_searches_a_sharded_index_with_every_option(tmp_path, capsys):
    import tessera

    (tmp_path / "sh").mkdir()
    (tmp_path / "sh" / "notes.txt").write_text("mine")
    args = ["index", "--corpus", str(SAMPLE), "--index", str(tmp_path / "sh"), "--shards", "2"]
    assert tessera.main(args) == 1                                         # a foreign folder, without --force
    assert tessera.main(args + ["--force", "--cache", str(tmp_path / "cache"), "--batch-size", "4"]) == 0
    assert (tmp_path / "sh" / "notes.txt").read_text() == "mine" and any((tmp_path / "cache").iterdir())
    assert tessera.main(["search", "--index", str(tmp_path / "sh"), "how do solar panels make electricity",
                         "-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 shards" in out and "solar-1" in out.splitlines()[-4]      # two lines a hit: title, passage
    assert tessera.main(["index", "--corpus", str(SAMPLE), "--index", str(tmp_path / "x"), "--ray"]) == 1


def test_sharded_index_adds_deletes_and_filters_like_one_index(tmp_path, documents, encoder):
    index = Index.build(tmp_path / "s", documents[:12], encoder, shards=3, show_progress=False)
    sizes = [len(s) for s in index.shards]
    new = [Document(id="kiwi-1", title="Kiwi fruit", text="Kiwi fruit is rich in vitamin C and grows on vines.")]
    index.add(new, encoder)
    assert [len(s) for s in index.shards][int(np.argmin(sizes))] == min(sizes) + 1   # the smallest shard took it
    searcher = Searcher(index, encoder, hybrid=False)
    hit = searcher.search("which fruit grows on vines and has vitamin C?", k=3)
    assert hit.doc_ids[0][0] == "kiwi-1"
    assert index.document(int(hit.indices[0, 0]))["id"] == "kiwi-1" == index.document(index.position_of("kiwi-1"))["id"]
    with pytest.raises(KeyError, match="already"):
        index.add(new, encoder)
    home = next(i for i, s in enumerate(index.shards) if s.position_of(documents[0].id) is not None)
    index.add([Document(id=documents[0].id, title="Kiwi fruit too", text=new[0].text)], encoder, upsert=True)
    assert index.shards[home].position_of(documents[0].id) is not None and len(index) == 13   # replaced in place
    allowed = np.zeros(index.n_positions, dtype=bool)
    allowed[[index.position_of("kiwi-1"), index.position_of(documents[5].id)]] = True
    for fusion in (None, "none", "lexical"):
        got = Searcher(index, encoder, fusion=fusion).search_batch(["kiwi vitamin"], k=5, allowed=allowed)
        assert set(got.doc_ids[0]) <= {"kiwi-1", documents[5].id} and "kiwi-1" in got.doc_ids[0]
    assert index.delete(["kiwi-1"]) == 1 and index.position_of("kiwi-1") is None and len(index) == 12
    assert "kiwi-1" not in searcher.search("kiwi fruit vines", k=13).doc_ids[0]
