"""Documents longer than the encoder's window: split into passages, ranked by their best passage,
and still the unit users see (ids, filters, delete, upsert, compaction, shards, results)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from indexes.files import IndexFormatError
from indexes.search.passages import aggregate
from retriever import Document, Index, Searcher, load_encoder, read_corpus
from retriever.passages import passage_windows
from conftest import SAMPLE, stored

NEEDLE = "The lighthouse keeper's parrot recites tide tables in fluent Portuguese."
WINDOW = 48          # tokens per passage with [CLS] and [SEP]: 46 text tokens (every sample document fits one)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu", doc_maxlen=WINDOW)


def corpus() -> list[Document]:
    """The sample collection plus two long documents: one with the needle at its very end, one
    made of the sample's own texts (long, on many topics, no needle)."""
    docs = read_corpus(SAMPLE)
    for i, d in enumerate(docs):
        d.metadata = {"group": "short", "n": i}
    body = " ".join(d.text for d in docs[:12])
    return docs + [Document(id="long-needle", title="Collected notes", text=f"{body} {NEEDLE}",
                            metadata={"group": "long"}),
                   Document(id="long-plain", title="", text=" ".join(d.text for d in docs[12:]),
                            metadata={"group": "long"})]


@pytest.fixture(scope="module")
def index(tmp_path_factory, encoder):
    return Index.build(tmp_path_factory.mktemp("passages") / "idx", corpus(), encoder, show_progress=False)


def numpy_maxp(query: np.ndarray, index: Index) -> tuple[np.ndarray, np.ndarray]:
    """(n_positions,) MaxP scores and best passage numbers from the decoded vectors, by loops."""
    store = index.store
    scores, best = [], []
    for segment in store.segments:
        decoded = store.codec.decompress(*stored(segment)).numpy()
        for d in range(segment.n_docs):
            starts, lengths, _ = segment.passages_of(np.array([d]))
            per = [float((decoded[s:s + n] @ query.T).max(axis=0).sum()) for s, n in zip(starts, lengths)]
            scores.append(max(per))
            best.append(int(np.argmax(per)))
    return np.array(scores, np.float32), np.array(best)


def test_windows_cover_every_token_with_the_overlap_asked():
    counts = np.array([0, 5, 30, 31, 100, 1000])
    starts, lengths, per_doc = passage_windows(counts, window=30, stride=24)
    first = np.cumsum(per_doc) - per_doc
    for n, f, c in zip(counts, first, per_doc):
        s, length = starts[f:f + c], lengths[f:f + c]
        covered = np.zeros(n, bool)
        for a, m in zip(s, length):
            covered[a:a + m] = True
        assert covered.all() and s[0] == 0 and s[-1] + length[-1] == n and (length <= 30).all()
        assert (s[:-1] + length[:-1] - s[1:] >= 6).all()                     # overlap >= window - stride
        assert c == max(1, -(-(n - 6) // 24)) if n > 30 else c == 1          # the fewest passages that do
    assert per_doc.tolist() == [1, 1, 1, 2, 4, 42]


def test_aggregations_pick_the_best_passages():
    scores = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 4.0], np.float32)
    counts = np.array([3, 1, 2])
    maxp, best = aggregate(scores, counts, "maxp")
    assert maxp.tolist() == [3.0, 5.0, 4.0] and best.tolist() == [1, 0, 0]      # a tie: the first
    assert aggregate(scores, counts, "sum2")[0].tolist() == [5.0, 5.0, 8.0]


def test_long_documents_are_split_and_every_token_encoded(index, encoder):
    build = index.manifest["build"]
    assert build["n_split_documents"] == 2 and build["n_passages"] > build["n_documents"] == len(corpus())
    segment = index.store.segments[0]
    long_doc = index.position_of("long-needle")
    starts, lengths, counts = segment.passages_of(np.array([long_doc]))
    assert counts[0] > 5
    # The spans, in the document's text, cover all of it (the title is encoded with the first passage).
    text = index.document(long_doc)["text"]
    spans = [segment.passage_span(long_doc, j) for j in range(counts[0])]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(b[0] <= a[1] for a, b in zip(spans, spans[1:]))                     # overlapping, no gap
    assert text[spans[-1][0]:spans[-1][1]].endswith(NEEDLE)


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_rescoring_equals_maxp_over_decoded_passages(index, encoder, backend):
    searcher = Searcher(index, encoder=encoder, nprobe=10_000, n_candidates=10_000, hybrid=False, backend=backend)
    exhaustive = Searcher(index, encoder=encoder, engine="exhaustive")
    for query in ["parrot reciting tide tables in Portuguese", "how do vaccines train the immune system"]:
        ref, best = numpy_maxp(encoder.encode_queries([query])[0], index)
        results = searcher.search(query, k=len(ref), passages=True)
        order = np.argsort(-ref, kind="stable")
        np.testing.assert_allclose(results.scores[0], ref[order], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(exhaustive.search(query, k=len(ref)).scores[0], ref[order], rtol=1e-4, atol=1e-4)
        # The passage each hit reports is the best one by the loops above.
        for position, passage in zip(results.indices[0].tolist(), results.passages[0]):
            segment, local = index.store.locate(position)
            start, end = segment.passage_span(local, int(best[position]))
            text = index.document(position)["text"]
            assert (passage.start, passage.end) == (start, len(text) if end < 0 else end)
            assert passage.text == text[passage.start:passage.end]


@pytest.mark.parametrize("backend", ["compiled", "reference"])
def test_passage_mode_gives_the_k_best_passages_of_the_index(index, encoder, backend):
    query = "how do solar panels and wind turbines make electricity"
    q = encoder.encode_queries([query])[0]
    store = index.store
    segment = store.segments[0]
    decoded = store.codec.decompress(*stored(segment)).numpy()
    every = []                                   # (score, document position, span) of every passage
    for d in range(segment.n_docs):
        starts, lengths, counts = segment.passages_of(np.array([d]))
        for j, (a, n) in enumerate(zip(starts, lengths)):
            every.append((float((decoded[a:a + n] @ q.T).max(axis=0).sum()), d, segment.passage_span(d, j)))
    every.sort(key=lambda x: -x[0])
    searcher = Searcher(index, encoder=encoder, hybrid=False, nprobe=10_000, n_candidates=10_000, backend=backend)
    results = searcher.search(query, k=8, unit="passage")
    np.testing.assert_allclose(results.scores[0], [e[0] for e in every[:8]], rtol=1e-4, atol=1e-4)
    assert results.indices[0].tolist() == [e[1] for e in every[:8]]
    assert len(set(results.doc_ids[0])) < 8                    # a document may give several passages
    for (score, position, (start, end)), passage in zip(every[:8], results.passages[0]):
        text = index.document(position)["text"]
        assert passage.text == text[start:len(text) if end < 0 else end]
    with pytest.raises(ValueError, match="unit"):
        searcher.search(query, unit="chunk")


def test_needle_at_the_end_is_found_and_the_hit_points_at_it(index, encoder):
    for hybrid in (False, None):
        results = Searcher(index, encoder=encoder, hybrid=hybrid).search(
            "which parrot recites tide tables in Portuguese?", k=3, passages=True)
        assert results.doc_ids[0][0] == "long-needle"
        assert NEEDLE in results.passages[0][0].text
        assert len(results.passages[0][0].text) < len(index.document(results.indices[0][0])["text"]) / 3


def test_union_aggregation_equals_maxsim_over_all_vectors(index, encoder):
    query = "solar panels and wind turbines"
    q = encoder.encode_queries([query])[0]
    store = index.store
    segment = store.segments[0]
    decoded = store.codec.decompress(*stored(segment)).numpy()
    offsets = np.asarray(segment.doc_offsets)
    ref = np.array([(decoded[a:b] @ q.T).max(axis=0).sum() for a, b in zip(offsets[:-1], offsets[1:])])
    results = Searcher(index, encoder=encoder, nprobe=10_000, n_candidates=10_000, hybrid=False,
                       aggregation="union").search(query, k=len(ref))
    np.testing.assert_allclose(results.scores[0], np.sort(ref)[::-1], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="aggregation"):
        Searcher(index, encoder=encoder, aggregation="mean")


def test_documents_stay_the_unit(tmp_path, encoder):
    index = Index.build(tmp_path / "idx", corpus(), encoder, show_progress=False)
    searcher = lambda: Searcher(index, encoder=encoder)          # noqa: E731 (a new snapshot each time)
    query = "parrot tide tables Portuguese"
    everything = searcher().search(query, k=100)
    assert len(everything.doc_ids[0]) == len(set(everything.doc_ids[0])) == len(corpus())   # k counts documents
    assert searcher().search(query, k=3, filter={"group": "long"}).doc_ids[0] == ["long-needle", "long-plain"]
    assert searcher().search(query, k=3, ids=["long-plain", "solar-1"]).doc_ids[0][0] in ("long-plain", "solar-1")
    # Upsert replaces every passage: the needle moves to a short document of its own.
    index.add([Document(id="long-needle", title="", text="Nothing about birds here.", metadata={"group": "long"})],
              encoder, upsert=True)
    assert searcher().search(query, k=1).doc_ids[0] != ["long-needle"]
    index.add([Document(id="needle-2", text=" ".join(["filler words about the weather."] * 20) + " " + NEEDLE)],
              encoder)
    before = searcher().search(query, k=5, passages=True)
    assert before.doc_ids[0][0] == "needle-2" and NEEDLE in before.passages[0][0].text
    index.delete(["long-plain"])
    assert "long-plain" not in searcher().search(query, k=100).doc_ids[0]
    index.compact()
    after = searcher().search(query, k=5, passages=True)
    kept = [d for d in before.doc_ids[0] if d != "long-plain"]
    assert after.doc_ids[0][:len(kept)] == kept
    assert after.passages[0][0] == before.passages[0][0]
    segment = index.store.segments[0]
    assert len(index.store.segments) == 1 and segment.n_passages > segment.n_docs


def test_sharded_index_equals_single(tmp_path, encoder, index):
    sharded = Index.build(tmp_path / "sh", corpus(), encoder, show_progress=False, shards=2)
    queries = ["parrot tide tables Portuguese", "how do solar panels work", "honey bees and pollination"]
    for unit in ("document", "passage"):
        one = Searcher(index, encoder=encoder).search_batch(queries, k=5, passages=True, unit=unit)
        two = Searcher(sharded, encoder=encoder).search_batch(queries, k=5, passages=True, unit=unit)
        assert one.doc_ids == two.doc_ids and one.passages == two.passages
        np.testing.assert_allclose(one.scores, two.scores, rtol=1e-5)


def test_damaged_passage_map_is_named(tmp_path, encoder):
    index = Index.build(tmp_path / "idx", corpus(), encoder, show_progress=False)
    path = index.store.segments[0].folder / "doc_passages.npy"
    array = np.load(path)
    array[3] = array[4] + 5                 # passages of documents 3 and 4 overlap: impossible
    with open(path, "r+b") as f:            # in place, keeping the file's size (as a flipped byte would)
        f.seek(-array.nbytes, 2)
        f.write(array.tobytes())
    with pytest.raises(IndexFormatError, match="doc_passages.npy"):
        Index.open(tmp_path / "idx", verify=False)
    with pytest.raises(IndexFormatError, match="doc_passages.npy"):
        Index.open(tmp_path / "idx", verify=True)


def test_server_returns_the_passage_and_splits_what_it_is_sent(tmp_path, encoder):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.state import IndexHandle

    Index.build(tmp_path / "idx", corpus(), encoder, show_progress=False)
    key = "k" * 16
    with TestClient(create_app({"docs": IndexHandle("docs", tmp_path / "idx")}, api_key=key)) as client:
        body = {"query": "which parrot recites tide tables in Portuguese?", "k": 2}
        hit = client.post("/search", json=body).json()["hits"][0]
        assert hit["id"] == "long-needle" and NEEDLE in hit["passage"]["text"]
        assert hit["text"][hit["passage"]["start"]:hit["passage"]["end"]] == hit["passage"]["text"]
        bare = client.post("/search", json={**body, "return_documents": False}).json()["hits"][0]
        assert bare["passage"] == {**hit["passage"], "text": None} and bare.get("text") is None
        chunks = client.post("/search", json={**body, "k": 4, "unit": "passage", "hybrid": False}).json()["hits"]
        assert chunks[0]["id"] == "long-needle" and NEEDLE in chunks[0]["passage"]["text"] and len(chunks) == 4
        assert [h["score"] for h in chunks] == sorted((h["score"] for h in chunks), reverse=True)
        assert client.post("/search", json={**body, "unit": "chunk"}).status_code == 422
        # A long document added over HTTP is split with the index's own window (the manifest's).
        text = " ".join(["Grain silos store wheat through the winter."] * 30) + " Owls nest in the tallest silo."
        r = client.post("/indexes/docs/documents", headers={"x-api-key": key},
                        json={"documents": [{"id": "silo", "text": text}]})
        assert r.status_code in (200, 201), r.text
        hit = client.post("/search", json={"query": "where do owls nest?", "k": 1}).json()["hits"][0]
        assert hit["id"] == "silo" and hit["passage"]["text"].endswith("Owls nest in the tallest silo.")
        assert hit["passage"]["start"] > 0


def test_a_3000_word_document_answering_in_its_last_sentence_is_in_the_top_3(tmp_path):
    """With the bundled encoder's own window (256 tokens): before passages, the dense side never
    saw the last sentence and BM25's length normalisation buried the document."""
    default = load_encoder(device="cpu")
    docs = read_corpus(SAMPLE)
    words = " ".join(d.text for d in docs).split()
    filler = " ".join((words * (3000 // len(words) + 1))[:3000])
    long_doc = Document(id="report", title="Annual report", text=f"{filler} {NEEDLE}")
    index = Index.build(tmp_path / "idx", docs + [long_doc], default, show_progress=False)
    assert index.manifest["build"]["n_split_documents"] == 1
    for hybrid in (False, None):
        results = Searcher(index, encoder=default, hybrid=hybrid).search(
            "a parrot that recites tide tables in Portuguese", k=3, passages=True)
        assert "report" in results.doc_ids[0]
        passage = results.passages[0][results.doc_ids[0].index("report")]
        assert passage.text.endswith(NEEDLE) and passage.start > 10_000


def test_truncated_reference_is_the_old_truncated_input(encoder):
    """eval.run.truncated_windows (the first-window baseline of eval.long_documents and tessera
    eval) keeps exactly the tokens the old truncating encoder kept, not the shorter first passage."""
    from eval.run import truncated_windows

    docs = corpus()
    embeddings = encoder.encode_documents([d.full_text for d in docs], show_progress=False)
    first = truncated_windows(encoder, docs, embeddings)
    framed = encoder.tokenizer([d.full_text for d in docs], truncation=True, max_length=WINDOW)["input_ids"]
    kept = [[t for t in ids if t not in set(encoder._skip_ids.tolist())] for ids in framed]
    assert first.lengths.tolist() == [len(k) for k in kept]
    assert np.concatenate(kept).tolist() == first.token_ids.tolist()
    split = embeddings.passages > 1
    assert (first.lengths[split] > embeddings.passage_lengths[(np.cumsum(embeddings.passages)
                                                               - embeddings.passages)[split]]).all()
