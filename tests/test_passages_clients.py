"""The client and the RAG adapters with documents split into passages: every hit carries its best
passage, typed, and the adapters can hand a prompt that passage instead of the whole document."""

from __future__ import annotations

import pytest

from client import TesseraClient
from retriever import Index, load_encoder
from test_passages import NEEDLE, WINDOW, corpus
from test_server import Server

QUERY = "which parrot recites tide tables in Portuguese?"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("passage-clients") / "idx"
    Index.build(path, corpus(), load_encoder(device="cpu", doc_maxlen=WINDOW), show_progress=False)
    server = Server(path).start()
    yield server, path
    server.stop()


def test_client_hits_carry_the_passage(served):
    server, _ = served
    hit = TesseraClient(server.url).search(QUERY, k=2).hits[0]
    assert hit.id == "long-needle" and NEEDLE in hit.passage.text
    assert hit.text[hit.passage.start:hit.passage.end] == hit.passage.text and hit.passage.start > 0


@pytest.mark.parametrize("framework", ["langchain", "llamaindex"])
def test_adapters_return_passages_as_content_on_request(served, framework):
    module = pytest.importorskip({"langchain": "langchain_core", "llamaindex": "llama_index.core"}[framework],
                                 reason=f"{framework} not installed (pip install 'tessera[{framework}]')")
    assert module
    if framework == "langchain":
        from client.langchain import TesseraRetriever

        def top(retriever):
            d = retriever.invoke(QUERY)[0]
            return d.metadata["id"], d.page_content, d.metadata
    else:
        from client.llamaindex import TesseraRetriever

        def top(retriever):
            n = retriever.retrieve(QUERY)[0].node
            return n.node_id, n.get_content(), n.metadata
    server, path = served
    for make in (TesseraRetriever.from_index, TesseraRetriever.from_url):
        where = str(path) if make == TesseraRetriever.from_index else server.url
        doc_id, whole, metadata = top(make(where, k=2))
        assert doc_id == "long-needle" and NEEDLE in whole and metadata["passage_start"] > 0
        doc_id, passage, metadata = top(make(where, k=2, content="passage"))
        assert doc_id == "long-needle" and NEEDLE in passage and len(passage) < len(whole) / 3
        assert whole[metadata["passage_start"]:metadata["passage_end"]] == passage
