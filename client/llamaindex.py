"""A LlamaIndex retriever over Tessera: the library (an index opened in this process) or a
`tessera serve` endpoint through the client. Install with `pip install 'tessera[llamaindex]'`.

    from client.llamaindex import TesseraRetriever
    retriever = TesseraRetriever.from_index("idx/", k=5)                  # or .from_url(url, k=5)
    nodes = retriever.retrieve("how do solar panels work")               # list[NodeWithScore]

Each node is a TextNode whose id is the document id, text the document text (or, with
`content="passage"`, the hit's best passage), metadata the stored metadata plus `title` and the
best passage's `passage_start` / `passage_end`; the NodeWithScore carries Tessera's score.

`TesseraVectorStore` is LlamaIndex's vector-store interface over a Tessera index in this
process (add nodes, delete by ref_doc_id, query by text with metadata filters and node ids).
Tessera encodes with the index's own encoder: queries go in as text (`is_embedding_query` False).
"""

from __future__ import annotations

from typing import Any, Sequence

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle, TextNode
from llama_index.core.vector_stores.types import (BasePydanticVectorStore, FilterOperator, VectorStoreQuery,
                                                  VectorStoreQueryResult)
from pydantic import PrivateAttr

from .local import search_documents

__all__ = ["TesseraRetriever", "TesseraVectorStore"]


def _node(doc: dict, content: str = "document", **extra) -> TextNode:
    """A TextNode from a stored Tessera document (its metadata, the best passage's place and extra
    fields); content: "document" (the text) or "passage" (the best passage)."""
    if content not in ("document", "passage"):
        raise ValueError(f"content must be 'document' or 'passage', got {content!r}")
    passage = doc.get("passage") or {}
    where = {"passage_start": passage["start"], "passage_end": passage["end"]} if passage else {}
    text = passage.get("text") if content == "passage" and passage.get("text") is not None else doc.get("text", "")
    return TextNode(id_=doc["id"], text=text or "", metadata={**(doc.get("metadata") or {}), **where, **extra})


class TesseraRetriever(BaseRetriever):
    """LlamaIndex BaseRetriever returning Tessera hits as NodeWithScore (see the module docstring)."""

    def __init__(self, *, searcher=None, index=None, client=None, index_name: str | None = None, k: int = 4,
                 filter: dict | None = None, hybrid: bool = True, content: str = "document", **kwargs):
        super().__init__(**kwargs)
        if (searcher is None) == (client is None):
            raise ValueError("give either searcher= (with index=) or client=")
        self.searcher, self.index, self.client = searcher, index, client
        self.index_name, self.k, self.filter, self.hybrid = index_name, k, filter, hybrid
        self.content = content

    @classmethod
    def from_index(cls, directory: str, **kwargs) -> "TesseraRetriever":
        from retriever import Searcher, open_index

        index = open_index(directory)
        searcher = Searcher(index, hybrid=None if kwargs.get("hybrid", True) else False)
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
            return [NodeWithScore(node=_node({"id": h.id, "text": h.text or "", "metadata": h.metadata,
                                              "passage": h.passage.model_dump() if h.passage else None},
                                             self.content, title=h.title or ""), score=h.score)
                    for h in hits]
        return [NodeWithScore(node=_node(doc, self.content, title=doc.get("title", "")), score=score)
                for doc, score in search_documents(self.searcher, self.index, query, self.k, self.filter)]


class TesseraVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store over a Tessera index directory (see the module docstring)."""

    stores_text: bool = True
    is_embedding_query: bool = False
    directory: str
    _index: Any = PrivateAttr()

    def __init__(self, directory: str, **kwargs):
        super().__init__(directory=directory, **kwargs)
        from retriever import open_index

        self._index = open_index(directory)

    @property
    def client(self) -> Any:
        return self._index

    def add(self, nodes: Sequence[BaseNode], **kwargs) -> list[str]:
        from retriever import Document

        docs = [Document(id=n.node_id, text=n.get_content(), metadata={**n.metadata,
                                                                       **({"ref_doc_id": n.ref_doc_id} if n.ref_doc_id else {})})
                for n in nodes]
        self._index.add(docs, upsert=kwargs.get("upsert", True))
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs) -> None:
        from retriever.filters import filter_mask

        mask = filter_mask(self._index, {"ref_doc_id": ref_doc_id})
        ids = [self._index.document(int(p))["id"] for p in mask.nonzero()[0]]
        if self._index.position_of(ref_doc_id) is not None:
            ids.append(ref_doc_id)
        if ids:
            self._index.delete(sorted(set(ids)), missing_ok=True)

    def query(self, query: VectorStoreQuery, **kwargs) -> VectorStoreQueryResult:
        from retriever import Searcher

        if not query.query_str:
            raise ValueError("Tessera searches by text: give query_str (it encodes queries itself)")
        expr = None
        if query.filters is not None and query.filters.filters:
            conditions = []
            for f in query.filters.filters:
                if f.operator == FilterOperator.EQ:
                    conditions.append({f.key: f.value})
                elif f.operator in (FilterOperator.GT, FilterOperator.GTE, FilterOperator.LT, FilterOperator.LTE):
                    conditions.append({f.key: {{">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[f.operator.value]: f.value}})
                elif f.operator == FilterOperator.IN:
                    conditions.append({f.key: {"in": list(f.value)}})
                else:
                    raise ValueError(f"filter operator {f.operator} is not supported by Tessera (==, <, <=, >, >=, in)")
            expr = {"$or" if str(query.filters.condition.value) == "or" else "$and": conditions}
        hits = search_documents(Searcher(self._index), self._index, query.query_str, query.similarity_top_k,
                                expr, query.node_ids)
        return VectorStoreQueryResult(nodes=[_node(doc) for doc, _ in hits], similarities=[s for _, s in hits],
                                      ids=[doc["id"] for doc, _ in hits])
