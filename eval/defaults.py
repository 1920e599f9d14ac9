"""Defaults for the worst collection: recipes x collections against the uncompressed reference.

For each collection (the shared ones and the generated stress collections of eval.stress) it
encodes the documents once (cached shards) and the judged queries whole, searches the
uncompressed reference (eval.reference), then builds one index per recipe from the same
embeddings and measures the default dense search (token engine, "balanced") and BM25 over the
index's own lists on it: bytes per original token, nDCG@10 and its loss vs the reference. Rows go
to OUT/defaults.jsonl as they finish (a rerun skips them), the 100-deep rankings to WORK/runs/.
Then: the recipe table (OUT/defaults.md) with its PNG (bytes vs worst-case loss), and the hybrid
panel of eval.panel on the default recipe (OUT/panel.md, panel.png: every fusion, both references,
worst cases) with the fusion's latency per query (OUT/fusion_latency.json).

    python -m eval.defaults --cache /tmp/cache --work /tmp/defaults-work --out docs/defaults \\
        [--collections scifact vaswani ...] [--recipes pool2,min16,res2 pool2,res2 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from indexes.builder.recipe import DEFAULT_RECIPE

from .collections import load_collection, save_rankings
from .reference import loss_percent, uncompressed_search

COLLECTIONS = ["scifact", "vaswani", "cranfield", "attributes", "long-scifact", "tq-cranfield", "titles-cranfield"]
RECIPES = [DEFAULT_RECIPE, "res2", "res1", "pool2,res2", "pool3,res2", "kpool2,res2", "merge85,res2", "merge90,res2",
           "merge90,res1", "merge95,res1"]
DEPTH = 100


def _ndcg(data, ids: list[list[str]], scores: np.ndarray) -> float:
    from .metrics import evaluate

    run = {q.id: dict(zip(row, s.tolist())) for q, row, s in zip(data.queries, ids, scores)}
    return evaluate(run, data.qrels)["nDCG@10"]


def _documents_of(name: str) -> str:
    """The cache / index folder name of a collection's documents ("long-x" shares x's)."""
    return name[5:] if name.startswith("long-") else name


def run_collection(name: str, recipes: list[str], cache_root: Path, work: Path, done: set, sink) -> None:
    """Rows for one collection: the uncompressed reference, then each recipe's index. The
    rankings themselves (100 deep: reference, dense, BM25) go to WORK/runs/ for the fusion panel."""
    from retriever import Index, Searcher, load_encoder
    from retriever.cache import encode_corpus_cached

    data = load_collection(name)
    encoder = load_encoder()
    base = _documents_of(name)
    embeddings = encode_corpus_cached(encoder, data.documents, cache_root / base)
    texts = [q.text for q in data.queries]
    queries = encoder.encode_queries(texts)
    if (name, "uncompressed") not in done:
        started = time.perf_counter()
        scores, positions = uncompressed_search(queries, embeddings.vectors, embeddings.lengths, k=DEPTH)
        seconds = time.perf_counter() - started
        save_rankings(work / "runs" / f"{name}.uncompressed.npz", reference=(scores, positions))
        ids = [[data.documents[p].id for p in row if p >= 0] for row in positions]
        sink({"collection": name, "recipe": "uncompressed", "bytes_per_token": 2.0 * embeddings.vectors.shape[1],
              "nDCG@10": _ndcg(data, ids, scores), "seconds": seconds,
              "documents": len(data.documents), "queries": len(texts),
              "document_tokens_p50": float(np.median(embeddings.lengths)),
              "query_tokens_p50": float(np.median((np.abs(queries).sum(axis=2) > 0).sum(axis=1)))})
    for recipe in recipes:
        if (name, recipe) in done:
            continue
        folder = work / base / recipe.replace(",", "_")
        if not (folder / "manifest.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            Index.build_from_embeddings(folder, embeddings, data.documents, encoder, recipe=recipe)
        index = Index.open(folder, verify=False)
        searcher = Searcher(index, encoder=encoder, hybrid=False)
        started = time.perf_counter()
        dense = searcher.search_batch(queries, k=DEPTH)
        seconds = time.perf_counter() - started
        lexical = Searcher(index, encoder=encoder, fusion="lexical").search_batch(queries, k=DEPTH, texts=texts)
        save_rankings(work / "runs" / f"{name}.{recipe}.npz", dense=(dense.scores, dense.indices),
                      lexical=(lexical.scores, lexical.indices))
        row = {"collection": name, "recipe": recipe,
               "bytes_per_token": index.store.nbytes()["search"] / embeddings.n_input_tokens,
               "stored_vectors": int(sum(s.entry["n_vectors"] for s in index.store.segments)),
               "nDCG@10": _ndcg(data, dense.doc_ids, dense.scores), "ms_per_query_batch": 1000 * seconds / len(texts),
               "BM25 nDCG@10": _ndcg(data, lexical.doc_ids, lexical.scores)}
        sink(row)


def report(rows: list[dict], out: Path) -> str:
    """Markdown tables and the two PNGs."""
    from .plots import labelled_scatter

    ref = {r["collection"]: r["nDCG@10"] for r in rows if r["recipe"] == "uncompressed"}
    collections = [c for c in COLLECTIONS if c in ref] + sorted(set(ref) - set(COLLECTIONS))
    recipes = list(dict.fromkeys(r["recipe"] for r in rows if r["recipe"] != "uncompressed"))
    cell = {(r["collection"], r["recipe"]): r for r in rows}
    lines = ["Dense search (token engine, balanced) per recipe: nDCG@10 and loss vs exhaustive MaxSim over "
             "uncompressed vectors with whole queries.", "",
             "| recipe | B/token (mean) | " + " | ".join(collections) + " | worst loss |",
             "|---|---|" + "---|" * len(collections) + "---|",
             "| uncompressed reference | 768 | " + " | ".join(f"{ref[c]:.4f}" for c in collections) + " | — |"]
    frontier = []
    for recipe in recipes:
        got = [cell.get((c, recipe)) for c in collections]
        losses = [loss_percent(g["nDCG@10"], ref[c]) for g, c in zip(got, collections) if g]
        sizes = [g["bytes_per_token"] for g in got if g]
        worst = min(losses) if losses else float("nan")
        lines.append(f"| `{recipe}` | {np.mean(sizes):.1f} | " + " | ".join(
            f"{g['nDCG@10']:.4f} ({loss_percent(g['nDCG@10'], ref[c]):+.1f}%)" if g else "—"
            for g, c in zip(got, collections)) + f" | {worst:+.1f}% |")
        if len(losses) == len(collections):
            frontier.append((float(np.mean(sizes)), -worst, recipe))
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "defaults.md").write_text(table + "\n")
    if frontier:
        labelled_scatter(frontier, out / "frontier.png", xlabel="index bytes per original token (mean over collections)",
                         ylabel="worst-case nDCG@10 loss vs uncompressed (%)",
                         title="Size vs worst-case loss (lower is better)", log_x=False)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.defaults", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", required=True, help="folder of per-collection encoding caches")
    p.add_argument("--work", required=True, help="folder for the indexes built (reused by a rerun)")
    p.add_argument("--out", default="docs/defaults")
    p.add_argument("--collections", nargs="+", default=COLLECTIONS)
    p.add_argument("--recipes", nargs="+", default=RECIPES)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_file = out / "defaults.jsonl"
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.is_file() else []
    done = {(r["collection"], r["recipe"]) for r in rows}

    def sink(row: dict) -> None:
        rows.append(row)
        with open(rows_file, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    for name in args.collections:
        run_collection(name, args.recipes, Path(args.cache), Path(args.work), done, sink)
    print(report(rows, out))
    from .panel import fusion_latency, panel

    recipe = DEFAULT_RECIPE if DEFAULT_RECIPE in args.recipes else args.recipes[0]
    print(panel(args.collections, Path(args.work), out, recipe))
    latency = fusion_latency(Path(args.work), args.collections[0], recipe)
    (out / "fusion_latency.json").write_text(json.dumps(latency, indent=1))
    print("fusion per query, p50 ms, one thread (" + args.collections[0] + "): " +
          ", ".join(f"{k} {v:.3f}" for k, v in latency.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
