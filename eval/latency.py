"""End-to-end latency of a user's query, stage by stage, at 1 and 2 threads.

    python -m eval.latency --index /tmp/scifact-index --dataset ../shared/data/scifact [--rounds 2] [--out docs/latency]
    tessera bench --only end-to-end --index ... --dataset ... --cache ...     (the same report)

Each judged query is searched alone as a user sends it, `Searcher(index).search(text, k=10)` with
the default settings (hybrid when the index has lexical lists), timed from the string to the
ranked ids. Each search also records where its time went (indexes/search/timings.py): query
encoding, first stage, rescoring, the lexical side (terms, statistics, BM25) and fusion; "other"
is what the end-to-end time holds beyond those (result ids, masks, Python between the stages).
Thread settings alternate round by round (1, 2, 1, 2, ...) so that a drift of the machine's load
touches both alike. The whole batch in one call is timed too (queries per second). Writes a
Markdown table, JSON and a stacked-bar PNG.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from indexes.search.timings import STAGES

STAGE_COLUMNS = tuple(s for s in STAGES if s != "dense")    # the parts; "dense" holds two of them


def set_threads(threads: int) -> None:
    """The thread count every part of the query path follows (torch, numba, ONNX Runtime's session)."""
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def time_queries(searcher, texts: list[str], k: int, desc: str) -> dict[str, np.ndarray]:
    """Milliseconds per query of each stage and of the whole search ("end_to_end")."""
    from tqdm import tqdm
    from indexes.search.timings import Timings

    rows = []
    for text in tqdm(texts, desc=desc, unit="query", leave=False):
        timings = Timings()
        started = time.perf_counter()
        searcher.search(text, k=k, timings=timings)
        total = time.perf_counter() - started
        rows.append({**timings.ms(), "end_to_end": 1000 * total})
    keys = (*STAGE_COLUMNS, "dense", "end_to_end")
    out = {key: np.array([r.get(key, 0.0) for r in rows]) for key in keys}
    out["other"] = out["end_to_end"] - sum(out[key] for key in STAGE_COLUMNS)
    return out


def run(index_dir: str, dataset: str, threads: tuple[int, ...] = (1, 2), rounds: int = 2, k: int = 10,
        split: str = "test", limit: int | None = None, **searcher_args) -> dict:
    from retriever import Index, Searcher, read_queries
    from .qrels import read_qrels

    qrels = read_qrels(dataset, split)
    texts = [q.text for q in read_queries(dataset) if q.id in qrels][:limit]
    searcher = Searcher(Index.open(index_dir, verify=False), **searcher_args)
    for n in threads:                      # warm: encoder sessions, kernels, pages of the index
        set_threads(n)
        for text in texts[:20]:
            searcher.search(text, k=k)
    runs: dict[int, list[dict]] = {n: [] for n in threads}
    batch_qps: dict[int, list[float]] = {n: [] for n in threads}
    for r in range(rounds):
        for n in threads:
            set_threads(n)
            runs[n].append(time_queries(searcher, texts, k, f"round {r + 1}, {n} thread(s)"))
            started = time.perf_counter()
            searcher.search_batch(texts, k=k)
            batch_qps[n].append(len(texts) / (time.perf_counter() - started))
    rows = []
    for n in threads:
        merged = {key: np.concatenate([run_[key] for run_ in runs[n]]) for key in runs[n][0]}
        rows.append({"threads": n, "queries": len(texts), "rounds": rounds,
                     **{f"{key}_mean_ms": float(v.mean()) for key, v in merged.items()},
                     **{f"{key}_p50_ms": float(np.percentile(v, 50)) for key, v in merged.items()},
                     "end_to_end_p95_ms": float(np.percentile(merged["end_to_end"], 95)),
                     "end_to_end_p50_by_round": [float(np.percentile(x["end_to_end"], 50)) for x in runs[n]],
                     "batch_qps": float(np.median(batch_qps[n]))})
    return {"index": index_dir, "dataset": dataset, "searcher": searcher_args, "fusion": searcher.fusion,
            "rows": rows}


def report(result: dict, out: Path) -> str:
    from indexes.names import DEFAULT_FUSION
    from .report import save_table
    from .plots import stacked_bars

    columns = (*STAGE_COLUMNS, "other")
    lines = [f"End to end, {Path(result['dataset']).name}, {result['rows'][0]['queries']} queries one at a time x "
             f"{result['rows'][0]['rounds']} rounds, default searcher (fusion {result['fusion'] or DEFAULT_FUSION}); "
             "stage means in ms, end to end mean / p50 / p95\n",
             "| threads | " + " | ".join(columns) + " | sum of stages + other (mean) | end-to-end p50 | p95 | "
             "p50 per round | batch q/s |",
             "|---|" + "---|" * (len(columns) + 5)]
    for r in result["rows"]:
        lines.append(f"| {r['threads']} | " + " | ".join(f"{r[c + '_mean_ms']:.2f}" for c in columns)
                     + f" | {r['end_to_end_mean_ms']:.2f} | **{r['end_to_end_p50_ms']:.2f}** | "
                     f"{r['end_to_end_p95_ms']:.2f} | {' / '.join(f'{x:.1f}' for x in r['end_to_end_p50_by_round'])} | "
                     f"{r['batch_qps']:.0f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    name = f"latency-{Path(result['dataset']).name}"
    stacked_bars([f"{r['threads']} thread(s)" for r in result["rows"]], list(columns),
                 [[r[c + "_mean_ms"] for c in columns] for r in result["rows"]], out / f"{name}.png",
                 xlabel="mean milliseconds per query", title=f"Where a query's time goes, {name[8:]}")
    save_table(out, name, result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="first N judged queries only")
    p.add_argument("--quality", default="balanced")
    p.add_argument("--out", default="docs/latency")
    args = p.parse_args(argv)
    result = run(args.index, args.dataset, tuple(args.threads), args.rounds, limit=args.limit, quality=args.quality)
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
