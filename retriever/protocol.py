"""The one interface every index and searcher implements, single or sharded.

    index = open_index("DIR")              # an Index, or a ShardedIndex where DIR holds shards.json
    searcher = Searcher(index, encoder, engine="token", quality="balanced")
    results = searcher.search_batch(["a query"], k=10)      # SearchResults: scores, positions, ids
    index.document(int(results.indices[0, 0]))["id"] == results.doc_ids[0][0]

One `Searcher` serves both kinds of index: each gives it an engine over its current snapshot
(`index.engine(...)`: an indexes.search.engine.Engine, or an indexes.search.shardset.ShardSet of them). The CLI,
`tessera eval`, the benchmarks and the server call only what these protocols name, so a sharded
index is served, evaluated and searched like a single one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from .corpus import Document
from .encoder import Encoder
from .index import Index
from .searcher import SearchResults

__all__ = ["SearchIndex", "SearchEngine", "open_index"]


@runtime_checkable
class SearchIndex(Protocol):
    """A snapshot of an index: positions, documents, writes, stats."""

    directory: Path

    @property
    def n_positions(self) -> int: ...

    @property
    def encoder_spec(self) -> dict: ...

    def __len__(self) -> int: ...

    @property
    def snapshot(self) -> object: ...

    @property
    def n_centroids(self) -> int: ...

    def engine(self, **settings): ...

    def check_intact(self) -> None: ...

    def document(self, position: int) -> dict: ...

    def position_of(self, doc_id: str) -> int | None: ...

    def add(self, documents: Sequence[Document], encoder: Encoder | None = None, *,
            upsert: bool = False, lock_timeout: float = ...) -> "SearchIndex": ...

    def delete(self, doc_ids: Sequence[str], missing_ok: bool = False, lock_timeout: float = ...) -> int: ...

    def compact(self, retrain: bool = False, lock_timeout: float = ...) -> "SearchIndex": ...

    def maintain(self, lock_timeout: float = ...): ...

    def stats(self) -> dict: ...

    def load_encoder(self, device=None) -> Encoder: ...


@runtime_checkable
class SearchEngine(Protocol):
    """Query side: strings or pre-encoded (n, L, dim) float32 queries in, SearchResults out."""

    def search(self, query: str, k: int = 10, *, filter: dict | None = None,
               ids: Sequence[str] | None = None) -> SearchResults: ...

    def search_batch(self, queries: Sequence[str] | np.ndarray, k: int = 10, term_ids: np.ndarray | None = None,
                     allowed: np.ndarray | None = None, texts: Sequence[str] | None = None, *,
                     filter: dict | None = None, ids: Sequence[str] | None = None) -> SearchResults: ...


def open_index(directory: str | Path, verify: bool | str = True, executor: str = "threads",
               ray_address: str | None = None) -> SearchIndex:
    """The index in `directory`: a ShardedIndex where it holds shards.json (its shards searched by
    `executor`: "threads" or "ray"), else an Index."""
    from indexes.storage.sharded import is_sharded

    if is_sharded(directory):
        from .sharded_index import ShardedIndex
        return ShardedIndex.open(directory, verify=verify, executor=executor, ray_address=ray_address,
                                 open_shard=Index.open)
    if executor != "threads":
        raise ValueError(f"{directory} is a single index; executor={executor!r} serves sharded indexes")
    return Index.open(directory, verify=verify)
