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
length count deleted documents until a compaction drops them, as Lucene does).
"""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

__all__ = ["LEXICAL_FILES", "term_hashes", "build_lexical_lists", "bm25_search"]

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


def bm25_search(segments: Sequence, bases: np.ndarray, alive: np.ndarray, query: str, k: int, *,
                k1: float = 1.2, b: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Top-k live documents by BM25 for one query text.

    segments: objects with the lexical arrays as attributes (`lex_terms`, ...); bases:
    (n_segments + 1,) first global position of each segment; alive: (n_positions,) bool.
    Returns (scores (c,) float32, positions (c,) int64), best first, c <= k; only documents
    sharing a term with the query (score > 0)."""
    terms, repeats = np.unique(term_hashes(query), return_counts=True)
    n_positions = int(bases[-1])
    if len(terms) == 0 or n_positions == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    found = []                                   # per segment: (term index, global docs, tf, doc lengths)
    df = np.zeros(len(terms), dtype=np.int64)
    total_length = 0
    for s, seg in enumerate(segments):
        lex_terms = np.asarray(seg.lex_terms)
        total_length += int(np.asarray(seg.lex_doc_lengths, dtype=np.int64).sum())
        at = np.searchsorted(lex_terms, terms)
        hit = at < len(lex_terms)
        hit[hit] = lex_terms[at[hit]] == terms[hit]
        offsets = np.asarray(seg.lex_offsets)
        starts, ends = offsets[at[hit]], offsets[at[hit] + 1]
        df[hit] += ends - starts
        if not hit.any():
            continue
        lengths = ends - starts
        rows = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths) + np.arange(lengths.sum())
        local = np.asarray(seg.lex_docs)[rows].astype(np.int64)
        found.append((np.repeat(np.flatnonzero(hit), lengths), local + int(bases[s]),
                      np.asarray(seg.lex_tf)[rows].astype(np.float32),
                      np.asarray(seg.lex_doc_lengths)[local].astype(np.float32)))
    if not found:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    term_of, docs, tf, doc_len = (np.concatenate(parts) for parts in zip(*found))
    idf = np.log1p((n_positions - df + 0.5) / (df + 0.5)).astype(np.float32)       # Lucene's BM25 idf
    avgdl = max(total_length / n_positions, 1e-9)
    weight = (idf * repeats)[term_of] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * doc_len / avgdl))
    unique_docs, column = np.unique(docs, return_inverse=True)
    scores = np.bincount(column, weights=weight, minlength=len(unique_docs)).astype(np.float32)
    keep = alive[unique_docs]
    unique_docs, scores = unique_docs[keep], scores[keep]
    top = np.argsort(-scores, kind="stable")[:k]
    return scores[top], unique_docs[top]
