"""Sharding benchmark: build throughput with 1 vs 2 Ray workers, search latency by shard count.

    python -m eval.shards --dataset ../shared/data/scifact --cache /tmp/cache/scifact --work /tmp/shards \\
        [--build-docs 1000] [--shards 1 2 4] [--out docs/shards]

Build: the first `build-docs` documents are encoded and indexed as 2 shards, once as Ray tasks on
a local Ray with 1 CPU (shards one after the other) and once with 2 CPUs (in parallel); reports
documents and input tokens per second of the whole build (encoding included). Search: the whole
collection, from the encoded cache, as 1, 2 and 4 shards with one shared codec; every judged
query is searched alone (default engine, pre-encoded queries), reporting p50 / p95 latency,
nDCG@10, and whether the top-10 lists equal the 1-shard index's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def run(dataset: str, cache: str, work: str, build_docs: int, shard_counts: list[int]) -> dict:
    import ray
    import torch
    from retriever import load_encoder, read_corpus, read_queries
    from retriever.cache import encode_corpus_cached
    from retriever import Index, Searcher
    from .metrics import evaluate
    from .qrels import read_qrels

    encoder = load_encoder()
    documents = read_corpus(dataset)
    work = Path(work)
    builds = []
    for cpus in (1, 2):
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, object_store_memory=500 * 2**20)
        try:
            started = time.perf_counter()
            manifest = Index.build(work / f"build-{cpus}cpu", documents[:build_docs], encoder, shards=2,
                                   use_ray=True, show_progress=False).manifest
            seconds = time.perf_counter() - started
        finally:
            ray.shutdown()
        tokens = sum(s["n_input_vectors"] for s in manifest["build"]["shards"])
        builds.append({"ray_cpus": cpus, "documents": build_docs, "seconds": seconds,
                       "docs_per_second": build_docs / seconds, "vectors_per_second": tokens / seconds})
        print(json.dumps(builds[-1]), flush=True)

    embeddings = encode_corpus_cached(encoder, documents, cache)
    qrels = read_qrels(dataset, "test")
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    padded = encoder.encode_queries([q.text for q in queries])
    torch.set_num_threads(2)
    searches, reference = [], None
    for n in shard_counts:
        index = Index.build(work / f"search-{n}", documents, encoder, shards=n, cache_dir=cache, show_progress=False)
        searcher = Searcher(index, encoder=encoder)
        for i in range(5):
            searcher.search_batch(padded[i:i + 1], k=10)
        latencies, ranked = [], []
        for i in range(len(queries)):
            started = time.perf_counter()
            ranked.append(searcher.search_batch(padded[i:i + 1], k=10).doc_ids[0])
            latencies.append(1000 * (time.perf_counter() - started))
        reference = reference or ranked
        quality = evaluate({q.id: {d: float(10 - j) for j, d in enumerate(r)} for q, r in zip(queries, ranked)}, qrels)
        searches.append({"shards": n, "p50_ms": float(np.percentile(latencies, 50)),
                         "p95_ms": float(np.percentile(latencies, 95)), "nDCG@10": quality["nDCG@10"],
                         "same_top10_as_1_shard": float(np.mean([set(a) == set(b) for a, b in zip(ranked, reference)]))})
        print(json.dumps(searches[-1]), flush=True)
    return {"dataset": Path(dataset).name, "builds": builds, "searches": searches, "queries": len(queries)}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    lines = ["| Ray CPUs (workers) | documents | build s (encoding included) | documents/s | vectors/s |",
             "|---|---|---|---|---|"]
    lines += [f"| {b['ray_cpus']} | {b['documents']:,} | {b['seconds']:.1f} | {b['docs_per_second']:.1f} | "
              f"{b['vectors_per_second']:,.0f} |" for b in result["builds"]]
    lines += ["", f"{result['dataset']}, {result['queries']} queries, default engine, 2 torch threads, threads per shard:",
              "", "| shards | p50 ms | p95 ms | nDCG@10 | top-10 equal to 1 shard's |", "|---|---|---|---|---|"]
    lines += [f"| {s['shards']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['nDCG@10']:.4f} | "
              f"{s['same_top10_as_1_shard']:.3f} |" for s in result["searches"]]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    save_table(out, "shards", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.shards", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--build-docs", type=int, default=1000)
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--out", default="docs/shards")
    args = p.parse_args(argv)
    print(report(run(args.dataset, args.cache, args.work, args.build_docs, args.shards), Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
