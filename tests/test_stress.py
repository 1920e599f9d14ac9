"""Generated stress collections: seeded, self-consistent qrels, BEIR round trip."""

from __future__ import annotations

import re

from eval.datasets import load_dataset
from eval.stress import attribute_collection, long_query_collection, write_beir
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
