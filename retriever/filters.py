"""Metadata filters in the library: an expression over documents' metadata -> a mask of the
documents it allows, computed column by column.

    {"lang": "en"}                                  equality (a bool matches only a bool)
    {"year": {"gte": 2020, "lt": 2024}}             range (numbers only)
    {"tag": {"in": ["a", "b"]}}                     membership
    {"lang": "en", "year": {"gte": 2020}}           several fields: all must hold
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}

A document lacking a field fails every condition on it. Columns (one per field used) are read
from the document table once per index snapshot and kept with it, so repeated filters cost a
numpy comparison over the column. `Searcher.search(..., filter=...)`, the CLI (`--filter`) and
the server use this one implementation; the engine applies the mask to the candidates and, when
few documents pass, rescores them all, so a selective filter keeps its recall.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .filter_grammar import FilterError, as_number, check_filter, fields

__all__ = ["check_filter", "filter_mask", "ids_mask", "FilterError"]

def _load_columns(index, fields: set[str]) -> dict:
    """Categorical columns {field: (codes (n_positions,) int32, distinct values, numeric (n,) float64)}
    of the fields not cached yet, read in one pass over the documents; cached per snapshot
    (code -1: the field is absent)."""
    cache = _cache(index)
    missing = sorted(f for f in fields if f not in cache)
    if missing:
        n = index.n_positions
        codes = {f: np.full(n, -1, dtype=np.int32) for f in missing}
        lookup: dict[str, dict] = {f: {} for f in missing}
        for p in range(n):
            metadata = index.document(p).get("metadata") or {}
            for f in missing:
                if f in metadata:
                    value = metadata[f]
                    key = (type(value).__name__, json.dumps(value, sort_keys=True))
                    codes[f][p] = lookup[f].setdefault(key, (len(lookup[f]), value))[0]
        for f in missing:
            values = [v for _, v in sorted(lookup[f].values(), key=lambda x: x[0])]
            numeric = [as_number(v) for v in values]
            numeric_values = np.array([np.nan if v is None else v for v in numeric] + [np.nan], dtype=np.float64)
            cache[f] = (codes[f], values, numeric_values[codes[f]])     # code -1 picks the trailing NaN
    return cache


def _cache(index) -> dict:
    """The metadata columns already read, kept with the index's snapshot (`index.memo`)."""
    return index.memo.setdefault("metadata_columns", {})


def _matches(value, wanted) -> bool:
    """Whether a stored value equals a filter's; never raises (a value it cannot compare: no)."""
    try:
        if isinstance(wanted, bool) or isinstance(value, bool):
            return type(value) is type(wanted) and value == wanted      # a bool matches only a bool
        if isinstance(wanted, (int, float)):
            return isinstance(value, (int, float)) and bool(value == wanted)
        return isinstance(value, type(wanted)) and bool(value == wanted)
    except (TypeError, ValueError, OverflowError):
        return False


def _equal(column: tuple, wanted) -> np.ndarray:
    codes, values, _ = column
    hits = [c for c, v in enumerate(values) if _matches(v, wanted)]
    return np.isin(codes, hits)


def filter_mask(index, expr: dict) -> np.ndarray:
    """(n_positions,) bool: the documents of `index` (an Index or ShardedIndex) `expr` allows."""
    check_filter(expr)
    return _evaluate(_load_columns(index, fields(expr)), index.n_positions, expr)


def _evaluate(columns: dict, n: int, expr: dict) -> np.ndarray:
    out = np.ones(n, dtype=bool)
    for key, condition in expr.items():
        if key == "$and":
            for part in condition:
                out &= _evaluate(columns, n, part)
        elif key == "$or":
            out &= np.logical_or.reduce([_evaluate(columns, n, part) for part in condition])
        elif key == "$not":
            out &= ~_evaluate(columns, n, condition)
        elif isinstance(condition, dict) and "in" in condition:
            out &= np.logical_or.reduce([_equal(columns[key], v) for v in condition["in"]] or [np.zeros(n, bool)])
        elif isinstance(condition, dict):
            values = columns[key][2]
            with np.errstate(invalid="ignore"):
                keep = ~np.isnan(values)
                for bound, op in (("gt", np.greater), ("gte", np.greater_equal), ("lt", np.less),
                                  ("lte", np.less_equal)):
                    if bound in condition:
                        keep &= op(values, condition[bound])
            out &= keep
        else:
            out &= _equal(columns[key], condition)
    return out


def ids_mask(index, ids) -> np.ndarray:
    """(n_positions,) bool: the live documents among `ids` (unknown ids are ignored)."""
    out = np.zeros(index.n_positions, dtype=bool)
    for doc_id in ids:
        p = index.position_of(str(doc_id))
        if p is not None:
            out[p] = True
    return out
