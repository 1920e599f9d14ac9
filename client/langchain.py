"""A LangChain retriever over Tessera: the library (an index opened in this process) or a
`tessera serve` endpoint through the client. Install with `pip install 'tessera[langchain]'`.

    from client.langchain import TesseraRetriever
    retriever = TesseraRetriever.from_index("idx/", k=5)                 # in-process
    retriever = TesseraRetriever.from_url("http://127.0.0.1:8000", k=5)  # over HTTP
    docs = retriever.invoke("how do solar panels work")                  # list[Document]

Each Document carries the text as page_content and metadata with the stored metadata plus
`id`, `title` and `score`; `filter` (metadata filter) and `hybrid` apply to every query.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

__all__ = ["TesseraRetriever"]


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

    @classmethod
    def from_index(cls, directory: str, **kwargs) -> "TesseraRetriever":
        from retriever import open_index, searcher_for

        index = open_index(directory)
        hybrid = kwargs.get("hybrid", True)
        return cls(searcher=searcher_for(index, hybrid=None if hybrid else False), index=index, **kwargs)

    @classmethod
    def from_url(cls, url: str, *, api_key: str | None = None, index_name: str | None = None,
                 **kwargs) -> "TesseraRetriever":
        from client import TesseraClient

        return cls(client=TesseraClient(url, api_key=api_key), index_name=index_name, **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if self.client is not None:
            hits = self.client.search(query, k=self.k, index=self.index_name, filter=self.filter,
                                      hybrid=self.hybrid).hits
            return [Document(page_content=h.text or "", id=h.id,
                             metadata={**(h.metadata or {}), "id": h.id, "title": h.title or "", "score": h.score})
                    for h in hits]
        results = self.searcher.search(query, k=self.k, filter=self.filter)
        out = []
        for position, score in zip(results.indices[0].tolist(), results.scores[0].tolist()):
            if position < 0:
                continue
            doc = self.index.document(position)
            out.append(Document(page_content=doc.get("text", ""), id=doc["id"],
                                metadata={**(doc.get("metadata") or {}), "id": doc["id"], "title": doc.get("title", ""),
                                          "score": float(score)}))
        return out
