"""A set of shards searched as one index: the same `Ranker` interface as one snapshot's `Engine`.

    shards = ShardSet([Engine(store, nprobe=8) for store in stores], ThreadExecutor(len(stores)))
    scores, positions = shards.search(queries, k=10, fusion="adaptive", lexical=lexical)

Global positions are `shard base + position in the shard` (bases in shard order), so results,
masks and ids work as for one index. All shards share one codec, so dense scores compare across
shards and the merged top-k equals the top-k of one index coded with that codec. BM25 uses the
statistics of all shards together (document frequencies and lengths added up, then sent to each
shard), so lexical scores equal one index's, and the fusion runs once over the merged lists.

Per-shard work goes through an executor: `ThreadExecutor` runs it in threads of this process
(the kernels release the GIL); `indexes.search.ray_executor.RayExecutor` sends it to Ray actors, each
holding one shard's memory-mapped files on whichever node it was placed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, Sequence

import numpy as np

from indexes.search.bm25 import LexicalQueries, LexicalStats
from indexes.positions import locate, part_bases
from indexes.search.ranker import Ranker, merge_top_k
from indexes.search.timings import Timings, maybe

__all__ = ["ShardSet", "Executor", "ThreadExecutor"]


class Executor(Protocol):
    """Runs methods on every shard's ranker: call(name, per_shard_args) -> one result per shard,
    in shard order (per_shard_args[i]: the positional arguments of shard i); call_many(calls)
    does several such calls in one round trip, one list of results per call."""

    def call(self, method: str, per_shard_args: Sequence[tuple]) -> list[Any]: ...

    def call_many(self, calls: Sequence[tuple[str, Sequence[tuple]]]) -> list[list[Any]]: ...


class ThreadExecutor:
    """Shards' rankers in this process, called in parallel threads."""

    def __init__(self, rankers: Sequence[Ranker]):
        self.rankers = list(rankers)
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.rankers)), thread_name_prefix="tessera-shard")

    def call(self, method: str, per_shard_args: Sequence[tuple]) -> list[Any]:
        return self.call_many([(method, per_shard_args)])[0]

    def call_many(self, calls: Sequence[tuple[str, Sequence[tuple]]]) -> list[list[Any]]:
        if len(self.rankers) == 1:
            return [[getattr(self.rankers[0], method)(*args[0])] for method, args in calls]
        futures = [[self._pool.submit(getattr(r, method), *a) for r, a in zip(self.rankers, args)]
                   for method, args in calls]
        return [[f.result() for f in row] for row in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False)


class ShardSet(Ranker):
    """Shards searched as one index (see the module docstring).

    executor: an Executor over the shards' rankers; sizes: each shard's n_positions;
    has_lexical: every shard has lexical lists."""

    def __init__(self, executor: Executor, sizes: Sequence[int], has_lexical: bool):
        self.executor = executor
        self.bases = part_bases(sizes)
        self.has_lexical = has_lexical

    @property
    def n_positions(self) -> int:
        return int(self.bases[-1])

    @property
    def n_shards(self) -> int:
        return len(self.bases) - 1

    def locate(self, positions) -> tuple[np.ndarray, np.ndarray]:
        """(shard, local position) of global positions (indexes/positions.py)."""
        return locate(self.bases, positions)

    def _split(self, allowed: np.ndarray | None) -> list:
        if allowed is None:
            return [None] * self.n_shards
        return [allowed[a:b] for a, b in zip(self.bases[:-1], self.bases[1:])]

    def _dense_args(self, queries, k, first_stage, allowed, term_ids, candidates) -> list[tuple]:
        per_shard_candidates = [None] * self.n_shards
        if candidates is not None:
            per_shard_candidates = [[self._local(c, i) for c in candidates] for i in range(self.n_shards)]
        return [(queries, k, first_stage, mask, term_ids, c)
                for mask, c in zip(self._split(allowed), per_shard_candidates)]

    def dense(self, queries: np.ndarray, k: int, *, first_stage: str, allowed: np.ndarray | None,
              term_ids: np.ndarray | None, candidates: list | None, timings=None) -> tuple[np.ndarray, np.ndarray]:
        # timings: the caller times the whole fan-out as "dense"; the shards' own stages stay with them.
        parts = self.executor.call("dense", self._dense_args(queries, k, first_stage, allowed, term_ids, candidates))
        return merge_top_k(parts, self.bases, k)

    def dense_and_stats(self, queries: np.ndarray, depth: int, lexical: LexicalQueries, dense_args: dict,
                        timings: Timings | None = None) -> tuple[tuple[np.ndarray, np.ndarray], LexicalStats]:
        args = self._dense_args(queries, depth, dense_args["first_stage"], dense_args["allowed"],
                                dense_args["term_ids"], dense_args["candidates"])
        with maybe(timings, "dense"):     # one round trip for both: timed as the dense side
            parts, stats = self.executor.call_many([("dense", args),
                                                    ("lexical_stats", [(lexical,)] * self.n_shards)])
            return merge_top_k(parts, self.bases, depth), LexicalStats.merge(stats)

    def _local(self, positions, shard: int) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        inside = (positions >= self.bases[shard]) & (positions < self.bases[shard + 1])
        return positions[inside] - self.bases[shard]

    def lexical_stats(self, lexical: LexicalQueries) -> LexicalStats:
        return LexicalStats.merge(self.executor.call("lexical_stats", [(lexical,)] * self.n_shards))

    def bm25(self, lexical: LexicalQueries, depth: int, allowed: np.ndarray | None,
             stats: LexicalStats) -> tuple[np.ndarray, np.ndarray]:
        parts = self.executor.call("bm25", [(lexical, depth, mask, stats) for mask in self._split(allowed)])
        return merge_top_k(parts, self.bases, depth)

    def doc_ids(self, positions: np.ndarray) -> list[list[str]]:
        positions = np.asarray(positions, dtype=np.int64)
        shard, local = (a.ravel() for a in self.locate(positions))
        held = [np.flatnonzero(shard == i) for i in range(self.n_shards)]   # what each shard names
        named = self.executor.call("doc_ids", [(local[h][None],) for h in held])
        flat = np.empty(shard.size, dtype=object)
        for h, ids in zip(held, named):
            if len(h):
                flat[h] = ids[0]
        grid = flat.reshape(positions.shape)
        return [grid[q][positions[q] >= 0].tolist() for q in range(len(positions))]

    def passage_spans(self, queries: np.ndarray, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        shard, local = self.locate(positions)
        parts = self.executor.call("passage_spans", [(queries, np.where(shard == i, local, -1))
                                                     for i in range(self.n_shards)])
        spans = np.full((*positions.shape, 2), -1, dtype=np.int64)
        for i, part in enumerate(parts):
            spans[shard == i] = part[shard == i]
        return spans

    def passage_ranking(self, queries: np.ndarray, positions: np.ndarray,
                        k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        positions = np.asarray(positions, dtype=np.int64)
        shard, local = self.locate(positions)
        parts = self.executor.call("passage_ranking", [(queries, np.where(shard == i, local, -1), k)
                                                       for i in range(self.n_shards)])
        scores = np.concatenate([p[0] for p in parts], axis=1)
        owners = np.concatenate([np.where(p[1] >= 0, p[1] + self.bases[i], -1) for i, p in enumerate(parts)], axis=1)
        spans = np.concatenate([p[2] for p in parts], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]        # shard order breaks ties, as one index
        return (np.take_along_axis(scores, order, 1), np.take_along_axis(owners, order, 1),
                np.take_along_axis(spans, order[:, :, None], 1))
