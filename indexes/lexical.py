"""Lexical (BM25) lists stored in every segment, so hybrid search needs nothing outside the index.

Terms are words: lower-cased `\\w\\w+` runs (the tokenisation of bm25s and scikit-learn), minus
Lucene's 33 English stopwords, each named by the CRC32 of its UTF-8 bytes (no vocabulary file to
keep in step with adds; a collision needs two words with one 32-bit hash). Per segment, in
CSR form by term (docs/index-format.md):

    lex_terms.npy        (n_terms,) uint32       distinct term hashes, ascending
    lex_offsets.npy      (n_terms + 1,) int64    term i's postings are [off[i], off[i+1])
    lex_docs.npy         (n_postings,) uint32    document (within the segment), ascending per term
    lex_tf.npy           (n_postings,) uint16    occurrences of the term in that document
    lex_doc_lengths.npy  (n_docs,) uint32        terms per document (stopwords excluded)

Scores are BM25 with collection statistics over every segment (N, document frequency and mean
length count deleted documents until a compaction drops them, as Lucene does), or over every
shard of a shard set (`LexicalStats.merge`). A batch of queries is scored at once, arrays end to
end: `LexicalQueries.from_texts(texts)` -> `lexical_stats` -> `bm25_batch`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .positions import expand_ranges

__all__ = ["LEXICAL_FILES", "term_hashes", "build_lexical_lists", "LexicalQueries", "LexicalStats", "lexical_stats",
           "bm25_batch", "store_lexical_stats", "store_bm25"]

LEXICAL_FILES = ("lex_terms.npy", "lex_offsets.npy", "lex_docs.npy", "lex_tf.npy", "lex_doc_lengths.npy")
_WORD = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset("a an and are as at be but by for if in into is it no not of on or such that the their "
                       "then there these they this to was will with".split())


def term_hashes(text: str) -> np.ndarray:
    """(n,) uint32 term hashes of a text, in order, stopwords left out."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
    return np.fromiter((zlib.crc32(w.encode("utf-8", "surrogatepass")) for w in words), dtype=np.uint32,
                       count=len(words))


def build_lexical_lists(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The five lexical arrays (module docstring) of one segment's documents, in order."""
    per_doc = [term_hashes(t) for t in texts]
    lengths = np.array([len(t) for t in per_doc], dtype=np.uint32)
    terms = np.concatenate(per_doc) if per_doc else np.zeros(0, np.uint32)
    docs = np.repeat(np.arange(len(texts), dtype=np.uint64), lengths.astype(np.int64))
    # One key per (term, document): term in the high 32 bits so sorting groups by term, then document.
    keys, tf = np.unique((terms.astype(np.uint64) << np.uint64(32)) | docs, return_counts=True)
    pair_terms = (keys >> np.uint64(32)).astype(np.uint32)
    unique_terms, counts = np.unique(pair_terms, return_counts=True)
    return {"lex_terms.npy": unique_terms,
            "lex_offsets.npy": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "lex_docs.npy": (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "lex_tf.npy": np.minimum(tf, np.iinfo(np.uint16).max).astype(np.uint16),
            "lex_doc_lengths.npy": lengths}


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
        total_length += int(np.asarray(seg.lex_doc_lengths, dtype=np.int64).sum())
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
    from .files import IndexFormatError

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
