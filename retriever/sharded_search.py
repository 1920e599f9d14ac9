"""A sharded index opened for search and change, and scatter-gather search over it.

    index = ShardedIndex.open("DIR")                # DIR/shards.json + one index folder per shard
    searcher = ShardedSearcher(index, encoder)      # same methods and results as Searcher
    searcher.search_batch(["a query"], k=10)        # every shard searches, the top-k lists merge

Global positions are `shard base + position in the shard` (bases in shard order), so results,
filter masks and `document(position)` work as for a single `Index`. All shards share one codec,
so dense scores compare across shards and the merged top-k equals the top-k of one index built
with that codec. Hybrid search merges each side's per-shard lists, then fuses once: BM25 scores
use each shard's own statistics (as Elasticsearch does by default), which compare closely when
shards are even slices of one collection.

Writes: new documents go to the shard with the fewest documents, a replaced (upserted) one to
the shard that holds it, so each document lives in exactly one shard; each shard's commit is
atomic on its own, a batch spread over several shards is not atomic as a whole.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from indexes.sharded import read_shards
from indexes.writes import LOCK_TIMEOUT

from .corpus import Document
from .encoder import Encoder
from .index import Index, encoder_from_spec
from .searcher import (HYBRID_DEPTH, HYBRID_FUSION, MAX_K, SearchResults, Searcher, combined_mask, fuse_rankings,
                       fusion_setting, lexical_rankings)

__all__ = ["ShardedIndex", "ShardedSearcher"]


class ShardedIndex:
    """The shards of a sharded index directory, opened as `Index` snapshots."""

    def __init__(self, directory: str | Path, shards: list[Index], manifest: dict):
        self.directory, self.shards, self.manifest = Path(directory), shards, manifest

    @classmethod
    def open(cls, directory: str | Path, verify: bool | str = True) -> "ShardedIndex":
        manifest = read_shards(directory)
        return cls(directory, [Index.open(Path(directory) / n, verify=verify) for n in manifest["shards"]], manifest)

    def check_intact(self) -> None:
        """Raise IndexFormatError once a shard's background verification found damage."""
        for shard in self.shards:
            shard.check_intact()

    def reload(self) -> "ShardedIndex":
        for shard in self.shards:
            shard.reload()
        return self

    @property
    def bases(self) -> np.ndarray:
        """(n_shards + 1,) int64: the first global position of each shard, then the total."""
        return np.concatenate([[0], np.cumsum([s.n_positions for s in self.shards])]).astype(np.int64)

    @property
    def n_positions(self) -> int:
        return int(self.bases[-1])

    @property
    def encoder_spec(self) -> dict:
        return self.shards[0].encoder_spec

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    def _locate(self, position: int) -> tuple[Index, int]:
        bases = self.bases
        shard = int(np.searchsorted(bases, position, side="right")) - 1
        if not 0 <= position < bases[-1]:
            raise IndexError(f"position {position} outside 0..{bases[-1] - 1}")
        return self.shards[shard], int(position - bases[shard])

    def document(self, position: int) -> dict:
        shard, local = self._locate(position)
        return shard.document(local)

    def position_of(self, doc_id: str) -> int | None:
        for base, shard in zip(self.bases, self.shards):
            local = shard.position_of(doc_id)
            if local is not None:
                return int(base + local)
        return None

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
        sizes = [len(s) for s in self.shards]
        smallest = int(np.argmin(sizes))
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
        parts = [s.stats() for s in self.shards]
        return {"documents": len(self), "shards": len(self.shards), "recipe": parts[0]["recipe"],
                "stored_vectors": sum(p["stored_vectors"] for p in parts), "bytes": sum(p["bytes"] for p in parts),
                "bytes_search": sum(p["bytes_search"] for p in parts),
                "segments": sum(p["segments"] for p in parts), "encoder": parts[0]["encoder"],
                "generation": max(p["generation"] for p in parts)}

    def load_encoder(self, device=None) -> Encoder:
        return encoder_from_spec(self.encoder_spec, device=device)


class ShardedSearcher:
    """Scatter-gather search with the methods and results of `Searcher`.

    index: a ShardedIndex, or its directory. Shards search in threads of this process (torch and
    the compiled kernels release the GIL); with `ray=True` (a directory only) each shard is a Ray
    actor placed anywhere in the cluster (every node must see the directory). Keyword arguments
    are Searcher's (engine, quality, nprobe, hybrid, fusion, alpha, ...)."""

    def __init__(self, index: ShardedIndex | str | Path, encoder: Encoder | None = None, *, ray: bool = False,
                 hybrid: bool | None = None, fusion: str | None = None, alpha: float | None = None,
                 **searcher_kwargs):
        self.engine = searcher_kwargs.get("engine", "token")
        self.fusion, self.alpha = fusion_setting(self.engine, hybrid, fusion, alpha)
        if ray:
            if isinstance(index, ShardedIndex):
                raise ValueError("ray=True takes the sharded index's directory (each actor opens its shard)")
            import ray as ray_

            manifest = read_shards(index)
            self.index = None
            self.encoder = encoder or encoder_from_spec(manifest["encoder"])
            actor = ray_.remote(num_cpus=1)(_Shard)
            shards = [actor.remote(str(Path(index) / n), None, searcher_kwargs, rank)
                      for rank, n in enumerate(manifest["shards"])]
            self._call = lambda method, *args: ray_.get([getattr(a, method).remote(*args) for a in shards])
        else:
            self.index = index if isinstance(index, ShardedIndex) else ShardedIndex.open(index, verify=False)
            self.encoder = encoder or self.index.load_encoder()
            shards = [_Shard(s, self.encoder, searcher_kwargs, rank) for rank, s in enumerate(self.index.shards)]
            self._pool = ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="tessera-shard")
            self._call = lambda method, *args: list(self._pool.map(lambda s: getattr(s, method)(*args), shards))
        self.bases = np.concatenate([[0], np.cumsum(self._call("n_positions"))]).astype(np.int64)

    def document(self, position: int) -> dict:
        if self.index is None:
            raise ValueError("documents of a Ray-searched index: open it with ShardedIndex.open")
        return self.index.document(position)

    def search(self, query: str, k: int = 10, *, filter: dict | None = None,
               ids: Sequence[str] | None = None) -> SearchResults:
        return self.search_batch([query], k, filter=filter, ids=ids)

    def search_batch(self, queries: Sequence[str] | np.ndarray, k: int = 10, term_ids: np.ndarray | None = None,
                     allowed: np.ndarray | None = None, texts: Sequence[str] | None = None, *,
                     filter: dict | None = None, ids: Sequence[str] | None = None) -> SearchResults:
        """Top-k over all shards; the arguments and results are Searcher.search_batch's."""
        if self.index is not None:
            self.index.check_intact()
        if (filter is not None or ids is not None) and self.index is None:
            raise ValueError("filters over a Ray-searched index: open it with ShardedIndex.open")
        if filter is not None or ids is not None:
            allowed = combined_mask(self.index, allowed, filter, ids)
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must lie in 1..{MAX_K}, got {k}")
        if isinstance(queries, np.ndarray):
            embeddings = queries
        else:
            texts = list(queries)
            embeddings = self.encoder.encode_queries(texts)
            term_ids = self.encoder.query_term_ids(texts) if self.engine in ("vocab", "union") else None
        fusion = self.fusion
        if fusion is None:
            fusion = HYBRID_FUSION if texts is not None and all(self._call("has_lexical")) else "none"
        if fusion != "none" and texts is None:
            raise ValueError(f"fusion {fusion!r} needs the query texts (texts=) with pre-encoded queries")
        masks = [None] * (len(self.bases) - 1)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self.bases[-1],):
                raise ValueError(f"allowed must be ({self.bases[-1]},) bool, got shape {allowed.shape}")
            masks = [allowed[a:b] for a, b in zip(self.bases[:-1], self.bases[1:])]
        depth = k if fusion == "none" else max(k, HYBRID_DEPTH)
        dense = None
        if fusion != "lexical":
            parts = self._call("dense", embeddings, depth, term_ids, masks)
            dense = self._merge([p[0] for p in parts], [p[1] for p in parts], depth)
        if fusion == "none":
            scores, positions = dense
        else:
            scores, positions = self._hybrid(dense, list(texts), k, depth, masks, fusion)
        doc_ids = self._call_ids(positions)
        return SearchResults(scores=scores, indices=positions, doc_ids=doc_ids)

    def _merge(self, scores: list[np.ndarray], positions: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-shard (n, k_s) results -> global top-k (ties by global position, as one index orders them)."""
        all_scores = np.concatenate(scores, axis=1)
        all_positions = np.concatenate([np.where(p >= 0, p + self.bases[i], -1) for i, p in enumerate(positions)],
                                       axis=1)
        top_scores = np.full((len(all_scores), k), -np.inf, dtype=np.float32)
        top_positions = np.full((len(all_scores), k), -1, dtype=np.int64)
        for q in range(len(all_scores)):
            keys = np.lexsort((np.where(all_positions[q] >= 0, all_positions[q], np.iinfo(np.int64).max),
                               -all_scores[q]))[:k]
            top_scores[q, :len(keys)] = all_scores[q, keys]
            top_positions[q, :len(keys)] = all_positions[q, keys]
        return top_scores, top_positions

    def _hybrid(self, dense, texts: list[str], k: int, depth: int, masks, fusion: str):
        lexical = self._call("bm25", texts, depth, masks)
        merged = self._merge([p[0] for p in lexical], [p[1] for p in lexical], depth)
        return fuse_rankings(dense, merged, k, fusion, self.alpha)

    def _call_ids(self, positions: np.ndarray) -> list[list[str]]:
        per_shard = self._call("ids", [np.where((positions >= a) & (positions < b), positions - a, -1)
                                       for a, b in zip(self.bases[:-1], self.bases[1:])])
        return [[next(ids[q][j] for ids in per_shard if ids[q][j] is not None)
                 for j in range(positions.shape[1]) if positions[q, j] >= 0] for q in range(len(positions))]


class _Shard:
    """One shard searched with pre-encoded queries (in a thread, or as the body of a Ray actor)."""

    def __init__(self, index: Index | str, encoder: Encoder | None, searcher_kwargs: dict, rank: int):
        self.index = index if isinstance(index, Index) else Index.open(index, verify=False)
        self.searcher = Searcher(self.index, encoder=encoder, hybrid=False, **searcher_kwargs)
        self.rank = rank          # picks this shard's part of per-shard arguments

    def n_positions(self) -> int:
        return self.index.n_positions

    def has_lexical(self) -> bool:
        return all(s.has_lexical for s in self.index.store.segments)

    def dense(self, embeddings, k, term_ids, masks):
        mask = masks[self.rank]
        r = self.searcher.search_batch(embeddings, k=k, term_ids=term_ids, allowed=mask)
        return r.scores, r.indices

    def bm25(self, texts, depth, masks):
        return lexical_rankings(self.index.store, texts, depth, masks[self.rank])

    def ids(self, local_positions):
        rows = local_positions[self.rank]
        return [[self.index.document(int(p))["id"] if p >= 0 else None for p in row] for row in rows]
