"""Tessera's query side: encoders, corpus readers, the `Index` facade and the `Searcher`.

Names load on first use (importing `retriever` imports no model code, torch or transformers),
so that `tessera --help`, the HTTP client and the schemas start quickly.
"""

from importlib import import_module

_WHERE = {
    "IndexBusyError": "indexes.files", "IndexFormatError": "indexes.files",
    "DEFAULT_MODEL": ".checkpoints", "bundled_model_path": ".checkpoints", "load_encoder": ".checkpoints",
    "CorpusFormatError": ".corpus", "Document": ".corpus", "Query": ".corpus", "read_corpus": ".corpus",
    "read_queries": ".corpus",
    "DocumentEmbeddings": ".encoder", "Encoder": ".encoder", "EncoderConfig": ".encoder",
    "Index": ".index", "SearchResults": ".searcher", "Searcher": ".searcher",
    "EncodedQueries": ".queries", "encode_queries": ".queries",
    "SearchEngine": ".protocol", "SearchIndex": ".protocol", "open_index": ".protocol",
    "ShardedIndex": ".sharded_index",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'retriever' has no attribute {name!r}")
    module = _WHERE[name]
    value = getattr(import_module(module, __name__) if module.startswith(".") else import_module(module), name)
    globals()[name] = value
    return value
