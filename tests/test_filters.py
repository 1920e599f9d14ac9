"""Library metadata filters (retriever/filters.py): hand-built cases, a brute-force comparison on
random metadata, and filtered search through the Searcher."""

from __future__ import annotations

import random

import pytest

from retriever.filters import FilterError, check_filter, filter_mask, ids_mask


class FakeIndex:
    """What filter_mask reads: n_positions, document(p), position_of(id), memo (a per-snapshot cache)."""

    def __init__(self, metadata: list[dict]):
        self.docs = [{"id": f"d{i}", "metadata": m} for i, m in enumerate(metadata)]
        self.n_positions = len(metadata)
        self.memo = {}

    def document(self, p: int) -> dict:
        return self.docs[p]

    def position_of(self, doc_id: str):
        return int(doc_id[1:]) if doc_id[1:].isdigit() and int(doc_id[1:]) < self.n_positions else None


META = FakeIndex([{"year": 2019, "lang": "en", "ok": True}, {"year": 2021, "lang": "fr", "ok": 1},
                  {"year": "2021", "lang": "en"}, {}])


def test_equality_range_membership_and_logic():
    assert filter_mask(META, {"lang": "en"}).tolist() == [True, False, True, False]
    assert filter_mask(META, {"year": {"gte": 2020}}).tolist() == [False, True, False, False]   # "2021" is no number
    assert filter_mask(META, {"year": {"gt": 2018, "lt": 2020}, "lang": "en"}).tolist() == [True, False, False, False]
    assert filter_mask(META, {"lang": {"in": ["fr", "de"]}}).tolist() == [False, True, False, False]
    assert filter_mask(META, {"$or": [{"lang": "fr"}, {"year": 2019}]}).tolist() == [True, True, False, False]
    assert filter_mask(META, {"$not": {"lang": "en"}}).tolist() == [False, True, False, True]
    assert filter_mask(META, {"ok": True}).tolist() == [True, False, False, False]     # a bool matches only a bool
    assert filter_mask(META, {"ok": 1}).tolist() == [False, True, False, False]
    assert not filter_mask(META, {"absent": "x"}).any()
    assert ids_mask(META, ["d2", "zzz", "d0"]).tolist() == [True, False, True, False]


@pytest.mark.parametrize("bad, where", [({}, "filter"), ({"year": {"gte": "x"}}, "filter.year.gte"),
                                        ({"$xor": []}, "unknown operator"), ({"a": {"in": "x"}}, "filter.a.in"),
                                        ({"$or": [{"a": 1}, []]}, r"filter.\$or\[1\]"),
                                        ({"a": {"gte": float("nan")}}, "finite")])
def test_bad_filters_name_the_part(bad, where):
    with pytest.raises(FilterError, match=where):
        check_filter(bad)


def _brute(metadata: list[dict], expr: dict) -> list[bool]:
    def holds(m, e):
        for key, c in e.items():
            if key == "$or":
                ok = any(holds(m, x) for x in c)
            elif key == "$and":
                ok = all(holds(m, x) for x in c)
            elif key == "$not":
                ok = not holds(m, c)
            elif key not in m:
                ok = False
            elif isinstance(c, dict) and "in" in c:
                ok = any(type(m[key]) is type(v) and m[key] == v for v in c["in"])
            elif isinstance(c, dict):
                v = m[key]
                ok = isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                    {"gt": v > b, "gte": v >= b, "lt": v < b, "lte": v <= b}[op] for op, b in c.items())
            else:
                ok = type(m[key]) is type(c) and m[key] == c
            if not ok:
                return False
        return True
    return [holds(m, expr) for m in metadata]


def test_random_filters_equal_a_brute_force_scan():
    rng = random.Random(3)
    metadata = []
    for _ in range(3000):
        m = {}
        if rng.random() < 0.9:
            m["year"] = rng.choice([rng.randint(1990, 2024), float(rng.randint(1990, 2024)), str(rng.randint(1990, 2024))])
        if rng.random() < 0.8:
            m["lang"] = rng.choice(["en", "fr", "de", "es"])
        if rng.random() < 0.5:
            m["flag"] = rng.choice([True, False, 0, 1])
        metadata.append(m)
    index = FakeIndex(metadata)
    for _ in range(200):
        parts = [rng.choice([{"lang": rng.choice(["en", "fr", "xx"])},
                             {"year": {rng.choice(["gt", "gte", "lt", "lte"]): rng.randint(1990, 2024)}},
                             {"lang": {"in": rng.sample(["en", "fr", "de", "es"], 2)}},
                             {"flag": rng.choice([True, False, 0, 1])}]) for _ in range(rng.randint(1, 3))]
        expr = rng.choice([{"$and": parts}, {"$or": parts}, {"$not": {"$or": parts}}, parts[0]])
        assert filter_mask(index, expr).tolist() == _brute(metadata, expr), expr


def test_a_value_no_filter_can_compare_matches_nothing_and_never_raises():
    """An integer past float64's range (as an index written before the check at the door could
    hold): every range and equality condition on it is false, other documents still match."""
    huge = 10 ** 4000
    index = FakeIndex([{"n": huge}, {"n": 5}, {"n": -huge}, {"n": 5.0}, {"n": "5"}])
    assert filter_mask(index, {"n": {"gte": 0}}).tolist() == [False, True, False, True, False]
    assert filter_mask(index, {"n": 5}).tolist() == [False, True, False, True, False]
    assert filter_mask(index, {"n": {"in": [5, "5"]}}).tolist() == [False, True, False, True, True]
    assert filter_mask(index, {"$not": {"n": {"lt": 100}}}).tolist() == [True, False, True, False, True]
    with pytest.raises(FilterError, match=r"filter.n.gte: expected a finite number, got 1000"):
        check_filter({"n": {"gte": huge}})


def test_the_library_refuses_to_store_what_filters_cannot_compare(tmp_path):
    from indexes.builder.pipeline import build_index
    from conftest import synthetic_batch, synthetic_docs

    docs = synthetic_docs(5)
    docs[3]["metadata"] = {"year": 10 ** 400}
    with pytest.raises(ValueError, match=r"metadata.year: an integer of about 401 digits is beyond"):
        build_index(tmp_path / "i", synthetic_batch(5), docs, recipe="res2", info={"encoder": {}}, vocab_size=500)
