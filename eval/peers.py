"""Side-by-side benchmark: Tessera against the compiled peers, xtr-warp-rs (WARP in Rust) and
fast-plaid (PLAID in Rust), on the same token vectors, in one process.

    python -m eval.peers --dataset ../shared/data/scifact --cache /tmp/cache/scifact \\
        --tessera-index /tmp/scifact-index /tmp/scifact-res4 --work /tmp/peers [--rounds 2] [--out docs/peers]

Neither peer is a Tessera dependency: run this from the environment of "Against the compiled
peers" in docs/benchmarks.md (torch 2.11, xtr-warp-rs 2.1.0.2110, fast-plaid 1.7.0.2110, Tessera
installed with --no-deps). Every engine indexes the very same document vectors (Tessera's encoded
cache, float16, before pooling) and searches the very same query matrices (Tessera's encoder,
[MASK]-augmented, padding rows dropped); peer indexes are built once under --work and reused. Each
setting then times every query alone with one thread, in rounds that alternate the engines
(round 1: every setting, round 2: every setting again, ...), so that a change in the machine's
load touches all of them alike. Quality is recall of the exact top-10 (MaxSim over the
uncompressed vectors, the same reference for all) and nDCG@10. Both peers fit k-means on a sample
of the vectors, as Tessera does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from .plaid import _disk_mib

# name -> (engine, index nbits, search keyword arguments)
PEER_SETTINGS = {
    "xtr-warp-rs nbits 4, its tuned defaults": ("xtr", 4, {}),
    "xtr-warp-rs nbits 4, wide (nprobe 32, bound 512)": ("xtr", 4, {"nprobe": 32, "bound": 512}),
    "fast-plaid nbits 4, probe 1, 256 full scores": ("fast-plaid", 4, {"n_ivf_probe": 1, "n_full_scores": 256}),
    "fast-plaid nbits 4, probe 2, 512 full scores": ("fast-plaid", 4, {"n_ivf_probe": 2, "n_full_scores": 512}),
}
TESSERA_PRESETS = ("fast", "balanced", "accurate")
# xtr-warp-rs fits its residual quantiles on this many tokens: its default (1M) overflows at 384 dims.
XTR_CODEC_SAMPLE = 262_144


def _per_doc(embeddings) -> list:
    import torch

    o = embeddings.offsets
    return [torch.from_numpy(embeddings.vectors[o[d]:o[d + 1]].astype(np.float32)) for d in range(len(o) - 1)]


def build_peer(engine: str, nbits: int, path: Path, embeddings) -> tuple[object, float]:
    """Build (or reopen) one peer's index under `path`; returns (a search function, build seconds)."""
    import torch

    record = path / "tessera-build-seconds.json"
    built = record.is_file()
    started = time.perf_counter()
    if engine == "xtr":
        from xtr_warp import XTRWarp

        index = XTRWarp(index=str(path))
        if not built:
            index.create(_per_doc(embeddings), device="cpu", nbits=nbits, codec_sample_max_tokens=XTR_CODEC_SAMPLE,
                         show_progress=True)
        index.load(device="cpu")

        def search(q, threads, **kw):
            return index.search(torch.from_numpy(q)[None], top_k=10, num_threads=threads, show_progress=False, **kw)[0]
    else:
        from fast_plaid import search as fp

        index = fp.FastPlaid(index=str(path), device="cpu")
        if not built:
            index.create(_per_doc(embeddings), nbits=nbits)

        def search(q, threads, **kw):
            return index.search(torch.from_numpy(q)[None], top_k=10, show_progress=False, **kw)[0]
    if not built:
        record.write_text(json.dumps({"seconds": time.perf_counter() - started}))
    return search, json.loads(record.read_text())["seconds"]


def _time_setting(search_one, queries: list[np.ndarray], threads: int) -> tuple[list[float], list[list[int]]]:
    """Milliseconds of each query searched alone with `threads` threads, and the positions it ranked."""
    from .latency import set_threads

    set_threads(threads)
    latencies, ranked = [], []
    for q in queries:
        started = time.perf_counter()
        ranked.append(search_one(q))
        latencies.append(1000 * (time.perf_counter() - started))
    return latencies, ranked


def run(dataset: str, cache: str, tessera_indexes: list[str], work: str, *, rounds: int = 2, threads: int = 1,
        split: str = "test", k: int = 10, settings: dict | None = None) -> dict:
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
    qrels = read_qrels(dataset, split)
    queries = [q for q in read_queries(dataset) if q.id in qrels]
    padded = encoder.encode_queries([q.text for q in queries])
    real = [np.ascontiguousarray(q[np.linalg.norm(q, axis=1) > 0]) for q in padded]
    torch.set_num_threads(2)
    _, exact = exhaustive_search(padded, embeddings.vectors, embeddings.offsets, k=k)
    reference = [set(row[row >= 0].tolist()) for row in exact]

    engines: dict[str, tuple] = {}          # name -> (search one query -> positions, build s, MiB)
    for name, (engine, nbits, kwargs) in (settings or PEER_SETTINGS).items():
        path = Path(work) / f"{engine}-nbits{nbits}"
        path.mkdir(parents=True, exist_ok=True)
        search, build_s = build_peer(engine, nbits, path, embeddings)
        engines[name] = (lambda q, t, s=search, kw=kwargs: [int(p) for p, _ in s(q, t, **kw)], build_s,
                         _disk_mib(path))
    position_of = {d: i for i, d in enumerate(doc_ids)}
    for directory in tessera_indexes:
        index = Index.open(directory, verify=False)
        b = index.manifest["build"]
        for preset in TESSERA_PRESETS:
            searcher = Searcher(index, encoder=encoder, quality=preset, hybrid=False)
            engines[f"Tessera {preset} ({index.manifest['recipe']})"] = (
                lambda q, t, s=searcher: [position_of[d] for d in s.search_batch(q[None], k=k).doc_ids[0]],
                b["reduce_seconds"] + b["codec_fit_seconds"] + b["compress_seconds"],
                index.store.nbytes()["search"] / 2**20)
    for name, (one, _, _) in engines.items():          # warm-up: first calls compile and page in
        for q in real[:10]:
            one(q, threads)
    latencies: dict[str, list[float]] = {name: [] for name in engines}
    ranked: dict[str, list] = {}
    for r in range(rounds):
        for name, (one, _, _) in engines.items():
            lat, ranked[name] = _time_setting(lambda q, f=one: f(q, threads), real, threads)
            latencies[name] += lat
            print(json.dumps({"round": r + 1, "setting": name, "p50_ms": float(np.median(lat))}), flush=True)
    rows = []
    for name, (_, build_s, mib) in engines.items():
        run_ = {q.id: {doc_ids[p]: float(len(ps) - j) for j, p in enumerate(ps)}
                for q, ps in zip(queries, ranked[name])}
        rows.append({"engine": name, "recall_vs_exact": float(np.mean([len(set(ps[:k]) & ref) / len(ref)
                                                                      for ps, ref in zip(ranked[name], reference)])),
                     "nDCG@10": evaluate(run_, qrels)["nDCG@10"], "p50_ms": float(np.percentile(latencies[name], 50)),
                     "p95_ms": float(np.percentile(latencies[name], 95)), "index_mib": mib, "build_s": build_s})
    return {"dataset": dataset, "n_docs": len(doc_ids), "n_vectors": int(len(embeddings.vectors)),
            "queries": len(queries), "threads": threads, "rounds": rounds, "rows": rows}


def fastest_peer_ratio(rows: list[dict]) -> dict[str, float]:
    """For each Tessera row: its p50 over the p50 of the fastest peer setting whose recall of the
    exact top-10 is at least as high (nan when no peer setting reaches it)."""
    peers = [r for r in rows if not r["engine"].startswith("Tessera")]
    out = {}
    for r in rows:
        if r["engine"].startswith("Tessera"):
            rivals = [p["p50_ms"] for p in peers if p["recall_vs_exact"] >= r["recall_vs_exact"]]
            out[r["engine"]] = r["p50_ms"] / min(rivals) if rivals else float("nan")
    return out


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import labelled_scatter

    ratios = fastest_peer_ratio(result["rows"])
    lines = [f"{Path(result['dataset']).name}: {result['n_docs']:,} documents, {result['n_vectors']:,} vectors given to "
             f"every engine, {result['queries']} queries each searched alone, {result['threads']} thread, "
             f"{result['rounds']} interleaved rounds\n",
             "| engine, setting | recall of exact top-10 | nDCG@10 | p50 ms | p95 ms | p50 / fastest peer of equal or "
             "higher recall | index MiB | build s (excl. encoding) |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ratio = ratios.get(r["engine"])
        lines.append(f"| {r['engine']} | {r['recall_vs_exact']:.3f} | {r['nDCG@10']:.4f} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {'' if ratio is None else f'{ratio:.2f}'} | {r['index_mib']:.0f} | "
                     f"{r['build_s']:.0f} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(result["dataset"]).name
    labelled_scatter([(r["p50_ms"], r["recall_vs_exact"], r["engine"]) for r in result["rows"]],
                     out / f"peers-{name}.png", xlabel="median latency per query, ms (1 thread, log scale)",
                     ylabel="recall of exact top-10", title=f"Tessera vs xtr-warp-rs and fast-plaid, same vectors, {name}")
    save_table(out, f"peers-{name}", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True, help="Tessera's encoded-shard cache of the collection")
    p.add_argument("--tessera-index", required=True, nargs="+", help="Tessera indexes built from that cache")
    p.add_argument("--work", required=True, help="folder for the peers' indexes (built when missing)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default="docs/peers")
    p.add_argument("--split", default="test")
    p.add_argument("--build-only", action="store_true", help="build the peers' indexes and stop")
    p.add_argument("--peers", nargs="+", choices=["xtr", "fast-plaid"], default=["xtr", "fast-plaid"],
                   help="which peers to run (default both)")
    args = p.parse_args(argv)
    try:
        import fast_plaid  # noqa: F401
        import xtr_warp  # noqa: F401
    except ImportError:
        p.error("xtr-warp-rs and fast-plaid are not installed here; see 'Against the compiled peers' in docs/benchmarks.md")
    if args.build_only:
        from retriever import load_encoder, read_corpus
        from retriever.cache import encode_corpus_cached

        embeddings = encode_corpus_cached(load_encoder(), read_corpus(args.dataset), args.cache)
        for engine, nbits in sorted({(e, b) for e, b, _ in PEER_SETTINGS.values() if e in args.peers}):
            path = Path(args.work) / f"{engine}-nbits{nbits}"
            path.mkdir(parents=True, exist_ok=True)
            print(json.dumps({"engine": engine, "nbits": nbits, "build_s": build_peer(engine, nbits, path, embeddings)[1]}))
        return 0
    settings = {name: s for name, s in PEER_SETTINGS.items() if s[0] in args.peers}
    result = run(args.dataset, args.cache, args.tessera_index, args.work, rounds=args.rounds, split=args.split,
                 settings=settings)
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
