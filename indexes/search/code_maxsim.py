"""Exact MaxSim of candidates from their stored codes, without decoding a vector to float32.

A stored vector is v = normalize(c + r): c its centroid, r its residual, whose packed bytes each
decode to a few dimensions (indexes/codec/residual.py). So for a query token q

    <q, v> = (<q, c> + sum over bytes p of <q, what byte value r_p decodes to at p>) / |c + r|

The first term is read from the query's centroid scores (C, T), the second from per-query lookup
tables (n_bytes * 256, T): row p * 256 + b holds, for every query token, the dot product with the
dimensions byte value b decodes to at position p. A vector costs one table row per byte (T
contiguous floats, added for all tokens at once) instead of a decode and a T-column product; the
norm |c + r| is computed from the codes on the way (it does not depend on the query). The result
equals decode-then-MaxSim up to float rounding (tests/test_code_maxsim.py holds them together).

    tables = rescoring_tables(codec, query)                  # (n_bytes * 256, T) float32
    maxsim_codes(rows, starts, lengths, codes, residuals, centroid_scores_t, tables, centroids,
                 byte_table, inverse_norms, scratch, out)                               # out[d] = MaxSim of candidate d
"""

from __future__ import annotations

import numba as nb
import numpy as np
import torch

from indexes.search.kernels import _jit, _pjit, _prange


__all__ = ["rescoring_tables", "maxsim_codes", "maxsim_codes_parallel"]


def rescoring_tables(codec, query: np.ndarray) -> np.ndarray:
    """(n_bytes * 256, T) float32: entry [p * 256 + b, t] = <q_t, what byte value b decodes to at
    byte position p>, for a (T, dim) float32 query."""
    _, table = codec.device_tables("cpu")                                    # (n_bytes, 256, per_byte)
    per_byte = table.shape[2]
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)).reshape(len(query), -1, per_byte)
    return torch.einsum("pbk,tpk->pbt", table, q).reshape(-1, len(query)).contiguous().numpy()


def _inverse_norm(centroid, packed, byte_table):
    """1 / |c + r| of one stored vector, from its centroid row and packed residual bytes."""
    n_bytes = packed.shape[0]
    per_byte = byte_table.shape[1]
    norm = np.float32(0.0)
    for p in range(n_bytes):
        decoded = byte_table[p * 256 + packed[p]]
        for j in range(per_byte):
            x = centroid[p * per_byte + j] + decoded[j]
            norm += x * x
    return np.float32(1.0) / max(np.sqrt(norm), np.float32(1e-12))


def _maxsim_codes(rows, starts, lengths, codes, residuals, centroid_scores_t, tables, centroids, byte_table,
                  inverse_norms, scratch, out):
    """out[d] = sum over query tokens of the best <q_t, v> over candidate d's vectors.

    rows: (n_rows,) int64 slots in codes / residuals, candidate after candidate; starts, lengths:
    (n,) int64 where each candidate's slots begin in rows, and how many; codes (m,) centroid ids,
    residuals (m, n_bytes) uint8; centroid_scores_t: (C, T) float32 <q_t, centroid c>; tables:
    (n_bytes * 256, T) float32 (rescoring_tables); centroids (C, dim), byte_table (n_bytes * 256,
    per_byte) float32; inverse_norms: (m,) float32 1 / |c + r| per slot, 0 where not known yet
    (filled here: the value depends on the stored codes only, so every query may reuse it);
    scratch: (n, 2, T) float32 workspace; out: (n,) float32."""
    n_tokens = centroid_scores_t.shape[1]
    n_bytes = residuals.shape[1]
    for d in _prange(len(starts)):
        best = scratch[d, 0]
        s = scratch[d, 1]
        for t in range(n_tokens):
            best[t] = -np.inf
        for i in range(starts[d], starts[d] + lengths[d]):
            slot = rows[i]
            code = codes[slot]
            packed = residuals[slot]
            scale = inverse_norms[slot]
            if scale == 0.0:
                scale = _inverse_norm(centroids[code], packed, byte_table)
                inverse_norms[slot] = scale       # the same value whichever thread writes it
            cs = centroid_scores_t[code]
            for t in range(n_tokens):
                s[t] = cs[t]
            for p in range(n_bytes):
                row = tables[p * 256 + packed[p]]
                for t in range(n_tokens):            # this byte's share of every token's score
                    s[t] += row[t]
            for t in range(n_tokens):
                x = s[t] * scale
                if x > best[t]:
                    best[t] = x
        total = np.float32(0.0)
        for t in range(n_tokens):
            total += best[t]
        out[d] = total


_inverse_norm = _jit(_inverse_norm)
maxsim_codes = _jit(_maxsim_codes)
maxsim_codes_parallel = _pjit(_maxsim_codes)     # candidates split over numba's threads
