"""Tessera's on-disk index formats and the array algorithms over them (numpy / torch / faiss only).

    names.py, values.py, files.py, faults.py, positions.py   shared: names, value rules, file I/O, crash points
    codec/      the vector code (k-means centroids, 1/2/4-bit residuals)
    storage/    segments, document tables, lexical / vocabulary lists, manifests, atomic writes, verification
    builder/    recipes, reduction (pruning, pooling), the build / add / compact pipeline
    search/     the engine, first stages, compiled kernels, MaxSim, BM25, fusion, shard sets

Dependencies point down only: builder and search read storage and codec; storage reads codec and
the shared modules; nothing here imports retriever, eval or server.

Names load on first use: importing a module of this package (indexes.names, indexes.files)
does not import torch, faiss or numba unless that module needs them.
"""

from importlib import import_module

_WHERE = {
    "TokenBatch": ".builder.pipeline", "add_to_index": ".builder.pipeline", "build_index": ".builder.pipeline",
    "compact_index": ".builder.pipeline", "DEFAULT_RECIPE": ".builder.recipe", "Recipe": ".builder.recipe",
    "PruneRules": ".builder.reduce", "pool_tokens": ".builder.reduce", "prune_mask": ".builder.reduce",
    "reduce_tokens": ".builder.reduce", "ResidualCodec": ".codec.residual", "default_n_centroids": ".codec.residual",
    "IndexFormatError": ".files", "FORMAT_VERSION": ".storage.store", "IndexStore": ".storage.store",
    "read_manifest": ".storage.store", "delete_documents": ".storage.writes", "exhaustive_search": ".search.maxsim",
    "maxsim_scores": ".search.maxsim", "pick_device": ".search.maxsim", "search_blocks": ".search.maxsim",
    "Engine": ".search.engine", "ShardSet": ".search.shardset",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'indexes' has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value
