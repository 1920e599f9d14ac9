"""A LangChain retriever over Tessera: the library (an index opened in this process) or a
`tessera serve` endpoint through the client. Install with `pip install 'tessera[langchain]'`.

    from client.langchain import TesseraRetriever
    retriever = TesseraRetriever.from_index("idx/", k=5)                 # in-process
    retriever = TesseraRetriever.from_url("http://127.0.0.1:8000", k=5)  # over HTTP
    docs = retriever.invoke("how do solar panels work")                  # list[Document]

    store = TesseraVectorStore.from_texts(texts, None, metadatas=..., ids=..., directory="idx/")
    store.add_texts(["more"], ids=["d9"]); store.delete(["d9"])         # LangChain's VectorStore interface
    store.similarity_search("query", k=4, filter={"lang": "en"}); store.as_retriever()

Each Document carries the text as page_content and metadata with the stored metadata plus
`id`, `title`, `score` and the best passage's `passage_start` / `passage_end` (characters of the
text); `filter` (metadata filter) and `hybrid` apply to every query. `content="passage"` makes
page_content the hit's best passage instead of the whole text (what a RAG prompt wants from a long
document: Tessera indexes documents longer than the encoder's window as overlapping passages).
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict

from .local import search_documents

__all__ = ["TesseraRetriever", "TesseraVectorStore"]


CONTENTS = ("document", "passage")


def _document(doc: dict, content: str = "document", **extra) -> Document:
    """A LangChain Document from a stored Tessera document (metadata + id, title, the best
    passage's place, and extra fields); content: "document" (the text) or "passage" (the best passage)."""
    if content not in CONTENTS:
        raise ValueError(f"content must be one of {CONTENTS}, got {content!r}")
    passage = doc.get("passage") or {}
    where = {"passage_start": passage["start"], "passage_end": passage["end"]} if passage else {}
    text = passage.get("text") if content == "passage" and passage.get("text") is not None else doc.get("text", "")
    return Document(page_content=text or "", id=doc["id"],
                    metadata={**(doc.get("metadata") or {}), "id": doc["id"], "title": doc.get("title", ""), **where,
                              **extra})


class TesseraRetriever(BaseRetriever):
    """LangChain BaseRetriever returning Tessera hits as Documents (see the module docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: Any = None       # a retriever.protocol.SearchEngine (in-process)
    index: Any = None          # its index, for the stored documents
    client: Any = None         # or a client.TesseraClient
    index_name: str | None = None
    k: int = 4
    filter: dict | None = None
    hybrid: bool = True
    content: str = "document"    # or "passage": page_content is the hit's best passage

    @classmethod
    def from_index(cls, directory: str, **kwargs) -> "TesseraRetriever":
        from retriever import Searcher, open_index

        index = open_index(directory)
        hybrid = kwargs.get("hybrid", True)
        return cls(searcher=Searcher(index, hybrid=None if hybrid else False), index=index, **kwargs)

    @classmethod
    def from_url(cls, url: str, *, api_key: str | None = None, index_name: str | None = None,
                 **kwargs) -> "TesseraRetriever":
        from client import TesseraClient

        return cls(client=TesseraClient(url, api_key=api_key), index_name=index_name, **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if self.client is not None:
            hits = self.client.search(query, k=self.k, index=self.index_name, filter=self.filter,
                                      hybrid=self.hybrid).hits
            return [_document({"id": h.id, "title": h.title or "", "text": h.text or "", "metadata": h.metadata,
                               "passage": h.passage.model_dump() if h.passage else None}, self.content, score=h.score)
                    for h in hits]
        return [_document(doc, self.content, score=score)
                for doc, score in search_documents(self.searcher, self.index, query, self.k, self.filter)]


class TesseraVectorStore(VectorStore):
    """LangChain's VectorStore interface over a Tessera index in this process: add_texts, delete,
    similarity_search(_with_score), from_texts. Tessera encodes with its own encoder (the one the
    index was built with), so the `embedding` argument LangChain passes is not used."""

    def __init__(self, directory: str, *, hybrid: bool = True):
        from retriever import open_index

        self.directory, self.hybrid = directory, hybrid
        self.index = open_index(directory)
        self._searcher = None

    @property
    def searcher(self):
        from retriever import Searcher

        if self._searcher is None:
            self._searcher = Searcher(self.index, hybrid=None if self.hybrid else False)
        return self._searcher

    @classmethod
    def from_texts(cls, texts: list[str], embedding=None, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, directory: str, **kwargs) -> "TesseraVectorStore":
        from retriever import Document as TesseraDocument, Index, load_encoder

        ids = ids or [str(i) for i in range(len(texts))]
        docs = [TesseraDocument(id=i, text=t, metadata=(metadatas or [{}] * len(texts))[n])
                for n, (i, t) in enumerate(zip(ids, texts))]
        Index.build(directory, docs, load_encoder(), show_progress=False, **kwargs)
        return cls(directory)

    def add_texts(self, texts, metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs) -> list[str]:
        from retriever import Document as TesseraDocument

        texts = list(texts)
        if ids is None:
            raise ValueError("Tessera documents need ids: pass ids=[...]")
        docs = [TesseraDocument(id=i, text=t, metadata=(metadatas or [{}] * len(texts))[n])
                for n, (i, t) in enumerate(zip(ids, texts))]
        self.index.add(docs, upsert=kwargs.get("upsert", False))
        self._searcher = None                      # the next search sees the new snapshot
        return list(ids)

    def delete(self, ids: list[str] | None = None, **kwargs) -> bool:
        if ids:
            self.index.delete(ids, missing_ok=kwargs.get("missing_ok", False))
            self._searcher = None
        return True

    def similarity_search_with_score(self, query: str, k: int = 4, filter: dict | None = None,
                                     **kwargs) -> list[tuple[Document, float]]:
        return [(_document(doc), score) for doc, score in search_documents(self.searcher, self.index, query, k, filter)]

    def similarity_search(self, query: str, k: int = 4, filter: dict | None = None, **kwargs) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter)]
