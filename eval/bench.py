"""Query-engine benchmark: a user's query end to end, stage by stage, then token retrieval settings
against exhaustive MaxSim on one index.

    tessera bench --dataset ../shared/data/scifact --cache /tmp/cache/scifact --index /tmp/scifact-idx \\
        [--recipe pool2,min16,res2] [--only end-to-end|sweep] [--out docs/bench]

First (eval/latency.py): every judged query searched alone from its text with the default
searcher, at 1 and 2 threads, with the time of encoding, first stage, rescoring, lexical side and
fusion reported apart and their sum beside the end-to-end time.

Encodes the collection once (cached shards) and builds the index from those embeddings if
the directory holds none; encodes the judged queries once. Then, for each setting, it reports
recall of the exhaustive top-10 (same index, same query vectors), nDCG@10, first-stage recall
of the exhaustive top-10 among the candidates, latency per query (p50 / p95, one query at a
time, with 1 and with 2 threads) and queries per second for the whole batch. Writes a Markdown
table, JSON and a quality-vs-latency PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from indexes.builder.recipe import DEFAULT_RECIPE

import numpy as np

DEFAULT_SWEEP = [  # (nprobe, k_prime, n_candidates)
    (1, None, 32), (2, None, 32), (2, None, 64), (4, None, 32), (4, None, 64), (4, None, 128),
    (8, None, 64), (8, None, 128), (16, None, 128), (16, None, 256), (4, 1000, 64), (8, 2000, 64),
]


def resident_mib() -> float:
    """Resident memory of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _time_single(searcher, embeddings: np.ndarray, k: int, threads: int) -> np.ndarray:
    """(n_queries,) milliseconds of each query searched alone with `threads` torch threads."""
    import torch
    from .run import time_each_query

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return 1000 * np.array(time_each_query(searcher, embeddings, k, f"timing, {threads} thread(s)"))
    finally:
        torch.set_num_threads(previous)


def run(dataset: str, cache: str, index_dir: str, recipe: str, sweep: list, split: str = "test",
        k: int = 10, model: str | None = None, backends: tuple[str, ...] = ("compiled", "reference")) -> dict:
    import torch
    from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
    from retriever.cache import encode_corpus_cached
    from .metrics import evaluate
    from .qrels import read_qrels

    encoder = load_encoder(model)
    if not (Path(index_dir) / "manifest.json").is_file():
        documents = read_corpus(dataset)
        embeddings = encode_corpus_cached(encoder, documents, cache)
        Index.build_from_embeddings(index_dir, embeddings, documents, encoder, recipe=recipe)
    rss_before = resident_mib()
    index = Index.open(index_dir, verify=False)
    qrels = read_qrels(dataset, split)
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    embeddings = encoder.encode_queries([q.text for q in queries])

    def quality(results) -> dict:
        run_ = {q.id: dict(results.hits(i)) for i, q in enumerate(queries)}
        return evaluate(run_, qrels)

    # Resident memory of a loaded searcher: the index opened and a few queries run (pages touched),
    # measured before the exhaustive reference allocates its large scoring blocks.
    Searcher(index, encoder=encoder).search_batch(embeddings[:20], k=k)
    rss_loaded = resident_mib() - rss_before
    torch.set_num_threads(2)
    started = time.perf_counter()
    exhaustive = Searcher(index, encoder=encoder, engine="exhaustive").search_batch(embeddings, k=100)
    exhaustive_seconds = time.perf_counter() - started
    reference = [set(row[:k]) for row in exhaustive.indices.tolist()]
    rows = [{"setting": "exhaustive", "recall_vs_exhaustive": 1.0, "first_stage_recall": 1.0,
             "nDCG@10": quality(exhaustive)["nDCG@10"], "batch_qps": len(queries) / exhaustive_seconds,
             "p50_ms_1t": float("nan"), "p95_ms_1t": float("nan"), "p50_ms_2t": float("nan"),
             "p95_ms_2t": float("nan")}]
    print(json.dumps(rows[-1]), flush=True)
    settings = [(b, *s) for s in sweep for b in backends if not (b == "compiled" and s[1] is not None)]
    for backend, nprobe, k_prime, n_candidates in settings:
        searcher = Searcher(index, encoder=encoder, nprobe=nprobe, k_prime=k_prime, n_candidates=n_candidates,
                            backend=backend, hybrid=False)
        rows.append({"setting": f"{backend}: nprobe={nprobe} k'={k_prime or '-'} cand={n_candidates}",
                     **_setting_row(searcher, index, embeddings, k, reference, quality)})
        print(json.dumps(rows[-1]), flush=True)
    size = index.store.nbytes()
    return {"dataset": dataset, "recipe": index.manifest["recipe"], "n_docs": len(index),
            "n_vectors": sum(s.entry["n_vectors"] for s in index.store.segments),
            "index_mib": size["search"] / 2**20, "rss_mib_loaded": rss_loaded,
            "queries": len(queries), "rows": rows}


def _setting_row(searcher, index, embeddings: np.ndarray, k: int, reference: list[set], quality) -> dict:
    """One setting's recall of the exhaustive top-k (final and first stage), nDCG@10, batch
    throughput and one-query latencies at 1 and 2 threads."""
    import torch

    projected = index.store.codec.project(embeddings.reshape(-1, embeddings.shape[2])).reshape(
        len(embeddings), embeddings.shape[1], -1)
    first = [set(searcher.ranker.candidates(torch.from_numpy(projected[i])).tolist()) for i in range(len(embeddings))]
    lat1 = _time_single(searcher, embeddings, k, threads=1)
    lat2 = _time_single(searcher, embeddings, k, threads=2)
    started = time.perf_counter()
    results = searcher.search_batch(embeddings, k=k)   # k results: n_candidates is not raised to 100
    batch_seconds = time.perf_counter() - started
    return {"recall_vs_exhaustive": float(np.mean([len(set(r[:k]) & ref) / len(ref)
                                                   for r, ref in zip(results.indices.tolist(), reference)])),
            "first_stage_recall": float(np.mean([len(f & ref) / len(ref) for f, ref in zip(first, reference)])),
            "nDCG@10": quality(results)["nDCG@10"], "batch_qps": len(embeddings) / batch_seconds,
            "p50_ms_1t": float(np.percentile(lat1, 50)), "p95_ms_1t": float(np.percentile(lat1, 95)),
            "p50_ms_2t": float(np.percentile(lat2, 50)), "p95_ms_2t": float(np.percentile(lat2, 95))}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import labelled_scatter

    header = (f"{result['dataset']}: {result['n_docs']:,} documents, {result['n_vectors']:,} stored vectors, "
              f"recipe `{result['recipe']}`, index {result['index_mib']:.0f} MiB, {result['queries']} queries; "
              f"resident memory of the loaded searcher {result['rss_mib_loaded']:.0f} MiB above the encoder\n\n")
    lines = ["| setting | recall of exhaustive top-10 | first-stage recall | nDCG@10 | p50 ms (1 thr) | "
             "p95 ms (1 thr) | p50 ms (2 thr) | p95 ms (2 thr) | batch q/s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['setting']} | {r['recall_vs_exhaustive']:.3f} | {r['first_stage_recall']:.3f} | "
                     f"{r['nDCG@10']:.4f} | {r['p50_ms_1t']:.1f} | {r['p95_ms_1t']:.1f} | {r['p50_ms_2t']:.1f} | "
                     f"{r['p95_ms_2t']:.1f} | {r['batch_qps']:.1f} |")
    table = header + "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(result["dataset"]).name
    labelled_scatter([(r["p50_ms_1t"], r["recall_vs_exhaustive"], r["setting"]) for r in result["rows"][1:]],
                     out / f"bench-{name}.png", xlabel="median latency per query, ms (1 thread, log scale)",
                     ylabel="recall of exhaustive top-10", title=f"Token retrieval + rescoring, {name}")
    save_table(out, f"bench-{name}", result, table)
    return table


def main(command: str = "bench", argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tessera bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True, help="folder for encoded shards (reused across runs)")
    p.add_argument("--index", required=True, help="index directory (built from the cache if missing)")
    p.add_argument("--recipe", default=DEFAULT_RECIPE)
    p.add_argument("--out", default="docs/bench")
    p.add_argument("--model", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--backends", nargs="+", default=["compiled", "reference"], choices=["compiled", "reference"],
                   help="search paths measured side by side (default both)")
    p.add_argument("--only", choices=["end-to-end", "sweep"], default=None,
                   help="run one of the two parts (default both)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of the end-to-end part (threads alternate)")
    args = p.parse_args(argv)
    if args.only != "sweep":
        from . import latency

        if not (Path(args.index) / "manifest.json").is_file():
            from retriever import Index, load_encoder, read_corpus
            from retriever.cache import encode_corpus_cached

            encoder, documents = load_encoder(args.model), read_corpus(args.dataset)
            Index.build_from_embeddings(args.index, encode_corpus_cached(encoder, documents, args.cache), documents,
                                        encoder, recipe=args.recipe)
        print(latency.report(latency.run(args.index, args.dataset, rounds=args.rounds, split=args.split),
                             Path(args.out)))
        if args.only == "end-to-end":
            return 0
    result = run(args.dataset, args.cache, args.index, args.recipe, DEFAULT_SWEEP, args.split, model=args.model,
                 backends=tuple(args.backends))
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
