"""Global positions over consecutive parts (the segments of an index, the shards of a set).

Part i holds positions bases[i] .. bases[i+1] - 1; a position's local number is its offset there.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["part_bases", "locate", "expand_ranges", "doc_blocks"]


def part_bases(sizes: Sequence[int]) -> np.ndarray:
    """(n_parts + 1,) int64: the first global position of each part, then the total."""
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]).astype(np.int64)


def locate(bases: np.ndarray, positions) -> tuple[np.ndarray, np.ndarray]:
    """(part, local) of each global position (arrays of its shape; -1 padding stays -1).
    IndexError for a position outside 0..bases[-1] - 1."""
    positions = np.asarray(positions, dtype=np.int64)
    if positions.size and (positions.max() >= bases[-1] or positions.min() < -1):
        raise IndexError(f"position outside 0..{int(bases[-1]) - 1}")
    part = np.clip(np.searchsorted(bases, positions, side="right") - 1, 0, max(0, len(bases) - 2))
    return np.where(positions >= 0, part, -1), np.where(positions >= 0, positions - bases[part], -1)


def expand_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenate the integer ranges [starts[j], starts[j] + lengths[j]) without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return first + np.arange(total)


def doc_blocks(offsets: np.ndarray, block_vectors: int):
    """Yield (first_doc, end_doc) ranges holding about block_vectors vectors each."""
    n_docs = len(offsets) - 1
    first = 0
    while first < n_docs:
        end = int(np.searchsorted(offsets, offsets[first] + block_vectors, side="right")) - 1
        end = min(max(end, first + 1), n_docs)
        yield first, end
        first = end
