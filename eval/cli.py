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
    p.add_argument("--dataset", required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--index", required=True, help="index directory (built from the dataset if missing)")
    p.add_argument("--split", default="test", help="qrels split (default test)")
    p.add_argument("--model", default=None, help="encoder for a new index (default: bundled)")
    p.add_argument("-k", type=int, default=100, help="documents retrieved per query (default 100)")
    p.add_argument("--run", default=None, help="write the TREC run file here")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--engine", choices=["token", "exhaustive"], default="token",
                   help="token retrieval + rescoring (default) or exhaustive MaxSim (the reference)")
    p.add_argument("--quality", choices=["fast", "balanced", "accurate"], default="balanced")
    p.add_argument("--device", default=None)
    return p


def main(command: str, argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
    from .metrics import evaluate, write_trec_run
    from .qrels import read_qrels

    try:
        qrels = read_qrels(args.dataset, split=args.split)
        queries = [q for q in read_queries(args.dataset) if q.id in qrels]
        if not (Path(args.index) / "manifest.json").is_file():
            Index.build(args.index, read_corpus(args.dataset), load_encoder(args.model, device=args.device))
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
    report = {"dataset": args.dataset, "split": args.split, "queries": len(queries),
              "engine": "exhaustive MaxSim" if args.engine == "exhaustive" else f"token retrieval ({args.quality})",
              "seconds": round(seconds, 2),
              "ms_per_query": round(1000 * seconds / max(1, len(queries)), 1), **metrics}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.dataset} ({args.split}, {len(queries)} queries), {report['engine']}: "
              f"{report['ms_per_query']} ms/query in one batch")
        for name, value in metrics.items():
            print(f"  {name:<11} {value:.4f}")
    return 0
