"""Token retrieval over centroid inverted lists (XTR / WARP style), then exact rescoring.

Stage 1, candidates: each query token scores every centroid, probes its `nprobe` best lists
and scores the vectors found there as <q, centroid> + <q, residual> — the residual part read
from a per-token lookup table over packed residual bytes, so no vector is decompressed. Per
query token and document the best retrieved score counts; a token that retrieved none of a
document's vectors contributes an imputed score (missing-similarity imputation): the score of
the best centroid it did not probe, or with `k_prime`, its k'-th best retrieved score if lower.
Documents are ranked by the sum; the top `n_candidates` go on.

Stage 2, rescoring: exact MaxSim of the full query over every vector of each candidate,
decompressed on the device (the same arithmetic as the exhaustive reference).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from indexes.codec.residual import ResidualCodec
from indexes.search.maxsim import maxsim_scores
from indexes.positions import expand_ranges
from indexes.storage.store import IndexStore

__all__ = ["residual_tables", "residual_scores", "query_tables", "score_pairs", "rank_documents",
           "retrieve_candidates", "rescore"]


def residual_tables(codec: ResidualCodec, queries: torch.Tensor) -> torch.Tensor:
    """(n_tokens, dim) query vectors -> (n_bytes, n_tokens, 256) float32, where entry [p, i, b]
    is <q_i, the residual dimensions that byte value b encodes at byte position p>. Byte position
    comes first so that each position's table is one contiguous block."""
    _, table = codec.device_tables(queries.device)                     # (n_bytes, 256, per_byte)
    per_byte = table.shape[2]
    q = queries.reshape(queries.shape[0], -1, per_byte)                  # (n_tokens, n_bytes, per_byte)
    return torch.einsum("pbk,ipk->pib", table, q).contiguous()


def residual_scores(tables: torch.Tensor, tokens: np.ndarray, packed: np.ndarray) -> torch.Tensor:
    """<q_token, residual> for P (token, vector) pairs: tables (n_bytes, n_tokens, 256) from
    `residual_tables`, tokens (P,) int, packed (P, n_bytes) uint8. Returns (P,) float32."""
    n_bytes, n_tokens, _ = tables.shape
    if tables.device.type == "cpu":
        # One pass per byte position, numpy `take` on that position's flat table (n_tokens * 256
        # floats, cache-resident): several times faster on the CPU than one big torch gather.
        by_position = tables.numpy().reshape(n_bytes, -1)
        base = tokens.astype(np.int32) * 256
        out = np.zeros(len(tokens), dtype=np.float32)
        for p, column in _byte_columns(packed):
            out += np.take(by_position[p], base + column)
        return torch.from_numpy(out)
    return _residual_scores_torch(tables, tokens, packed)


def _byte_columns(packed: np.ndarray):
    """Yield (p, packed[:, p]) for each byte position, read cache-friendly.

    Transposing (P, n_bytes) uint8 byte by byte is slow in numpy; transposing it as 8-byte words
    is several times faster, and then each word row holds 8 positions interleaved, a block small
    enough to stay in cache while its 8 columns are read."""
    n, n_bytes = packed.shape
    if n_bytes % 8 or not packed.flags["C_CONTIGUOUS"] or sys.byteorder != "little":
        columns = np.ascontiguousarray(packed.T)
        yield from enumerate(columns)
        return
    words = np.ascontiguousarray(packed.view(np.uint64).T)               # (n_bytes / 8, P)
    for j, word in enumerate(words):
        block = word.view(np.uint8).reshape(n, 8)                         # little-endian: byte b is position 8j + b
        for b in range(8):
            yield 8 * j + b, block[:, b]


def _residual_scores_torch(tables: torch.Tensor, tokens: np.ndarray, packed: np.ndarray) -> torch.Tensor:
    """`residual_scores` as one gather on the tables' device (the accelerator path)."""
    n_bytes, n_tokens, _ = tables.shape
    tok = torch.from_numpy(tokens.astype(np.int64)).to(tables.device)
    codes = torch.from_numpy(packed).to(tables.device).long()
    flat_index = (torch.arange(n_bytes, device=tables.device) * n_tokens + tok[:, None]) * 256 + codes
    return tables.reshape(-1)[flat_index].sum(dim=1)


def query_tables(codec: ResidualCodec, query: torch.Tensor,
                 residuals: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-query scoring tables: centroid scores (n_tokens, n_centroids) and residual tables
    (see `residual_tables`; None for a float16 index, whose stored vectors are the vectors, or
    with residuals=False: vectors are then scored by their centroid alone, as PLAID's first stage)."""
    centroids, _ = codec.device_tables(query.device)
    return query @ centroids.T, (residual_tables(codec, query) if codec.nbits != 16 and residuals else None)


def score_pairs(store: IndexStore, s: int, tokens: np.ndarray, vector_ids: np.ndarray, query: torch.Tensor,
                tables: tuple[torch.Tensor, torch.Tensor | None]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Approximate <query[token], vector> for P (token, vector) pairs of segment s, as
    <q, centroid> + <q, residual> read from `query_tables`. tokens, vector_ids: (P,) int64.
    Returns (token, global document position, score), each (P,) on the query's device."""
    segment = store.segments[s]
    centroid_scores, residual = tables
    device = centroid_scores.device
    tok = torch.from_numpy(tokens).to(device)
    codes = torch.from_numpy(segment.vector_codes(vector_ids).astype(np.int64)).to(device)
    scores = centroid_scores[tok, codes]
    if residual is not None and len(vector_ids):
        packed = segment.vector_residuals(vector_ids)                       # (P, n_bytes) uint8
        scores = scores + residual_scores(residual, tokens, packed)
    elif store.codec.nbits == 16 and len(vector_ids):  # fp16 index: the stored vectors are the vectors
        stored = torch.from_numpy(segment.vector_residuals(vector_ids)).to(device).float()
        scores = (stored * query[tok]).sum(dim=1)
    docs = torch.from_numpy(segment.doc_of_vector[vector_ids].astype(np.int64) + int(store.segment_bases[s]))
    return tok, docs.to(device), scores


def _probe_segment(store: IndexStore, s: int, probed: np.ndarray, query: torch.Tensor,
                   tables: tuple[torch.Tensor, torch.Tensor | None]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(token, document position, approximate score) for every vector in the probed lists."""
    segment = store.segments[s]
    offsets = np.asarray(segment.ivf_offsets)
    starts, ends = offsets[probed], offsets[probed + 1]                   # (n_tokens, nprobe)
    lengths = (ends - starts).ravel()
    rows = expand_ranges(starts.ravel(), lengths)
    tokens = np.repeat(np.repeat(np.arange(probed.shape[0]), probed.shape[1]), lengths)
    vector_ids = np.asarray(segment.ivf_vector_ids)[rows].astype(np.int64)
    return score_pairs(store, s, tokens, vector_ids, query, tables)


def retrieve_candidates(store: IndexStore, query: torch.Tensor, *, nprobe: int = 8, k_prime: int | None = None,
                        n_candidates: int = 256, residuals: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Candidate documents for one query by token retrieval.

    query: (n_tokens, dim) float32 on the scoring device, projected like the index, real tokens
    only (no all-zero padding rows). Returns (positions (c,) int64, first-stage scores (c,)
    float32), best first, c <= n_candidates; deleted documents never appear.
    """
    codec = store.codec
    device = query.device
    tables = query_tables(codec, query, residuals)
    centroid_scores = tables[0]                                           # (n_tokens, n_centroids)
    nprobe = min(nprobe, codec.n_centroids)
    top = centroid_scores.topk(min(nprobe + 1, codec.n_centroids), dim=1)
    probed = top.indices[:, :nprobe].cpu().numpy()
    # Imputation: an unretrieved vector sits in an unprobed list, whose centroid scores at most this.
    # With every list probed nothing is unretrieved (unless k' drops pairs, which sets its own bound).
    missing = top.values[:, nprobe] if top.values.shape[1] > nprobe else torch.full_like(top.values[:, 0], torch.inf)
    parts = [_probe_segment(store, s, probed, query, tables) for s in range(len(store.segments))]
    tok = torch.cat([p[0] for p in parts])
    docs = torch.cat([p[1] for p in parts])
    scores = torch.cat([p[2] for p in parts])
    alive = torch.from_numpy(store.alive).to(device)[docs]
    tok, docs, scores = tok[alive], docs[alive], scores[alive]
    n_tokens = query.shape[0]
    if k_prime is not None and len(scores):
        # Keep each token's k' best (token, vector) scores; impute at most its k'-th score.
        order = torch.argsort(scores, descending=True)
        order = order[torch.argsort(tok[order], stable=True)]            # by token, then score descending
        tok, docs, scores = tok[order], docs[order], scores[order]
        counts = torch.bincount(tok, minlength=n_tokens)
        rank = torch.arange(len(tok), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        kth = torch.full((n_tokens,), torch.inf, device=device)
        at_k = rank == k_prime - 1
        kth[tok[at_k]] = scores[at_k]
        keep = rank < k_prime
        tok, docs, scores = tok[keep], docs[keep], scores[keep]
        missing = torch.minimum(missing, kth)
    return rank_documents(tok, docs, scores, n_tokens, missing, n_candidates)


def rank_documents(tok: torch.Tensor, docs: torch.Tensor, scores: torch.Tensor, n_tokens: int,
                   missing: torch.Tensor, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum over query tokens of each document's best (token, vector) score; a token with no pair
    for a document contributes missing[token]. tok, docs, scores: (P,); missing: (n_tokens,).
    Returns the top n_candidates (positions, scores), best first."""
    if len(docs) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    unique_docs, column = torch.unique(docs, return_inverse=True)
    best = torch.full((n_tokens * len(unique_docs),), -torch.inf, device=scores.device)
    best = best.scatter_reduce(0, tok * len(unique_docs) + column, scores, "amax").reshape(n_tokens, -1)
    best = torch.where(torch.isinf(best), missing[:, None], best)          # (n_tokens, n_unique_docs)
    top_scores, top_idx = best.sum(dim=0).topk(min(n_candidates, len(unique_docs)))
    return unique_docs[top_idx].cpu().numpy(), top_scores.cpu().numpy().astype(np.float32)


def rescore(store: IndexStore, queries: torch.Tensor, positions: np.ndarray,
            aggregation: str = "maxp") -> torch.Tensor:
    """Exact MaxSim of queries (n_queries, q_len, dim) against documents at `positions` (c,),
    passage by passage, a document scored by its best passage ("maxp") or over all its vectors
    ("union"; indexes/search/passages.py).

    Returns (n_queries, c) float32 on the queries' device.
    """
    device = queries.device
    if len(positions) == 0:
        return torch.zeros((queries.shape[0], 0), device=device)
    if aggregation not in ("maxp", "union"):
        raise ValueError(f"the reference rescoring aggregates by 'maxp' or 'union', got {aggregation!r}")
    vectors, lengths, passages = [], [], []
    segment_of = np.searchsorted(store.segment_bases, positions, side="right") - 1
    order = np.argsort(segment_of, kind="stable")
    for s in np.unique(segment_of):
        segment = store.segments[s]
        local = positions[segment_of == s] - int(store.segment_bases[s])
        starts, unit_lengths, counts = segment.passages_of(local)
        rows = expand_ranges(starts, unit_lengths)
        vectors.append(store.codec.decompress(segment.vector_codes(rows), segment.vector_residuals(rows), device))
        if aggregation == "union":
            unit_lengths, counts = np.add.reduceat(unit_lengths, np.cumsum(counts) - counts), np.ones_like(counts)
        lengths.append(unit_lengths)
        passages.append(counts)
    scores = maxsim_scores(queries, torch.cat(vectors), torch.from_numpy(np.concatenate(lengths)).to(device),
                           torch.from_numpy(np.concatenate(passages)).to(device))
    # Undo the grouping by segment so columns follow `positions`.
    out = torch.empty_like(scores)
    out[:, torch.from_numpy(order).to(device)] = scores
    return out
