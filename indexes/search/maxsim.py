"""Exact late interaction (MaxSim) over a flat token matrix.

Score(q, d) = sum over query vectors i of max over the document's vectors j of <q_i, d_j>.
Documents are contiguous row ranges of one `(n_vectors, dim)` matrix (CSR-style offsets), so
the per-document max is a segment reduction over a dense similarity block: no padding, no
Python loop over documents. torch runs it on CUDA when asked (or present), on the CPU otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from indexes.positions import doc_blocks

__all__ = ["maxsim_scores", "exhaustive_search", "search_blocks", "array_blocks", "pick_device"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The device to score on: the one given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def maxsim_scores(queries: torch.Tensor, vectors: torch.Tensor, lengths: torch.Tensor,
                  passages: torch.Tensor | None = None) -> torch.Tensor:
    """MaxSim of every query against every document of one block.

    queries: (n_queries, q_len, dim) float32; zero rows add 0 to every score.
    vectors: (n_vectors, dim) any float dtype, the documents' vectors back to back.
    lengths: (n_units,) int64, vectors per unit, each >= 1, summing to n_vectors: a unit is a
    document, or with `passages` a passage.
    passages: (n_docs,) int64 passages per document, each >= 1, summing to n_units: a document
    scores as its best passage (MaxP). None: every unit is a document.
    Returns (n_queries, n_docs) float32.
    """
    n_q, q_len, dim = queries.shape
    sims = vectors.float() @ queries.reshape(n_q * q_len, dim).T           # (n_vectors, n_q*q_len)
    best = torch.segment_reduce(sims, "max", lengths=lengths, axis=0)      # (n_units, n_q*q_len)
    units = best.reshape(-1, n_q, q_len).sum(dim=2)                        # (n_units, n_q)
    if passages is not None and len(passages) != len(lengths):
        units = torch.segment_reduce(units, "max", lengths=passages, axis=0)
    return units.T.contiguous()


def array_blocks(vectors: np.ndarray, offsets: np.ndarray, block_vectors: int = 16384,
                 passage_lengths: np.ndarray | None = None, passages: np.ndarray | None = None):
    """Block source over one flat (n_vectors, dim) matrix with (n_docs + 1,) offsets; with
    passage_lengths (n_passages,) and passages (n_docs,), documents score by their best passage."""
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if passages is not None:
        passages = np.asarray(passages, dtype=np.int64)
        passage_lengths = np.asarray(passage_lengths, dtype=np.int64)
        first_passage = np.concatenate([[0], np.cumsum(passages)])

    def blocks(device: torch.device):
        for first, end in doc_blocks(offsets, block_vectors):
            # np.array copies the (possibly read-only, memory-mapped) rows into a tensor-safe buffer.
            rows = torch.from_numpy(np.array(vectors[offsets[first]:offsets[end]])).to(device)
            if passages is None:
                yield first, torch.as_tensor(lengths[first:end], device=device), rows
            else:
                units = passage_lengths[first_passage[first]:first_passage[end]]
                yield (first, torch.as_tensor(units, device=device), rows,
                       torch.as_tensor(passages[first:end], device=device))
    return blocks


def exhaustive_search(queries: np.ndarray | torch.Tensor, vectors: np.ndarray, offsets: np.ndarray,
                      k: int = 10, *, alive: np.ndarray | None = None,
                      device: str | torch.device | None = None, block_vectors: int = 16384,
                      passage_lengths: np.ndarray | None = None,
                      passages: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents by exact MaxSim over one flat matrix (see `search_blocks`).

    vectors: (n_vectors, dim) float16, may be a read-only memory map.
    offsets: (n_docs + 1,) int64, document d owns rows offsets[d]:offsets[d+1].
    passage_lengths (n_passages,), passages (n_docs,): a document's rows split into passages,
    the document scored by its best passage (None: a document is one unit).
    """
    blocks = array_blocks(vectors, offsets, block_vectors, passage_lengths, passages)
    return search_blocks(queries, blocks, len(offsets) - 1, k,
                         dim=vectors.shape[1], alive=alive, device=device, block_vectors=block_vectors)


def search_blocks(queries: np.ndarray, blocks, n_docs: int, k: int = 10, *, dim: int,
                  alive: np.ndarray | None = None, device: str | torch.device | None = None,
                  block_vectors: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Top-k documents by exact MaxSim, scanning every block of the collection.

    queries: (n_queries, q_len, dim) float32.
    blocks: callable(device) yielding (first_doc, lengths (b,) int64, vectors (sum(lengths), dim))
    for consecutive documents covering 0..n_docs-1, or (first_doc, lengths per passage, vectors,
    passages (b,) per document) where documents are split into passages (scored by the best);
    called once per query batch.
    alive: optional (n_docs,) bool; False documents are never returned.
    Returns (scores (n_queries, k) float32, doc positions (n_queries, k) int64), best first,
    padded with -inf / -1 when fewer than k documents exist.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    device = pick_device(device)
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 3 or queries.shape[2] != dim:
        raise ValueError(f"queries must be (n_queries, q_len, {dim}), got {queries.shape}")
    # Keep the (block_vectors, batch * q_len) float32 similarity block near 256 MiB.
    batch = max(1, (256 << 20) // (4 * block_vectors * max(1, queries.shape[1])))
    dead = None if alive is None else torch.as_tensor(~np.asarray(alive, dtype=bool), device=device)
    results = [_search_batch(torch.as_tensor(queries[i:i + batch], device=device), blocks, k, dead)
               for i in range(0, len(queries), batch)]
    if not results:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def _search_batch(q: torch.Tensor, blocks, k: int, dead: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    device, n_q = q.device, q.shape[0]
    top_scores = torch.full((n_q, k), -torch.inf, device=device)
    top_ids = torch.full((n_q, k), -1, dtype=torch.long, device=device)
    for first, lengths, vectors, *passages in blocks(device):
        passages = passages[0] if passages else None
        end = first + len(lengths if passages is None else passages)
        scores = maxsim_scores(q, vectors, lengths, passages)                # (n_q, end - first)
        if dead is not None:
            scores[:, dead[first:end]] = -torch.inf
        ids = torch.arange(first, end, device=device).expand(n_q, -1)
        # top_scores always holds k columns, so the merged top-k is k wide.
        top_scores, pos = torch.cat([top_scores, scores], dim=1).topk(k, dim=1)
        top_ids = torch.cat([top_ids, ids], dim=1).gather(1, pos)
    top_ids[torch.isinf(top_scores)] = -1
    return top_scores.cpu().numpy().astype(np.float32), top_ids.cpu().numpy().astype(np.int64)
