"""Sharded indexes: builds split over shards (in-process or as Ray tasks), scatter-gather search.

A build first fits one codec on a sample of the collection (and idf over all of it), then builds
every shard with that codec, so scores from different shards compare and merging per-shard top-k
lists gives the global top-k. With Ray each shard is a task (`max_retries`: a worker that dies
is replaced and its shard rebuilt from scratch; each shard's write is atomic); without Ray the
same function runs shard after shard in this process. Layout: docs/index-format.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from indexes.build import TokenBatch, build_index, fit_codec
from indexes.recipe import DEFAULT_RECIPE
from indexes.reduce import idf_from_token_ids
from indexes.sharded import commit_shards, new_shard_names

from .corpus import Document
from .encoder import DocumentEmbeddings, Encoder
from .index import encoder_from_spec, encoder_spec
from .sharded_search import ShardedIndex, ShardedSearcher  # noqa: F401 (re-exported)
from .stopwords import stopword_token_ids

__all__ = ["build_sharded", "shard_ranges", "ShardedIndex", "ShardedSearcher"]

SAMPLE_DOCS = 2_000   # documents encoded first to fit the shared codec


def shard_ranges(n_docs: int, n_shards: int) -> list[range]:
    """Contiguous, near-equal document ranges, one per shard."""
    if not 1 <= n_shards <= n_docs:
        raise ValueError(f"need 1 <= shards <= documents, got {n_shards} shards for {n_docs} documents")
    bounds = np.linspace(0, n_docs, n_shards + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def _slice(embeddings: DocumentEmbeddings, rows: range) -> TokenBatch:
    off = embeddings.offsets
    a, b = int(off[rows.start]), int(off[rows.stop])
    return TokenBatch(embeddings.vectors[a:b], embeddings.token_ids[a:b], embeddings.lengths[rows.start:rows.stop],
                      embeddings.norms[a:b])


def build_shard(path: str, documents: list[dict], spec: dict, codec, idf: np.ndarray, recipe: str,
                batch: TokenBatch | None = None) -> dict:
    """Encode (unless `batch` is given) and write one shard with the shared codec; returns build stats.

    Runs in a Ray worker or in-process. For fault-injection tests, TESSERA_CRASH_ONCE=FILE makes
    the first call that finds FILE absent create it and kill its own process after encoding."""
    encoder = encoder_from_spec(spec, device="cpu" if batch is not None else None)
    started = time.perf_counter()
    if batch is None:
        embeddings = encoder.encode_documents([Document(**d).full_text for d in documents], show_progress=False)
        batch = TokenBatch(embeddings.vectors, embeddings.token_ids, embeddings.lengths, embeddings.norms)
    encode_seconds = time.perf_counter() - started
    marker = os.environ.get("TESSERA_CRASH_ONCE")
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    manifest = build_index(path, batch, documents, recipe=recipe, vocab_size=len(encoder.tokenizer),
                           stopword_ids=stopword_token_ids(encoder.tokenizer, encoder.config.skiplist),
                           info={"encoder": spec, "encoding": {"seconds": round(encode_seconds, 3),
                                                               "input_tokens": int(len(batch.vectors)),
                                                               "tokens_per_second": 0}},
                           codec=codec, idf=idf)
    return {"documents": len(documents), "encode_seconds": encode_seconds, **manifest["build"]}


def build_sharded(directory: str | Path, documents: Sequence[Document], encoder: Encoder, *, n_shards: int,
                  recipe: str = DEFAULT_RECIPE, ray_address: str | None = None, use_ray: bool = False,
                  embeddings: DocumentEmbeddings | None = None, seed: int = 0) -> dict:
    """Build a sharded index; returns the sharded manifest (with per-shard build stats).

    use_ray: run shards as Ray tasks (on `ray_address`, or a local Ray started here);
    embeddings: pre-encoded documents (benchmarks from a cache): shards then skip encoding."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ranges = shard_ranges(len(documents), n_shards)
    spec = encoder_spec(encoder)
    started = time.perf_counter()
    # idf over the whole collection from the tokenizer alone (cheap), so every shard prunes alike.
    ids = encoder.tokenizer([d.full_text for d in documents], add_special_tokens=False, truncation=True,
                            max_length=encoder.config.doc_maxlen)["input_ids"]   # what the encoder will read
    vocab_size = len(encoder.tokenizer)
    idf = idf_from_token_ids(np.concatenate([np.asarray(x, np.int64) for x in ids]),
                             np.array([len(x) for x in ids]), vocab_size)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(len(documents))[:SAMPLE_DOCS])
    if embeddings is not None:
        off = embeddings.offsets
        rows = np.concatenate([np.arange(off[d], off[d + 1]) for d in sample])
        sample_batch = TokenBatch(embeddings.vectors[rows], embeddings.token_ids[rows],
                                  embeddings.lengths[sample], embeddings.norms[rows])
    else:
        e = encoder.encode_documents([documents[d].full_text for d in sample], show_progress=False)
        sample_batch = TokenBatch(e.vectors, e.token_ids, e.lengths, e.norms)
    stopwords = stopword_token_ids(encoder.tokenizer, encoder.config.skiplist)
    codec = fit_codec(sample_batch, recipe, collection_docs=len(documents), idf=idf, stopword_ids=stopwords,
                      seed=seed)
    codec_seconds = time.perf_counter() - started

    names = new_shard_names(n_shards)
    jobs = [(str(directory / name), [d.to_dict() for d in documents[r.start:r.stop]], spec, codec, idf, recipe,
             None if embeddings is None else _slice(embeddings, r)) for name, r in zip(names, ranges)]
    if use_ray:
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
        task = ray.remote(max_retries=3, num_cpus=1)(build_shard)
        stats = ray.get([task.remote(*job) for job in jobs])
    else:
        stats = [build_shard(*job) for job in jobs]
    info = {"n_docs": len(documents), "recipe": recipe, "encoder": spec, "ray": bool(use_ray),
            "build": {"seconds": round(time.perf_counter() - started, 3), "codec_seconds": round(codec_seconds, 3),
                      "shards": stats}}
    return commit_shards(directory, names, info)
