"""Sharding benchmark: build throughput with 1 vs 2 Ray workers, search latency by shard count.

    python -m eval.shards --dataset ../shared/data/scifact --cache /tmp/cache/scifact --work /tmp/shards \\
        [--build-docs 1000] [--shards 1 2 4] [--out docs/shards]

Build (skipped with --build-docs 0): the first `build-docs` documents are encoded and indexed as 2 shards, once as Ray tasks on
a local Ray with 1 CPU (shards one after the other) and once with 2 CPUs (in parallel); reports
documents and input tokens per second of the whole build (encoding included). Search: the whole
collection, from the encoded cache, as 1, 2 and 4 shards (Index.build(shards=N)); every judged
query is searched alone (default preset, dense and hybrid, queries encoded once), by threads and
by Ray actors, reporting p50 / p95 latency, nDCG@10, whether the top-10 lists equal the 1-shard
index's (they differ only by the shard sets' own codec fitted on a sample), and per-shard sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _builds(documents, encoder, work: Path, build_docs: int) -> list[dict]:
    """Build throughput (encoding included) of 2 shards as Ray tasks on 1 and on 2 CPUs."""
    import ray
    from retriever import Index

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
    return builds


def _timed(searcher, encoded) -> tuple[list[float], list[list[str]]]:
    for i in range(5):
        searcher.search_batch(encoded[i:i + 1], k=10)
    latencies, ranked = [], []
    for i in range(len(encoded)):
        started = time.perf_counter()
        ranked.append(searcher.search_batch(encoded[i:i + 1], k=10).doc_ids[0])
        latencies.append(1000 * (time.perf_counter() - started))
    return latencies, ranked


def run(dataset: str, cache: str, work: str, build_docs: int, shard_counts: list[int], ray_search: bool) -> dict:
    import torch
    from retriever import Index, Searcher, encode_queries, load_encoder, open_index, read_corpus, read_queries
    from .metrics import evaluate
    from .qrels import read_qrels

    encoder = load_encoder()
    documents = read_corpus(dataset)
    work = Path(work)
    builds = _builds(documents, encoder, work, build_docs) if build_docs else []
    qrels = read_qrels(dataset, "test")
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    encoded = encode_queries(encoder, [q.text for q in queries])
    torch.set_num_threads(1)
    searches, reference = [], {}
    for n in shard_counts:
        index = Index.build(work / f"search-{n}", documents, encoder, shards=n, cache_dir=cache, show_progress=False)
        stats = index.stats()
        executors = ["threads"] + (["ray"] if ray_search and n > 1 else [])
        for executor in executors:
            if executor == "ray":
                import ray
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=300 * 2**20)
                index = open_index(work / f"search-{n}", executor="ray")
            for mode, kwargs in (("dense", {"hybrid": False}), ("hybrid", {})):
                latencies, ranked = _timed(Searcher(index, encoder=encoder, **kwargs), encoded)
                reference.setdefault(mode, ranked)
                quality = evaluate({q.id: {d: float(10 - j) for j, d in enumerate(r)}
                                    for q, r in zip(queries, ranked)}, qrels)
                searches.append({"shards": n, "executor": executor, "search": mode,
                                 "p50_ms": float(np.percentile(latencies, 50)),
                                 "p95_ms": float(np.percentile(latencies, 95)), "nDCG@10": quality["nDCG@10"],
                                 "same_top10_as_1_shard": float(np.mean([a == b for a, b in zip(ranked, reference[mode])])),
                                 "stored_vectors_per_shard": stats["stored_vectors"] / n,
                                 "search_mib_per_shard": stats["bytes_search"] / n / 2**20})
                print(json.dumps(searches[-1]), flush=True)
            if executor == "ray":
                ray.shutdown()
    return {"dataset": Path(dataset).name, "builds": builds, "searches": searches, "queries": len(queries)}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    lines = ["| Ray CPUs (workers) | documents | build s (encoding included) | documents/s | vectors/s |",
             "|---|---|---|---|---|"]
    lines += [f"| {b['ray_cpus']} | {b['documents']:,} | {b['seconds']:.1f} | {b['docs_per_second']:.1f} | "
              f"{b['vectors_per_second']:,.0f} |" for b in result["builds"]]
    lines += ["", f"{result['dataset']}, {result['queries']} queries one at a time, one torch thread, default "
              "preset; shards searched by threads of this process or by Ray actors (local Ray, 2 CPUs):", "",
              "| shards | executor | search | p50 ms | p95 ms | nDCG@10 | top-10 equal to 1 shard's | "
              "stored vectors / shard | MiB / shard |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['shards']} | {s['executor']} | {s['search']} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
              f"{s['nDCG@10']:.4f} | {s['same_top10_as_1_shard']:.3f} | {s['stored_vectors_per_shard']:,.0f} | "
              f"{s['search_mib_per_shard']:.1f} |" for s in result["searches"]]
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
    p.add_argument("--no-ray-search", action="store_true", help="search with threads only")
    p.add_argument("--out", default="docs/shards")
    args = p.parse_args(argv)
    print(report(run(args.dataset, args.cache, args.work, args.build_docs, args.shards, not args.no_ray_search),
                 Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
