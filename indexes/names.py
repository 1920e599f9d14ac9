"""The names a search is configured by, in one place and without imports (the HTTP schemas,
the CLIs and the engine all read them from here).

First stages (indexes/search/engine.py gives one query's candidates by each, which exact MaxSim rescores):

    token        centroid token retrieval with imputation (XTR / WARP style; indexes/search/retrieval.py)
    vocab        the lists of the query's own terms (COIL style; indexes/search/vocab.py), needs term ids
    union        both candidate sets
    exhaustive   exact MaxSim over every document (the reference)
    candidates   positions supplied by the caller (a BM25 or any external first stage; engine only)

Fusions of the dense ranking with BM25 over the index's lexical lists: indexes/search/fusion.py.
"""

__all__ = ["MAX_K", "QUALITIES", "FIRST_STAGES", "QUERY_STAGES", "TERM_STAGES", "FUSIONS", "DEFAULT_FUSION", "DEFAULT_ALPHA", "FUSION_DEPTH"]

QUERY_STAGES = ("token", "vocab", "union", "exhaustive")     # the ones a query text alone can drive
FIRST_STAGES = QUERY_STAGES + ("candidates",)
TERM_STAGES = ("vocab", "union")                             # those that read the query's term ids

FUSIONS = ("adaptive", "interpolate", "rrf", "none", "lexical")
# Hybrid search fuses by "adaptive" unless told otherwise: chosen by measurement on seven
# collections for the smallest worst-case shortfall against the better of dense and BM25
# (docs/benchmarks.md "Hybrid fusion"). DEFAULT_ALPHA is the dense weight of "interpolate".
DEFAULT_FUSION = "adaptive"
DEFAULT_ALPHA = 0.65
FUSION_DEPTH = 100      # results each side contributes before fusion (at least k)

MAX_K = 1_000            # results per query at most (the server's limit too): k sizes per-query arrays
QUALITIES = ("fast", "balanced", "accurate")      # the Searcher's presets (retriever/searcher.py PRESETS)
