"""A sharded index opened for search and change: the `Index` interface over a set of shards.

    index = open_index("DIR")                      # DIR/shards.json + one index folder per shard (a ShardedIndex)
    searcher = Searcher(index)                      # the one Searcher, as for a single index
    searcher.search_batch(["a query"], k=10)        # every shard searches, the lists merge (indexes/search/shardset.py)

Global positions are `shard base + position in the shard`, so results, filter masks and
`document(position)` work as for a single `Index`, and rankings equal one index built with the
shards' shared codec (BM25 included: statistics are added up over the shards).

executor="threads" (default) searches the shards in threads of this process; "ray" places each
shard in a Ray actor (indexes/search/ray_executor.py), anywhere in the cluster: every node that holds an
actor must see the shard's folder; this process reads only the shard manifests unless documents,
filters or writes are asked for.

Writes: new documents go to the shard with the fewest documents, a replaced (upserted) one to
the shard that holds it, so each document lives in exactly one shard; each shard's commit is
atomic on its own, a batch spread over several shards is not atomic as a whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indexes.files import read_json
from indexes.positions import locate, part_bases
from indexes.storage.sharded import read_shards
from indexes.storage.writes import LOCK_TIMEOUT

from .corpus import Document
from .encoder import Encoder
from .checkpoints import encoder_from_spec

__all__ = ["ShardedIndex", "EXECUTORS"]

EXECUTORS = ("threads", "ray")


class ShardedIndex:
    """The shards of a sharded index directory, opened as `Index` snapshots (see the module docstring)."""

    def __init__(self, directory: str | Path, manifest: dict, open_shard: Callable, *,
                 executor: str = "threads", verify: bool | str = False, ray_address: str | None = None):
        if executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
        self.directory, self.manifest, self.executor = Path(directory), manifest, executor
        self._open_shard, self._verify, self.ray_address = open_shard, verify, ray_address
        self._shards: list | None = None
        self._engines: dict = {}
        self._snapshot: tuple | None = None
        self._memo: dict = {}

    @classmethod
    def open(cls, directory: str | Path, verify: bool | str = True, executor: str = "threads",
             ray_address: str | None = None, *, open_shard: Callable) -> "ShardedIndex":
        """open_shard(path, verify=...): opens one shard (retriever.index.Index.open)."""
        index = cls(directory, read_shards(directory), open_shard, executor=executor, verify=verify,
                    ray_address=ray_address)
        if executor != "ray":          # with Ray the actors open their shards; here only when asked
            index.shards
        return index

    @property
    def shards(self) -> list:
        """The shards as retriever.index.Index snapshots (opened on first use)."""
        if self._shards is None:
            self._shards = [self._open_shard(self.directory / n, verify=self._verify) for n in self.manifest["shards"]]
        return self._shards

    def check_intact(self) -> None:
        """Raise IndexFormatError once a shard's background verification found damage."""
        for shard in self._shards or ():
            shard.check_intact()

    def reload(self) -> "ShardedIndex":
        for shard in self._shards or ():
            shard.reload()
        return self

    # ---- search ------------------------------------------------------------------------

    @property
    def snapshot(self) -> tuple:
        """What a search reads now: one store per shard (new objects after a shard's commit)."""
        stores = (self.directory,) if self.executor == "ray" else tuple(s.store for s in self.shards)
        if self._snapshot is None or len(stores) != len(self._snapshot) or \
                any(a is not b for a, b in zip(stores, self._snapshot)):
            self._snapshot, self._engines, self._memo = stores, {}, {}     # the old snapshot's are dropped
        return self._snapshot

    @property
    def memo(self) -> dict:
        """Derived data (filter columns) kept with the current snapshot and dropped with it."""
        self.snapshot
        return self._memo

    @property
    def n_centroids(self) -> int:
        first = self.directory / self.manifest["shards"][0] / "manifest.json"     # all shards share the codec
        return int(read_json(first, f"{first}: shard manifest missing")["codec"]["n_centroids"])

    def engine(self, **settings):
        """A ShardSet over the shards (indexes/search/shardset.py; settings: indexes.search.engine.Engine's)."""
        from indexes.search.shardset import ShardSet, ThreadExecutor

        self.snapshot                     # drops the engines of an older snapshot
        key = tuple(sorted((k, str(v)) for k, v in settings.items()))
        if key not in self._engines:
            if self.executor == "ray":
                from indexes.search.ray_executor import RayExecutor

                paths = [str(self.directory / n) for n in self.manifest["shards"]]
                executor = RayExecutor(paths, settings, address=self.ray_address)
                self._engines[key] = ShardSet(executor, executor.sizes, executor.has_lexical)
            else:
                rankers = [s.engine(**settings) for s in self.shards]
                self._engines[key] = ShardSet(ThreadExecutor(rankers), [r.n_positions for r in rankers],
                                              all(r.has_lexical for r in rankers))
        return self._engines[key]

    # ---- documents -----------------------------------------------------------------------

    @property
    def bases(self) -> np.ndarray:
        """(n_shards + 1,) int64: the first global position of each shard, then the total."""
        return part_bases([s.n_positions for s in self.shards])

    @property
    def n_positions(self) -> int:
        return int(self.bases[-1])

    @property
    def encoder_spec(self) -> dict:
        return self.manifest["encoder"]

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def document(self, position: int) -> dict:
        shard, local = locate(self.bases, position)
        if shard < 0:
            raise IndexError(f"position {position} outside 0..{self.n_positions - 1}")
        return self.shards[int(shard)].document(int(local))

    def position_of(self, doc_id: str) -> int | None:
        for base, shard in zip(self.bases, self.shards):
            local = shard.position_of(doc_id)
            if local is not None:
                return int(base + local)
        return None

    # ---- writes --------------------------------------------------------------------------

    def add(self, documents: Sequence[Document], encoder: Encoder | None = None, *, upsert: bool = False,
            batch_size: int | None = None, show_progress: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> "ShardedIndex":
        """Add documents (see the module docstring for where each goes); KeyError on an existing
        id unless upsert, before anything is written."""
        home = {d.id: i for d in documents for i, s in enumerate(self.shards) if s.position_of(d.id) is not None}
        if home and not upsert:
            first = next(iter(home))
            raise KeyError(f"{len(home)} document id(s) already in {self.directory}, e.g. {first!r}; "
                           "use upsert=True to replace them")
        encoder = encoder or self.load_encoder()
        smallest = int(np.argmin([len(s) for s in self.shards]))
        groups: dict[int, list[Document]] = {}
        for d in documents:
            groups.setdefault(home.get(d.id, smallest), []).append(d)
        for shard, docs in sorted(groups.items()):
            self.shards[shard].add(docs, encoder, upsert=upsert, batch_size=batch_size, show_progress=show_progress,
                                   lock_timeout=lock_timeout)
        return self

    def delete(self, doc_ids: Sequence[str], missing_ok: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> int:
        """Tombstone documents by id in whichever shard holds them."""
        ids = [str(i) for i in doc_ids]
        where = {i: s for i in ids for s in self.shards if s.position_of(i) is not None}
        missing = [i for i in ids if i not in where]
        if missing and not missing_ok:
            raise KeyError(f"{len(missing)} id(s) not in {self.directory}, e.g. {missing[0]!r}")
        return sum(s.delete([i for i in ids if where.get(i) is s], lock_timeout=lock_timeout) for s in self.shards
                   if any(where.get(i) is s for i in ids))

    def compact(self, retrain: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> "ShardedIndex":
        for shard in self.shards:
            shard.compact(retrain=retrain, lock_timeout=lock_timeout)
        return self

    def maintain(self, lock_timeout: float = LOCK_TIMEOUT) -> list[dict]:
        return [shard.maintain(lock_timeout=lock_timeout) for shard in self.shards]

    def stats(self) -> dict:
        """Index.stats() summed over the shards (the same keys; growth per shard)."""
        parts = [s.stats() for s in self.shards]
        return {"documents": len(self), "shards": len(self.shards), "recipe": parts[0]["recipe"],
                "stored_vectors": sum(p["stored_vectors"] for p in parts), "bytes": sum(p["bytes"] for p in parts),
                "bytes_search": sum(p["bytes_search"] for p in parts),
                "segments": sum(p["segments"] for p in parts), "encoder": parts[0]["encoder"],
                "generation": max(p["generation"] for p in parts), "growth": [p["growth"] for p in parts]}

    def load_encoder(self, device=None) -> Encoder:
        return encoder_from_spec(self.encoder_spec, device=device)
