"""The Python client and the LangChain retriever against a real `tessera serve` on loopback and
against the library itself."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from client import AsyncTesseraClient, TesseraClient, TesseraError
from retriever import Index, Searcher, load_encoder
from test_server import KEY, Server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from retriever import read_corpus
    from conftest import SAMPLE

    path = tmp_path_factory.mktemp("client") / "idx"
    documents = read_corpus(SAMPLE)
    for d in documents:
        d.metadata = {"topic": d.id.split("-")[0]}
    Index.build(path, documents, load_encoder(device="cpu"), show_progress=False)
    server = Server(path).start()
    yield server, path
    server.stop()


def test_client_search_add_delete_equal_the_library(served):
    server, path = served
    query = "how do plants turn sunlight into sugar"
    with TesseraClient(server.url, api_key=KEY) as tessera:
        assert tessera.health().status == "ok" and tessera.indexes()[0].name == "docs"
        got = tessera.search(query, k=5)
        expected = Searcher(Index.open(path), encoder=load_encoder(device="cpu")).search(query, k=5)
        assert [h.id for h in got.hits] == expected.doc_ids[0]
        batch = tessera.search_batch([query, "wind turbines"], k=3, filter={"topic": "wind"})
        assert all(h.id.startswith("wind") for h in batch.results[1].hits)
        tessera.add([{"id": "kiwi-1", "text": "Kiwi fruit grows on vines and is rich in vitamin C."}], index="docs")
        assert tessera.document("kiwi-1", index="docs").text.startswith("Kiwi")
        with pytest.raises(TesseraError) as e:
            tessera.add([{"id": "kiwi-1", "text": "again"}], index="docs")
        assert e.value.status == 409 and "upsert" in e.value.detail
        tessera.add([{"id": "kiwi-1", "text": "Kiwi, again."}], index="docs", upsert=True)
        tessera.delete("kiwi-1", index="docs")
        with pytest.raises(TesseraError) as e:
            tessera.document("kiwi-1", index="docs")
        assert e.value.status == 404
    with TesseraClient(server.url) as anonymous, pytest.raises(TesseraError) as e:
        anonymous.add([{"id": "x", "text": "y"}], index="docs")
    assert e.value.status == 401


def test_async_client(served):
    server, _ = served

    async def run():
        async with AsyncTesseraClient(server.url, api_key=KEY) as tessera:
            results = await asyncio.gather(*(tessera.search(q, k=2) for q in ("solar panels", "volcano")))
            return [r.hits[0].id for r in results]

    top = asyncio.run(run())
    assert top[0].startswith("solar") and len(top) == 2


def test_retries_only_on_429_and_503_and_honours_retry_after():
    calls = {"n": 0}

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self):
            calls["n"] += 1
            status = {1: 503, 2: 429}.get(calls["n"], 200) if self.path == "/health" else 500
            body = b'{"status": "ok", "indexes": 1}' if status == 200 else b'{"detail": "busy"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with TesseraClient(f"http://127.0.0.1:{httpd.server_port}", retries=3) as tessera:
            assert tessera.health().indexes == 1 and calls["n"] == 3
            calls["n"] = 10
            with pytest.raises(TesseraError) as e:
                tessera.indexes()                      # a 500 is not retried
            assert e.value.status == 500 and calls["n"] == 11
    finally:
        httpd.shutdown()


def _assert_retrievers_match_tessera(served, retriever_class, hits) -> None:
    """Both constructors (in-process, over HTTP) of a framework's retriever rank as Tessera does;
    hits(retriever, query) -> (ids, scores, first text, first metadata)."""
    server, path = served
    query = "how do plants turn sunlight into sugar"
    expected = Searcher(Index.open(path), encoder=load_encoder(device="cpu")).search(query, k=3)
    for retriever in (retriever_class.from_index(str(path), k=3), retriever_class.from_url(server.url, k=3)):
        ids, scores, text, metadata = hits(retriever, query)
        assert ids == expected.doc_ids[0]
        assert scores == pytest.approx(expected.scores[0].tolist(), abs=1e-3)
        assert text and "topic" in metadata


def test_langchain_retriever_matches_tessera(served):
    pytest.importorskip("langchain_core", reason="langchain-core not installed (pip install 'tessera[langchain]')")
    from client.langchain import TesseraRetriever

    def hits(retriever, query):
        docs = retriever.invoke(query)
        return [d.metadata["id"] for d in docs], [d.metadata["score"] for d in docs], docs[0].page_content, docs[0].metadata

    _assert_retrievers_match_tessera(served, TesseraRetriever, hits)
    wind = TesseraRetriever.from_index(str(served[1]), k=5, filter={"topic": "wind"}).invoke("energy")
    assert wind and all(d.metadata["topic"] == "wind" for d in wind)


def test_llamaindex_retriever_matches_tessera(served):
    pytest.importorskip("llama_index.core", reason="llama-index-core not installed (pip install 'tessera[llamaindex]')")
    from client.llamaindex import TesseraRetriever

    def hits(retriever, query):
        nodes = retriever.retrieve(query)
        return ([n.node.node_id for n in nodes], [n.score for n in nodes], nodes[0].node.get_content(),
                nodes[0].node.metadata)

    _assert_retrievers_match_tessera(served, TesseraRetriever, hits)


def test_langchain_vector_store_adds_deletes_and_searches(tmp_path):
    pytest.importorskip("langchain_core", reason="langchain-core not installed (pip install 'tessera[langchain]')")
    from client.langchain import TesseraVectorStore

    texts = ["Photovoltaic panels turn sunlight into electricity.", "Wind turbines turn moving air into power.",
             "Bees make honey from nectar.", "Tides follow the moon."]
    store = TesseraVectorStore.from_texts(texts, None, metadatas=[{"kind": "energy"}, {"kind": "energy"}, {}, {}],
                                          ids=["sun", "wind", "bees", "tides"], directory=str(tmp_path / "vs"))
    assert store.similarity_search("solar electricity", k=1)[0].metadata["id"] == "sun"
    store.add_texts(["Kiwi fruit grows on vines."], metadatas=[{"kind": "food"}], ids=["kiwi"])
    hits = store.similarity_search_with_score("which fruit grows on vines", k=2)
    assert hits[0][0].metadata["id"] == "kiwi" and hits[0][1] > hits[1][1]
    assert {d.metadata["id"] for d in store.similarity_search("power", k=5, filter={"kind": "energy"})} == {"sun", "wind"}
    store.delete(["kiwi"])
    assert "kiwi" not in {d.metadata["id"] for d in store.similarity_search("fruit vines", k=5)}
    assert store.as_retriever(search_kwargs={"k": 1}).invoke("honey")[0].metadata["id"] == "bees"
    with pytest.raises(ValueError, match="ids"):
        store.add_texts(["no id"])


def test_llamaindex_vector_store_adds_deletes_and_queries(tmp_path):
    pytest.importorskip("llama_index.core", reason="llama-index-core not installed (pip install 'tessera[llamaindex]')")
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import (FilterOperator, MetadataFilter, MetadataFilters,
                                                      VectorStoreQuery)
    from client.llamaindex import TesseraVectorStore
    from retriever import Document

    Index.build(tmp_path / "vs", [Document(id="sun", text="Photovoltaic panels turn sunlight into electricity.",
                                           metadata={"kind": "energy", "year": 2020}),
                                  Document(id="bees", text="Bees make honey from nectar.", metadata={"year": 2010})],
                load_encoder(device="cpu"), show_progress=False)
    store = TesseraVectorStore(str(tmp_path / "vs"))
    node = TextNode(id_="kiwi-1", text="Kiwi fruit grows on vines.", metadata={"kind": "food", "year": 2024})
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id="kiwi-doc")
    assert store.add([node]) == ["kiwi-1"]
    result = store.query(VectorStoreQuery(query_str="which fruit grows on vines", similarity_top_k=2))
    assert result.ids[0] == "kiwi-1" and result.similarities[0] > result.similarities[1]
    newer = store.query(VectorStoreQuery(query_str="anything", similarity_top_k=5, filters=MetadataFilters(
        filters=[MetadataFilter(key="year", value=2015, operator=FilterOperator.GT)])))
    assert set(newer.ids) == {"sun", "kiwi-1"}
    store.delete("kiwi-doc")
    assert "kiwi-1" not in store.query(VectorStoreQuery(query_str="fruit", similarity_top_k=5)).ids


def test_importing_the_client_needs_only_httpx_and_pydantic():
    """The client and its schemas load with torch, numpy, FastAPI and the engine's compiled
    libraries made unimportable: an environment with only the client's dependencies runs it."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'numpy', 'fastapi', 'starlette', 'transformers', 'numba',\n"
        "                                  'faiss', 'onnxruntime', 'uvicorn', 'tqdm'}:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import client\n"
        "from client import AsyncTesseraClient, TesseraClient, TesseraError\n"
        "from server.schemas import SearchRequest\n"
        "SearchRequest(query='q', k=5, engine='vocab')\n"
        "print('loaded', 'torch' in sys.modules, 'numpy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "loaded False False"
