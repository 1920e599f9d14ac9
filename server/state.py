"""Served indexes: immutable snapshots for readers, one writer at a time per index.

A search takes the current `Snapshot` when it starts and uses it to the end, so a write that
commits meanwhile never shows half-done. A write (add, delete) runs under the index's lock,
commits on disk atomically (indexes/storage/store.py), then opens a new snapshot and swaps it in with one
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

from retriever import SearchEngine, SearchIndex, Searcher, open_index
from retriever.corpus import Document
from retriever.encoder import Encoder

from indexes.files import IndexFormatError
from retriever.filters import filter_mask

log = logging.getLogger("tessera.server")


class IndexDamagedError(RuntimeError):
    """The served index was found damaged (a checksum failed); answered with 503."""


@dataclass
class Snapshot:
    index: SearchIndex          # an Index or a ShardedIndex (retriever.protocol)
    searchers: dict = field(default_factory=dict)

    def searcher(self, engine: str, quality: str, encoder: Encoder, hybrid: bool = False) -> SearchEngine:
        key = (engine, quality, hybrid)
        if key not in self.searchers:
            self.searchers[key] = Searcher(self.index, encoder=encoder, engine=engine, quality=quality,
                                           hybrid=None if hybrid else False)
        return self.searchers[key]

    @cached_property
    def stats(self) -> dict:
        """The index's stats (sizes walk the directory), once per snapshot."""
        return self.index.stats()

    def allowed(self, conditions: dict) -> np.ndarray:
        """(n_positions,) bool mask of a metadata filter (retriever.filters), cached per snapshot
        (RAG apps repeat filters; the metadata columns are cached with the index snapshot)."""
        expr = conditions
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
    background thread and swaps its snapshot in when it commits (adds committed meanwhile stay
    beside the merged segment: indexes.storage.writes.rewrite_index); if it fails, disk and snapshot both
    stay at the last commit and the next add tries again.
    A writer lock held elsewhere for more than `write_wait` seconds raises IndexBusyError.

    Damage: a write that finds a file whose checksum fails (every write verifies what it reads,
    indexes/storage/verify.py), or a scrub (`scrub()`, run every `scrub_every` seconds by `start_scrub`)
    that finds one, marks the index `damaged`: it is then neither searched, written nor compacted
    (the server answers 503 naming the file, /health reports it) until restarted on a good copy.
    """

    def __init__(self, name: str, directory: str | Path, encoder: Encoder | None = None, max_segments: int = 8,
                 write_wait: float = 2.0, verify: bool | str = True, executor: str = "threads",
                 ray_address: str | None = None):
        self.name = name
        self.executor, self.ray_address = executor, ray_address   # how a sharded index's shards are searched
        self.max_segments = max_segments   # every add writes a segment; past this many they are merged
        self.write_wait = write_wait
        self.directory = Path(directory)
        # Every checksum, once, before serving; or (verify="background") the structure now and the
        # checksums in a first scrub while serving (a large index answers at once).
        index = self._open(verify=verify is True)
        self.encoder = encoder or index.load_encoder()
        self.snapshot = Snapshot(index)
        self._write_lock = threading.Lock()
        self._compacting = threading.Lock()
        self.compaction_error: str | None = None
        self.compactions = 0
        self.damaged: str | None = None      # the first damaged file found, with its problem
        self.scrubs = 0
        self._stop_scrub = threading.Event()
        if verify == "background":
            threading.Thread(target=self.scrub, name=f"tessera-verify-{name}", daemon=True).start()

    def _mark_damaged(self, error: Exception) -> None:
        if self.damaged is None:
            self.damaged = str(error)
            log.error("index %s is damaged and no longer served: %s", self.name, self.damaged)

    def check_intact(self) -> None:
        """Raise IndexDamagedError once the index was found damaged."""
        if self.damaged is not None:
            raise IndexDamagedError(f"index {self.name!r} is damaged ({self.damaged}); it is not served until "
                                    "restored from a good copy (tessera verify --index DIR lists every file)")

    def scrub(self) -> list:
        """Verify every file of the served index against its manifest (reads it all once); a
        damaged one marks the index damaged. Returns the indexes.storage.verify report."""
        from indexes.storage.verify import verify_index

        # Without the write lock (reading a large index takes long, and adds must go on): a commit
        # meanwhile can retire a file the scrub's manifest named, so a missing file is checked
        # again against the newer manifest before it counts as damage.
        report = verify_index(self.directory)
        if any(c.problem == "file missing" for c in report):
            report = verify_index(self.directory)
        bad = [c for c in report if not c.ok]
        if bad:
            self._mark_damaged(IndexFormatError(f"{bad[0].path}: {bad[0].problem}"))
        self.scrubs += 1
        return report

    def start_scrub(self, every: float) -> None:
        """Scrub in a background thread every `every` seconds until `stop_scrub`."""
        def loop() -> None:
            while not self._stop_scrub.wait(every):
                try:
                    self.scrub()
                except Exception as e:  # noqa: BLE001 - a scrub that cannot run is logged, serving goes on
                    log.warning("index %s: scrub failed: %s", self.name, e)
        threading.Thread(target=loop, name=f"tessera-scrub-{self.name}", daemon=True).start()

    def _open(self, verify: bool = False) -> SearchIndex:
        """The index for searching (writes open their own, in this process)."""
        return open_index(self.directory, verify=verify, executor=self.executor, ray_address=self.ray_address)

    def stop_scrub(self) -> None:
        self._stop_scrub.set()

    def _commit(self, change):
        self.check_intact()
        with self._write_lock:
            writer = open_index(self.directory, verify=False)
            try:
                result = change(writer)
            except IndexFormatError as e:
                self._mark_damaged(e)
                raise
            self.snapshot = Snapshot(self._open())
        self._maybe_compact()
        return result

    def _maybe_compact(self) -> None:
        if self.damaged is not None:
            return
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
                self.snapshot = Snapshot(self._open())
            self.compactions += 1
            self.compaction_error = None
        except IndexFormatError as e:            # a damaged file: never copied, the index no longer served
            self.compaction_error = f"{type(e).__name__}: {e}"
            self._mark_damaged(e)
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
