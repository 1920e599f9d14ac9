"""Build, extend and compact indexes from token embeddings (no model code here).

Input is what an encoder produced for a list of documents, concatenated:
vectors (n_tokens, dim) float16 unit rows, token_ids (n_tokens,) int32,
lengths (n_docs,) int64 and optional norms (n_tokens,) (needed by the `norm` rule).
A document longer than the encoder's window comes as several passages: passage_lengths
(n_passages,) int64 vectors per passage, passages (n_docs,) int64 passages per document and
spans (n_passages, 2) int64 their character offsets; reduction runs per passage (a pooled vector
never mixes two passages) and the segment keeps the passage map (docs/index-format.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from indexes.codec.residual import ResidualCodec, default_n_centroids
from indexes.builder.recipe import Recipe
from indexes.builder.reduce import Reduced, idf_from_token_ids, reduce_tokens
from indexes.storage.segment import SegmentArrays
from indexes.storage.store import IndexStore
from indexes.storage.verify import require_intact
from indexes.storage.writes import LOCK_TIMEOUT, append_segment, check_build_target, create_index, rewrite_index

__all__ = ["growth", "TokenBatch", "fit_codec", "build_index", "add_to_index", "compact_index"]

_SAMPLE_CAP = 262_144  # vectors used to fit the codec at most (k-means also caps at 40 per centroid)


@dataclass
class TokenBatch:
    """Token embeddings of consecutive documents (shapes in the module docstring)."""

    vectors: np.ndarray
    token_ids: np.ndarray
    lengths: np.ndarray
    norms: np.ndarray | None = None
    passage_lengths: np.ndarray | None = None
    passages: np.ndarray | None = None
    spans: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = int(np.sum(self.lengths))
        if self.vectors.ndim != 2 or len(self.vectors) != n or len(self.token_ids) != n:
            raise ValueError(f"vectors {self.vectors.shape} and token_ids {self.token_ids.shape} must both hold "
                             f"sum(lengths) = {n} rows")
        if len(self.lengths) and int(np.min(self.lengths)) < 1:
            raise ValueError("every document needs at least one vector")
        if self.passage_lengths is None:          # one passage per document, spanning it
            self.passage_lengths = np.asarray(self.lengths, dtype=np.int64)
            self.passages = np.ones(len(self.lengths), dtype=np.int64)
            self.spans = None
        self.passage_lengths = np.asarray(self.passage_lengths, dtype=np.int64)
        self.passages = np.asarray(self.passages, dtype=np.int64)
        if len(self.passages) != len(self.lengths) or int(self.passages.sum()) != len(self.passage_lengths) \
                or (len(self.passages) and int(self.passages.min()) < 1) \
                or int(self.passage_lengths.sum()) != n \
                or (self.spans is not None and np.shape(self.spans) != (len(self.passage_lengths), 2)):
            raise ValueError("passages: each document needs >= 1 passage, passage_lengths must sum to the vectors "
                             "and spans hold one (start, end) row per passage")

    @property
    def n_split(self) -> int:
        """Documents that came as more than one passage."""
        return int((self.passages > 1).sum())


def _reduce(batch: TokenBatch, recipe: Recipe, idf, stopword_ids, seed: int) -> Reduced:
    """The batch reduced passage by passage (Reduced.lengths: vectors per passage)."""
    return reduce_tokens(batch.vectors, batch.token_ids, batch.passage_lengths, rules=recipe.prune,
                         pool_factor=recipe.pool_factor, pool_method=recipe.pool_method,
                         stopword_ids=stopword_ids, idf=idf, norms=batch.norms, seed=seed,
                         min_cosine=recipe.merge_cosine / 100 if recipe.pool_method == "threshold" else 1.0,
                         min_vectors=recipe.min_vectors)


def _segment_arrays(codec: ResidualCodec, reduced: Reduced, batch: TokenBatch, vocab_size: int) -> SegmentArrays:
    codes, residuals = codec.compress(reduced.vectors)
    return SegmentArrays.assemble(codes, residuals, reduced.lengths, np.diff(reduced.member_offsets),
                                  reduced.member_token_ids.astype(_id_dtype(vocab_size)), codec.n_centroids,
                                  vocab_size, passages=batch.passages, spans=batch.spans)


def _id_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 65536 else np.int32)


def fit_codec(batch: TokenBatch, recipe: Recipe | str, *, collection_docs: int, idf: np.ndarray,
              stopword_ids: np.ndarray | None = None, seed: int = 0) -> ResidualCodec:
    """Fit a codec on a sample of documents, reduced by the recipe as a build would reduce them.

    collection_docs: documents in the whole collection; the stored vectors it will have are
    extrapolated from the sample's, and set the number of centroids.
    Shards built with one such codec (build_index(codec=...)) are compatible: same centroids and
    buckets, so their scores compare and their segments could be merged."""
    recipe = Recipe.parse(recipe) if isinstance(recipe, str) else recipe
    reduced = _reduce(batch, recipe, idf, stopword_ids, seed)
    rng = np.random.default_rng(seed)
    sample = reduced.vectors[np.sort(rng.permutation(len(reduced.vectors))[:_SAMPLE_CAP])]
    n_vectors = int(len(reduced.vectors) * collection_docs / max(1, len(batch.lengths)))
    return ResidualCodec.fit(sample, nbits=recipe.nbits, n_centroids=recipe.n_centroids, pca_dim=recipe.pca_dim,
                             n_vectors=n_vectors, seed=seed)


def build_index(directory, batch: TokenBatch, documents: list[dict], *, recipe: Recipe | str,
                info: dict, vocab_size: int, stopword_ids: np.ndarray | None = None,
                seed: int = 0, codec: ResidualCodec | None = None, idf: np.ndarray | None = None,
                force: bool = False) -> dict:
    """Reduce, fit the codec, compress and write a new index; returns the manifest.

    info: manifest fields to record (encoder name and settings, ...). The manifest gets
    `build` statistics: seconds per stage and vectors removed by each reduction rule.
    codec, idf: given (a shard of a larger collection), they are used instead of fitted here.
    force: build into a folder that holds other files too (they are kept).
    """
    check_build_target(directory, force)
    recipe = Recipe.parse(recipe) if isinstance(recipe, str) else recipe
    if len(documents) != len(batch.lengths):
        raise ValueError(f"{len(documents)} documents but embeddings for {len(batch.lengths)}")
    timings = {}
    started = time.perf_counter()
    if idf is None:
        idf = idf_from_token_ids(batch.token_ids, batch.lengths, vocab_size)
    reduced = _reduce(batch, recipe, idf, stopword_ids, seed)
    timings["reduce_seconds"] = time.perf_counter() - started

    t = time.perf_counter()
    if codec is None:
        rng = np.random.default_rng(seed)
        sample = reduced.vectors[np.sort(rng.permutation(len(reduced.vectors))[:_SAMPLE_CAP])]
        codec = ResidualCodec.fit(sample, nbits=recipe.nbits, n_centroids=recipe.n_centroids,
                                  pca_dim=recipe.pca_dim, n_vectors=len(reduced.vectors), seed=seed)
    timings["codec_fit_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    arrays = _segment_arrays(codec, reduced, batch, vocab_size)
    timings["compress_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    stats = {"n_input_vectors": int(len(batch.vectors)), "n_stored_vectors": int(len(reduced.vectors)),
             "n_documents": len(batch.lengths), "n_passages": len(batch.passage_lengths),
             "n_split_documents": batch.n_split,
             "removed": reduced.removed, **{k: round(v, 3) for k, v in timings.items()}}
    manifest = create_index(directory, codec, {"idf": idf, "stopword_ids": stopword_ids}, arrays, documents,
                            {**info, "recipe": str(recipe), "dim": codec.dim, "vocab_size": vocab_size,
                             "build": stats}, force=force)
    stats["write_seconds"] = round(time.perf_counter() - t, 3)
    stats["seconds"] = round(time.perf_counter() - started, 3)
    return manifest


def add_to_index(directory, batch: TokenBatch, documents: list[dict], *, upsert: bool = False,
                 seed: int = 0, lock_timeout: float = LOCK_TIMEOUT) -> dict:
    """Append documents as a new segment, reusing the index's codec, idf and recipe (read and
    applied under the writer lock, so a concurrent rebuild or retrain cannot slip in between)."""
    if len(documents) != len(batch.lengths):
        raise ValueError(f"{len(documents)} documents but embeddings for {len(batch.lengths)}")

    def code(store: IndexStore) -> SegmentArrays:
        reduced = _reduce(batch, Recipe.parse(store.manifest["recipe"]), store.idf, store.stopword_ids, seed)
        return _segment_arrays(store.codec, reduced, batch, store.manifest["vocab_size"])

    return append_segment(directory, code, documents, upsert=upsert, lock_timeout=lock_timeout)


def compact_index(directory, *, retrain: bool = False, seed: int = 0, show_progress: bool = False,
                  lock_timeout: float = LOCK_TIMEOUT) -> dict:
    """Merge all segments into one without deleted documents.

    retrain=False copies the stored codes as they are; retrain=True decompresses every live
    vector, fits new centroids and buckets to them (for data that drifted since the build)
    and compresses again, keeping the original projection so queries still fit.
    """
    store = IndexStore.open(directory, verify=False)
    # Compaction copies every stored byte into a new segment with a fresh checksum: verify first,
    # so that bytes which rotted since the index was opened are refused, never re-signed.
    require_intact(directory, store.manifest, "retrain" if retrain else "compact")
    parts = {k: [] for k in ("codes", "residuals", "lengths", "member_counts", "member_token_ids", "passages",
                             "spans")}
    documents, sources = [], []
    base = 0
    for segment in tqdm(store.segments, desc="compacting", disable=not show_progress):
        alive = store.alive[base:base + segment.n_docs]
        sources += [(segment.entry["name"], int(i)) for i in np.flatnonzero(alive)]
        base += segment.n_docs
        doc_lengths = np.diff(segment.doc_offsets)
        vector_alive = np.repeat(alive, doc_lengths)
        member_alive = np.repeat(vector_alive, np.asarray(segment.member_counts, dtype=np.int64))
        parts["codes"].append(segment.vector_codes(np.flatnonzero(vector_alive)))
        parts["residuals"].append(segment.vector_residuals(np.flatnonzero(vector_alive)))
        _, passage_lengths, passages = segment.passages_of(np.flatnonzero(alive))
        parts["lengths"].append(passage_lengths)
        parts["passages"].append(passages)
        parts["spans"].append(_kept_spans(segment, alive))
        parts["member_counts"].append(np.asarray(segment.member_counts)[vector_alive])
        parts["member_token_ids"].append(np.asarray(segment.member_token_ids)[member_alive])
        documents += [d for d, a in zip(segment.documents, alive) if a]
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    if not documents:
        raise ValueError(f"{directory}: every document is deleted; nothing to compact into")
    codec = None
    codes, residuals = joined["codes"], joined["residuals"]
    if retrain:
        vectors = store.codec.decompress(codes, residuals).numpy()
        rng = np.random.default_rng(seed)
        sample = vectors[np.sort(rng.permutation(len(vectors))[:_SAMPLE_CAP])]
        codec = ResidualCodec.fit(sample, nbits=store.codec.nbits, n_vectors=len(vectors), seed=seed,
                                  n_centroids=Recipe.parse(store.manifest["recipe"]).n_centroids)
        codec.projection = store.codec.projection
        codes, residuals = codec.compress(vectors, already_projected=True)
    arrays = SegmentArrays.assemble(codes, residuals, joined["lengths"], joined["member_counts"],
                                    joined["member_token_ids"], (codec or store.codec).n_centroids,
                                    store.manifest["vocab_size"], passages=joined["passages"], spans=joined["spans"])
    extras = {"idf": store.idf, "stopword_ids": store.stopword_ids}
    return rewrite_index(directory, codec, extras, arrays, documents, {},
                         expected_generation=store.manifest["generation"], sources=sources, lock_timeout=lock_timeout)


def _kept_spans(segment, alive: np.ndarray) -> np.ndarray:
    """(kept passages, 2) int64 character spans of the live documents' passages ((0, -1): whole text)."""
    if segment.doc_passages is None:
        return np.tile(np.array([0, -1], dtype=np.int64), (int(alive.sum()), 1))
    keep = np.repeat(alive, np.diff(np.asarray(segment.doc_passages)))
    return np.asarray(segment.passage_spans, dtype=np.int64)[keep]


def growth(store: IndexStore) -> dict:
    """How far the collection has grown past its codec: stored vectors now, the centroids the
    codec has and the count a build of today's collection would size (indexes/codec/residual.py), mean
    list length, and `retrain`: True once today's count is at least twice the codec's (lists
    twice as long as a fresh build's, so probing costs twice as much), unless the recipe fixes
    the count. `compact(retrain=True)` then refits the codec for the collection."""
    n_vectors = sum(int(s.entry["n_vectors"]) for s in store.segments)
    have = store.codec.n_centroids
    sized = default_n_centroids(n_vectors)
    fixed = Recipe.parse(store.manifest["recipe"]).n_centroids is not None
    return {"stored_vectors": n_vectors, "centroids": have, "sized_centroids": sized,
            "mean_list_length": n_vectors / max(1, have), "segments": len(store.segments),
            "retrain": (not fixed) and sized >= 2 * have}
