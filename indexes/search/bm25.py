"""BM25 over the lexical lists of a snapshot or a shard set, a batch of queries at once, arrays end
to end: `LexicalQueries.from_texts(texts)` -> `lexical_stats` (add them up over shards) -> `bm25_batch`.
The lists and their format: indexes/storage/lexical_lists.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from indexes.positions import expand_ranges
from indexes.storage.lexical_lists import term_hashes

__all__ = ["LexicalQueries", "LexicalStats", "lexical_stats", "bm25_batch", "store_lexical_stats", "store_bm25"]


@dataclass
class LexicalQueries:
    """The terms of a batch of query texts, in CSR form: query i's distinct term hashes are
    terms[offsets[i]:offsets[i+1]] (ascending), each repeated repeats[...] times in its text."""

    offsets: np.ndarray      # (n + 1,) int64
    terms: np.ndarray        # (t,) uint32
    repeats: np.ndarray      # (t,) float32

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> "LexicalQueries":
        per_query = [np.unique(term_hashes(t), return_counts=True) for t in texts]
        counts = np.array([len(t) for t, _ in per_query], dtype=np.int64)
        empty = np.zeros(0, np.uint32)
        return cls(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                   np.concatenate([t for t, _ in per_query] or [empty]).astype(np.uint32),
                   np.concatenate([r for _, r in per_query] or [empty]).astype(np.float32))

    def __len__(self) -> int:
        return len(self.offsets) - 1


@dataclass
class LexicalStats:
    """Collection statistics BM25 needs for a batch's terms: positions (N), summed document
    lengths, and df (t,) int64 aligned with LexicalQueries.terms. Statistics of several shards
    add up (`merge`) to those of one index holding all their documents, so shard scores match."""

    n_positions: int
    total_length: int
    df: np.ndarray

    @staticmethod
    def merge(parts: Sequence["LexicalStats"]) -> "LexicalStats":
        return LexicalStats(sum(p.n_positions for p in parts), sum(p.total_length for p in parts),
                            np.sum([p.df for p in parts], axis=0).astype(np.int64))


def _find_terms(seg, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hit (t,) bool, starts, ends) of the postings of each term present in one segment."""
    lex_terms = np.asarray(seg.lex_terms)
    at = np.searchsorted(lex_terms, terms)
    hit = at < len(lex_terms)
    hit[hit] = lex_terms[at[hit]] == terms[hit]
    offsets = np.asarray(seg.lex_offsets)
    return hit, offsets[at[hit]], offsets[at[hit] + 1]


def lexical_stats(segments: Sequence, n_positions: int, queries: LexicalQueries) -> LexicalStats:
    """The statistics of `queries`' terms over segments (objects with the lexical arrays)."""
    df = np.zeros(len(queries.terms), dtype=np.int64)
    total_length = 0
    for seg in segments:
        total = getattr(seg, "lex_total_length", None)     # a Segment keeps it; other holders sum each time
        total_length += int(np.asarray(seg.lex_doc_lengths, dtype=np.int64).sum()) if total is None else total
        hit, starts, ends = _find_terms(seg, queries.terms)
        df[hit] += ends - starts
    return LexicalStats(int(n_positions), total_length, df)


def bm25_batch(segments: Sequence, bases: np.ndarray, alive: np.ndarray, queries: LexicalQueries,
               stats: LexicalStats, depth: int, allowed: np.ndarray | None = None, *,
               k1: float = 1.2, b: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Top-`depth` live (and allowed) documents by BM25 for every query of a batch at once.

    segments: objects with the lexical arrays as attributes (`lex_terms`, ...); bases:
    (n_segments + 1,) first position of each segment; alive, allowed: (n_positions,) bool.
    stats: this batch's statistics (of these segments, or merged over every shard of a set).
    Returns scores (n, depth) float32 padded with -inf and positions (n, depth) int64 padded
    with -1, best first, ties by position; only documents sharing a term with the query."""
    n = len(queries)
    scores = np.full((n, depth), -np.inf, dtype=np.float32)
    positions = np.full((n, depth), -1, dtype=np.int64)
    n_positions = int(bases[-1])
    if len(queries.terms) == 0 or n_positions == 0 or stats.n_positions == 0:
        return scores, positions
    query_of_term = np.repeat(np.arange(n, dtype=np.int64), np.diff(queries.offsets))
    idf = np.log1p((stats.n_positions - stats.df + 0.5) / (stats.df + 0.5)).astype(np.float32)   # Lucene's
    term_weight = idf * queries.repeats
    avgdl = max(stats.total_length / stats.n_positions, 1e-9)
    keys, weights = [], []
    for s, seg in enumerate(segments):
        hit, starts, ends = _find_terms(seg, queries.terms)
        lengths = ends - starts
        if not lengths.sum():
            continue
        rows = expand_ranges(starts, lengths)
        term = np.repeat(np.flatnonzero(hit), lengths)
        local = np.asarray(seg.lex_docs)[rows].astype(np.int64)
        tf = np.asarray(seg.lex_tf)[rows].astype(np.float32)
        doc_len = np.asarray(seg.lex_doc_lengths)[local].astype(np.float32)
        weights.append(term_weight[term] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avgdl)))
        keys.append(query_of_term[term] * n_positions + local + int(bases[s]))
    if not keys:
        return scores, positions
    # One key per (query, document): sum its terms' weights, keep live and allowed documents.
    unique_keys, column = np.unique(np.concatenate(keys), return_inverse=True)
    summed = np.bincount(column, weights=np.concatenate(weights), minlength=len(unique_keys)).astype(np.float32)
    query, doc = np.divmod(unique_keys, n_positions)
    keep = alive[doc] if allowed is None else alive[doc] & allowed[doc]
    query, doc, summed = query[keep], doc[keep], summed[keep]
    order = np.lexsort((doc, -summed, query))            # by query, best first, ties by position
    query, doc, summed = query[order], doc[order], summed[order]
    rank = np.arange(len(query)) - np.searchsorted(query, query, side="left")
    top = rank < depth
    scores[query[top], rank[top]] = summed[top]
    positions[query[top], rank[top]] = doc[top]
    return scores, positions


def lexical_segments(store) -> list:
    """The segments of an IndexStore, each with lexical lists (IndexFormatError naming the first without)."""
    from indexes.files import IndexFormatError

    old = next((s.folder for s in store.segments if not s.has_lexical), None)
    if old is not None:
        raise IndexFormatError(f"{old}: no lexical lists (written by index format version < 3); "
                               "compact the index (Index.compact) or rebuild it to add them")
    return store.segments


def store_lexical_stats(store, queries: LexicalQueries) -> LexicalStats:
    """BM25 statistics of a batch's terms over one index snapshot (an IndexStore)."""
    return lexical_stats(lexical_segments(store), store.n_positions, queries)


def store_bm25(store, queries: LexicalQueries, depth: int, allowed: np.ndarray | None = None,
               stats: LexicalStats | None = None) -> tuple[np.ndarray, np.ndarray]:
    """bm25_batch over one snapshot's live documents; stats: by default the snapshot's own."""
    stats = store_lexical_stats(store, queries) if stats is None else stats
    return bm25_batch(lexical_segments(store), store.segment_bases, store.alive, queries, stats, depth, allowed)
