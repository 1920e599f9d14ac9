"""`tessera eval`: run a collection's judged queries against an index and report metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from indexes.builder.recipe import DEFAULT_RECIPE


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera eval", description=(
        "Search every judged query of a collection and report nDCG@10, Recall@100, Recall@1000, MRR@10 and MAP "
        "(pytrec_eval), latency and throughput, next to exhaustive MaxSim and BM25. Builds the index if the "
        "directory holds none made with the same encoder and recipe. `tessera eval compare A B` compares runs."))
    p.add_argument("--dataset", required=True,
                   help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) or MS MARCO passage folder "
                        "(collection.tsv, queries.<split>.tsv, qrels.<split>.tsv)")
    p.add_argument("--index", required=True, help="index directory (built, or rebuilt, when it does not match)")
    p.add_argument("--split", default=None, help="qrels split (default: test for BEIR, dev.small for MS MARCO)")
    p.add_argument("--model", default=None, help="encoder for a new index (default: bundled)")
    p.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"index recipe (default {DEFAULT_RECIPE})")
    p.add_argument("--cache", default=None, help="encoded shards (default: INDEX-cache); a rerun resumes from them")
    p.add_argument("-k", type=int, default=1000, help="documents retrieved per query (default 1000, for Recall@1000)")
    p.add_argument("--engine", choices=["token", "vocab", "union", "exhaustive"], default="token",
                   help="centroid token retrieval (default), vocabulary-term lists, their union (each + MaxSim "
                        "rescoring) or exhaustive MaxSim (the reference)")
    p.add_argument("--quality", choices=["fast", "balanced", "accurate"], default="balanced")
    p.add_argument("--sweep", action="store_true", help="run every quality preset (plot quality vs latency)")
    p.add_argument("--dense", action="store_true",
                   help="report the dense engine alone as the main row (default: hybrid with BM25 over the "
                        "index's lexical lists, the default of tessera search and serve; the other is a baseline row)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip exhaustive MaxSim over the index, BM25 and the hybrid row")
    p.add_argument("--no-reference", action="store_true",
                   help="skip exhaustive MaxSim over the uncompressed vectors (it reads the encoding cache, "
                        "encoding the collection if the cache lacks it)")
    p.add_argument("--max-text-chars", type=int, default=None,
                   help="longest title or text accepted, in characters (default 10,000,000, as tessera index)")
    p.add_argument("--out", default=None, help="write report.json / .md / .png and TREC runs here")
    p.add_argument("--run", default=None, help="write the engine's TREC run file here")
    p.add_argument("--json", action="store_true", help="print the engine's metrics as one JSON line")
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
    from .datasets import load_dataset
    from .metrics import write_trec_run
    from .report import write_report
    from .run import evaluate_collection, open_or_build_index

    try:
        if args.max_text_chars is not None and args.max_text_chars < 1:
            raise ValueError(f"--max-text-chars must be at least 1, got {args.max_text_chars}")
        data = load_dataset(args.dataset, args.split, **({} if args.max_text_chars is None
                                                         else {"max_text_chars": args.max_text_chars}))
        cache = Path(args.cache) if args.cache else Path(str(Path(args.index).resolve()) + "-cache")
        index = open_or_build_index(args.index, data, args.model, args.recipe, cache, device=args.device)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"tessera eval: error: {e}", file=sys.stderr)
        return 1
    hybrid = {"hybrid": not args.dense}
    suffix = " dense only" if args.dense else " + BM25 hybrid"
    if args.engine == "exhaustive":
        settings = [("exhaustive MaxSim", {"engine": "exhaustive"})]
    elif args.sweep:
        settings = [(f"{args.engine} ({q}){suffix}", {"engine": args.engine, "quality": q, **hybrid})
                    for q in ("fast", "balanced", "accurate")]
    else:
        settings = [(f"{args.engine} ({args.quality}){suffix}", {"engine": args.engine, "quality": args.quality,
                                                                 **hybrid})]
    baselines = not args.no_baselines and args.engine != "exhaustive"
    reference = None
    if not args.no_reference:
        from retriever.cache import encode_corpus_cached
        reference = encode_corpus_cached(index.load_encoder(device=args.device), data.documents, cache)
    run = evaluate_collection(data, index, settings, k=args.k, baselines=baselines, reference=reference,
                              run_dir=Path(args.out) / "runs" if args.out else None, device=args.device)
    engine = run.results[0]
    if args.run:
        write_trec_run(args.run, engine.run)
    if args.out:
        print(write_report(run, Path(args.out)))
    if args.json:
        print(json.dumps({"dataset": args.dataset, "queries": run.n_queries, "engine": engine.name,
                          "latency_ms": engine.latency_ms, "queries_per_second": engine.queries_per_second,
                          **engine.metrics}))
    elif not args.out:
        from .report import markdown
        print(markdown(run))
    return 0
