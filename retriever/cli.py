"""`tessera index` and `tessera search`: thin argument parsing over `Index` and `Searcher`."""

from __future__ import annotations

import argparse
import json
import sys


def _index_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera index", description="Encode a corpus and write an index.")
    p.add_argument("--corpus", required=True,
                   help="BEIR folder (corpus.jsonl), .jsonl file (_id, title, text) or .tsv (id, text[, title])")
    p.add_argument("--index", required=True, help="index directory to create or replace")
    p.add_argument("--model", default=None,
                   help="checkpoint directory (colbert-ai or PyLate layout) or the bundled 'all-MiniLM-L6-v2'")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--limit", type=int, default=None, help="index only the first N documents")
    p.add_argument("--skip-invalid", action="store_true", help="skip malformed corpus lines instead of failing")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def _search_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera search", description="Search an index.")
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("queries", nargs="+", help="one or more query strings")
    p.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object per query")
    p.add_argument("--model", default=None, help="query encoder (default: the one the index was built with)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def run_index(args: argparse.Namespace) -> int:
    from .checkpoints import load_encoder
    from .corpus import read_corpus
    from .index import Index

    documents = read_corpus(args.corpus, on_error="skip" if args.skip_invalid else "raise")
    if args.limit is not None:
        documents = documents[: args.limit]
    encoder = load_encoder(args.model, device=args.device)
    index = Index.build(args.index, documents, encoder, batch_size=args.batch_size)
    m, build = index.manifest, index.manifest["build"]
    total_bytes = index.store.nbytes
    print(f"indexed {m['n_docs']:,} documents -> {m['n_vectors']:,} vectors ({m['dim']}-dim) in {args.index}")
    print(f"encoding: {build['encode_seconds']:.1f} s, {build['tokens_per_second']:,.0f} tokens/s "
          f"({build['input_tokens']:,} input tokens); writing: {build['write_seconds']:.1f} s")
    print(f"index size: {total_bytes / 2**20:.1f} MiB, {total_bytes / m['n_vectors']:.0f} bytes per stored vector, "
          f"{total_bytes / build['input_tokens']:.0f} bytes per input token")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from .index import Index
    from .searcher import Searcher
    from .checkpoints import load_encoder

    index = Index.open(args.index)
    encoder = load_encoder(args.model, device=args.device) if args.model else None
    searcher = Searcher(index, encoder=encoder, device=args.device)
    results = searcher.search_batch(args.queries, k=args.k)
    documents = {d["id"]: d for d in index.store.documents}
    for q, query in enumerate(args.queries):
        hits = [{"rank": r + 1, "id": doc_id, "score": round(score, 4), "title": documents[doc_id].get("title", ""),
                 "text": documents[doc_id].get("text", "")}
                for r, (doc_id, score) in enumerate(results.hits(q))]
        if args.json:
            print(json.dumps({"query": query, "hits": hits}, ensure_ascii=False))
            continue
        print(f"query: {query}")
        for h in hits:
            label = h["title"] or h["text"]
            label = label if len(label) <= 90 else label[:87] + "..."
            print(f"  {h['rank']:>3}. {h['score']:8.3f}  {h['id']:<12} {label}")
    return 0


def main(command: str, argv: list[str]) -> int:
    if command == "index":
        args = _index_parser().parse_args(argv)
        runner = run_index
    elif command == "search":
        args = _search_parser().parse_args(argv)
        runner = run_search
    else:
        raise ValueError(f"retriever.cli handles 'index' and 'search', not {command!r}")
    try:
        return runner(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        # User errors (bad corpus line, missing index, wrong model path) read best as one line.
        print(f"tessera {command}: error: {e}", file=sys.stderr)
        return 1
