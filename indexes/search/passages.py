"""A document's score from its passages' scores: arrays in, arrays out.

A document longer than the encoder's window is stored as several passages, each its own set of
vectors (docs/index-format.md). Rescoring computes the exact MaxSim of every candidate passage,
then one of these aggregations gives the document's score:

    maxp   the best passage (the default: never below scoring the first window only on any
           collection measured, docs/benchmarks.md "Long documents")
    sum2   the two best passages added (a document with one passage: that passage)
    union  MaxSim over all of the document's vectors at once (no passage boundaries)

    >>> scores, best = aggregate(np.array([1., 3., 2., 5.], np.float32), np.array([3, 1]), "maxp")
    >>> scores.tolist(), best.tolist()
    ([3.0, 5.0], [1, 0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["AGGREGATIONS", "DEFAULT_AGGREGATION", "aggregate", "check_aggregation"]

AGGREGATIONS = ("maxp", "sum2", "union")
DEFAULT_AGGREGATION = "maxp"


def check_aggregation(name: str) -> str:
    if name not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {name!r}")
    return name


def aggregate(scores: np.ndarray, counts: np.ndarray, how: str = DEFAULT_AGGREGATION) -> tuple[np.ndarray, np.ndarray]:
    """Document scores from passage scores.

    scores: (P,) float32 per passage, document after document; counts: (n,) int64 passages per
    document (>= 1, summing to P); how: "maxp" or "sum2" ("union" is scored over whole documents,
    before this step). Returns (scores (n,) float32, best (n,) int64 the number of each document's
    best passage among its own, 0-based; ties: the first)."""
    counts = np.asarray(counts, dtype=np.int64)
    if len(counts) == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    first = np.cumsum(counts) - counts
    if len(scores) == len(counts):                       # one passage each: nothing to aggregate
        return np.asarray(scores, dtype=np.float32), np.zeros(len(counts), np.int64)
    doc = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((np.arange(len(scores)), -scores, doc))   # by document, best first, ties by number
    top = order[first]
    out = scores[top].astype(np.float32)
    if how == "sum2":
        second = order[np.minimum(first + 1, first + counts - 1)]
        out = out + np.where(counts > 1, scores[second], 0).astype(np.float32)
    elif how != "maxp":
        raise ValueError(f"aggregate takes 'maxp' or 'sum2', got {how!r}")
    return out, top - first
