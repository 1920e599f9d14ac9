"""Tessera's on-disk index formats and the array algorithms over them (numpy / torch / faiss only)."""

from .build import TokenBatch, add_to_index, build_index, compact_index
from .codec import ResidualCodec, default_n_centroids
from .files import IndexFormatError
from .maxsim import exhaustive_search, maxsim_scores, pick_device, search_blocks
from .recipe import DEFAULT_RECIPE, Recipe
from .reduce import PruneRules, pool_tokens, prune_mask, reduce_tokens
from .store import FORMAT_VERSION, IndexStore, read_manifest
from .writes import delete_documents

__all__ = ["TokenBatch", "add_to_index", "build_index", "compact_index", "ResidualCodec", "default_n_centroids",
           "IndexFormatError", "exhaustive_search", "maxsim_scores", "pick_device", "search_blocks",
           "DEFAULT_RECIPE", "Recipe", "PruneRules", "pool_tokens", "prune_mask", "reduce_tokens",
           "FORMAT_VERSION", "IndexStore", "delete_documents", "read_manifest"]
