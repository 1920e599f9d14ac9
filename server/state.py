"""Served indexes: immutable snapshots for readers, one writer at a time per index.

A search takes the current `Snapshot` when it starts and uses it to the end, so a write that
commits meanwhile never shows half-done. A write (add, delete) runs under the index's lock,
commits on disk atomically (indexes/store.py), then opens a new snapshot and swaps it in with one
assignment: later searches see all of the write, earlier ones none of it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from retriever import SearchEngine, SearchIndex, open_index, searcher_for
from retriever.corpus import Document
from retriever.encoder import Encoder

from retriever.filters import filter_mask

log = logging.getLogger("tessera.server")


@dataclass
class Snapshot:
    index: SearchIndex          # an Index or a ShardedIndex (retriever.protocol)
    searchers: dict = field(default_factory=dict)

    def searcher(self, engine: str, quality: str, encoder: Encoder, hybrid: bool = False) -> SearchEngine:
        key = (engine, quality, hybrid)
        if key not in self.searchers:
            self.searchers[key] = searcher_for(self.index, encoder=encoder, engine=engine, quality=quality,
                                               hybrid=None if hybrid else False)
        return self.searchers[key]

    @cached_property
    def stats(self) -> dict:
        """The index's stats (sizes walk the directory), once per snapshot."""
        return self.index.stats()

    def allowed(self, conditions: dict) -> np.ndarray:
        """(n_positions,) bool mask of a metadata filter (retriever.filters), cached per snapshot
        (RAG apps repeat filters; the metadata columns are cached with the index snapshot)."""
        expr = {f: c.model_dump(by_alias=True, exclude_none=True) if hasattr(c, "model_dump") else c
                for f, c in conditions.items()}
        key = json.dumps(expr, sort_keys=True, default=str)
        cache = self.__dict__.setdefault("_allowed", {})
        if key not in cache:
            if len(cache) >= 64:
                cache.pop(next(iter(cache)))
            cache[key] = filter_mask(self.index, expr)
        return cache[key]


class IndexHandle:
    """One served index: its encoder, current snapshot and write lock.

    A write commits on disk (one commit per request), then swaps in a snapshot of exactly that
    commit. When adds have left more than `max_segments` segments, a compaction runs in a
    background thread and swaps its snapshot in when it commits; if it fails (or another writer
    committed meanwhile), disk and snapshot both stay at the last commit and the next add tries again.
    A writer lock held elsewhere for more than `write_wait` seconds raises IndexBusyError.
    """

    def __init__(self, name: str, directory: str | Path, encoder: Encoder | None = None, max_segments: int = 8,
                 write_wait: float = 2.0, verify: bool = True):
        self.name = name
        self.max_segments = max_segments   # every add writes a segment; past this many they are merged
        self.write_wait = write_wait
        self.directory = Path(directory)
        index = open_index(self.directory, verify=verify)   # every checksum, once, before serving
        self.encoder = encoder or index.load_encoder()
        self.snapshot = Snapshot(index)
        self._write_lock = threading.Lock()
        self._compacting = threading.Lock()
        self.compaction_error: str | None = None
        self.compactions = 0

    def _commit(self, change):
        with self._write_lock:
            writer = open_index(self.directory, verify=False)
            result = change(writer)
            self.snapshot = Snapshot(open_index(self.directory, verify=False))
        self._maybe_compact()
        return result

    def _maybe_compact(self) -> None:
        stats = self.snapshot.stats
        if stats["segments"] <= self.max_segments * stats["shards"] or not self._compacting.acquire(blocking=False):
            return
        threading.Thread(target=self._compact, name=f"tessera-compact-{self.name}", daemon=True).start()

    def _compact(self) -> None:
        try:
            index = open_index(self.directory, verify=False)
            index.maintain(lock_timeout=self.write_wait)   # merges, refits a codec the data outgrew;
            #                                                searches go on meanwhile, on their snapshot
            with self._write_lock:
                self.snapshot = Snapshot(open_index(self.directory, verify=False))
            self.compactions += 1
            self.compaction_error = None
        except Exception as e:  # noqa: BLE001 - the last commit stays served; reported in /stats
            self.compaction_error = f"{type(e).__name__}: {e}"
            log.warning("index %s: background compaction failed: %s", self.name, self.compaction_error)
        finally:
            self._compacting.release()

    def wait_for_compaction(self, timeout: float = 60.0) -> None:
        """Block until a running background compaction ends (tests, graceful shutdown)."""
        if self._compacting.acquire(timeout=timeout):
            self._compacting.release()

    def add(self, documents: list[Document], upsert: bool) -> int:
        """Encode and commit documents; KeyError if an id exists and not upsert (nothing written)."""
        def change(index: SearchIndex) -> int:
            clash = [d.id for d in documents if index.position_of(d.id) is not None]
            if clash and not upsert:
                raise KeyError(f"{len(clash)} document id(s) already in index {self.name!r}, e.g. {clash[0]!r}; "
                               "send upsert: true to replace them")
            index.add(documents, self.encoder, upsert=upsert, lock_timeout=self.write_wait)
            return len(documents)
        return self._commit(change)

    def delete(self, doc_id: str) -> int:
        return self._commit(lambda index: index.delete([doc_id], lock_timeout=self.write_wait))

    def document(self, doc_id: str) -> dict | None:
        index = self.snapshot.index
        position = index.position_of(doc_id)
        return None if position is None else index.document(position)


class LatencyLog:
    """The last `size` request latencies, for /stats percentiles."""

    def __init__(self, size: int = 10_000):
        self._ms: deque[float] = deque(maxlen=size)
        self.batches = 0
        self.batched_queries = 0

    def add(self, ms: float) -> None:
        self._ms.append(ms)

    def batch(self, n: int) -> None:
        self.batches += 1
        self.batched_queries += n

    def percentiles(self) -> dict:
        values = np.array(self._ms)
        if len(values) == 0:
            return {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
        return {"count": len(values), **{f"p{p}_ms": float(np.percentile(values, p)) for p in (50, 95, 99)}}
