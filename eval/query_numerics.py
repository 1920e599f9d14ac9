"""Query encoder numerics on the worst collections: the same index searched with query vectors
from each query runtime, against ONNX Runtime float32.

    python -m eval.query_numerics --cache /tmp/cache --work /tmp/qn --out docs/query-numerics \\
        [--collections scifact vaswani ...] [--runtimes onnx onnx-int8 torch-bf16]

For each collection (eval.defaults' panel: the shared ones and the generated stress sets) the
documents are encoded once (cached) and indexed with the default recipe; the judged queries are
encoded by every runtime, and the default searcher (hybrid) and the dense side alone rank with
each. Reported: nDCG@10 and its change against float32, the share of float32's top-10 each runtime
keeps, the cosine of each query token vector to its float32 one (mean and minimum), and the
one-query encoding latency (p50, one thread).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .collections import load_collection
from .defaults import COLLECTIONS, _documents_of

RUNTIMES = ("onnx", "onnx-int8", "torch-bf16")


def _encode_each(encoder, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (n, L, dim) encoded one query at a time, milliseconds per query)."""
    rows, ms = [], []
    for text in texts:
        started = time.perf_counter()
        rows.append(encoder.encode_queries([text])[0])
        ms.append(1000 * (time.perf_counter() - started))
    width = max(r.shape[0] for r in rows)
    out = np.zeros((len(rows), width, rows[0].shape[1]), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out, np.array(ms)


def run_collection(name: str, runtimes: tuple[str, ...], cache_root: Path, work: Path) -> list[dict]:
    import torch
    from indexes.builder.recipe import DEFAULT_RECIPE
    from retriever import Index, Searcher, load_encoder
    from retriever.cache import encode_corpus_cached
    from .metrics import evaluate

    data = load_collection(name)
    base = _documents_of(name)
    folder = work / base
    if not (folder / "manifest.json").is_file():
        encoder = load_encoder()
        embeddings = encode_corpus_cached(encoder, data.documents, cache_root / base)
        Index.build_from_embeddings(folder, embeddings, data.documents, encoder, recipe=DEFAULT_RECIPE)
    index = Index.open(folder, verify=False)
    texts = [q.text for q in data.queries]
    torch.set_num_threads(1)
    encoded = {}
    for runtime in runtimes:
        encoder = load_encoder(query_runtime=runtime)
        encoder.encode_queries(texts[:5])                      # warm-up
        encoded[runtime] = _encode_each(encoder, texts)
    rows, top = [], {}
    for runtime, (vectors, ms) in encoded.items():
        row = {"collection": name, "runtime": runtime, "queries": len(texts),
               "encode_p50_ms": float(np.median(ms))}
        for label, hybrid in (("hybrid", None), ("dense", False)):
            results = Searcher(index, hybrid=hybrid).search_batch(vectors, k=10, texts=texts)
            run = {q.id: dict(results.hits(i)) for i, q in enumerate(data.queries)}
            row[f"nDCG@10_{label}"] = evaluate(run, data.qrels)["nDCG@10"]
            top[(runtime, label)] = [set(ids) for ids in results.doc_ids]
        reference = encoded[runtimes[0]][0]
        real = np.linalg.norm(reference, axis=2) > 0
        cos = (vectors * reference).sum(axis=2)[real]
        row.update({"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())})
        for label in ("hybrid", "dense"):
            row[f"top10_kept_{label}"] = float(np.mean([len(a & b) / max(1, len(b)) for a, b in
                                                        zip(top[(runtime, label)], top[(runtimes[0], label)])]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def report(rows: list[dict], out: Path) -> str:
    from .report import save_table
    from .plots import grouped_bars

    base = {(r["collection"]): r for r in rows if r["runtime"] == rows[0]["runtime"]}
    lines = [f"Query runtimes against {rows[0]['runtime']} (documents as indexed by default; nDCG@10, change in %)\n",
             "| collection | runtime | encode p50 ms (1 thr) | hybrid nDCG@10 | change | dense nDCG@10 | change | "
             "top-10 kept (hybrid / dense) | token cosine mean / min |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = base[r["collection"]]
        dh = 100 * (r["nDCG@10_hybrid"] / b["nDCG@10_hybrid"] - 1)
        dd = 100 * (r["nDCG@10_dense"] / b["nDCG@10_dense"] - 1)
        lines.append(f"| {r['collection']} | {r['runtime']} | {r['encode_p50_ms']:.1f} | {r['nDCG@10_hybrid']:.4f} | "
                     f"{dh:+.2f}% | {r['nDCG@10_dense']:.4f} | {dd:+.2f}% | {r['top10_kept_hybrid']:.3f} / "
                     f"{r['top10_kept_dense']:.3f} | {r['cosine_mean']:.4f} / {r['cosine_min']:.3f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    collections = list(base)
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    by = {(r["collection"], r["runtime"]): r for r in rows}
    grouped_bars(collections, {rt: [100 * (by[(c, rt)]["nDCG@10_hybrid"] / base[c]["nDCG@10_hybrid"] - 1)
                                    for c in collections] for rt in runtimes[1:]},
                 out / "query-numerics.png", ylabel=f"hybrid nDCG@10 change vs {runtimes[0]}, %",
                 title="Query runtimes on the worst collections", hline=-0.5)
    save_table(out, "query-numerics", rows, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.query_numerics", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", required=True, help="root of the encoded-shard caches (one folder per collection)")
    p.add_argument("--work", required=True, help="folder for the indexes")
    p.add_argument("--out", default="docs/query-numerics")
    p.add_argument("--collections", nargs="+", default=COLLECTIONS)
    p.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), help="the first is the reference")
    args = p.parse_args(argv)
    rows = []
    for name in args.collections:
        rows += run_collection(name, tuple(args.runtimes), Path(args.cache), Path(args.work))
    print(report(rows, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
