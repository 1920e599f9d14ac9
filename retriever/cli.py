"""`tessera index` and `tessera search`: thin argument parsing over `Index` and `Searcher`."""

from __future__ import annotations

import argparse
import json
import sys

from indexes.names import FUSIONS, QUERY_STAGES


def _index_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera index", description="Encode a corpus and write an index.")
    p.add_argument("--corpus", required=True,
                   help="BEIR folder (corpus.jsonl), .jsonl file (_id, title, text) or .tsv (id, text[, title])")
    p.add_argument("--index", required=True, help="index directory to create or replace")
    p.add_argument("--model", default=None,
                   help="checkpoint directory (colbert-ai or PyLate layout) or the bundled 'all-MiniLM-L6-v2'")
    p.add_argument("--recipe", default=None,
                   help="reduction and compression, e.g. 'pool2,res2' (default), 'fp16', 'pool3,stop,res4', 'pca128,res2'")
    p.add_argument("--cache", default=None, help="keep encoded shards here; an interrupted build resumes from them")
    p.add_argument("--batch-size", type=int, default=None,
                   help="documents per forward pass (default: 32 on the CPU, 128 on CUDA)")
    p.add_argument("--limit", type=int, default=None, help="index only the first N documents")
    p.add_argument("--skip-invalid", action="store_true", help="skip malformed corpus lines instead of failing")
    p.add_argument("--max-text-chars", type=int, default=None,
                   help="longest title or text accepted, in characters (default 10,000,000; every token is "
                        "indexed, as passages)")
    p.add_argument("--passage-tokens", type=int, default=None, metavar="N",
                   help="tokens per passage (special tokens included; default: the encoder's document length). "
                        "A longer document is split into overlapping passages, none of its text dropped")
    p.add_argument("--stride", type=int, default=None, metavar="N",
                   help="text tokens between passage starts (default: four fifths of a passage)")
    p.add_argument("--force", action="store_true",
                   help="build into a folder that holds other files too (they are kept, never deleted)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--runtime", default=None, choices=["torch", "torch-bf16", "onnx", "onnx-int8"],
                   help="where the encoder runs (default: the fastest that keeps quality here: torch-bf16 on a CPU "
                        "with native bfloat16, else onnx; torch on CUDA)")
    p.add_argument("--shards", type=int, default=None,
                   help="build a sharded index of N shards sharing one codec (searched scatter-gather)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="with --shards: build shards as Ray tasks on the cluster at ADDRESS (default: a local Ray)")
    return p


def _search_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera search", description="Search an index.")
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("queries", nargs="+", help="one or more query strings")
    p.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object per query")
    p.add_argument("--engine", default="token", choices=QUERY_STAGES,
                   help="first stage: centroid token retrieval (default), vocabulary-term lists, both, or none")
    p.add_argument("--quality", default="balanced", choices=["fast", "balanced", "accurate"])
    p.add_argument("--dense", action="store_true",
                   help="dense (late-interaction) ranking only; by default it is fused with BM25 over the "
                        "index's own lexical lists (the measured default fusion)")
    p.add_argument("--fusion", default=None, choices=FUSIONS,
                   help="fusion to use instead of the default (lexical: BM25 alone)")
    p.add_argument("--alpha", type=float, default=None, help="weight of the dense side in interpolation")
    p.add_argument("--passages", action="store_true",
                   help="the k best passages instead of documents (a long document may give several)")
    p.add_argument("--filter", default=None, metavar="JSON",
                   help='metadata filter, e.g. \'{"lang": "en", "year": {"gte": 2020}}\' (retriever/filters.py)')
    p.add_argument("--model", default=None, help="query encoder (default: the one the index was built with)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    return p


def run_index(args: argparse.Namespace) -> int:
    from .checkpoints import load_encoder
    from .corpus import MAX_TEXT_CHARS, read_corpus
    from .index import Index

    from indexes.builder.recipe import DEFAULT_RECIPE, Recipe
    from indexes.storage.writes import check_build_target

    # Every argument is checked before the corpus is read or anything is encoded.
    Recipe.parse(args.recipe or DEFAULT_RECIPE)
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.shards is not None and args.shards < 1:
        raise ValueError(f"--shards must be at least 1, got {args.shards}")
    if args.ray and not args.shards:
        raise ValueError("--ray builds shards: give --shards N too")
    check_build_target(args.index, args.force)
    max_chars = MAX_TEXT_CHARS if args.max_text_chars is None else args.max_text_chars
    if max_chars < 1:
        raise ValueError(f"--max-text-chars must be at least 1, got {max_chars}")
    encoder = load_encoder(args.model, device=args.device, runtime=args.runtime, **passage_overrides(args))
    encoder.passage_window          # a window or stride that does not fit fails before the corpus is read
    documents = read_corpus(args.corpus, on_error="skip" if args.skip_invalid else "raise", max_text_chars=max_chars)
    if args.limit is not None:
        documents = documents[: args.limit]
    index = Index.build(args.index, documents, encoder, recipe=args.recipe or DEFAULT_RECIPE,
                        batch_size=args.batch_size, cache_dir=args.cache, force=args.force, max_text_chars=max_chars,
                        shards=args.shards or 1, use_ray=args.ray is not None,
                        ray_address=None if args.ray in (None, "local") else args.ray)
    if args.shards and args.shards > 1:
        m = index.manifest
        print(f"indexed {m['n_docs']:,} documents in {len(m['shards'])} shards under {args.index} "
              f"({m['build']['seconds']:.1f} s{', on Ray' if m['ray'] else ''})")
        for shard in index.shards:
            print(describe_build(shard))
        return 0
    print(describe_build(index))
    return 0


def passage_overrides(args: argparse.Namespace) -> dict:
    """EncoderConfig overrides from --passage-tokens / --stride (none given: the encoder's own)."""
    overrides = {}
    if args.passage_tokens is not None:
        overrides["doc_maxlen"] = args.passage_tokens
    if args.stride is not None:
        overrides["doc_stride"] = args.stride
    return overrides


def describe_build(index) -> str:
    """A few lines on what a build stored and what it cost."""
    m, enc, build = index.manifest, index.manifest["encoding"], index.build_stats or index.manifest["build"]
    size = index.store.nbytes()
    tokens = max(1, enc["input_tokens"])
    removed = ", ".join(f"{rule} {n:,}" for rule, n in build["removed"].items()) or "none"
    return "\n".join([
        f"indexed {len(index):,} documents in {index.directory} (recipe {m['recipe']}, {m['dim']}-dim, "
        f"{m['codec']['n_centroids']:,} centroids)",
        f"passages: {build.get('n_split_documents', 0):,} documents longer than one passage "
        f"({m['encoder']['config']['doc_maxlen']} tokens) split; {build.get('n_passages', len(index)):,} passages "
        f"for {build.get('n_documents', len(index)):,} documents, no text dropped",
        f"vectors: {build['n_input_vectors']:,} from the encoder -> {build['n_stored_vectors']:,} stored "
        f"(removed: {removed})",
        f"encoding ({enc.get('runtime', '?')}): {enc['seconds']:.1f} s, {enc['tokens_per_second']:,.0f} tokens/s "
        f"({enc['input_tokens']:,} tokens); "
        f"everything else: {build.get('seconds', float('nan')):.1f} s (reduce {build['reduce_seconds']:.1f}, "
        f"codec {build['codec_fit_seconds']:.1f}, compress {build['compress_seconds']:.1f}, "
        f"write {build.get('write_seconds', float('nan')):.1f})",
        f"size: {size['search'] / 2**20:.1f} MiB for search ({size['search'] / tokens:.1f} bytes per input token) "
        f"+ {size['documents'] / 2**20:.1f} MiB of stored documents",
    ])


def run_search(args: argparse.Namespace) -> int:
    from .checkpoints import load_encoder
    from .protocol import open_index
    from .searcher import Searcher

    from .searcher import MAX_K

    if not 1 <= args.k <= MAX_K:
        raise ValueError(f"-k must lie in 1..{MAX_K}, got {args.k}")
    expr = None
    if args.filter is not None:
        from .filters import check_filter
        try:
            expr = json.loads(args.filter)
        except json.JSONDecodeError as e:
            raise ValueError(f"--filter: not JSON ({e.msg} at column {e.colno})") from e
        check_filter(expr, "--filter")
    encoder = load_encoder(args.model, device=args.device) if args.model else None
    index = open_index(args.index)
    searcher = Searcher(index, encoder=encoder, engine=args.engine, quality=args.quality, device=args.device,
                        hybrid=False if args.dense else None, fusion=args.fusion, alpha=args.alpha)
    document = index.document
    results = searcher.search_batch(args.queries, k=args.k, filter=expr, passages=True,
                                    unit="passage" if args.passages else "document")
    for q, query in enumerate(args.queries):
        docs = [document(int(p)) for p in results.indices[q] if p >= 0]
        hits = [{"rank": r + 1, "id": doc["id"], "score": round(float(score), 4), "title": doc.get("title", ""),
                 "text": doc.get("text", ""), "passage": passage.to_dict()}
                for r, (doc, score, passage) in enumerate(zip(docs, results.scores[q], results.passages[q]))]
        if args.json:
            print(json.dumps({"query": query, "hits": hits}, ensure_ascii=False))
            continue
        print(f"query: {query}")
        for h in hits:
            print(f"  {h['rank']:>3}. {h['score']:8.3f}  {h['id']:<12} {h['title']}".rstrip())
            print(f"       {_snippet(h['passage'], len(h['text']))}")
    return 0


def _snippet(passage: dict, text_length: int, width: int = 200) -> str:
    """The best passage on one line: its first `width` characters, with its place in the document."""
    text = " ".join(passage["text"].split())
    text = text if len(text) <= width else text[:width - 3] + "..."
    where = "" if passage["start"] == 0 and passage["end"] == text_length else \
        f" [characters {passage['start']:,}-{passage['end']:,} of {text_length:,}]"
    return text + where


def _verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera verify",
                                description="Check every file of an index against its manifest's sizes and checksums.")
    p.add_argument("--index", required=True, help="index directory (single or sharded)")
    p.add_argument("--json", action="store_true", help="print one JSON object per file")
    return p


def run_verify(args: argparse.Namespace) -> int:
    """Per-file report; exit status 0 when every file is intact, 3 when any is damaged."""
    from indexes.storage.verify import verify_index

    report = verify_index(args.index)
    for c in report:
        if args.json:
            print(json.dumps({"file": str(c.path), "bytes": c.bytes, "ok": c.ok, "problem": c.problem}))
        else:
            print(f"{'ok     ' if c.ok else 'DAMAGED'} {c.path}" + ("" if c.ok else f": {c.problem}"))
    bad = sum(not c.ok for c in report)
    total = sum(c.bytes for c in report)
    print(f"tessera verify: {len(report)} files, {total / 2**20:.1f} MiB, "
          + ("all intact" if not bad else f"{bad} damaged"), file=sys.stderr)
    return 3 if bad else 0


def main(command: str, argv: list[str]) -> int:
    if command == "verify":
        args = _verify_parser().parse_args(argv)
        runner = run_verify
    elif command == "index":
        args = _index_parser().parse_args(argv)
        runner = run_index
    elif command == "search":
        args = _search_parser().parse_args(argv)
        runner = run_search
    else:
        raise ValueError(f"retriever.cli handles 'index', 'search' and 'verify', not {command!r}")
    from indexes.files import NoSpaceError

    try:
        return runner(args)
    except (ValueError, FileNotFoundError, ImportError, NoSpaceError) as e:
        # User errors (bad corpus line, missing index, wrong model path) read best as one line.
        print(f"tessera {command}: error: {e}", file=sys.stderr)
        return 1
