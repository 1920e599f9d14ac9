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
from typing import Sequence

import numpy as np


__all__ = ["LEXICAL_FILES", "term_hashes", "build_lexical_lists"]

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
