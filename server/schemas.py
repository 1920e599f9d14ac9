"""Request and response bodies of the search API (pydantic), with the size limits they enforce.

A request over a limit gets 422 with the field named; a body over MAX_BODY_BYTES gets 413.
Shared by the server and the client (client/http.py), so this module imports pydantic and pure
Python only: no FastAPI, numpy, torch or model code (tests/test_client.py holds it to that).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indexes.names import MAX_K, QUALITIES, QUERY_STAGES
from indexes.values import check_stored_value
from retriever.corpus import MAX_TEXT_CHARS
from retriever.filter_grammar import check_filter

MAX_QUERY_CHARS = 2_000
MAX_BATCH = 64
MAX_DOCUMENTS_PER_ADD = 256
MAX_ID_CHARS = 512
MAX_BODY_BYTES = 8 * 2**20
# A batch's work budget: the work grows with queries x k (rescoring, fusion, documents returned)
# and with the query text encoded; a batch of 64 queries of 2,000 characters at k = 1,000 held a
# server for 24 s. Past either budget: 422 naming both numbers.
MAX_BATCH_RESULTS = 16_000          # queries x k
MAX_BATCH_QUERY_CHARS = 32_000      # characters over all queries of a batch

Scalar = str | int | float | bool


FILTER_DESCRIPTION = ('metadata filter, the grammar of retriever/filters.py: {"lang": "en", "year": {"gte": 2020}, '
                      '"tag": {"in": ["a", "b"]}}, several fields all holding, combined with "$and", "$or", "$not"')


UNIT_DESCRIPTION = ("'document': the k best documents, each with its best passage; 'passage': the k best "
                    "passages (a document's id may repeat), for callers who want chunks")


def _valid_filter(expr: dict | None) -> dict | None:
    """The one filter validator (retriever.filters.check_filter): its errors name the wrong part."""
    if expr is not None:
        check_filter(expr, "filter")
    return expr


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    index: str | None = Field(default=None, description="index name; may be left out when one index is served")
    k: int = Field(default=10, ge=1, le=MAX_K)
    quality: Literal[QUALITIES] = "balanced"
    engine: Literal[QUERY_STAGES] = "token"
    hybrid: bool = Field(default=True, description="fuse with BM25 over the index's own lexical lists "
                                                   "(when it has them); false: the dense ranking alone")
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DESCRIPTION)
    return_documents: bool = Field(default=True, description="include title, text and metadata, or ids and scores only")
    unit: Literal["document", "passage"] = Field(default="document", description=UNIT_DESCRIPTION)

    _filter = field_validator("filter")(classmethod(lambda cls, v: _valid_filter(v)))

    @field_validator("query")
    @classmethod
    def _unicode(cls, query: str) -> str:
        return _valid_text(query, "query")


def _valid_text(value: str, where: str) -> str:
    check_stored_value(value, where)     # lone surrogates cannot be encoded, searched or stored
    return value


class BatchSearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queries: list[str] = Field(min_length=1, max_length=MAX_BATCH)
    index: str | None = None
    k: int = Field(default=10, ge=1, le=MAX_K)
    quality: Literal[QUALITIES] = "balanced"
    engine: Literal[QUERY_STAGES] = "token"
    hybrid: bool = True
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DESCRIPTION)
    return_documents: bool = True
    unit: Literal["document", "passage"] = Field(default="document", description=UNIT_DESCRIPTION)

    _filter = field_validator("filter")(classmethod(lambda cls, v: _valid_filter(v)))

    @model_validator(mode="after")
    def _within_budget(self) -> "BatchSearchRequest":
        results, chars = len(self.queries) * self.k, sum(len(q) for q in self.queries)
        if results > MAX_BATCH_RESULTS:
            raise ValueError(f"queries x k = {len(self.queries)} x {self.k} = {results:,} results, over the budget of "
                             f"{MAX_BATCH_RESULTS:,} per request: send fewer queries per batch or a smaller k")
        if chars > MAX_BATCH_QUERY_CHARS:
            raise ValueError(f"the queries hold {chars:,} characters, over the budget of {MAX_BATCH_QUERY_CHARS:,} "
                             "per batch: split the batch")
        return self

    @field_validator("queries")
    @classmethod
    def _bounded(cls, queries: list[str]) -> list[str]:
        for i, q in enumerate(queries):
            if not q or len(q) > MAX_QUERY_CHARS:
                raise ValueError(f"queries[{i}] must have 1 to {MAX_QUERY_CHARS} characters")
            _valid_text(q, f"queries[{i}]")
        return queries


class PassageOut(BaseModel):
    """Where the hit matched best: characters [start, end) of the document's text, and that text
    (with return_documents). A document longer than the encoder's window was indexed as
    overlapping passages; this is the one that scored best."""

    start: int
    end: int
    text: str | None = None


class Hit(BaseModel):
    rank: int
    id: str
    score: float
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] | None = None
    passage: PassageOut | None = None


class SearchResponse(BaseModel):
    query: str
    index: str
    hits: list[Hit]
    took_ms: float


class BatchSearchResponse(BaseModel):
    index: str
    results: list[SearchResponse]
    took_ms: float


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    title: str = Field(default="", max_length=MAX_TEXT_CHARS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("id must not contain control characters")
        return _valid_text(value, "id")

    @field_validator("title", "text")
    @classmethod
    def _unicode(cls, value: str, info) -> str:
        return _valid_text(value, info.field_name)

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict) -> dict:
        check_stored_value(value, "metadata")     # depth, NaN / infinity, surrogates: refused here, not at read
        return value


class AddDocumentsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_DOCUMENTS_PER_ADD)
    upsert: bool = Field(default=False, description="replace documents whose id exists (else 409)")


class AddDocumentsResponse(BaseModel):
    index: str
    added: int
    documents: int


class DeleteResponse(BaseModel):
    index: str
    deleted: str
    documents: int


class DocumentOut(BaseModel):
    id: str
    title: str
    text: str
    metadata: dict[str, Any]


class IndexInfo(BaseModel):
    name: str
    documents: int
    stored_vectors: int
    bytes: int
    recipe: str
    encoder: str
    generation: int
    shards: int = 1


class LatencyStats(BaseModel):
    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class Stats(BaseModel):
    indexes: list[IndexInfo]
    search_latency: LatencyStats
    batches: int
    mean_batch_size: float | None


class Health(BaseModel):
    status: Literal["ok", "damaged"]
    indexes: int
    damaged: dict[str, str] = Field(default_factory=dict,
                                    description="index name -> the damaged file and its problem (HTTP 503 then)")


class Error(BaseModel):
    detail: str
