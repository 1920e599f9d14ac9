"""Generated stress collections: seeded, self-consistent qrels, BEIR round trip."""

from __future__ import annotations

import re

from eval.datasets import load_dataset
from eval.stress import (attribute_collection, long_query_collection, title_document_collection,
                         title_query_collection, write_beir)
from retriever.corpus import Document
from conftest import SAMPLE


def test_attribute_collection_is_seeded_and_its_qrels_are_right():
    data = attribute_collection(n_people=120, n_items=200, likes=(10, 20), n_queries=40, seed=3)
    again = attribute_collection(n_people=120, n_items=200, likes=(10, 20), n_queries=40, seed=3)
    assert [d.text for d in data.documents] == [d.text for d in again.documents]
    assert [q.text for q in data.queries] == [q.text for q in again.queries] and len(data.queries) == 40
    likes = {d.id: re.split(r", | and ", d.text.split(" likes ", 1)[1].rstrip(".")) for d in data.documents}
    assert all(10 <= len(items) <= 20 and len(set(items)) == len(items) for items in likes.values())
    for q in data.queries:
        item = q.text[len("Who likes "):-1]
        assert set(data.qrels[q.id]) == {d for d, items in likes.items() if item in items} != set()
    assert [d.text for d in attribute_collection(n_people=120, n_items=200, likes=(10, 20), n_queries=40,
                                                 seed=4).documents] != [d.text for d in data.documents]


def test_long_queries_carry_unjudged_context_before_the_question(tmp_path):
    base = load_dataset(SAMPLE)
    long = long_query_collection(base, context_words=20)
    assert long.qrels == base.qrels and [d.id for d in long.documents] == [d.id for d in base.documents]
    texts = {d.id: d.text for d in base.documents}
    for short, q in zip(base.queries, long.queries):
        assert q.text.endswith(short.text) and len(q.text) > len(short.text) + 20
        context = q.text[:-len(short.text)].strip()
        source = [i for i, t in texts.items() if t.startswith(context.split(".")[0])]
        assert source and not set(source) & set(base.qrels[short.id])       # no answer leaked
    folder = write_beir(long, tmp_path / "long")
    again = load_dataset(folder)
    assert [q.text for q in again.queries] == [q.text for q in long.queries] and again.qrels == long.qrels


def _titled():
    from eval.datasets import Dataset
    from retriever.corpus import Query

    docs = [Document(id=str(i), title=f"shock waves in supersonic flow number {i}",
                     text=f"shock waves in supersonic flow number {i} . the shock wave ahead of a blunt body "
                          f"moving at supersonic speed was measured in experiment {i} with flows of air .")
            for i in range(30)] + [Document(id="x", title="", text="an untitled note on heat transfer .")]
    queries = [Query(id="q1", text="heat transfer in shock waves")]
    return Dataset("titled", docs, queries, {"q1": {"3": 1, "x": 2}})


def test_title_queries_share_no_word_with_their_document():
    base = _titled()
    data = title_query_collection(base, n_queries=10, seed=1)
    again = title_query_collection(base, n_queries=10, seed=1)
    assert [q.id for q in data.queries] == [q.id for q in again.queries] and len(data.queries) == 10
    assert [q.id for q in title_query_collection(base, n_queries=10, seed=2).queries] != [q.id for q in data.queries]
    texts = {d.id: d.text for d in data.documents}
    assert len(texts) == len(base.documents)
    for q in data.queries:
        (doc_id, relevance), = data.qrels[q.id].items()
        assert q.id == f"t{doc_id}" and relevance == 1
        assert q.text == base.documents[int(doc_id)].title
        title_words = {w for w in re.findall(r"[a-z0-9]+", q.text) if len(w) > 1} - {"in", "of", "the"}
        assert not title_words & set(re.findall(r"[a-z0-9]+", texts[doc_id]))     # no title word left
        assert texts[doc_id].startswith("the ") and "blunt body" in texts[doc_id]                                       # the rest stays
    # Word-stem removal ("waves" takes "wave") only when asked for.
    assert " wave " in texts["3"] and "flows" in texts["3"]


def test_title_documents_keep_only_titles_and_the_judgments_they_can_meet():
    base = _titled()
    data = title_document_collection(base)
    assert [d.text for d in data.documents] == [d.title for d in base.documents[:30]]
    assert data.qrels == {"q1": {"3": 1}} and [q.id for q in data.queries] == ["q1"]


def test_long_document_collections_hide_each_judged_document_whole(tmp_path):
    from eval.stress import assembled_collection, buried_collection

    base = load_dataset(SAMPLE)
    judged = {d for docs in base.qrels.values() for d in docs}
    originals = {d.id: d.full_text for d in base.documents}
    for make in (buried_collection, assembled_collection):
        data = make(base, fill=(3, 5), seed=1)
        assert [d.id for d in make(base, fill=(3, 5), seed=1).documents] == [d.id for d in data.documents]
        by_id = {d.id: d for d in data.documents}
        assert judged <= set(by_id) and data.qrels == base.qrels
        for doc_id in judged:
            paragraphs = by_id[doc_id].text.split("\n\n")
            assert originals[doc_id] in paragraphs and 4 <= len(paragraphs) <= 6
            # No other judged document's text appears inside it (filler is unjudged text only).
            assert not any(originals[other] in paragraphs for other in judged - {doc_id})


def test_long_documents_benchmark_runs_end_to_end(tmp_path):
    """eval.long_documents on a small buried collection: every row measured, passages split."""
    from eval.long_documents import DENSE, TRUNC_DENSE, evaluate_long_documents
    from eval.stress import buried_collection, write_beir

    folder = write_beir(buried_collection(load_dataset(SAMPLE), fill=(10, 12)), tmp_path / "buried")
    result = evaluate_long_documents(str(folder), tmp_path / "cache", tmp_path / "work")
    assert result["cost"]["passages"]["split_documents"] > 0 == result["cost"]["first"]["split_documents"]
    assert all(0.0 <= v <= 1.0 for v in result["ndcg@10"].values()) and len(result["ndcg@10"]) == 10
    assert result["ndcg@10"][DENSE] >= result["ndcg@10"][TRUNC_DENSE]
