"""Encoder runtimes side by side: document tokens/s (1 and 2 threads), query encoding latency,
token-vector cosine to the torch float32 reference, nDCG@10 of exhaustive MaxSim over the
uncompressed vectors, and peak resident memory, each runtime in its own process.

    python -m eval.encoders --data ../shared/data --cache /tmp/cache --out docs/encoders \\
        [--runtimes torch torch-bf16 onnx onnx-int8] [--collections scifact vaswani cranfield]

The torch rows read the encoding cache (`--cache DIR/<collection>`, made by the torch runtime);
the other runtimes encode every collection afresh. Throughput is measured on the first
`--speed-docs` SciFact documents in each runtime's process, one runtime after another.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LONG_QUERY = ("I am reviewing the literature on how vitamin D supplementation during pregnancy relates to "
              "birth weight, preterm delivery and later bone density of the child, and I already read the "
              "large observational cohorts, so what I need now is whether randomised trials show that "
              "supplementing vitamin D in the second and third trimester reduces the risk of low birth weight")


def _one(runtime: str, args) -> dict:
    import torch
    from retriever import load_encoder
    from retriever.cache import encode_corpus_cached
    from .datasets import load_dataset
    from .metrics import evaluate
    from .reference import uncompressed_search

    out = {"runtime": runtime}
    scifact = load_dataset(Path(args.data) / "scifact")
    texts = [d.full_text for d in scifact.documents[: args.speed_docs]]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        encoder = load_encoder(device="cpu", runtime=runtime, cache_dir=args.model_cache)
        encoder.encode_documents(texts[:32], show_progress=False)                     # warm-up
        e = encoder.encode_documents(texts, show_progress=False)
        out[f"tokens_per_s_{threads}t"] = e.n_input_tokens / e.seconds
    queries = [q.text for q in scifact.queries[:64]]
    for label, batch in (("short", queries), ("long", [f"{LONG_QUERY} ({i})" for i in range(64)])):
        single = []
        for q in batch[:40]:
            started = time.perf_counter()
            encoder.encode_queries([q])
            single.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        encoder.encode_queries(batch[:32])
        out[f"query_{label}_p50_ms"] = float(np.median(single))
        out[f"query_{label}_batch32_ms"] = 1000 * (time.perf_counter() - started)
    reference = load_encoder(device="cpu", runtime="torch")
    for name in args.collections:
        data = load_dataset(Path(args.data) / name)
        ref = encode_corpus_cached(reference, data.documents, Path(args.cache) / name, show_progress=False)
        if runtime == "torch":
            mine = ref
        else:
            mine = encoder.encode_documents([d.full_text for d in data.documents], show_progress=True)
        cos = (ref.vectors.astype(np.float32) * mine.vectors.astype(np.float32)).sum(1)
        q = encoder.encode_queries([x.text for x in data.queries])
        scores, positions = uncompressed_search(q, mine.vectors, mine.lengths, k=10)
        run = {x.id: {data.documents[p].id: float(s) for p, s in zip(positions[i], scores[i]) if p >= 0}
               for i, x in enumerate(data.queries)}
        out[name] = {"ndcg10": evaluate(run, data.qrels)["nDCG@10"], "cos_min": float(cos.min()),
                     "cos_p1": float(np.percentile(cos, 1)), "cos_mean": float(cos.mean())}
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def stress(args) -> list[dict]:
    """The default encoder (document and query runtimes as `load_encoder` picks them) against
    torch float32 on the generated worst collections: nDCG@10 of exhaustive MaxSim over the
    uncompressed vectors with whole queries, and the document token cosine."""
    from retriever import load_encoder
    from retriever.cache import encode_corpus_cached
    from .datasets import load_dataset
    from .metrics import evaluate
    from .reference import uncompressed_search
    from .stress import attribute_collection, long_query_collection

    reference = load_encoder(device="cpu", runtime="torch")
    default = load_encoder(device="cpu", cache_dir=args.model_cache)
    rows = []
    for data, cache in ((attribute_collection(), "attributes"),
                        (long_query_collection(load_dataset(Path(args.data) / "scifact")), "scifact")):
        ref = encode_corpus_cached(reference, data.documents, Path(args.cache) / cache, show_progress=False)
        mine = default.encode_documents([d.full_text for d in data.documents], show_progress=True)
        cos = (ref.vectors.astype(np.float32) * mine.vectors.astype(np.float32)).sum(1)
        row = {"collection": data.name, "runtime": f"{default.runtime} / queries {default.query_runtime}",
               "doc_cos_min": float(cos.min()), "doc_cos_mean": float(cos.mean())}
        for name, encoder, docs in (("torch", reference, ref), ("default", default, mine)):
            q = encoder.encode_queries([x.text for x in data.queries])
            scores, positions = uncompressed_search(q, docs.vectors, docs.lengths, k=10)
            run = {x.id: {data.documents[p].id: float(v) for p, v in zip(positions[i], scores[i]) if p >= 0}
                   for i, x in enumerate(data.queries)}
            row[f"ndcg10_{name}"] = evaluate(run, data.qrels)["nDCG@10"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.encoders", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="folder holding the collections (BEIR layout)")
    p.add_argument("--cache", required=True, help="folder of the torch encoding caches, one per collection")
    p.add_argument("--runtimes", nargs="+", default=["torch", "torch-bf16", "onnx", "onnx-int8"])
    p.add_argument("--collections", nargs="+", default=["scifact", "vaswani", "cranfield"])
    p.add_argument("--speed-docs", type=int, default=600)
    p.add_argument("--model-cache", default=None, help="where converted models are kept")
    p.add_argument("--out", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    p.add_argument("--stress", action="store_true",
                   help="only: the default encoder vs torch float32 on the generated worst collections")
    args = p.parse_args(argv)
    if args.stress:
        stress(args)
        return 0
    if args.one:
        print(json.dumps(_one(args.one, args)), flush=True)
        return 0
    rows = []
    passthrough = ["--data", args.data, "--cache", args.cache, "--speed-docs", str(args.speed_docs),
                   "--collections", *args.collections] + (["--model-cache", args.model_cache] if args.model_cache else [])
    for runtime in args.runtimes:
        done = subprocess.run([sys.executable, "-m", "eval.encoders", "--one", runtime, *passthrough],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{runtime}: {done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    table = markdown(rows, args.collections)
    print(table)
    if args.out:
        from .report import save_table

        out = Path(args.out)
        save_table(out, "encoders", rows, table)
        plot(rows, args.collections, out / "encoders.png")
    return 0


def markdown(rows: list[dict], collections: list[str]) -> str:
    base = rows[0]
    head = ("| runtime | doc tokens/s 1 thr | 2 thr | x torch (2 thr) | query p50 short / long ms | batch of 32 short / long ms "
            "| peak RSS MiB | " + " | ".join(f"{c} nDCG@10 (delta) | {c} cosine min / p1 / mean" for c in collections) + " |")
    lines = [head, "|" + "---|" * (7 + 2 * len(collections))]
    for r in rows:
        cells = [r["runtime"], f"{r['tokens_per_s_1t']:,.0f}", f"{r['tokens_per_s_2t']:,.0f}",
                 f"{r['tokens_per_s_2t'] / base['tokens_per_s_2t']:.2f}x",
                 f"{r['query_short_p50_ms']:.1f} / {r['query_long_p50_ms']:.1f}",
                 f"{r['query_short_batch32_ms']:.0f} / {r['query_long_batch32_ms']:.0f}", f"{r['peak_rss_mib']:,.0f}"]
        for c in collections:
            delta = 100 * (r[c]["ndcg10"] / base[c]["ndcg10"] - 1)
            cells += [f"{r[c]['ndcg10']:.4f} ({delta:+.2f}%)",
                      f"{r[c]['cos_min']:.3f} / {r[c]['cos_p1']:.4f} / {r[c]['cos_mean']:.5f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], collections: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    names = [r["runtime"] for r in rows]
    x = np.arange(len(rows))
    axes[0].bar(x - 0.2, [r["tokens_per_s_1t"] for r in rows], 0.4, label="1 thread")
    axes[0].bar(x + 0.2, [r["tokens_per_s_2t"] for r in rows], 0.4, label="2 threads")
    axes[0].set_xticks(x, names)
    axes[0].set_ylabel("document tokens / s")
    axes[0].legend()
    for j, c in enumerate(collections):
        axes[1].bar(x + (j - 1) * 0.25, [100 * (r[c]["ndcg10"] / rows[0][c]["ndcg10"] - 1) for r in rows], 0.25, label=c)
    axes[1].axhline(-0.5, color="red", linestyle="--", linewidth=1, label="-0.5% limit")
    axes[1].set_xticks(x, names)
    axes[1].set_ylabel("nDCG@10 vs torch fp32, %")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
