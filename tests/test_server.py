"""The search API over real HTTP: a uvicorn process on 127.0.0.1, restarted and killed mid-write."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from retriever import Index, load_encoder, read_corpus
from conftest import SAMPLE

KEY = "test-key-0123456789"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, index_dir: Path, extra: list[str] = ()):
        self.index_dir, self.extra = index_dir, list(extra)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self) -> "Server":
        env = {**os.environ, "TESSERA_API_KEY": KEY}
        self.process = subprocess.Popen([sys.executable, "-m", "server.cli", "--index", f"docs={self.index_dir}",
                                         "--port", str(self.port), *self.extra], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("server did not come up in 120 s")

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def restart(self) -> "Server":
        self.stop()
        return self.start()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "idx"
    documents = read_corpus(SAMPLE)
    for i, d in enumerate(documents):
        d.metadata = {"year": 2000 + i, "topic": d.id.split("-")[0]}
    Index.build(path, documents, load_encoder(device="cpu"), show_progress=False)
    return path


@pytest.fixture(scope="module")
def server(index_dir):
    s = Server(index_dir).start()
    yield s
    s.stop()


W = {"X-API-Key": KEY}


def test_search_returns_ranked_hits_with_documents(server):
    r = httpx.post(f"{server.url}/search", json={"query": "how do solar panels make electricity", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["index"] == "docs" and [h["rank"] for h in body["hits"]] == [1, 2, 3]
    assert body["hits"][0]["id"] == "solar-1" and "solar" in body["hits"][0]["text"].lower()
    ids_only = httpx.post(f"{server.url}/search", json={"query": "solar panels", "k": 2, "return_documents": False})
    assert ids_only.json()["hits"][0]["text"] is None


LONG_QUERY = ("I am writing a school report on renewable energy and I already covered hydro dams, tidal "
              "barrages, geothermal plants and biomass boilers in detail, so what I still need to understand "
              "is how the blades and the rotor of a wind turbine turn moving air into electrical energy")


def test_batch_search_equals_single_searches(server):
    from concurrent.futures import ThreadPoolExecutor

    queries = ["solar panels", LONG_QUERY, "volcano eruption", "wind turbines"]     # mixed lengths (> 32 tokens)
    batch = httpx.post(f"{server.url}/search/batch", json={"queries": queries, "k": 3}).json()
    singles = [httpx.post(f"{server.url}/search", json={"query": q, "k": 3}).json() for q in queries]
    with ThreadPoolExecutor(len(queries)) as pool:        # concurrent requests share micro-batches
        together = list(pool.map(lambda q: httpx.post(f"{server.url}/search", json={"query": q, "k": 3}).json(),
                                 queries * 3))
    for i, single in enumerate(singles):
        for other in (batch["results"][i], together[i], together[i + len(queries)]):
            assert [h["id"] for h in other["hits"]] == [h["id"] for h in single["hits"]]
            assert [h["score"] for h in other["hits"]] == pytest.approx([h["score"] for h in single["hits"]],
                                                                         abs=1e-3)
    assert singles[1]["hits"][0]["id"].startswith("wind")


def test_hybrid_field_gives_the_library_hybrid_ranking(server, index_dir):
    from retriever import Searcher

    query = "how do plants turn sunlight into sugar"
    body = httpx.post(f"{server.url}/search", json={"query": query, "k": 5, "hybrid": True}).json()
    expected = Searcher(Index.open(index_dir), encoder=load_encoder(device="cpu"), hybrid=True).search(query, k=5)
    assert [h["id"] for h in body["hits"]] == expected.doc_ids[0]
    assert [h["score"] for h in body["hits"]] == pytest.approx(expected.scores[0].tolist(), abs=1e-4)
    default = httpx.post(f"{server.url}/search", json={"query": query, "k": 5}).json()     # hybrid by default
    assert default["hits"] == body["hits"]
    dense = httpx.post(f"{server.url}/search", json={"query": query, "k": 5, "hybrid": False}).json()
    expected = Searcher(Index.open(index_dir), encoder=load_encoder(device="cpu"), hybrid=False).search(query, k=5)
    assert [h["id"] for h in dense["hits"]] == expected.doc_ids[0]
    assert [h["score"] for h in dense["hits"]] == pytest.approx(expected.scores[0].tolist(), abs=1e-3)


def test_metadata_filters_apply_before_rescoring(server):
    r = httpx.post(f"{server.url}/search", json={"query": "solar panels", "k": 30, "filter": {"topic": "wind"}})
    hits = r.json()["hits"]
    assert hits and all(h["metadata"]["topic"] == "wind" for h in hits)
    r = httpx.post(f"{server.url}/search", json={"query": "energy", "k": 30, "engine": "exhaustive",
                                                 "filter": {"year": {"gte": 2010, "lt": 2013}}})
    assert sorted(h["metadata"]["year"] for h in r.json()["hits"]) == [2010, 2011, 2012]
    r = httpx.post(f"{server.url}/search", json={"query": "energy", "filter": {"topic": {"in": ["solar", "wind"]}}})
    assert {h["metadata"]["topic"] for h in r.json()["hits"]} <= {"solar", "wind"}


def test_writes_need_the_key_and_bad_input_is_refused(server):
    doc = {"documents": [{"id": "x1", "text": "a note"}]}
    assert httpx.post(f"{server.url}/indexes/docs/documents", json=doc).status_code == 401
    assert httpx.post(f"{server.url}/indexes/docs/documents", json=doc,
                      headers={"X-API-Key": "wrong-key-123"}).status_code == 401
    assert httpx.post(f"{server.url}/indexes/nope/documents", json=doc, headers=W).status_code == 404
    assert httpx.post(f"{server.url}/search", json={"query": "", "k": 3}).status_code == 422
    assert httpx.post(f"{server.url}/search", json={"query": "x", "k": 100_000}).status_code == 422
    r = httpx.post(f"{server.url}/search", json={"query": "x" * 5000})
    assert r.status_code == 422 and "query" in r.json()["detail"]
    big = httpx.post(f"{server.url}/search", content=b"{" + b" " * (9 * 2**20) + b"}",
                     headers={"content-type": "application/json"})
    assert big.status_code == 413
    assert httpx.get(f"{server.url}/indexes/..%2F..%2Fetc/documents/passwd").status_code == 404
    assert httpx.get(f"{server.url}/indexes/docs/documents/..%2F..%2Fmanifest.json").status_code == 404


def test_add_get_delete_and_restart_keeps_state(server):
    doc = {"id": "geo-9", "title": "Geysers", "text": "Geysers erupt when underground water boils under pressure.",
           "metadata": {"topic": "geo"}}
    r = httpx.post(f"{server.url}/indexes/docs/documents", json={"documents": [doc]}, headers=W, timeout=60)
    assert r.status_code == 200, r.text
    again = httpx.post(f"{server.url}/indexes/docs/documents", json={"documents": [doc]}, headers=W, timeout=60)
    assert again.status_code == 409
    hits = httpx.post(f"{server.url}/search", json={"query": "why do geysers erupt", "k": 1}).json()["hits"]
    assert hits[0]["id"] == "geo-9"
    assert httpx.get(f"{server.url}/indexes/docs/documents/geo-9").json()["metadata"] == {"topic": "geo"}
    server.restart()
    assert httpx.get(f"{server.url}/indexes/docs/documents/geo-9").status_code == 200
    assert httpx.delete(f"{server.url}/indexes/docs/documents/geo-9", headers=W).status_code == 200
    assert httpx.delete(f"{server.url}/indexes/docs/documents/geo-9", headers=W).status_code == 404
    server.restart()
    assert httpx.get(f"{server.url}/indexes/docs/documents/geo-9").status_code == 404
    stats = httpx.get(f"{server.url}/stats").json()
    assert stats["indexes"][0]["documents"] == 30


@pytest.mark.parametrize("delay", [0.3, 1.5, 3.0])   # encoding, writing, or done: never half a write
def test_sigkill_during_an_add_leaves_old_or_new_state(index_dir, tmp_path, delay):
    copy = tmp_path / "idx"
    shutil.copytree(index_dir, copy)
    server = Server(copy).start()
    docs = [{"id": f"bulk-{i}", "text": f"bulk document number {i} about tides and the moon"} for i in range(200)]
    thread = threading.Thread(target=lambda: _post_quietly(f"{server.url}/indexes/docs/documents",
                                                           {"documents": docs}))
    thread.start()
    time.sleep(delay)
    server.stop(signal.SIGKILL)
    thread.join()
    server.start()
    try:
        present = [httpx.get(f"{server.url}/indexes/docs/documents/bulk-{i}").status_code == 200 for i in range(200)]
        assert all(present) or not any(present)
        top = httpx.post(f"{server.url}/search", json={"query": "how do solar panels make electricity", "k": 1})
        assert top.json()["hits"][0]["id"] == "solar-1"
    finally:
        server.stop()


def _post_quietly(url: str, body: dict) -> None:
    try:
        httpx.post(url, json=body, headers=W, timeout=60)
    except httpx.HTTPError:
        pass


def test_openapi_fuzz_finds_no_server_error(server, tmp_path):
    """schemathesis against the live OpenAPI schema: no 5xx on generated requests."""
    exe = shutil.which("schemathesis") or shutil.which("st")
    if exe is None:
        pytest.skip("schemathesis not installed (pip install -e '.[test]')")
    result = subprocess.run([exe, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
                             "--max-examples", "15", "-H", f"X-API-Key: {KEY}", "--no-color"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)   # its cache stays out of the repo
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_adds_past_max_segments_are_merged(index_dir, tmp_path):
    from server.state import IndexHandle
    from retriever.corpus import Document

    shutil.copytree(index_dir, tmp_path / "idx")
    handle = IndexHandle("docs", tmp_path / "idx", max_segments=2)
    for i in range(4):
        handle.add([Document(id=f"n{i}", text=f"note {i} on tidal energy")], upsert=False)
        handle.wait_for_compaction()
        assert len(handle.snapshot.index.store.segments) <= 2
    assert handle.compactions >= 1 and handle.compaction_error is None
    assert {f"n{i}" for i in range(4)} <= set(handle.snapshot.index.store.position_of)
    with pytest.raises(KeyError, match="upsert"):
        handle.add([Document(id="n0", text="again")], upsert=False)


def test_a_sharded_index_is_served_like_one_index(tmp_path):
    """Search (dense, hybrid, filtered), add, get and delete over HTTP on a sharded index, equal to
    the library's Searcher over it."""
    from retriever import Index, Searcher, open_index

    documents = read_corpus(SAMPLE)
    for d in documents:
        d.metadata = {"topic": d.id.split("-")[0]}
    encoder = load_encoder(device="cpu")
    Index.build(tmp_path / "sharded", documents, encoder, shards=2, show_progress=False)
    s = Server(tmp_path / "sharded").start()
    try:
        info = httpx.get(f"{s.url}/indexes").json()[0]
        assert info["shards"] == 2 and info["documents"] == len(documents)
        query = "how do plants turn sunlight into sugar"
        for hybrid in (True, False):
            body = httpx.post(f"{s.url}/search", json={"query": query, "k": 5, "hybrid": hybrid}).json()
            expected = Searcher(open_index(tmp_path / "sharded"), encoder, hybrid=hybrid).search(query, k=5)
            assert [h["id"] for h in body["hits"]] == expected.doc_ids[0]
            assert [h["score"] for h in body["hits"]] == pytest.approx(expected.scores[0].tolist(), abs=1e-3)
        filtered = httpx.post(f"{s.url}/search", json={"query": query, "k": 30, "filter": {"topic": "wind"}}).json()
        assert filtered["hits"] and all(h["metadata"]["topic"] == "wind" for h in filtered["hits"])
        doc = {"id": "kiwi-1", "title": "Kiwi fruit", "text": "Kiwi fruit grows on vines and is rich in vitamin C."}
        r = httpx.post(f"{s.url}/indexes/docs/documents", json={"documents": [doc]}, headers=W, timeout=60)
        assert r.status_code == 200, r.text
        top = httpx.post(f"{s.url}/search", json={"query": "fruit on vines with vitamin C", "k": 1}).json()
        assert top["hits"][0]["id"] == "kiwi-1"
        assert httpx.get(f"{s.url}/indexes/docs/documents/kiwi-1").json()["title"] == "Kiwi fruit"
        assert httpx.delete(f"{s.url}/indexes/docs/documents/kiwi-1", headers=W).status_code == 200
        assert httpx.get(f"{s.url}/indexes/docs/documents/kiwi-1").status_code == 404
        assert httpx.get(f"{s.url}/indexes").json()[0]["documents"] == len(documents)
    finally:
        s.stop()


@pytest.mark.parametrize("engine", ["token", "vocab", "union", "exhaustive"])
def test_every_first_stage_is_served(server, index_dir, engine):
    from retriever import Searcher

    query = "how do plants turn sunlight into sugar"
    body = httpx.post(f"{server.url}/search", json={"query": query, "k": 5, "engine": engine, "hybrid": False})
    assert body.status_code == 200, body.text
    expected = Searcher(Index.open(index_dir), encoder=load_encoder(device="cpu"), engine=engine,
                        hybrid=False).search(query, k=5)
    assert [h["id"] for h in body.json()["hits"]] == expected.doc_ids[0]


def test_a_failed_compaction_leaves_the_add_served_and_on_disk(index_dir, tmp_path, monkeypatch):
    from retriever.corpus import Document
    from server.state import IndexHandle

    shutil.copytree(index_dir, tmp_path / "idx")
    handle = IndexHandle("docs", tmp_path / "idx", max_segments=1)

    def broken(self, *args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(Index, "compact", broken)
    handle.add([Document(id="t1", text="tidal energy from the moon's pull")], upsert=False)
    handle.wait_for_compaction()
    assert "disk full" in handle.compaction_error
    assert handle.snapshot.index.position_of("t1") is not None           # memory: the add is served
    assert Index.open(tmp_path / "idx").position_of("t1") is not None     # disk: the same state
    assert handle.snapshot.index.manifest["generation"] == Index.open(tmp_path / "idx").manifest["generation"]
    with pytest.raises(KeyError):                                         # a retry is a clean 409, not a surprise
        handle.add([Document(id="t1", text="again")], upsert=False)


def test_busy_writer_lock_answers_503_with_retry_after(server, index_dir):
    from indexes.files import writer_lock

    with writer_lock(index_dir):                     # another process's writer, as the server sees it
        r = httpx.post(f"{server.url}/indexes/docs/documents", headers=W, timeout=60,
                       json={"documents": [{"id": "busy-1", "text": "wave power"}]})
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "another writer" in r.json()["detail"]
    assert httpx.get(f"{server.url}/indexes/docs/documents/busy-1").status_code == 404


@pytest.mark.parametrize("document", [
    {"id": "bad-1", "text": "x", "metadata": {"v": float("nan")}},
    {"id": "bad-2", "text": "x", "metadata": {"v": float("inf")}},
    {"id": "bad-3", "text": "x", "metadata": {"d": __import__("functools").reduce(lambda a, _: {"a": a}, range(40), 1)}},
    {"id": "bad-4", "text": "lone \ud800 surrogate"},
])
def test_values_that_could_not_be_read_back_are_refused_at_the_door(server, document):
    import json as json_module

    body = json_module.dumps({"documents": [document]})      # ensure_ascii writes the surrogate as \\ud800
    r = httpx.post(f"{server.url}/indexes/docs/documents", headers={**W, "content-type": "application/json"},
                   content=body, timeout=60)
    assert r.status_code == 422, r.text
    assert httpx.get(f"{server.url}/indexes/docs/documents/{document['id']}").status_code == 404


def test_a_lone_surrogate_in_a_batch_is_a_422(server):
    body = '{"queries": ["solar", "bad \\ud800 query"], "k": 2}'
    r = httpx.post(f"{server.url}/search/batch", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "queries[1]" in r.text


def test_metrics_and_request_ids(server):
    r = httpx.post(f"{server.url}/search", json={"query": "solar panels", "k": 2}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len(httpx.get(f"{server.url}/health").headers["x-request-id"]) == 32
    text = httpx.get(f"{server.url}/metrics").text
    assert 'tessera_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'tessera_request_seconds_bucket{le="0.5",route="/search"}' in text
    assert "tessera_search_batch_size_count" in text
    assert 'tessera_index_documents{index="docs"}' in text


def test_documented_filter_combinators_work_over_http(server):
    """$and / $or / $not as the README documents them, equal to the library's filter; a wrong part
    is named in the 422."""
    from retriever import Index as LibraryIndex
    from retriever.filters import filter_mask

    expr = {"$and": [{"$or": [{"$not": {"topic": "solar"}}, {"year": {"gte": 2003}}]}]}
    r = httpx.post(f"{server.url}/search", json={"query": "energy", "k": 10, "filter": expr}, timeout=60)
    assert r.status_code == 200, r.text
    index = LibraryIndex.open(server.index_dir)
    allowed = {index.document(p)["id"] for p in np.flatnonzero(filter_mask(index, expr))}
    got = {h["id"] for h in r.json()["hits"]}
    assert got and got <= allowed
    r = httpx.post(f"{server.url}/search", json={"query": "energy", "filter": {"$and": [{"$nor": [{"a": 1}]}]}})
    assert r.status_code == 422 and "filter.$and[0]: unknown operator '$nor'" in r.json()["detail"]
    r = httpx.post(f"{server.url}/search", json={"query": "energy", "filter": {"year": {"gte": "2003"}}})
    assert r.status_code == 422 and "filter.year.gte: expected a finite number" in r.json()["detail"]


def test_an_integer_no_filter_can_compare_is_refused_at_the_door(server):
    body = '{"documents": [{"id": "huge-1", "text": "x", "metadata": {"year": 1' + "0" * 400 + '}}]}'
    r = httpx.post(f"{server.url}/indexes/docs/documents", headers={**W, "content-type": "application/json"},
                   content=body, timeout=60)
    assert r.status_code == 422 and "metadata.year" in r.text and "beyond what filters can compare" in r.text
    r = httpx.post(f"{server.url}/search", json={"query": "solar", "k": 3, "filter": {"year": {"gte": 2001}}})
    assert r.status_code == 200


def test_a_batch_over_the_work_budget_is_refused_with_both_numbers(server):
    r = httpx.post(f"{server.url}/search/batch", json={"queries": ["solar energy"] * 64, "k": 1000}, timeout=60)
    assert r.status_code == 422 and "64 x 1000 = 64,000 results, over the budget of 16,000" in r.json()["detail"]
    r = httpx.post(f"{server.url}/search/batch", json={"queries": ["solar " * 333] * 64, "k": 10}, timeout=60)
    assert r.status_code == 422 and "over the budget of 32,000 per batch" in r.json()["detail"]
    r = httpx.post(f"{server.url}/search/batch", json={"queries": ["solar energy"] * 16, "k": 1000}, timeout=120)
    assert r.status_code == 200 and len(r.json()["results"]) == 16

