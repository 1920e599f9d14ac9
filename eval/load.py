"""Load test of the search API: concurrent clients mixing searches and adds, batching on vs off.

    python -m eval.load --index sample-index [--clients 32] [--seconds 30] [--add-share 0.05] [--out docs/load]

For each server setting (micro-batching with a 2 ms window and up to 32 queries; no batching),
it copies the index, starts `tessera serve` on 127.0.0.1, and runs `clients` asyncio httpx
clients for a fixed time: each loops sending a search (queries drawn from the index's own
document titles) or, with probability `add_share`, an add of one new document. Reports per
request kind p50 / p99 latency, requests per second and errors (any non-2xx or transport error).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {"micro-batching (2 ms, 32)": ["--batch-window-ms", "2", "--max-batch", "32"],
            "no batching": ["--batch-window-ms", "0", "--max-batch", "1"]}
KEY = "load-test-key-0123"


def _start(index_dir: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "server.cli", "--index", f"load={index_dir}", "--port",
                                str(port), *extra], env={**os.environ, "TESSERA_API_KEY": KEY},
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


async def _drive(url: str, queries: list[str], clients: int, seconds: float, add_share: float) -> dict:
    import httpx

    records: dict[str, list[float]] = {"search": [], "add": []}
    errors = {"search": 0, "add": 0}
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client(seed: int) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            while time.perf_counter() < stop:
                kind = "add" if rng.random() < add_share else "search"
                started = time.perf_counter()
                try:
                    if kind == "search":
                        r = await http.post("/search", json={"query": rng.choice(queries), "k": 10})
                    else:
                        n = next(counter)
                        r = await http.post("/indexes/load/documents", headers={"X-API-Key": KEY}, json={
                            "documents": [{"id": f"load-{seed}-{n}", "text": f"{rng.choice(queries)} (copy {n})"}]})
                    ok = r.status_code < 300
                except httpx.HTTPError:
                    ok = False
                if ok:
                    records[kind].append(1000 * (time.perf_counter() - started))
                else:
                    errors[kind] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    wall = time.perf_counter() - started
    out = {}
    for kind, ms in records.items():
        values = np.array(ms) if ms else np.array([np.nan])
        out[kind] = {"requests": len(ms), "errors": errors[kind], "per_second": len(ms) / wall,
                     "p50_ms": float(np.nanpercentile(values, 50)), "p99_ms": float(np.nanpercentile(values, 99))}
    return out


def run(index_dir: str, clients: int, seconds: float, add_share: float) -> dict:
    from retriever import Index

    index = Index.open(index_dir, verify=False)
    store = index.store
    queries = [store.document(p).get("title") or store.document(p)["text"][:200] for p in range(store.n_positions)]
    results = {}
    for name, extra in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "index"
            shutil.copytree(index_dir, copy)
            process, url = _start(copy, extra)
            try:
                asyncio.run(_drive(url, queries, 2, 2.0, 0.0))          # warm-up
                results[name] = asyncio.run(_drive(url, queries, clients, seconds, add_share))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        print(name, json.dumps(results[name]), flush=True)
    return {"index": index_dir, "documents": len(index), "clients": clients, "seconds": seconds,
            "add_share": add_share, "results": results}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [f"{result['clients']} clients for {result['seconds']:.0f} s against {result['index']} "
             f"({result['documents']:,} documents), {result['add_share']:.0%} of requests are adds\n",
             "| server | kind | requests | per second | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for name, kinds in result["results"].items():
        for kind, r in kinds.items():
            lines.append(f"| {name} | {kind} | {r['requests']:,} | {r['per_second']:.1f} | {r['p50_ms']:.1f} | "
                         f"{r['p99_ms']:.1f} | {r['errors']} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    names = list(result["results"])
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].bar(names, [result["results"][n]["search"]["per_second"] for n in names], color=["tab:blue", "tab:gray"])
    ax[0].set_ylabel("searches per second")
    ax[1].bar(names, [result["results"][n]["search"]["p99_ms"] for n in names], color=["tab:blue", "tab:gray"])
    ax[1].set_ylabel("search p99 latency, ms")
    fig.suptitle(f"Search API under load: {result['clients']} clients")
    fig.tight_layout()
    fig.savefig(out / "load.png", dpi=120)
    save_table(out, "load", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--add-share", type=float, default=0.05)
    p.add_argument("--out", default="docs/load")
    args = p.parse_args(argv)
    print(report(run(args.index, args.clients, args.seconds, args.add_share), Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
