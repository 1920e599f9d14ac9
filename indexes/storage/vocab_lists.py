"""Building a segment's vocabulary-term lists (indexes/search/vocab.py searches them; the format is
in docs/index-format.md). Build-time only: numpy, no search code."""

from __future__ import annotations

import numpy as np

__all__ = ["build_vocab_lists"]


def build_vocab_lists(member_token_ids: np.ndarray, member_counts: np.ndarray,
                      vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Term -> stored vectors lists of one segment.

    member_token_ids: (n_members,) int, the token ids each stored vector stands for, in vector
    order; member_counts: (m,) how many members each stored vector has.
    Returns offsets (vocab_size + 1,) int64 and vector ids (n_pairs,) uint32, one entry per
    distinct (term, vector) pair, sorted by term then vector.
    """
    m = len(member_counts)
    vector_of = np.repeat(np.arange(m, dtype=np.int64), np.asarray(member_counts, dtype=np.int64))
    terms = np.asarray(member_token_ids, dtype=np.int64)
    if len(terms) and (terms.min() < 0 or terms.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{terms.min()}, {terms.max()}]")
    pairs = np.unique(terms * max(m, 1) + vector_of)
    pair_terms = pairs // max(m, 1)
    counts = np.bincount(pair_terms, minlength=vocab_size)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return offsets, (pairs % max(m, 1)).astype(np.uint32)
