"""Scaling benchmark: a larger collection made by resampling real encoded token vectors.

Each synthetic document takes the token vectors of two random documents of a real collection's
encoded cache, keeping a random half of each (so no two documents are copies). The index is built
in chunks the way a growing collection is: the codec is fitted on 2,000 documents of the first chunk
but sized for the whole collection (`fit_codec(collection_docs=...)`, as a sharded build does), later chunks are added
as segments with the same codec; `--codec-from-first-chunk` sizes it for the first chunk alone (the
behaviour before, whose lists grow without bound). Then the real collection's judged queries are searched with the
default engine and with exhaustive MaxSim, reporting recall of the exhaustive top-10, latency
(one query at a time, one thread) and resident memory.

    python -m eval.scale --dataset ../shared/data/scifact --cache /tmp/cache/scifact --docs 50000 \\
        --index /tmp/scale-50k [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from indexes.builder.recipe import DEFAULT_RECIPE

import numpy as np


def synthetic_chunk(embeddings, n_docs: int, rng: np.random.Generator):
    """(vectors, token_ids, lengths, norms) of n_docs documents resampled from `embeddings`."""
    offsets = embeddings.offsets
    pick = rng.integers(0, len(embeddings.lengths), size=(n_docs, 2))
    rows, lengths = [], []
    for a, b in pick:
        parts = [np.arange(offsets[d], offsets[d + 1]) for d in (a, b)]
        chosen = np.concatenate([p[rng.random(len(p)) < 0.5] for p in parts])
        if len(chosen) == 0:
            chosen = parts[0][:1]
        rows.append(chosen)
        lengths.append(len(chosen))
    rows = np.concatenate(rows)
    return (embeddings.vectors[rows], embeddings.token_ids[rows], np.array(lengths, dtype=np.int64),
            embeddings.norms[rows])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--index", required=True)
    p.add_argument("--docs", type=int, default=50_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--codec-from-first-chunk", action="store_true",
                   help="size the codec for the first chunk (the old behaviour) instead of the whole collection")
    p.add_argument("--search-only", action="store_true", help="search the index already in --index (no build)")
    p.add_argument("--settings", default="",
                   help="also time these NPROBE:CANDIDATES settings, comma-separated (e.g. 8:64,16:64,16:128)")
    return p


def build(args, encoder, embeddings) -> None:
    """Write args.docs synthetic documents in chunks: the first builds the index (codec sized for
    the whole collection unless --codec-from-first-chunk), the others are added."""
    from indexes.builder.pipeline import TokenBatch, add_to_index, build_index, fit_codec
    from indexes.builder.reduce import idf_from_token_ids
    from retriever.checkpoints import encoder_spec
    from retriever.sharded import SAMPLE_DOCS
    from retriever.stopwords import stopword_token_ids

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for first in range(0, args.docs, args.chunk):
        n = min(args.chunk, args.docs - first)
        vectors, token_ids, lengths, norms = synthetic_chunk(embeddings, n, rng)
        batch = TokenBatch(vectors, token_ids, lengths, norms)
        docs = [{"id": f"syn{first + i}"} for i in range(n)]
        if first == 0:
            stopwords = stopword_token_ids(encoder.tokenizer, encoder.config.skiplist)
            idf = idf_from_token_ids(token_ids, lengths, len(encoder.tokenizer))
            # Fitted on a sample of the (already random) first chunk, as a sharded build does, so the
            # whole chunk is not reduced twice (once to fit, once to build).
            sample = min(max(SAMPLE_DOCS, 5_000), n)   # enough vectors for k-means to reach its cap
            rows = int(lengths[:sample].sum())
            codec = None if args.codec_from_first_chunk else fit_codec(
                TokenBatch(vectors[:rows], token_ids[:rows], lengths[:sample], norms[:rows]), args.recipe,
                collection_docs=args.docs, idf=idf, stopword_ids=stopwords)
            build_index(args.index, batch, docs, recipe=args.recipe, vocab_size=len(encoder.tokenizer),
                        stopword_ids=stopwords, codec=codec, idf=idf,
                        info={"encoder": encoder_spec(encoder),
                              "encoding": {"seconds": 0.0, "input_tokens": int(len(vectors)), "tokens_per_second": 0}})
        else:
            add_to_index(args.index, batch, docs)
        print(f"{first + n:,} documents indexed, {time.perf_counter() - started:.0f} s", flush=True)


def timed(searcher, q: np.ndarray) -> tuple[list[float], list[set]]:
    """Each query alone: latencies (ms) and its top-10 positions."""
    latencies, top = [], []
    for i in range(len(q)):
        t = time.perf_counter()
        top.append(set(searcher.search_batch(q[i:i + 1], k=10).indices[0].tolist()))
        latencies.append(1000 * (time.perf_counter() - t))
    return latencies, top


def main(argv: list[str] | None = None) -> int:
    import torch
    from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
    from retriever.cache import encode_corpus_cached
    from .bench import resident_mib

    args = _parser().parse_args(argv)
    encoder = load_encoder()
    embeddings = encode_corpus_cached(encoder, read_corpus(args.dataset), args.cache)
    if not args.search_only:
        build(args, encoder, embeddings)
    torch.set_num_threads(1)
    q = encoder.encode_queries([x.text for x in read_queries(args.dataset)[: args.queries]])
    rss0 = resident_mib()
    index = Index.open(args.index, verify=False)
    latencies, top = timed(Searcher(index, encoder=encoder, hybrid=False), q)
    rss = resident_mib() - rss0
    torch.set_num_threads(2)
    reference = Searcher(index, encoder=encoder, engine="exhaustive").search_batch(q, k=10).indices
    torch.set_num_threads(1)

    def recall_of(top: list[set]) -> float:
        return float(np.mean([len(t & set(r.tolist())) / 10 for t, r in zip(top, reference)]))

    n_vectors = sum(s.entry["n_vectors"] for s in index.store.segments)
    result = {"documents": len(index), "stored_vectors": n_vectors, "segments": len(index.store.segments),
              "centroids": index.manifest["codec"]["n_centroids"], "index_mib": index.store.nbytes()["search"] / 2**20,
              "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
              "recall_vs_exhaustive": recall_of(top), "rss_mib_after_queries": rss, "queries": len(q)}
    print(json.dumps(result), flush=True)
    for setting in filter(None, args.settings.split(",")):
        nprobe, candidates = (int(x) for x in setting.split(":"))
        latencies, top = timed(Searcher(index, encoder=encoder, hybrid=False, nprobe=nprobe, n_candidates=candidates), q)
        print(json.dumps({"setting": setting, "p50_ms": float(np.percentile(latencies, 50)),
                          "p95_ms": float(np.percentile(latencies, 95)), "recall_vs_exhaustive": recall_of(top)}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
