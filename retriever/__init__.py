"""Tessera's query side: encoders, corpus readers, the `Index` facade and the `Searcher`."""

from indexes.files import IndexBusyError, IndexFormatError

from .checkpoints import DEFAULT_MODEL, bundled_model_path, load_encoder
from .corpus import CorpusFormatError, Document, Query, read_corpus, read_queries
from .encoder import DocumentEmbeddings, Encoder, EncoderConfig
from .index import Index
from .searcher import SearchResults, Searcher
from .protocol import SearchEngine, SearchIndex, open_index, searcher_for
from .sharded_search import ShardedIndex, ShardedSearcher

__all__ = ["IndexBusyError", "IndexFormatError", "DEFAULT_MODEL", "bundled_model_path", "load_encoder", "CorpusFormatError", "Document", "Query",
           "read_corpus", "read_queries", "DocumentEmbeddings", "Encoder", "EncoderConfig", "Index",
           "SearchResults", "Searcher", "SearchEngine", "SearchIndex", "open_index", "searcher_for",
           "ShardedIndex", "ShardedSearcher"]
