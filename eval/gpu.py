"""The torch search path on a device (CUDA, or the CPU for a check): queries per second, the time
of the first stage and of rescoring, and MaxSim throughput as a share of the card's memory bandwidth.

    python -m eval.gpu --index /tmp/scifact-index --dataset ../shared/data/scifact --device cuda \\
        [--bandwidth-gbs 4800] [--out docs/gpu]

The judged queries are encoded once, then searched by `Searcher(index, device=..., hybrid=False,
backend="reference")` (the torch path: token retrieval over the lists and exact MaxSim of the
decompressed candidates) one at a time and as one batch. Stage times come from
indexes/search/timings.py (the device is synchronised around each stage when timings are asked
for). MaxSim throughput counts the candidate vectors a rescoring reads (float16 after
decompression, the bytes a card moves) over the rescoring time; its share of the memory bandwidth
(`--bandwidth-gbs`, or the table below by device name) says how far the kernel is from the card's limit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

# Published memory bandwidth in GB/s, by a substring of torch.cuda.get_device_name().
BANDWIDTH_GBS = {"H200": 4800, "H100": 3350, "A100": 2039, "L40": 864, "L4": 300, "A10": 600, "T4": 320}


def card_bandwidth(device) -> float | None:
    """The memory bandwidth of a CUDA device from BANDWIDTH_GBS (None when unknown or on the CPU)."""
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((float(v) for k, v in BANDWIDTH_GBS.items() if k in name), None)


def run(index_dir: str, dataset: str, device: str, *, limit: int | None = None, k: int = 10,
        bandwidth_gbs: float | None = None) -> dict:
    from indexes.search.timings import Timings
    from retriever import Index, Searcher, read_queries
    from .qrels import read_qrels

    index = Index.open(index_dir, verify=False)
    qrels = read_qrels(dataset, "test")
    texts = [q.text for q in read_queries(dataset) if q.id in qrels][:limit]
    searcher = Searcher(index, device=device, hybrid=False, backend="reference")
    vectors = searcher.encoder.encode_queries(texts)
    searcher.search_batch(vectors[:8], k=k)                        # warm: kernels, pages, allocator
    timings, latencies = Timings(), []
    for i in range(len(vectors)):
        started = time.perf_counter()
        searcher.search_batch(vectors[i:i + 1], k=k, timings=timings)
        latencies.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    searcher.search_batch(vectors, k=k)
    batch_seconds = time.perf_counter() - started
    n_candidates = searcher.ranker.n_candidates
    mean_vectors = sum(s.entry["n_vectors"] for s in index.store.segments) / max(1, len(index))
    bytes_read = len(vectors) * n_candidates * mean_vectors * index.store.codec.dim * 2     # float16
    gbs = bytes_read / max(timings.get("rescoring", 0.0), 1e-9) / 1e9
    bandwidth = bandwidth_gbs or card_bandwidth(searcher.device)
    return {"device": str(searcher.device), "queries": len(vectors), "n_candidates": n_candidates,
            "p50_ms": float(np.median(latencies)), "batch_qps": len(vectors) / batch_seconds,
            "single_qps": 1000 / float(np.mean(latencies)),
            "first_stage_ms": 1000 * timings.get("first_stage", 0.0) / len(vectors),
            "rescoring_ms": 1000 * timings.get("rescoring", 0.0) / len(vectors),
            "maxsim_gb_per_s": gbs, "bandwidth_gbs": bandwidth,
            "bandwidth_share": None if bandwidth is None else gbs / bandwidth}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import grouped_bars

    share = result["bandwidth_share"]
    table = (f"Torch search path on {result['device']}, {result['queries']} queries, {result['n_candidates']} "
             "candidates each\n\n| p50 ms (one query) | queries/s one at a time | queries/s batch | first stage ms | "
             "rescoring ms | MaxSim GB/s read | share of bandwidth |\n|---|---|---|---|---|---|---|\n"
             f"| {result['p50_ms']:.2f} | {result['single_qps']:.0f} | {result['batch_qps']:.0f} | "
             f"{result['first_stage_ms']:.2f} | {result['rescoring_ms']:.2f} | {result['maxsim_gb_per_s']:.1f} | "
             f"{'unknown' if share is None else f'{100 * share:.1f}%'} |")
    out.mkdir(parents=True, exist_ok=True)
    grouped_bars(["per query"], {"first stage": [result["first_stage_ms"]], "rescoring": [result["rescoring_ms"]]},
                 out / f"gpu-{result['device'].replace(':', '')}.png", ylabel="milliseconds",
                 title=f"Torch path stages on {result['device']}")
    save_table(out, f"gpu-{result['device'].replace(':', '')}", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--bandwidth-gbs", type=float, default=None, help="the card's memory bandwidth (GB/s)")
    p.add_argument("--out", default="docs/gpu")
    args = p.parse_args(argv)
    result = run(args.index, args.dataset, args.device, limit=args.limit, bandwidth_gbs=args.bandwidth_gbs)
    print(json.dumps(result))
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
