"""Tessera's on-disk index formats and the array algorithms over them (numpy / torch / faiss only).

Names load on first use: importing a module of this package (indexes.names, indexes.files)
does not import torch, faiss or numba unless that module needs them.
"""

from importlib import import_module

_WHERE = {
    "TokenBatch": ".build", "add_to_index": ".build", "build_index": ".build", "compact_index": ".build",
    "ResidualCodec": ".codec", "default_n_centroids": ".codec", "IndexFormatError": ".files",
    "exhaustive_search": ".maxsim", "maxsim_scores": ".maxsim", "pick_device": ".maxsim", "search_blocks": ".maxsim",
    "DEFAULT_RECIPE": ".recipe", "Recipe": ".recipe", "PruneRules": ".reduce", "pool_tokens": ".reduce",
    "prune_mask": ".reduce", "reduce_tokens": ".reduce", "FORMAT_VERSION": ".store", "IndexStore": ".store",
    "read_manifest": ".store", "delete_documents": ".writes", "Engine": ".engine", "ShardSet": ".shardset",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'indexes' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value
