"""Micro-batching: concurrent search requests share one encoder call and one search call.

Requests queue up; one worker takes whatever arrived within `window_ms` of the first (at most
`max_batch` queries), encodes all their queries in one forward pass, and searches them together,
grouped by index and settings. While a batch runs, the next one gathers, so under load batches
fill up by themselves; a lone request waits at most `window_ms`. With window_ms=0 and
max_batch=1 every request runs alone (the baseline the load test compares against).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from retriever.queries import encode_queries

from .state import IndexHandle, LatencyLog


@dataclass
class Job:
    handle: IndexHandle
    queries: list[str]
    k: int
    engine: str
    quality: str
    conditions: dict | None
    hybrid: bool = False
    unit: str = "document"
    future: asyncio.Future = field(repr=False, default=None)


class MicroBatcher:
    def __init__(self, window_ms: float = 2.0, max_batch: int = 32, log: LatencyLog | None = None,
                 on_batch=None):
        self.on_batch = on_batch          # called with each batch's query count (metrics)
        self.window = window_ms / 1000
        self.max_batch = max(1, max_batch)
        self.log = log or LatencyLog()
        self._queue: asyncio.Queue[Job] | None = None
        self._worker: asyncio.Task | None = None
        # One search thread: torch parallelises inside each call; batches run one after another.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-search")

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def search(self, job: Job) -> list[tuple[np.ndarray, np.ndarray, list[list[str]], object]]:
        """Queue a job; returns, per query, (scores, positions, doc ids, snapshot searched)."""
        job.future = asyncio.get_running_loop().create_future()
        await self._queue.put(job)
        return await job.future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self._queue.get()]
            deadline = time.perf_counter() + self.window
            while sum(len(j.queries) for j in jobs) < self.max_batch:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, jobs)
            except Exception as e:   # noqa: BLE001 - handed to every waiting request
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j, r in zip(jobs, results):
                if not j.future.done():
                    j.future.set_result(r) if not isinstance(r, Exception) else j.future.set_exception(r)

    def _run_batch(self, jobs: list[Job]) -> list:
        self.log.batch(sum(len(j.queries) for j in jobs))
        if self.on_batch is not None:
            self.on_batch(sum(len(j.queries) for j in jobs))
        out: list = [None] * len(jobs)
        by_index: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            by_index.setdefault(j.handle.name, []).append(i)
        for members in by_index.values():
            handle = jobs[members[0]].handle
            snapshot = handle.snapshot            # one consistent state for the whole batch
            texts = [q for i in members for q in jobs[i].queries]
            try:
                encoded = encode_queries(handle.encoder, texts)
            except Exception as e:  # noqa: BLE001
                for i in members:
                    out[i] = e
                continue
            start = 0
            groups: dict[tuple, list[tuple[int, slice]]] = {}
            for i in members:
                rows = slice(start, start + len(jobs[i].queries))
                start = rows.stop
                j = jobs[i]
                key = (j.engine, j.quality, j.hybrid, j.unit) if j.conditions is None else \
                    (j.engine, j.quality, j.hybrid, j.unit, i)
                groups.setdefault(key, []).append((i, rows))
            for key, parts in groups.items():
                j0 = jobs[parts[0][0]]
                try:
                    searcher = snapshot.searcher(j0.engine, j0.quality, handle.encoder, j0.hybrid)
                    rows = np.concatenate([np.arange(r.start, r.stop) for _, r in parts])
                    k = max(jobs[i].k for i, _ in parts)
                    allowed = None if j0.conditions is None else snapshot.allowed(j0.conditions)
                    results = searcher.search_batch(encoded[rows], k=k, allowed=allowed, passages=True, unit=j0.unit)
                except Exception as e:  # noqa: BLE001
                    for i, _ in parts:
                        out[i] = e
                    continue
                offset = 0
                for i, r in parts:
                    n = r.stop - r.start
                    kk = jobs[i].k
                    out[i] = [(results.scores[offset + q, :kk], results.indices[offset + q, :kk],
                               results.doc_ids[offset + q][:kk], snapshot, results.passages[offset + q][:kk])
                              for q in range(n)]
                    offset += n
        return out
