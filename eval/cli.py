"""`tessera eval`: run a collection's judged queries against an index and report metrics."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera eval", description=(
        "Search every judged query of a BEIR-layout collection and report nDCG@10, Recall@100, "
        "MRR@10 and MAP (pytrec_eval). Builds the index first if the directory holds none."))
    p.add_argument("--dataset", required=True,
                   help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or MS MARCO passage folder "
                        "(collection.tsv, queries.<split>.tsv, qrels.<split>.tsv)")
    p.add_argument("--index", required=True, help="index directory (built from the dataset if missing)")
    p.add_argument("--split", default=None, help="qrels split (default: test for BEIR, dev.small for MS MARCO)")
    p.add_argument("--model", default=None, help="encoder for a new index (default: bundled)")
    p.add_argument("-k", type=int, default=1000, help="documents retrieved per query (default 1000, for Recall@1000)")
    p.add_argument("--run", default=None, help="write the TREC run file here")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--engine", choices=["token", "exhaustive"], default="token",
                   help="token retrieval + rescoring (default) or exhaustive MaxSim (the reference)")
    p.add_argument("--quality", choices=["fast", "balanced", "accurate"], default="balanced")
    p.add_argument("--device", default=None)
    return p


def _compare(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="tessera eval compare",
                                description="Per-metric deltas of RUN_B against RUN_A with a paired t-test.")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--qrels", required=True, help="dataset folder (BEIR or MS MARCO) or a qrels file")
    p.add_argument("--split", default=None)
    args = p.parse_args(argv)
    from .compare import compare_runs, read_trec_run
    from .qrels import read_qrels

    try:
        if Path(args.qrels).is_dir():
            from .datasets import load_dataset
            qrels = load_dataset(args.qrels, args.split).qrels
        else:
            qrels = read_qrels(args.qrels)
        rows = compare_runs(read_trec_run(args.run_a), read_trec_run(args.run_b), qrels)
    except (ValueError, FileNotFoundError) as e:
        print(f"tessera eval compare: error: {e}", file=sys.stderr)
        return 1
    print(f"{'metric':<12} {'A':>8} {'B':>8} {'B - A':>9} {'p (paired t)':>13}   ({rows[0]['queries']} queries)")
    for r in rows:
        print(f"{r['metric']:<12} {r['a']:8.4f} {r['b']:8.4f} {r['delta']:+9.4f} {r['p_value']:13.4g}")
    return 0


def main(command: str, argv: list[str]) -> int:
    if argv[:1] == ["compare"]:
        return _compare(argv[1:])
    args = _parser().parse_args(argv)
    from retriever import Index, Searcher, load_encoder
    from .datasets import load_dataset
    from .metrics import evaluate, write_trec_run

    try:
        data = load_dataset(args.dataset, args.split)
        qrels, queries = data.qrels, data.queries
        if not (Path(args.index) / "manifest.json").is_file():
            Index.build(args.index, data.documents, load_encoder(args.model, device=args.device))
        index = Index.open(args.index)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"tessera eval: error: {e}", file=sys.stderr)
        return 1
    searcher = Searcher(index, engine=args.engine, quality=args.quality, device=args.device)
    started = time.perf_counter()
    results = searcher.search_batch([q.text for q in queries], k=args.k)
    seconds = time.perf_counter() - started
    run = {q.id: dict(results.hits(i)) for i, q in enumerate(queries)}
    if args.run:
        write_trec_run(args.run, run)
    metrics = evaluate(run, qrels)
    report = {"dataset": args.dataset, "split": args.split or "default", "queries": len(queries),
              "engine": "exhaustive MaxSim" if args.engine == "exhaustive" else f"token retrieval ({args.quality})",
              "seconds": round(seconds, 2),
              "ms_per_query": round(1000 * seconds / max(1, len(queries)), 1), **metrics}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.dataset} ({report['split']} split, {len(queries)} queries), {report['engine']}: "
              f"{report['ms_per_query']} ms/query in one batch")
        for name, value in metrics.items():
            print(f"  {name:<11} {value:.4f}")
    return 0
