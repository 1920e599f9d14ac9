"""The whole path with the bundled encoder: index the sample collection, search it, evaluate it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tessera
from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
from conftest import SAMPLE, stored
from test_maxsim import numpy_maxsim


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory, encoder):
    return Index.build(tmp_path_factory.mktemp("sample") / "idx", read_corpus(SAMPLE), encoder, show_progress=False)


def test_bundled_encoder_gives_unit_384_dim_vectors(encoder):
    docs = encoder.encode_documents(["Late interaction, explained!"], show_progress=False)
    assert docs.vectors.shape[1] == 384 == encoder.dim
    np.testing.assert_allclose(np.linalg.norm(docs.vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    tokens = encoder.tokenizer.convert_ids_to_tokens(docs.token_ids.tolist())
    assert "," not in tokens and "!" not in tokens and "late" in tokens


def test_searcher_scores_equal_numpy_reference(sample_index, encoder):
    searcher = Searcher(sample_index, encoder=encoder, engine="exhaustive", device="cpu")
    query = "how do solar cells turn light into electricity"
    results = searcher.search(query, k=30)
    q = encoder.encode_queries([query])[0]
    store = sample_index.store
    segment = store.segments[0]
    decoded = store.codec.decompress(*stored(segment)).numpy()   # what the index stores
    ref = numpy_maxsim(q, decoded, np.asarray(segment.doc_offsets))
    np.testing.assert_allclose(results.scores[0], np.sort(ref)[::-1], rtol=1e-4, atol=1e-3)
    assert results.doc_ids[0][0] == "solar-1"


def test_token_engine_probing_everything_equals_exhaustive(sample_index, encoder):
    texts = [q.text for q in read_queries(SAMPLE)]
    exhaustive = Searcher(sample_index, encoder=encoder, engine="exhaustive").search_batch(texts, k=10)
    generous = Searcher(sample_index, encoder=encoder, nprobe=10_000, n_candidates=10_000,
                        hybrid=False).search_batch(texts, k=10)
    assert generous.doc_ids == exhaustive.doc_ids
    np.testing.assert_allclose(generous.scores, exhaustive.scores, rtol=1e-5, atol=1e-5)


def test_batch_equals_single_queries(sample_index, encoder):
    searcher = Searcher(sample_index, encoder=encoder, device="cpu")
    texts = [q.text for q in read_queries(SAMPLE)]
    batch = searcher.search_batch(texts, k=5)
    for i, text in enumerate(texts):
        single = searcher.search(text, k=5)
        assert single.doc_ids[0] == batch.doc_ids[i]
        np.testing.assert_allclose(single.scores[0], batch.scores[i], rtol=1e-5)


def test_best_answers_rank_first(sample_index, encoder):
    searcher = Searcher(sample_index, encoder=encoder, device="cpu")
    queries = read_queries(SAMPLE)
    qrels = {}
    for line in (SAMPLE / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, did, gain = line.split("\t")
        if gain == "2":
            qrels[qid] = did
    results = searcher.search_batch([q.text for q in queries], k=3)
    top1 = sum(results.doc_ids[i][0] == qrels[q.id] for i, q in enumerate(queries))
    assert top1 >= 8, f"only {top1}/10 sample queries found their best answer first"


def test_add_delete_through_the_encoder(tmp_path, encoder):
    docs = read_corpus(SAMPLE)
    index = Index.build(tmp_path / "idx", docs[:20], encoder, show_progress=False)
    query = "repair a punctured inner tube"
    assert "bike-1" not in Searcher(index, encoder=encoder).search(query, k=5).doc_ids[0]
    index.add(docs[20:], encoder)
    assert Searcher(index, encoder=encoder).search(query, k=5).doc_ids[0][0] == "bike-1"
    index.delete(["bike-1"])
    assert "bike-1" not in Searcher(index, encoder=encoder).search(query, k=30).doc_ids[0]
    assert len(index) == 29 and len(Index.open(tmp_path / "idx")) == 29


def test_searcher_refuses_encoder_of_other_dim(sample_index, pylate_checkpoint):
    with pytest.raises(ValueError, match="24-dim"):
        Searcher(sample_index, encoder=load_encoder(pylate_checkpoint[0], device="cpu"))


def test_cli_index_search_eval(tmp_path, capsys):
    index = tmp_path / "cli-idx"
    assert tessera.main(["index", "--corpus", str(SAMPLE), "--index", str(index), "--limit", "12"]) == 0
    out = capsys.readouterr().out
    assert "indexed 12 documents" in out and "tokens/s" in out
    assert tessera.main(["search", "--index", str(index), "--json", "-k", "3", "espresso pressure"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    assert result["hits"][0]["id"] == "coffee-1" and len(result["hits"]) == 3
    assert result["hits"][0]["title"] == "Brewing espresso"
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(tmp_path / "eval-idx"), "--json",
                         "--run", str(tmp_path / "run.txt")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["queries"] == 10 and report["nDCG@10"] > 0.8
    assert 10 * 10 <= len((tmp_path / "run.txt").read_text().splitlines()) <= 10 * 30
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(tmp_path / "eval-idx"), "--json",
                         "--engine", "exhaustive", "--run", str(tmp_path / "run.txt")]) == 0
    exhaustive = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert exhaustive["engine"] == "exhaustive MaxSim" and exhaustive["nDCG@10"] >= report["nDCG@10"] - 0.05
    assert len((tmp_path / "run.txt").read_text().splitlines()) == 10 * 30
    (tmp_path / "run.txt").rename(tmp_path / "exhaustive.txt")
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(tmp_path / "eval-idx"), "--quality", "fast",
                         "--run", str(tmp_path / "fast.txt")]) == 0
    capsys.readouterr()
    assert tessera.main(["eval", "compare", str(tmp_path / "exhaustive.txt"), str(tmp_path / "fast.txt"),
                         "--qrels", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "nDCG@10" in out and "p (paired t)" in out and "(10 queries)" in out


def test_cli_reports_bad_corpus_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2"}\n')
    assert tessera.main(["index", "--corpus", str(bad), "--index", str(tmp_path / "i")]) == 1
    assert f"{bad}:2: missing field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()
    # A line over the limit is refused at once with file, line and field (encoding never starts).
    bad.write_text('{"_id": "1", "text": "fine"}\n{"_id": "2", "text": "' + "word " * 1_000_000 + '"}\n')
    assert tessera.main(["index", "--corpus", str(bad), "--index", str(tmp_path / "i"),
                         "--max-text-chars", "1000000"]) == 1
    assert f"{bad}:2: field 'text': 5,000,000 characters, over the limit of 1,000,000" in capsys.readouterr().err
    assert tessera.main(["index", "--corpus", str(bad), "--index", str(tmp_path / "i"), "--max-text-chars", "0"]) == 1
    assert "--max-text-chars must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "i").exists()


def test_cli_unknown_command(capsys):
    assert tessera.main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err


def test_token_engine_returns_k_results_beyond_n_candidates(sample_index, encoder):
    searcher = Searcher(sample_index, encoder=encoder, nprobe=64, n_candidates=5, hybrid=False)
    assert len(searcher.search("solar power", k=20).doc_ids[0]) == 20


def test_eval_report_and_resume_without_reencoding(tmp_path, monkeypatch, capsys):
    import retriever.encoder as encoder_module

    out = tmp_path / "report"
    index = tmp_path / "idx"
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(index), "--out", str(out), "--sweep"]) == 0
    table = capsys.readouterr().out
    for name in ("token (fast) + BM25 hybrid", "token (balanced) + BM25 hybrid", "token (accurate) + BM25 hybrid",
                 "token (fast) dense only", "exhaustive MaxSim", "BM25 (index lexical lists)",
                 "uncompressed exhaustive MaxSim", "loss vs uncompressed"):
        assert name in table
    report = json.loads((out / "report.json").read_text())
    results = {r["name"]: r for r in report["results"]}
    assert set(report["results"][0]["latency_ms"]) == {"p50", "p95", "p99"}
    assert (out / "report.png").stat().st_size > 1000 and (out / "runs" / "bm25-index-lexical-lists.trec").is_file()
    # The uncompressed reference is exhaustive MaxSim over the cached float16 vectors: recomputed here.
    from eval.datasets import load_dataset
    from eval.metrics import evaluate
    from retriever.cache import encode_corpus_cached
    from test_maxsim import numpy_maxsim
    data = load_dataset(SAMPLE)
    encoder = load_encoder(device="cpu")
    cached = encode_corpus_cached(encoder, data.documents, str(index) + "-cache", show_progress=False)
    offsets = np.concatenate([[0], np.cumsum(cached.lengths)])
    queries = encoder.encode_queries([q.text for q in data.queries])
    run = {q.id: dict(zip([d.id for d in data.documents],
                          numpy_maxsim(queries[i], cached.vectors.astype(np.float32), offsets).tolist()))
           for i, q in enumerate(data.queries)}
    assert results["uncompressed exhaustive MaxSim (reference)"]["metrics"]["nDCG@10"] == \
        pytest.approx(evaluate(run, data.qrels)["nDCG@10"], abs=1e-4)
    # The hybrid reference: the default fusion of that reference ranking with the index's BM25.
    from indexes.search.fusion import fuse
    from retriever import Index, Searcher
    ids = np.array([d.id for d in data.documents])
    order = np.argsort([-np.array(list(run[q.id].values())) for q in data.queries], axis=1, kind="stable")[:, :100]
    reference = (np.array([np.array(list(run[q.id].values()))[o] for q, o in zip(data.queries, order)],
                          dtype=np.float32), order.astype(np.int64))
    lexical = Searcher(Index.open(index), encoder=encoder, fusion="lexical").search_batch(
        queries, k=100, texts=[q.text for q in data.queries])
    position = {d: j for j, d in enumerate(ids.tolist())}
    lex_positions = np.array([[position[d] for d in row] + [-1] * (100 - len(row)) for row in lexical.doc_ids])
    fused_scores, fused_positions = fuse(reference, (lexical.scores, lex_positions), 200, "adaptive")
    fused = {q.id: {ids[p]: float(s) for p, s in zip(fused_positions[i], fused_scores[i]) if p >= 0}
             for i, q in enumerate(data.queries)}
    assert "hybrid reference" in table
    assert results["uncompressed reference + BM25, default fusion (hybrid reference)"]["metrics"]["nDCG@10"] == \
        pytest.approx(evaluate(fused, data.qrels)["nDCG@10"], abs=1e-4)
    # As if the run had been killed after encoding: the index is gone, the encoded shards remain.
    import shutil
    shutil.rmtree(index)
    calls = []
    real = encoder_module.Encoder.encode_documents
    monkeypatch.setattr(encoder_module.Encoder, "encode_documents",
                        lambda self, texts, **kw: calls.append(len(texts)) or real(self, texts, **kw))
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(index), "--no-baselines", "--json"]) == 0
    assert calls == [] and (index / "manifest.json").is_file()
    # A different recipe is a different index: rebuilt (from the same cached shards).
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(index), "--recipe", "res4",
                         "--no-baselines", "--json"]) == 0
    assert calls == [] and json.loads((index / "manifest.json").read_text())["recipe"] == "res4"


def test_vocab_and_union_engines_rescore_their_candidates_exactly(sample_index, encoder):
    texts = [q.text for q in read_queries(SAMPLE)]
    exhaustive = Searcher(sample_index, encoder=encoder, engine="exhaustive").search_batch(texts, k=30)
    for engine in ("vocab", "union"):
        results = Searcher(sample_index, encoder=encoder, engine=engine, n_candidates=5,
                           hybrid=False).search_batch(texts, k=3)
        for i in range(len(texts)):
            exact = dict(exhaustive.hits(i))
            for doc_id, score in results.hits(i):   # final scores are the exact MaxSim of each candidate
                assert score == pytest.approx(exact[doc_id], rel=1e-4, abs=1e-3)
    # Every query of the sample shares a term with its best document: the term lists find it.
    vocab = Searcher(sample_index, encoder=encoder, engine="vocab", n_candidates=30,
                     hybrid=False).search_batch(texts, k=1)
    assert [r[0] for r in vocab.doc_ids] == [r[0] for r in exhaustive.doc_ids]


def test_union_candidates_contain_both_first_stages(sample_index, encoder):
    text = "how do solar panels make electricity"
    q = torch.from_numpy(sample_index.store.codec.project(encoder.encode_queries([text])[0]))
    terms = encoder.query_term_ids([text])[0]
    assert (terms >= 0).sum() == len(encoder.tokenizer.tokenize(text))   # one id per word piece, none for [CLS]/[SEP]
    make = lambda engine: set(Searcher(sample_index, encoder=encoder, engine=engine, n_candidates=4, hybrid=False)
                              .ranker.candidates(q, first_stage=engine, term_ids=terms).tolist())
    assert make("union") == make("token") | make("vocab")


def test_vocab_engine_needs_term_ids_for_pre_encoded_queries(sample_index, encoder):
    q = encoder.encode_queries(["solar power"])
    with pytest.raises(ValueError, match="term_ids"):
        Searcher(sample_index, encoder=encoder, engine="vocab").search_batch(q, k=3)
    terms = encoder.query_term_ids(["solar power"])
    a = Searcher(sample_index, encoder=encoder, engine="vocab").search_batch(q, k=3, term_ids=terms)
    dense = Searcher(sample_index, encoder=encoder, engine="vocab", hybrid=False)
    assert a.doc_ids == dense.search("solar power", k=3).doc_ids


def test_the_40th_query_token_decides_the_ranking(tmp_path, encoder):
    """A query is encoded whole: its deciding word, past the old 32-token cut, changes the ranking."""
    from retriever import Document
    from retriever.encoder import QueryTruncatedWarning

    animals = ["cat", "dog", "horse", "parrot"]
    docs = [Document(id=a, text=f"The family keeps one pet at home, and that pet is a {a}.") for a in animals]
    index = Index.build(tmp_path / "idx", docs, encoder, recipe="fp16", show_progress=False)
    filler = ("please read the following question carefully because it is about the small family that lives "
              "in the old house near the river and about the one animal they keep").split()
    tokens = len(encoder.tokenizer.tokenize(" ".join(filler)))
    query = " ".join(filler) + " " + " ".join(["and"] * (34 - tokens)) + " which pet is a cat"
    framed = encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer(query)["input_ids"])
    assert framed.index("cat") == 39                       # the 40th token ([CLS] is the 1st)
    whole = Searcher(index, encoder=encoder, engine="exhaustive").search(query, k=4)
    assert whole.doc_ids[0][0] == "cat"
    whole_gap = whole.scores[0][0] - whole.scores[0][1]
    capped_encoder = load_encoder(device="cpu", query_max_tokens=32)
    with pytest.warns(QueryTruncatedWarning, match="truncated"):
        capped = Searcher(index, encoder=capped_encoder, engine="exhaustive").search(query, k=4)
    scores = dict(capped.hits(0))
    capped_gap = scores["cat"] - max(s for d, s in scores.items() if d != "cat")
    assert whole_gap > 0.2 and capped_gap < whole_gap / 4      # the cut query barely tells the pets apart


@pytest.mark.parametrize("engine", ["token", "vocab", "union", "exhaustive"])
def test_every_first_stage_is_reachable_from_api_cli_and_eval(engine, sample_index, encoder, tmp_path, capsys):
    """The same engine gives the same ranking through the Python API, `tessera search` and `tessera eval`
    (eval searches pre-encoded queries with their term ids; it once ran "token" whatever was asked)."""
    queries = [q.text for q in read_queries(SAMPLE)]
    api = Searcher(sample_index, encoder=encoder, engine=engine, hybrid=False).search_batch(queries, k=5)
    if engine != "exhaustive":
        assert api.doc_ids != Searcher(sample_index, encoder=encoder, engine="token" if engine != "token" else "vocab",
                                       hybrid=False, n_candidates=4).search_batch(queries, k=5).doc_ids
    assert tessera.main(["search", "--index", str(sample_index.directory), "--json", "--dense", "--engine", engine,
                         "-k", "5", queries[0]]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]] == api.doc_ids[0]
    run = tmp_path / "run.txt"
    assert tessera.main(["eval", "--dataset", str(SAMPLE), "--index", str(sample_index.directory), "--engine", engine,
                         "--dense", "--no-baselines", "--no-reference", "--run", str(run)]) == 0
    capsys.readouterr()
    ranked: dict[str, list[str]] = {}
    for line in run.read_text().splitlines():
        qid, _, doc, rank, *_ = line.split()
        ranked.setdefault(qid, []).append(doc)
    by_text = {q.text: q.id for q in read_queries(SAMPLE)}
    for q, ids in zip(queries, api.doc_ids):
        if by_text[q] in ranked:
            assert ranked[by_text[q]][:5] == ids


def test_cli_checks_arguments_before_encoding_and_keeps_foreign_folders(tmp_path, capsys, monkeypatch):
    import retriever.checkpoints as checkpoints

    def no_encoding(*args, **kwargs):
        raise AssertionError("the encoder was loaded before the arguments were checked")

    monkeypatch.setattr(checkpoints, "load_encoder", no_encoding)
    folder = tmp_path / "mine"
    (folder / "seg-photos").mkdir(parents=True)
    (folder / "seg-photos" / "a.jpg").write_bytes(b"jpeg")
    for argv, message in [
        (["--index", str(folder)], "not a Tessera index"),
        (["--index", str(tmp_path / "i"), "--recipe", "pool2,res9"], "res"),
        (["--index", str(tmp_path / "i"), "--batch-size", "0"], "--batch-size"),
        (["--index", str(tmp_path / "i"), "--limit", "-29"], "--limit"),
    ]:
        assert tessera.main(["index", "--corpus", str(SAMPLE), *argv]) == 1
        assert message in capsys.readouterr().err
    assert (folder / "seg-photos" / "a.jpg").read_bytes() == b"jpeg"
    monkeypatch.undo()
    assert tessera.main(["search", "--index", str(folder), "-k", "1000000000", "x"]) == 1
    assert "-k must lie in 1..1000" in capsys.readouterr().err


def test_filters_and_ids_reach_search_through_api_and_cli(tmp_path, encoder, capsys):


    documents = read_corpus(SAMPLE)
    for i, d in enumerate(documents):
        d.metadata = {"topic": d.id.split("-")[0], "n": i}
    index = Index.build(tmp_path / "f", documents, encoder, show_progress=False)
    searcher = Searcher(index, encoder=encoder)
    hits = searcher.search("how do solar panels make electricity", k=10, filter={"topic": "wind"})
    assert hits.doc_ids[0] and all(d.startswith("wind") for d in hits.doc_ids[0])
    either = searcher.search("energy", k=30, filter={"$or": [{"topic": "wind"}, {"n": {"lt": 2}}]})
    assert {d for d in either.doc_ids[0]} == {d.id for i, d in enumerate(documents) if d.id.startswith("wind") or i < 2}
    only = searcher.search("energy", k=5, ids=[documents[3].id, "missing-id"])
    assert only.doc_ids[0] == [documents[3].id]
    assert tessera.main(["search", "--index", str(tmp_path / "f"), "--json", "-k", "5", "--filter",
                         '{"topic": {"in": ["wind"]}}', "solar panels"]) == 0
    assert all(h["id"].startswith("wind") for h in json.loads(capsys.readouterr().out)["hits"])
    assert tessera.main(["search", "--index", str(tmp_path / "f"), "--filter", '{"n": {"gte": "x"}}', "q"]) == 1
    assert "--filter.n.gte" in capsys.readouterr().err

