"""Sharded builds: plan once (one idf, one codec fitted on a sample), then build every shard the
same way, in this process or as Ray tasks. `Index.build(..., shards=N)` is the way in.

The plan's idf comes from the token ids the encoder keeps (the same ids a single build counts),
over the whole collection; the codec is fitted on a sample of SAMPLE_DOCS documents reduced by
the recipe. Every shard is then an ordinary index coded with that codec, so scores from
different shards compare and merging per-shard top-k lists gives the global top-k. With Ray each
shard is a task (`max_retries`: a worker that dies is replaced and its shard rebuilt from
scratch; each shard's write is atomic). Layout: docs/index-format.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from indexes import faults
from indexes.builder.pipeline import TokenBatch, build_index, fit_codec
from indexes.builder.recipe import DEFAULT_RECIPE
from indexes.builder.reduce import idf_from_token_ids
from indexes.storage.sharded import commit_shards, new_shard_names

from .corpus import Document
from .encoder import DocumentEmbeddings, Encoder

__all__ = ["build_sharded", "shard_ranges", "SAMPLE_DOCS"]

SAMPLE_DOCS = 2_000   # documents whose vectors fit the shared codec


def shard_ranges(n_docs: int, n_shards: int) -> list[range]:
    """Contiguous, near-equal document ranges, one per shard."""
    if not 1 <= n_shards <= n_docs:
        raise ValueError(f"need 1 <= shards <= documents, got {n_shards} shards for {n_docs} documents")
    bounds = np.linspace(0, n_docs, n_shards + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def build_shard(path: str, documents: list[dict], spec: dict, codec, idf: np.ndarray, recipe: str,
                batch: TokenBatch | None, encoding: dict | None, crash: tuple | None = None) -> dict:
    """Encode (unless `batch` is given) and write one shard with the plan's codec and idf.

    Runs in a Ray worker or in this process; `crash` carries the caller's fault-injection
    setting (indexes/faults.py) into a worker."""
    from .checkpoints import encoder_from_spec
    from .stopwords import stopword_token_ids

    if crash is not None:
        faults.restore(crash)
    encoder = encoder_from_spec(spec, device="cpu" if batch is not None else None)
    if batch is None:
        docs = [Document(**d) for d in documents]
        e = encoder.encode_documents([d.full_text for d in docs], show_progress=False)
        batch = e.to_batch(docs)
        encoding = {"runtime": encoder.runtime, "seconds": round(e.seconds, 3), "input_tokens": e.n_input_tokens,
                    "tokens_per_second": round(e.tokens_per_second, 1)}
    faults.point("shard:encoded")
    manifest = build_index(path, batch, documents, recipe=recipe, vocab_size=len(encoder.tokenizer),
                           stopword_ids=stopword_token_ids(encoder.tokenizer, encoder.config.skiplist),
                           info={"encoder": spec, "encoding": encoding}, codec=codec, idf=idf)
    return {"documents": len(documents), "encoding": encoding, **manifest["build"]}


def build_sharded(directory: str | Path, documents: Sequence[Document], encoder: Encoder, *, n_shards: int,
                  recipe: str = DEFAULT_RECIPE, embeddings: DocumentEmbeddings | None = None,
                  use_ray: bool = False, ray_address: str | None = None, seed: int = 0) -> dict:
    """Build a sharded index; returns the sharded manifest (with per-shard build stats).

    embeddings: the documents already encoded (Index.build encodes here, with its cache, unless
    Ray encodes each shard in its task); use_ray: shards as Ray tasks on `ray_address` (or a
    local Ray started here)."""
    from .checkpoints import encoder_spec
    from .stopwords import stopword_token_ids

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ranges = shard_ranges(len(documents), n_shards)
    spec = encoder_spec(encoder)
    started = time.perf_counter()
    vocab_size = len(encoder.tokenizer)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.permutation(len(documents))[:SAMPLE_DOCS])
    if embeddings is not None:
        idf = idf_from_token_ids(embeddings.token_ids, embeddings.lengths, vocab_size)
        sample_batch = embeddings.to_batch(documents, sample)
    else:
        ids, lengths = encoder.document_token_ids([d.full_text for d in documents])
        idf = idf_from_token_ids(ids, lengths, vocab_size)
        e = encoder.encode_documents([documents[d].full_text for d in sample], show_progress=False)
        sample_batch = e.to_batch([documents[d] for d in sample])
    codec = fit_codec(sample_batch, recipe, collection_docs=len(documents), idf=idf, seed=seed,
                      stopword_ids=stopword_token_ids(encoder.tokenizer, encoder.config.skiplist))
    plan_seconds = time.perf_counter() - started

    def encoding_of(r: range) -> dict | None:
        if embeddings is None:
            return None
        share = (r.stop - r.start) / max(1, len(documents))       # the build's encoding, shared out by documents
        return {"runtime": encoder.runtime, "seconds": round(embeddings.seconds * share, 3),
                "input_tokens": int(round(embeddings.n_input_tokens * share)),
                "tokens_per_second": round(embeddings.tokens_per_second, 1)}

    names = new_shard_names(n_shards)
    jobs = [(str(directory / name), [d.to_dict() for d in documents[r.start:r.stop]], spec, codec, idf, str(recipe),
             None if embeddings is None else embeddings.to_batch(documents, np.arange(r.start, r.stop)),
             encoding_of(r),
             faults.current()) for name, r in zip(names, ranges)]
    if use_ray:
        import ray

        if not ray.is_initialized():
            ray.init(address=ray_address, ignore_reinit_error=True, log_to_driver=False)
        task = ray.remote(max_retries=3, num_cpus=1)(build_shard)
        stats = ray.get([task.remote(*job) for job in jobs])
    else:
        stats = [build_shard(*job) for job in jobs]
    info = {"n_docs": len(documents), "recipe": str(recipe), "encoder": spec, "ray": bool(use_ray),
            "build": {"seconds": round(time.perf_counter() - started, 3), "plan_seconds": round(plan_seconds, 3),
                      "shards": stats}}
    return commit_shards(directory, names, info)
