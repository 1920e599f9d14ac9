"""Dense and hybrid search latency of one checkout's code, one query at a time on one thread,
to compare two checkouts side by side (run alternately, A B A B, on a quiet machine):

    python eval/tree_timing.py --tree OLD_CHECKOUT --index DIR --dataset ../shared/data/scifact --out a.json
    python eval/tree_timing.py --tree .            --index DIR --dataset ../shared/data/scifact --out b.json

The query vectors are encoded once (--queries NPY, written on first use) so both checkouts
search the same arrays; the output holds p50 / p95 / mean ms and every query's top-10 ids.
With --end-to-end each query is instead searched from its text by the default searcher
(`Searcher(index).search(text, k=10)`: encoding, dense, BM25, fusion) at each of --threads.
Run as a script (not -m): the checkout under --tree must be the one imported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", required=True, help="the checkout whose code is timed")
    p.add_argument("--index", required=True)
    p.add_argument("--dataset", required=True, help="BEIR folder: its test queries are searched")
    p.add_argument("--queries", default="/tmp/tree-timing-queries.npy", help="encoded queries (made if absent)")
    p.add_argument("--out", required=True)
    p.add_argument("--end-to-end", action="store_true", help="time searches from the query text instead")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import numpy as np
    import numba
    import torch

    from eval.qrels import read_qrels
    from retriever import Index, Searcher, read_queries

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    qrels = read_qrels(args.dataset, "test")
    texts = [q.text for q in read_queries(args.dataset) if q.id in qrels]
    index = Index.open(args.index, verify=False)
    if args.end_to_end:
        return _end_to_end(index, texts, args, Searcher, np, numba, torch)
    if not Path(args.queries).is_file():
        np.save(args.queries, index.load_encoder().encode_queries(texts))
    vectors = np.load(args.queries)
    result = {}
    for name, kwargs in (("dense", {"hybrid": False}), ("hybrid", {})):
        searcher = Searcher(index, **kwargs)
        for i in range(20):                                    # compile, page in
            searcher.search_batch(vectors[i:i + 1], k=10, texts=texts[i:i + 1])
        ms, ids = [], []
        for i in range(len(texts)):
            started = time.perf_counter()
            ids.append(searcher.search_batch(vectors[i:i + 1], k=10, texts=texts[i:i + 1]).doc_ids[0])
            ms.append(1000 * (time.perf_counter() - started))
        result[name] = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                        "mean": float(np.mean(ms)), "ids": ids}
    Path(args.out).write_text(json.dumps(result))
    print(args.tree, {k: (round(v["p50"], 2), round(v["p95"], 2)) for k, v in result.items()})
    return 0


def _end_to_end(index, texts, args, Searcher, np, numba, torch) -> int:
    searcher, result = Searcher(index), {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        numba.set_num_threads(threads)
        for text in texts[:20]:                                # compile, page in, sessions per thread count
            searcher.search(text, k=10)
        ms, ids = [], []
        for text in texts:
            started = time.perf_counter()
            ids.append(searcher.search(text, k=10).doc_ids[0])
            ms.append(1000 * (time.perf_counter() - started))
        result[f"end_to_end_{threads}t"] = {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
                                            "mean": float(np.mean(ms)), "ids": ids}
    Path(args.out).write_text(json.dumps(result))
    print(args.tree, {k: (round(v["p50"], 2), round(v["p95"], 2)) for k, v in result.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
