"""Vocabulary-term inverted lists (COIL / SLIM style): exact-term contextual matching.

Each segment stores, per vocabulary id, the stored vectors that stand for an occurrence of that
term (a pooled vector stands for all of its member tokens), in CSR form:

    vocab_offsets.npy     (vocab_size + 1,) int64   term t's list is vocab_vector_ids[off[t]:off[t+1]]
    vocab_vector_ids.npy  (n_pairs,) uint32          vector ids within the segment, ascending per term

A query term probes only its own term's list; each vector found there is scored against that
query token (centroid + residual, no decompression), a document keeps its best score per query
token, and the sum over query tokens ranks documents. A query token whose term a document does
not contain contributes nothing: exact-term matching, as in COIL, so no imputation.
"""

from __future__ import annotations

import numpy as np
import torch

from indexes.positions import expand_ranges
from indexes.search.retrieval import query_tables, rank_documents, score_pairs   # shared with centroid retrieval

__all__ = ["retrieve_by_term"]


def retrieve_by_term(store, query: torch.Tensor, term_ids: np.ndarray, *,
                     n_candidates: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Candidate documents of one query from the vocabulary lists of its terms.

    query: (n_tokens, dim) float32, projected like the index; term_ids: (n_tokens,) int, the
    vocabulary id of each row, -1 for rows that stand for no term (they probe nothing).
    Returns (positions (c,) int64, first-stage scores (c,) float32), best first, c <= n_candidates.
    """
    term_ids = np.asarray(term_ids, dtype=np.int64)
    if len(term_ids) != query.shape[0]:
        raise ValueError(f"{len(term_ids)} term ids for {query.shape[0]} query rows")
    rows_with_term = np.flatnonzero(term_ids >= 0)
    tables = query_tables(store.codec, query)
    parts = []
    for s, segment in enumerate(store.segments):
        if segment.vocab_offsets is None:
            raise ValueError(f"{segment.folder}: no vocabulary lists (index format version 1); "
                             "compact the index (Index.compact) or rebuild it to add them")
        offsets = np.asarray(segment.vocab_offsets)
        terms = term_ids[rows_with_term]
        known = terms < len(offsets) - 1              # an id past the vocabulary has an empty list
        terms = np.where(known, terms, 0)
        starts, lengths = offsets[terms], np.where(known, offsets[terms + 1] - offsets[terms], 0)
        vector_ids = np.asarray(segment.vocab_vector_ids)[expand_ranges(starts, lengths)].astype(np.int64)
        tokens = np.repeat(rows_with_term, lengths)
        parts.append(score_pairs(store, s, tokens, vector_ids, query, tables))
    tok = torch.cat([p[0] for p in parts])
    docs = torch.cat([p[1] for p in parts])
    scores = torch.cat([p[2] for p in parts])
    alive = torch.from_numpy(store.alive).to(query.device)[docs]
    tok, docs, scores = tok[alive], docs[alive], scores[alive]
    # Exact-term matching: a query token that finds no vector of its term in a document adds 0.
    return rank_documents(tok, docs, scores, query.shape[0], torch.zeros(query.shape[0], device=query.device),
                          n_candidates)
