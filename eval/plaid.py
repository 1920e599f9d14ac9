"""Side-by-side benchmark: Tessera against PLAID (PyLate's Stanford backend) on the same token vectors.

    python -m eval.plaid --dataset ../shared/data/scifact --cache /tmp/cache/scifact \\
        --tessera-index /tmp/sci-pool2res2 /tmp/sci-res4 --recipes pool2,res2 res4 \\
        --plaid-index /tmp/plaid-scifact [--out docs/plaid]

PyLate is not a Tessera dependency: run this from a virtual environment that has both (see
"Against PLAID, side by side in one run" in docs/benchmarks.md for the install). Both engines index the very same
document vectors, read from Tessera's encoded cache, and search the very same query vectors
(padding rows dropped), so the only difference is the engine. The PLAID index is built once
(nbits=4, PyLate's defaults otherwise) and reused. Each setting then times every query alone, in
this one process, with 1 and with 2 torch threads; quality is recall of the exact top-10 (MaxSim
over the uncompressed float16 vectors, the same reference for both) and nDCG@10.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

# colbert-ai's own search defaults by k (searcher.dense_search), and PyLate's PLAID defaults.
PLAID_SETTINGS = {
    "PLAID k<=10 (ncells=1, thr=0.5, ndocs=256)": dict(ncells=1, centroid_score_threshold=0.5, ndocs=256),
    "PLAID k<=100 (ncells=2, thr=0.45, ndocs=1024)": dict(ncells=2, centroid_score_threshold=0.45, ndocs=1024),
    "PLAID PyLate defaults (ncells=8, thr=0.35, ndocs=8192)": dict(ncells=8, centroid_score_threshold=0.35,
                                                                  ndocs=8192),
}
TESSERA_SETTINGS = ("fast", "balanced", "accurate")


def build_plaid(path: Path, embeddings, doc_ids: list[str], nbits: int = 4):
    """Build (or reopen) a PyLate PLAID index over the cached vectors; returns (index, build seconds)."""
    from pylate import indexes

    built = (path / "colbert" / "documents_ids_to_plaid_ids.pkl").is_file()
    record = path / "build-seconds.json"
    index = indexes.PLAID(index_folder=str(path), index_name="colbert", override=not built, use_fast=False,
                          nbits=nbits, embedding_size=embeddings.vectors.shape[1])
    if built:
        return index, json.loads(record.read_text())["seconds"] if record.is_file() else float("nan")
    offsets = embeddings.offsets
    per_doc = [embeddings.vectors[offsets[d]:offsets[d + 1]].astype(np.float32) for d in range(len(doc_ids))]
    started = time.perf_counter()
    index.add_documents(documents_ids=doc_ids, documents_embeddings=per_doc)
    seconds = time.perf_counter() - started
    record.write_text(json.dumps({"seconds": seconds}))
    return index, seconds


def _timed(search_one, queries: list[np.ndarray], threads: int, desc: str) -> tuple[np.ndarray, list[list[str]]]:
    """(n_queries,) milliseconds of each query searched alone, and the ranked ids it returned."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for q in queries[:5]:   # warm-up: first calls compile / page in
            search_one(q)
        latencies, ranked = [], []
        for q in tqdm(queries, desc=desc, unit="query", leave=False):
            started = time.perf_counter()
            ids = search_one(q)
            latencies.append(1000 * (time.perf_counter() - started))
            ranked.append(ids)
        return np.array(latencies), ranked
    finally:
        torch.set_num_threads(previous)


def _disk_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(dataset: str, cache: str, tessera_indexes: list[str], recipes: list[str], plaid_index: str, *,
        split: str = "test", k: int = 10, threads: tuple[int, ...] = (1, 2), pylate_defaults: bool = True) -> dict:
    import torch
    from indexes.search.maxsim import exhaustive_search
    from retriever import Index, Searcher, load_encoder, read_corpus, read_queries
    from retriever.cache import encode_corpus_cached
    from .metrics import evaluate
    from .qrels import read_qrels

    encoder = load_encoder()
    documents = read_corpus(dataset)
    doc_ids = [d.id for d in documents]
    embeddings = encode_corpus_cached(encoder, documents, cache)
    for directory, recipe in zip(tessera_indexes, recipes):
        if not (Path(directory) / "manifest.json").is_file():
            Index.build_from_embeddings(directory, embeddings, documents, encoder, recipe=recipe)
    plaid, plaid_build_s = build_plaid(Path(plaid_index), embeddings, doc_ids)

    qrels = read_qrels(dataset, split)
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    padded = encoder.encode_queries([q.text for q in queries])
    real = [q[np.linalg.norm(q, axis=1) > 0] for q in padded]

    torch.set_num_threads(2)
    _, exact = exhaustive_search(padded, embeddings.vectors, embeddings.offsets, k=k)
    reference = [{doc_ids[i] for i in row if i >= 0} for row in exact.tolist()]

    def score(name: str, build_s: float, size_mib: float, timings: dict, ranked: list[list[str]]) -> dict:
        run_ = {q.id: {d: float(len(r) - j) for j, d in enumerate(r)} for q, r in zip(queries, ranked)}
        row = {"engine": name, "recall_vs_exact": float(np.mean([len(set(r[:k]) & ref) / len(ref)
                                                                  for r, ref in zip(ranked, reference)])),
               "nDCG@10": evaluate(run_, qrels)["nDCG@10"], "build_s": build_s, "index_mib": size_mib}
        for t, lat in timings.items():
            row[f"p50_ms_{t}t"] = float(np.percentile(lat, 50))
            row[f"p95_ms_{t}t"] = float(np.percentile(lat, 95))
        print(json.dumps(row), flush=True)
        return row

    rows = _plaid_rows(plaid, real, k, threads, pylate_defaults, score, plaid_build_s, _disk_mib(Path(plaid_index)))
    for directory in tessera_indexes:
        rows += _tessera_rows(Index.open(directory, verify=False), encoder, real, k, threads, score)
    return {"dataset": dataset, "n_docs": len(doc_ids), "n_vectors": int(len(embeddings.vectors)),
            "queries": len(queries), "threads": list(threads), "rows": rows}


def _plaid_rows(plaid, real: list, k: int, threads: tuple, pylate_defaults: bool, score, build_s: float,
                size_mib: float) -> list[dict]:
    """One row per PLAID_SETTINGS setting of the PyLate / FastPLAID index."""
    import torch

    rows = []
    searcher = plaid._index.searcher
    for name, setting in PLAID_SETTINGS.items():
        if "defaults" in name and not pylate_defaults:
            continue
        searcher.configure(**setting)

        def plaid_one(q: np.ndarray) -> list[str]:
            return [r["id"] for r in plaid(torch.from_numpy(q)[None], k=k)[0]]

        timings, ranked = {}, None
        # PyLate's defaults take about a second a query here: timed with the most threads only.
        for t in (threads[-1:] if "defaults" in name else threads):
            timings[t], ranked = _timed(plaid_one, real, t, f"{name}, {t} thr")
        rows.append(score(name, build_s, size_mib, timings, ranked))
    return rows


def _tessera_rows(index, encoder, real: list, k: int, threads: tuple, score) -> list[dict]:
    """One row per Tessera preset over one index."""
    from retriever import Searcher

    b = index.manifest["build"]
    build_s = b["reduce_seconds"] + b["codec_fit_seconds"] + b["compress_seconds"]
    rows = []
    for preset in TESSERA_SETTINGS:
        tessera = Searcher(index, encoder=encoder, quality=preset)

        def tessera_one(q: np.ndarray) -> list[str]:
            return tessera.search_batch(q[None], k=k).doc_ids[0]

        timings, ranked = {}, None
        for t in threads:
            timings[t], ranked = _timed(tessera_one, real, t, f"tessera {preset}, {t} thr")
        rows.append(score(f"Tessera {preset} ({index.manifest['recipe']})", build_s,
                          index.store.nbytes()["search"] / 2**20, timings, ranked))
    return rows


def _short(engine: str) -> str:
    """Plot label: PLAID settings dropped, Tessera's recipe kept."""
    name, _, detail = engine.partition(" (")
    return name if name.startswith("PLAID") else f"{name} {detail.rstrip(')')}"


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import labelled_scatter

    base = next(r for r in result["rows"] if r["engine"].startswith("PLAID k<=10"))
    t = result["threads"][0]
    lines = [f"{Path(result['dataset']).name}: {result['n_docs']:,} documents, {result['n_vectors']:,} vectors "
             f"given to both engines, {result['queries']} queries, each searched alone\n",
             "| engine, settings | recall of exact top-10 | nDCG@10 | " +
             " | ".join(f"p50 ms ({n} thr) | p95 ms ({n} thr)" for n in result["threads"]) +
             f" | p50 / PLAID k<=10 p50 ({t} thr) | index MiB | build s (excl. encoding) |",
             "|---|---|---|" + "---|---|" * len(result["threads"]) + "---|---|---|"]
    nan = float("nan")
    for r in result["rows"]:
        cells = " | ".join(f"{r.get(f'p50_ms_{n}t', nan):.1f} | {r.get(f'p95_ms_{n}t', nan):.1f}"
                           for n in result["threads"])
        ratio = r.get(f"p50_ms_{t}t", nan) / base[f"p50_ms_{t}t"]
        lines.append(f"| {r['engine']} | {r['recall_vs_exact']:.3f} | {r['nDCG@10']:.4f} | {cells} | "
                     f"{ratio:.2f} | {r['index_mib']:.0f} | {r['build_s']:.0f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(result["dataset"]).name
    labelled_scatter([(r[f"p50_ms_{t}t"], r["recall_vs_exact"], _short(r["engine"]))
                      for r in result["rows"] if f"p50_ms_{t}t" in r],
                     out / f"plaid-{name}.png", xlabel=f"median latency per query, ms ({t} thread, log scale)",
                     ylabel="recall of exact top-10", title=f"Tessera vs PLAID, same vectors, {name}")
    save_table(out, f"plaid-{name}", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.plaid", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True, help="Tessera's encoded-shard cache of the collection")
    p.add_argument("--tessera-index", required=True, nargs="+", help="one or more Tessera indexes")
    p.add_argument("--recipes", nargs="+", default=None,
                   help="recipe of each --tessera-index, used to build it when missing (default pool2,res2)")
    p.add_argument("--plaid-index", required=True, help="PyLate PLAID index folder (built if empty)")
    p.add_argument("--out", default="docs/plaid")
    p.add_argument("--split", default="test")
    p.add_argument("--build-only", action="store_true", help="build the PLAID index and stop")
    p.add_argument("--skip-pylate-defaults", action="store_true",
                   help="leave out PyLate's default setting (ndocs=8192: about 1 s per query here)")
    args = p.parse_args(argv)
    try:
        import pylate  # noqa: F401
    except ImportError:
        p.error("PyLate is not installed in this environment; see 'Against PLAID, side by side in one run' in docs/benchmarks.md")
    if args.build_only:
        from retriever import load_encoder, read_corpus
        from retriever.cache import encode_corpus_cached
        documents = read_corpus(args.dataset)
        embeddings = encode_corpus_cached(load_encoder(), documents, args.cache)
        _, seconds = build_plaid(Path(args.plaid_index), embeddings, [d.id for d in documents])
        print(json.dumps({"plaid_build_s": seconds}))
        return 0
    recipes = args.recipes or ["pool2,res2"] * len(args.tessera_index)
    if len(recipes) != len(args.tessera_index):
        p.error("give one --recipes entry per --tessera-index")
    result = run(args.dataset, args.cache, args.tessera_index, recipes, args.plaid_index, split=args.split,
                 pylate_defaults=not args.skip_pylate_defaults)
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
