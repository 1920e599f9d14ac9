"""The metadata filter grammar (retriever/filters.py evaluates it), checked in pure Python so
the HTTP schemas and the CLI refuse a bad filter, naming its part, before anything is searched."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["FilterError", "check_filter", "is_scalar", "as_number", "fields", "RANGE_KEYS", "MAX_CONDITIONS"]

RANGE_KEYS = ("gt", "gte", "lt", "lte")
MAX_CONDITIONS = 64


class FilterError(ValueError):
    """A filter expression that is not valid; the message names the part."""


def check_filter(expr: Any, where: str = "filter", _count: list | None = None) -> None:
    """Raise FilterError naming the first invalid part of `expr`."""
    count = _count if _count is not None else [0]
    if not isinstance(expr, dict) or not expr:
        raise FilterError(f"{where}: expected a non-empty object of field conditions")
    for key, condition in expr.items():
        count[0] += 1
        if count[0] > MAX_CONDITIONS:
            raise FilterError(f"{where}: more than {MAX_CONDITIONS} conditions")
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise FilterError(f"{where}.{key}: expected a non-empty list of filters")
            for i, part in enumerate(condition):
                check_filter(part, f"{where}.{key}[{i}]", count)
        elif key == "$not":
            check_filter(condition, f"{where}.$not", count)
        elif key.startswith("$"):
            raise FilterError(f"{where}: unknown operator {key!r} (use $and, $or, $not)")
        elif isinstance(condition, dict):
            keys = set(condition)
            if keys == {"in"}:
                if not isinstance(condition["in"], list) or not all(is_scalar(v) for v in condition["in"]):
                    raise FilterError(f"{where}.{key}.in: expected a list of strings, numbers or booleans")
            elif keys and keys <= set(RANGE_KEYS):
                for bound, value in condition.items():
                    if as_number(value) is None:
                        raise FilterError(f"{where}.{key}.{bound}: expected a finite number, got {_shown(value)}")
            else:
                raise FilterError(f"{where}.{key}: expected 'in' or range bounds {RANGE_KEYS}, got {sorted(keys)}")
        elif not is_scalar(condition):
            raise FilterError(f"{where}.{key}: expected a string, number, boolean, range or 'in'")


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or as_number(value) is not None


def as_number(value: Any) -> float | None:
    """`value` as a finite float64, or None: not a number (bools are not), NaN, infinite, or an
    integer past float64's range (a stored value a filter meets this way matches no condition)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def fields(expr: dict) -> set[str]:
    out = set()
    for key, condition in expr.items():
        if key in ("$and", "$or"):
            for part in condition:
                out |= fields(part)
        elif key == "$not":
            out |= fields(condition)
        else:
            out.add(key)
    return out
