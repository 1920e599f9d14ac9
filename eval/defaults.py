"""Defaults for the worst collection: recipes x collections against the uncompressed reference.

For each collection (shared ones and the generated stress collections of eval.stress) it
encodes the documents once (cached shards) and the judged queries whole, searches the
uncompressed reference (eval.reference), then builds one index per recipe from the same
embeddings and measures the default dense search (token engine, "balanced") on it: bytes per
original token, nDCG@10 and its loss vs the reference. Lexical (BM25 over the index's own lists)
and hybrid fusions (RRF, interpolation over a grid of weights) are computed from the same two
100-deep rankings. Rows go to OUT/defaults.jsonl as they finish (a rerun skips them), then a
table (OUT/defaults.md) and two PNGs: bytes vs worst-case loss (the frontier), and hybrid
weight vs nDCG@10 per collection.

    python -m eval.defaults --cache /tmp/cache --work /tmp/defaults-work --out docs/defaults \\
        [--collections scifact vaswani cranfield attributes long-scifact] [--recipes res2 pool2,res2 ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from .reference import loss_percent, uncompressed_search

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
COLLECTIONS = ["scifact", "vaswani", "cranfield", "attributes", "long-scifact"]
RECIPES = ["res2", "res1", "pool2,res2", "pool3,res2", "kpool2,res2", "merge85,res2", "merge90,res2",
           "merge90,res1", "merge95,res1"]
ALPHAS = [0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]
DEPTH = 100


def load_collection(name: str):
    """A Dataset by name: a shared collection, "attributes" or "long-<shared>"."""
    from .datasets import load_dataset
    from .stress import attribute_collection, long_query_collection

    if name == "attributes":
        return attribute_collection()
    if name.startswith("long-"):
        return long_query_collection(load_dataset(SHARED / name[5:]))
    return load_dataset(SHARED / name)


def _ndcg(data, ids: list[list[str]], scores: np.ndarray) -> float:
    from .metrics import evaluate

    run = {q.id: dict(zip(row, s.tolist())) for q, row, s in zip(data.queries, ids, scores)}
    return evaluate(run, data.qrels)["nDCG@10"]


def _fused_ndcg(data, dense: list[list[tuple[str, float]]], lexical: list[list[tuple[str, float]]]) -> dict:
    from retriever.hybrid import fuse
    from .metrics import evaluate

    out = {}
    settings = [("rrf", None)] + [("interpolate", a) for a in ALPHAS]
    for fusion, alpha in settings:
        run = {q.id: dict(fuse(d, lex, fusion, alpha or 0.5)[:DEPTH])
               for q, d, lex in zip(data.queries, dense, lexical)}
        out[fusion if alpha is None else f"interpolate {alpha}"] = evaluate(run, data.qrels)["nDCG@10"]
    return out


def run_collection(name: str, recipes: list[str], cache_root: Path, work: Path, done: set, sink) -> None:
    from retriever import Index, Searcher, load_encoder
    from retriever.cache import encode_corpus_cached

    data = load_collection(name)
    encoder = load_encoder()
    base = name[5:] if name.startswith("long-") else name          # long queries share their base's documents
    embeddings = encode_corpus_cached(encoder, data.documents, cache_root / base)
    texts = [q.text for q in data.queries]
    queries = encoder.encode_queries(texts)
    if (name, "uncompressed") not in done:
        started = time.perf_counter()
        scores, positions = uncompressed_search(queries, embeddings.vectors, embeddings.lengths, k=DEPTH)
        ids = [[data.documents[p].id for p in row if p >= 0] for row in positions]
        sink({"collection": name, "recipe": "uncompressed", "bytes_per_token": 2.0 * embeddings.vectors.shape[1],
              "nDCG@10": _ndcg(data, ids, scores), "seconds": time.perf_counter() - started,
              "query_tokens_p50": float(np.median((np.abs(queries).sum(axis=2) > 0).sum(axis=1)))})
    capped = load_encoder(query_max_tokens=32)
    for recipe in recipes:
        if (name, recipe) in done:
            continue
        folder = work / base / recipe.replace(",", "_")
        if not (folder / "manifest.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            Index.build_from_embeddings(folder, embeddings, data.documents, encoder, recipe=recipe)
        index = Index.open(folder, verify=False)
        searcher = Searcher(index, encoder=encoder)
        started = time.perf_counter()
        dense = searcher.search_batch(queries, k=DEPTH)
        seconds = time.perf_counter() - started
        lexical = Searcher(index, encoder=encoder, fusion="lexical").search_batch(queries, k=DEPTH, texts=texts)
        row = {"collection": name, "recipe": recipe,
               "bytes_per_token": index.store.nbytes()["search"] / embeddings.n_input_tokens,
               "stored_vectors": int(sum(s.entry["n_vectors"] for s in index.store.segments)),
               "nDCG@10": _ndcg(data, dense.doc_ids, dense.scores), "ms_per_query_batch": 1000 * seconds / len(texts),
               "BM25 nDCG@10": _ndcg(data, lexical.doc_ids, lexical.scores),
               "hybrid": _fused_ndcg(data, [dense.hits(i) for i in range(len(texts))],
                                     [lexical.hits(i) for i in range(len(texts))])}
        if recipe == "pool2,res2":      # the previous default: this recipe with queries cut at 32 tokens
            with warnings.catch_warnings():       # the cut is the point here: no warning per query
                warnings.simplefilter("ignore")
                cut = capped.encode_queries(texts)
            old = Searcher(index, encoder=capped).search_batch(cut, k=DEPTH)
            row["nDCG@10 (32-token queries)"] = _ndcg(data, old.doc_ids, old.scores)
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
    old = [cell.get((c, "pool2,res2"), {}).get("nDCG@10 (32-token queries)") for c in collections]
    if any(o is not None for o in old):
        lines.append("| `pool2,res2` with 32-token queries (previous default) | | " + " | ".join(
            f"{o:.4f} ({loss_percent(o, ref[c]):+.1f}%)" if o is not None else "—" for o, c in zip(old, collections))
            + " | |")
    table = "\n".join(lines)
    hybrid_lines = ["", "", "Hybrid (BM25 from the index's lexical lists + dense, 100 deep each) per fusion, "
                    "on the recipe named; the parents first.", "",
                    "| recipe | setting | " + " | ".join(collections) + " | worst margin over the better parent |",
                    "|---|---|" + "---|" * len(collections) + "---|"]
    for recipe in recipes:
        got = [cell.get((c, recipe)) for c in collections]
        if not all(got):
            continue
        hybrid_lines.append(f"| `{recipe}` | dense | " + " | ".join(f"{g['nDCG@10']:.4f}" for g in got) + " | |")
        hybrid_lines.append(f"| `{recipe}` | BM25 | " + " | ".join(f"{g['BM25 nDCG@10']:.4f}" for g in got) + " | |")
        for setting in got[0]["hybrid"]:
            margins = [g["hybrid"][setting] - max(g["nDCG@10"], g["BM25 nDCG@10"]) for g in got]
            hybrid_lines.append(f"| `{recipe}` | {setting} | " + " | ".join(
                f"{g['hybrid'][setting]:.4f}" for g in got) + f" | {min(margins):+.4f} |")
    table += "\n".join(hybrid_lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "defaults.md").write_text(table + "\n")
    default = next((r for r in recipes if r == "pool2,res2"), recipes[0] if recipes else None)
    got = {c: cell.get((c, default)) for c in collections}
    if default and all(got.values()):
        from .plots import line_plot
        series = {c: (ALPHAS, [g["hybrid"][f"interpolate {a}"] - max(g["nDCG@10"], g["BM25 nDCG@10"])
                               for a in ALPHAS]) for c, g in got.items() if f"interpolate {ALPHAS[0]}" in g["hybrid"]}
        line_plot(series, out / "hybrid.png", xlabel="interpolation weight of the dense side (alpha)",
                  ylabel="hybrid nDCG@10 minus the better parent's", hline=0.0,
                  title=f"Hybrid fusion on `{default}`: above 0 beats both dense and BM25")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
