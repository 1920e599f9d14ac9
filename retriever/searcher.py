"""`Searcher`: encode queries, generate candidates by token retrieval, rescore by exact MaxSim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from indexes.search.bm25 import LexicalQueries
from indexes.search.passages import DEFAULT_AGGREGATION, check_aggregation
from indexes.search.timings import Timings, maybe
from indexes.names import DEFAULT_ALPHA, DEFAULT_FUSION, FUSIONS, MAX_K, QUALITIES, QUERY_STAGES, TERM_STAGES

from .encoder import Encoder
from .queries import EncodedQueries, encode_queries

__all__ = ["SearchResults", "Passage", "Searcher", "PRESETS", "fusion_setting", "scaled_nprobe", "scaled_candidates", "MAX_K",
           "combined_mask"]

UNITS = ("document", "passage")

# One knob for users who do not want to tune three numbers: quality -> (nprobe, k_prime, n_candidates).
# Chosen on SciFact and Vaswani (docs/benchmarks.md); recall of the exhaustive top-10 on the two:
# fast 0.97 / 0.93, balanced 0.999 / 0.992, accurate 1.0 / 1.0.
# A preset's nprobe and candidate count are for an index of NPROBE_BASE_CENTROIDS centroids
# (SciFact's, 5k documents). A codec sized for a larger collection has more, shorter lists, and
# its documents crowd closer: both grow with the cube root of the centroid count (the codec's size
# follows the collection's). Recall of the exhaustive top-10, default preset (docs/benchmarks.md
# "Candidates that scale"): resampled 50k, 8,192 centroids: nprobe 8 / 12 / 16 at 64 candidates
# gave 0.967 / 0.989 / 0.995; resampled 300k, 16,384 centroids: nprobe 13 at 64 candidates (the
# fourth-root rule before) 0.907, nprobe 16 at 128 candidates (this rule) 0.975.
NPROBE_BASE_CENTROIDS = 2048


def size_scale(n_centroids: int) -> float:
    """How much a preset's nprobe and candidate count grow for an index of n_centroids centroids."""
    return max(1.0, (n_centroids / NPROBE_BASE_CENTROIDS) ** (1 / 3))


def scaled_nprobe(nprobe: int, n_centroids: int) -> int:
    """A preset nprobe for an index of n_centroids centroids (never below the preset's)."""
    return max(nprobe, int(round(nprobe * size_scale(n_centroids))))


def scaled_candidates(n_candidates: int, n_centroids: int) -> int:
    """A preset candidate count for an index of n_centroids centroids (never below the preset's)."""
    return max(n_candidates, int(round(n_candidates * size_scale(n_centroids))))


PRESETS = {
    "fast": {"nprobe": 4, "k_prime": None, "n_candidates": 32},
    "balanced": {"nprobe": 8, "k_prime": None, "n_candidates": 64},
    "accurate": {"nprobe": 16, "k_prime": None, "n_candidates": 128},
}
if tuple(PRESETS) != QUALITIES:
    raise ImportError("retriever.searcher.PRESETS and indexes.names.QUALITIES name different presets")


@dataclass
class SearchResults:
    """Ranked documents for a batch of queries, best first.

    scores: (n_queries, k) float32, padded with -inf; indices: (n_queries, k) int64 global
    positions in the index, padded with -1; doc_ids: the matching document ids (padding left out).
    """

    scores: np.ndarray
    indices: np.ndarray
    doc_ids: list[list[str]]
    passages: list[list[Passage]] | None = None

    def hits(self, query: int = 0) -> list[tuple[str, float]]:
        """(doc_id, score) pairs of one query."""
        return list(zip(self.doc_ids[query], self.scores[query].tolist()))


@dataclass(frozen=True)
class Passage:
    """Where a hit matched best: characters [start, end) of the document's text, and that text.

    A document shorter than the encoder's window is one passage (its whole text); a longer one
    was encoded as overlapping passages, and this is the one that scored best for the query."""

    start: int
    end: int
    text: str

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "text": self.text}


def passages_of(index, positions: np.ndarray, spans: np.ndarray) -> list[list[Passage]]:
    """The Passage of every result (padding left out): spans (n, k, 2) as Ranker.passage_spans gives."""
    out = []
    for row, row_spans in zip(np.asarray(positions).tolist(), np.asarray(spans).tolist()):
        hits = []
        for position, (start, end) in zip(row, row_spans):
            if position < 0:
                continue
            text = index.document(position).get("text") or ""
            end = len(text) if end < 0 else min(end, len(text))
            start = min(max(start, 0), end)
            hits.append(Passage(start, end, text[start:end]))
        out.append(hits)
    return out


def combined_mask(index, allowed: np.ndarray | None, filter: dict | None, ids) -> np.ndarray | None:
    """One (n_positions,) bool mask from a position mask, a filter expression and an id list (None: all)."""
    from .filters import filter_mask, ids_mask

    masks = [m for m in (None if allowed is None else np.asarray(allowed, dtype=bool),
                         None if filter is None else filter_mask(index, filter),
                         None if ids is None else ids_mask(index, ids)) if m is not None]
    if not masks:
        return None
    return np.logical_and.reduce(masks) if len(masks) > 1 else masks[0]


def fusion_setting(engine: str, hybrid: bool | None, fusion: str | None,
                   alpha: float | None) -> tuple[str | None, float]:
    """(fusion, alpha) a searcher runs with; fusion None: hybrid whenever query texts are known."""
    if engine not in QUERY_STAGES:
        raise ValueError(f"engine must be one of {QUERY_STAGES}, got {engine!r}")
    if fusion is not None and fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    chosen = fusion or {True: DEFAULT_FUSION, False: "none"}.get(hybrid)
    if chosen is None and engine == "exhaustive":
        chosen = "none"             # the exhaustive engine stays the pure MaxSim reference
    alpha = DEFAULT_ALPHA if alpha is None else float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return chosen, alpha


class Searcher:
    """Late-interaction search over an index, single or sharded (anything with `engine()`,
    `encoder_spec`, `n_positions`, `document`, `position_of`: retriever.protocol.SearchIndex).

    engine: one of indexes.names.QUERY_STAGES: "token" (centroid token retrieval + exact
    rescoring, the default), "vocab" (vocabulary-term lists + rescoring), "union" (both candidate
    sets, rescored), or "exhaustive" (exact MaxSim over every document: the reference). quality:
    a preset of PRESETS; explicit nprobe / k_prime / n_candidates override it.
    encoder: the query encoder; by default the one recorded in the index manifest.
    device: where scoring runs ("cuda", "cpu"); by default CUDA when present.
    hybrid: fuse the dense ranking with BM25 over the index's own lexical lists (fusion
    "adaptive": the dense weight chosen per query from its scores). None (the default): hybrid
    whenever the query texts are known (strings searched, or texts= given) and the index has
    lexical lists, except with the "exhaustive" engine, which stays the pure MaxSim reference;
    False: dense only. `fusion` names one of indexes.names.FUSIONS instead ("adaptive", "rrf",
    "interpolate" with weight `alpha` on the dense side (default DEFAULT_ALPHA), "none" = dense
    only, "lexical" = BM25 only).

    aggregation: how a document stored as several passages (longer than the encoder's window)
    scores: "maxp" its best passage (the default), "sum2" its two best added, "union" MaxSim
    over all its vectors (indexes/search/passages.py). Every hit carries its best passage.

    A search turns strings into arrays here, and the index's engine (indexes/search/ranker.py) does
    the rest: dense, lexical and fusion, returning positions, then their ids.
    """

    def __init__(self, index, encoder: Encoder | None = None, *, engine: str = "token",
                 quality: str = "balanced", nprobe: int | None = None, k_prime: int | None = None,
                 n_candidates: int | None = None, device=None,
                 hybrid: bool | None = None, fusion: str | None = None, alpha: float | None = None,
                 backend: str = "auto", aggregation: str = DEFAULT_AGGREGATION):
        from indexes.search.engine import BACKENDS
        from indexes.search.maxsim import pick_device

        self.aggregation = check_aggregation(aggregation)

        if quality not in PRESETS:
            raise ValueError(f"quality must be one of {sorted(PRESETS)}, got {quality!r}")
        self.fusion, self.alpha = fusion_setting(engine, hybrid, fusion, alpha)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.index = index
        self.engine = engine
        preset = PRESETS[quality]
        self.nprobe = nprobe or preset["nprobe"]
        self._scale_nprobe = nprobe is None      # a preset's nprobe follows the index's centroid count
        self.k_prime = k_prime if k_prime is not None else preset["k_prime"]
        self.n_candidates = n_candidates or preset["n_candidates"]
        self._scale_candidates = n_candidates is None
        self.device = pick_device(device)
        self._encoder = encoder
        self._ranker, self._snapshot = None, None
        if encoder is not None:
            self._check_encoder(encoder)

    @property
    def encoder(self) -> Encoder:
        """The query encoder, loaded on first use when none was given."""
        if self._encoder is None:
            self._encoder = self.index.load_encoder(device=self.device)
            self._check_encoder(self._encoder)
        return self._encoder

    def _check_encoder(self, encoder: Encoder) -> None:
        expected = self.index.encoder_spec["dim"]
        if encoder.dim != expected:
            raise ValueError(f"encoder {encoder.name!r} gives {encoder.dim}-dim vectors, "
                             f"index {self.index.directory} was built from {expected}-dim vectors")

    @property
    def ranker(self):
        """The engine over the index's current snapshot (made again after the index reloads):
        an indexes.search.engine.Engine for one index, an indexes.search.shardset.ShardSet for shards."""
        snapshot = self.index.snapshot
        if self._ranker is None or self._snapshot is not snapshot:
            centroids = self.index.n_centroids
            nprobe = scaled_nprobe(self.nprobe, centroids) if self._scale_nprobe else self.nprobe
            n_candidates = (scaled_candidates(self.n_candidates, centroids) if self._scale_candidates
                            else self.n_candidates)
            self._ranker = self.index.engine(nprobe=nprobe, n_candidates=n_candidates, k_prime=self.k_prime,
                                             device=self.device, backend=self.backend,
                                             aggregation=self.aggregation)
            self._snapshot = snapshot
        return self._ranker

    def search(self, query: str, k: int = 10, *, filter: dict | None = None,
               ids: Sequence[str] | None = None, timings: Timings | None = None,
               passages: bool = True, unit: str = "document") -> SearchResults:
        """Top-k documents for one query (a SearchResults with one row); filter / ids / timings /
        passages / unit as in search_batch."""
        if not isinstance(query, str):
            raise TypeError("search takes one query string; use search_batch for several")
        return self.search_batch([query], k=k, filter=filter, ids=ids, timings=timings, passages=passages, unit=unit)

    def search_batch(self, queries: Sequence[str] | np.ndarray | EncodedQueries, k: int = 10,
                     term_ids: np.ndarray | None = None, allowed: np.ndarray | None = None,
                     texts: Sequence[str] | None = None, *, filter: dict | None = None,
                     ids: Sequence[str] | None = None, timings: Timings | None = None,
                     passages: bool = False, unit: str = "document") -> SearchResults:
        """Top-k documents for each query.

        queries: strings, EncodedQueries (retriever.queries.encode_queries), or pre-encoded
        (n_queries, q_len, dim) float32 query embeddings.
        texts: the query strings of pre-encoded queries, needed by hybrid search (its BM25 side).
        term_ids: (n_queries, q_len) int, the vocabulary id of each pre-encoded row (-1: none), as
        `Encoder.query_term_ids` gives; needed by the "vocab" and "union" engines with pre-encoded
        queries (computed here from strings).
        filter: a metadata filter expression (retriever/filters.py), ids: document ids; only
        documents both allow can be returned. The mask applies before rescoring: when the first
        stage's candidates hold fewer than k allowed documents and at most
        indexes.search.engine.EXACT_FILTER_LIMIT are allowed, all of them are rescored.
        allowed: the same as a (n_positions,) bool mask over this snapshot's positions (for
        callers that already hold one, such as the server's cache; positions change with compaction).
        timings: an indexes.search.timings.Timings that receives the seconds of each stage.
        passages: also find each hit's best passage (SearchResults.passages; costs one more
        scoring of the hits stored as several passages, and reading the hits' texts).
        unit: "document" (the default), or "passage": the k best passages, for callers who want
        chunks: the passages of the top-k documents (of the ranking asked for, hybrid included)
        ranked by their exact MaxSim, one row per passage (a document's id may repeat), with
        passages filled in. Every passage of a document ranks at or below its document's best,
        so for dense search these are the k best passages of the whole index.
        """
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
        self.index.check_intact()         # a background verification that found damage raises
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must lie in 1..{MAX_K}, got {k}")
        if isinstance(queries, EncodedQueries):
            queries, term_ids, texts = queries.vectors, queries.term_ids, queries.texts
        elif not isinstance(queries, np.ndarray):
            with maybe(timings, "encoding"):
                encoded = encode_queries(self.encoder, queries, term_ids=self.engine in TERM_STAGES)
            queries, term_ids, texts = encoded.vectors, encoded.term_ids, encoded.texts
        ranker = self.ranker
        fusion = self._fusion_for(texts, len(queries), ranker)
        lexical = None
        if fusion != "none":
            with maybe(timings, "lexical"):
                lexical = LexicalQueries.from_texts(texts)
        scores, positions = ranker.search(
            queries, k, first_stage=self.engine, fusion=fusion, alpha=self.alpha, lexical=lexical,
            allowed=combined_mask(self.index, allowed, filter, ids), term_ids=term_ids, timings=timings)
        if unit == "passage":
            with maybe(timings, "passages"):
                scores, positions, spans = ranker.passage_ranking(queries, positions, k)
                return SearchResults(scores=scores, indices=positions, doc_ids=ranker.doc_ids(positions),
                                     passages=passages_of(self.index, positions, spans))
        found = None
        if passages:
            with maybe(timings, "passages"):
                found = passages_of(self.index, positions, ranker.passage_spans(queries, positions))
        return SearchResults(scores=scores, indices=positions, doc_ids=ranker.doc_ids(positions), passages=found)

    def _fusion_for(self, texts, n_queries: int, ranker) -> str:
        """The fusion one call runs: the one set, else hybrid if the texts are known and every
        segment has lexical lists, else dense only."""
        have_texts = texts is not None and len(texts) == n_queries
        if self.fusion is None:
            return DEFAULT_FUSION if have_texts and ranker.has_lexical else "none"
        if self.fusion != "none" and not have_texts:
            raise ValueError(f"fusion {self.fusion!r} needs the query texts (texts=) with pre-encoded queries")
        return self.fusion
