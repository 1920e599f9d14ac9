"""Metadata filters: a request's conditions -> (n_positions,) bool mask of documents they allow."""

from __future__ import annotations

from typing import Any

import numpy as np

from .models import In, Range


def _holds(value: Any, condition) -> bool:
    if isinstance(condition, Range):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return ((condition.gt is None or value > condition.gt) and (condition.gte is None or value >= condition.gte)
                and (condition.lt is None or value < condition.lt) and (condition.lte is None or value <= condition.lte))
    if isinstance(condition, In):
        return any(_equal(value, c) for c in condition.any_of)
    return _equal(value, condition)


def _equal(value: Any, wanted: Any) -> bool:
    # bool is an int in Python; a filter for true must not match 1.
    return type(value) is type(wanted) and value == wanted if isinstance(wanted, bool) or isinstance(value, bool) \
        else value == wanted


def allowed_mask(metadata: list[dict], conditions: dict[str, Any]) -> np.ndarray:
    """metadata: one dict per index position; conditions: field -> scalar (equality), Range or In.
    A document lacking a field fails every condition on it."""
    out = np.ones(len(metadata), dtype=bool)
    for field, condition in conditions.items():
        out &= np.fromiter((field in m and _holds(m[field], condition) for m in metadata), dtype=bool,
                           count=len(metadata))
    return out
