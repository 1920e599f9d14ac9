"""What a document's fields may hold so that they are stored and read back exactly as given
(pure Python: the HTTP schemas check requests with it before anything is encoded)."""

from __future__ import annotations

import math
import sys

__all__ = ["check_stored_value", "MAX_METADATA_DEPTH", "MAX_STORED_INT"]

MAX_METADATA_DEPTH = 16


MAX_STORED_INT = int(sys.float_info.max)


def check_stored_value(value, where: str, depth: int = 0) -> None:
    """Refuse what could be written but not read back as written: nesting deeper than
    MAX_METADATA_DEPTH, NaN or infinite numbers (JSON has none), strings that are not valid
    Unicode (lone surrogates), non-string keys. `where` names the field in the error."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"{where}: nested more than {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a JSON number (NaN and infinity cannot be stored)")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_STORED_INT:
        # Filters compare numbers as float64: an integer past its range could never be compared.
        raise ValueError(f"{where}: an integer of about {int(value.bit_length() * 0.30103) + 1} digits is beyond what filters can compare "
                         "(at most about 1.8e308 in magnitude); store it as a string")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"{where}: not valid Unicode (lone surrogate at character {e.start})") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            check_stored_value(key, f"{where}.{key!r}", depth + 1)
            check_stored_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_stored_value(item, f"{where}[{i}]", depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise ValueError(f"{where}: {type(value).__name__} cannot be stored (use JSON values)")
