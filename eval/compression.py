"""Compression benchmark: size, build cost and quality of index recipes on one collection.

Encodes the collection once (cached shards), then builds one index per recipe from the same
embeddings, so only reduction and compression differ. For each recipe it reports bytes per
original token (every file of the index over the tokens the encoder produced), seconds of
build work besides encoding, and nDCG@10 of exhaustive MaxSim over the decompressed vectors,
with its loss against exhaustive MaxSim over the uncompressed vectors (eval.reference), the
first row.

    python -m eval.compression --dataset ../shared/data/scifact --cache /tmp/cache/scifact \\
        --out docs/compression [--recipes fp16 res2 pool2,res2 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

DEFAULT_RECIPES = ["fp16", "res4", "res2", "res1", "pool2,res2", "pool3,res2", "pool2,res4", "kpool2,res2",
                   "stop,res2", "idf25,res2", "first128,res2", "norm25,res2", "pool2,pca192,res2"]


def run(dataset: str, cache: str, recipes: list[str], split: str = "test", model: str | None = None) -> list[dict]:
    from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
    from retriever.cache import encode_corpus_cached
    from .metrics import evaluate
    from .qrels import read_qrels

    encoder = load_encoder(model)
    documents = read_corpus(dataset)
    embeddings = encode_corpus_cached(encoder, documents, cache)
    qrels = read_qrels(dataset, split)
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    query_vectors = encoder.encode_queries([q.text for q in queries])
    from .reference import uncompressed_search
    started = time.perf_counter()
    scores, positions = uncompressed_search(query_vectors, embeddings.vectors, embeddings.lengths, k=100)
    ids = [[documents[p].id for p in row if p >= 0] for row in positions]
    metrics = evaluate({q.id: dict(zip(ids[i], scores[i].tolist())) for i, q in enumerate(queries)}, qrels)
    rows = [{"recipe": "uncompressed", "stored_vectors": len(embeddings.vectors),
             "bytes_per_token": 2.0 * embeddings.vectors.shape[1] * len(embeddings.vectors) / embeddings.n_input_tokens,
             "bytes_per_token_with_text": float("nan"), "build_seconds": 0.0, "encode_seconds": embeddings.seconds,
             "nDCG@10": metrics["nDCG@10"], "Recall@100": metrics["Recall@100"],
             "exhaustive_search_seconds": time.perf_counter() - started, "top10": [row[:10] for row in ids]}]
    for recipe in recipes:
        folder = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
        try:
            index = Index.build_from_embeddings(folder / "idx", embeddings, documents, encoder, recipe=recipe)
            stats = index.build_stats
            size = index.store.nbytes()
            started = time.perf_counter()
            results = Searcher(index, encoder=encoder, engine="exhaustive").search_batch(query_vectors, k=100)
            search_seconds = time.perf_counter() - started
            run_ = {q.id: dict(results.hits(i)) for i, q in enumerate(queries)}
            metrics = evaluate(run_, qrels)
            rows.append({
                "recipe": recipe, "stored_vectors": stats["n_stored_vectors"],
                "bytes_per_token": size["search"] / embeddings.n_input_tokens,
                "bytes_per_token_with_text": size["total"] / embeddings.n_input_tokens,
                "build_seconds": stats["seconds"], "encode_seconds": embeddings.seconds,
                "stage_seconds": {k: stats[k] for k in ("reduce_seconds", "codec_fit_seconds", "compress_seconds",
                                                        "write_seconds")},
                "removed": stats["removed"], "centroids": index.manifest["codec"]["n_centroids"],
                "nDCG@10": metrics["nDCG@10"], "Recall@100": metrics["Recall@100"],
                "exhaustive_search_seconds": search_seconds, "top10": results.doc_ids,
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "top10"}), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows


def report(rows: list[dict], out: Path, reference: str = "uncompressed") -> str:
    """Markdown table (+ PNG plot) of the rows; quality deltas against the `reference` recipe."""
    from .plots import labelled_scatter
    from .reference import loss_percent

    ref = next((r for r in rows if r["recipe"] == reference), rows[0])
    lines = ["| recipe | stored vectors | B/token (search) | B/token (+ text) | build s (excl. encoding) | "
             "% of encoding | nDCG@10 | loss vs " + ref["recipe"] + " | Recall@100 | top-10 overlap with " +
             ref["recipe"] + " |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        overlap = sum(len(set(a[:10]) & set(b[:10])) for a, b in zip(r["top10"], ref["top10"])) / \
            (10 * len(ref["top10"]))
        delta = loss_percent(r["nDCG@10"], ref["nDCG@10"])
        lines.append(f"| `{r['recipe']}` | {r['stored_vectors']:,} | {r['bytes_per_token']:.1f} | "
                     f"{r['bytes_per_token_with_text']:.1f} | {r['build_seconds']:.1f} | "
                     f"{100 * r['build_seconds'] / r['encode_seconds']:.1f}% | {r['nDCG@10']:.4f} | {delta:+.2f}% | "
                     f"{r['Recall@100']:.4f} | {overlap:.3f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    labelled_scatter([(r["bytes_per_token"], r["nDCG@10"], r["recipe"]) for r in rows], out / "compression.png",
                     xlabel="index bytes per original token (search files, log scale)",
                     ylabel="nDCG@10 (exhaustive MaxSim)", title="Index size vs quality")
    (out / "compression.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "top10"} for r in rows],
                                                     indent=1))
    (out / "compression.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.compression", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True, help="folder for the encoded shards (reused across runs)")
    p.add_argument("--out", default="docs/compression")
    p.add_argument("--recipes", nargs="+", default=DEFAULT_RECIPES)
    p.add_argument("--split", default="test")
    p.add_argument("--model", default=None)
    args = p.parse_args(argv)
    rows = run(args.dataset, args.cache, args.recipes, args.split, args.model)
    print(report(rows, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
