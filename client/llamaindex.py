"""A LlamaIndex retriever over Tessera: the library (an index opened in this process) or a
`tessera serve` endpoint through the client. Install with `pip install 'tessera[llamaindex]'`.

    from client.llamaindex import TesseraRetriever
    retriever = TesseraRetriever.from_index("idx/", k=5)                  # or .from_url(url, k=5)
    nodes = retriever.retrieve("how do solar panels work")               # list[NodeWithScore]

Each node is a TextNode whose id is the document id, text the document text, metadata the
stored metadata plus `title`; the NodeWithScore carries Tessera's score.
"""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

__all__ = ["TesseraRetriever"]


class TesseraRetriever(BaseRetriever):
    """LlamaIndex BaseRetriever returning Tessera hits as NodeWithScore (see the module docstring)."""

    def __init__(self, *, searcher=None, index=None, client=None, index_name: str | None = None, k: int = 4,
                 filter: dict | None = None, hybrid: bool = True, **kwargs):
        super().__init__(**kwargs)
        if (searcher is None) == (client is None):
            raise ValueError("give either searcher= (with index=) or client=")
        self.searcher, self.index, self.client = searcher, index, client
        self.index_name, self.k, self.filter, self.hybrid = index_name, k, filter, hybrid

    @classmethod
    def from_index(cls, directory: str, **kwargs) -> "TesseraRetriever":
        from retriever import open_index, searcher_for

        index = open_index(directory)
        searcher = searcher_for(index, hybrid=None if kwargs.get("hybrid", True) else False)
        return cls(searcher=searcher, index=index, **kwargs)

    @classmethod
    def from_url(cls, url: str, *, api_key: str | None = None, **kwargs) -> "TesseraRetriever":
        from client import TesseraClient

        return cls(client=TesseraClient(url, api_key=api_key), **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        query = query_bundle.query_str
        if self.client is not None:
            hits = self.client.search(query, k=self.k, index=self.index_name, filter=self.filter,
                                      hybrid=self.hybrid).hits
            return [NodeWithScore(node=TextNode(id_=h.id, text=h.text or "",
                                                metadata={**(h.metadata or {}), "title": h.title or ""}), score=h.score)
                    for h in hits]
        results = self.searcher.search(query, k=self.k, filter=self.filter)
        out = []
        for position, score in zip(results.indices[0].tolist(), results.scores[0].tolist()):
            if position >= 0:
                doc = self.index.document(position)
                node = TextNode(id_=doc["id"], text=doc.get("text", ""),
                                metadata={**(doc.get("metadata") or {}), "title": doc.get("title", "")})
                out.append(NodeWithScore(node=node, score=float(score)))
        return out
