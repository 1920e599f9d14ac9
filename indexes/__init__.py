"""Tessera's on-disk index formats and the array algorithms over them (numpy / torch / faiss only)."""

from .maxsim import exhaustive_search, maxsim_scores, pick_device
from .store import FORMAT_VERSION, IndexFormatError, TokenStore, read_manifest, write_store

__all__ = ["exhaustive_search", "maxsim_scores", "pick_device", "FORMAT_VERSION", "IndexFormatError",
           "TokenStore", "read_manifest", "write_store"]
