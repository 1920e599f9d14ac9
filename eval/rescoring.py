"""Rescoring side by side: from the stored codes or by decoding, with the codes as stored (list
order, which the first stage reads front to back) or in a second copy in document order (each
candidate's vectors in one run: fewer cache and TLB misses, twice the bytes of codes and residuals).

    python -m eval.rescoring --index /tmp/scifact-index --dataset ../shared/data/scifact [--rounds 3] [--out docs/rescoring]

The judged queries are encoded once; each query's first-stage candidates (the default preset,
100 deep as hybrid search asks for) are rescored by every variant in turn, at 1 and 2 threads,
rounds alternating the variants. Reports milliseconds per query (median over rounds of the mean),
the bytes each layout keeps per stored vector, and the largest score difference to decoding.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


class _DocumentOrder:
    """A segment seen with its codes and residuals copied into document order (slot = vector id)."""

    def __init__(self, segment):
        self.segment = segment

    def slots(self, vectors):
        return vectors


def document_order(search) -> None:
    """Give a CompiledSearch document-ordered copies of every segment's codes and residuals."""
    segments = []
    for (offsets, ids, slot_docs, codes, residuals, doc_offsets, segment) in search._segments:
        slots = segment.slot_of_vector
        if slots is not None:
            codes, residuals = np.ascontiguousarray(codes[slots]), np.ascontiguousarray(residuals[slots])
        segments.append((offsets, ids, slot_docs, codes, residuals, doc_offsets, _DocumentOrder(segment)))
    search._segments = segments


def run(index_dir: str, dataset: str, rounds: int = 3, limit: int | None = None, depth: int = 100) -> dict:
    from indexes.search.compiled import CompiledSearch
    from retriever import Index, Searcher, read_queries
    from .decoded import rescore_decoded
    from .latency import set_threads
    from .qrels import read_qrels

    index = Index.open(index_dir, verify=False)
    qrels = read_qrels(dataset, "test")
    texts = [q.text for q in read_queries(dataset) if q.id in qrels][:limit]
    searcher = Searcher(index)
    vectors = searcher.encoder.encode_queries(texts)
    store = index.store
    stored, copied = CompiledSearch(store), CompiledSearch(store)
    document_order(copied)
    queries = [np.ascontiguousarray(store.codec.project(q[np.linalg.norm(q, axis=1) > 0])) for q in vectors]
    candidates = [stored.candidates(q, nprobe=searcher.nprobe, n_candidates=depth)[0] for q in queries]
    variants = {"codes, list order (stored)": stored.rescore, "codes, document order (copy)": copied.rescore,
                "decoded, list order (before)": lambda q, c, threads=1: rescore_decoded(stored, q, c, threads)}
    reference = [rescore_decoded(stored, q, c) for q, c in zip(queries, candidates)]
    error = {name: max(float(np.abs(f(q, c) - r).max()) for q, c, r in zip(queries, candidates, reference))
             for name, f in variants.items()}             # also the warm-up (compile, fill the norms)
    ms = {(name, t): [] for name in variants for t in (1, 2)}
    for _ in range(rounds):
        for threads in (1, 2):
            set_threads(threads)
            for name, f in variants.items():
                started = time.perf_counter()
                for q, c in zip(queries, candidates):
                    f(q, c, threads)
                ms[(name, threads)].append(1000 * (time.perf_counter() - started) / len(queries))
    per_vector = store.segments[0].residuals.shape[1] + np.dtype(store.segments[0].codes.dtype).itemsize
    n_vectors = sum(len(s.codes) for s in store.segments)
    lengths = np.concatenate([np.diff(np.asarray(s.doc_offsets)) for s in store.segments])   # by position
    mean_vectors = float(np.mean([lengths[c].sum() for c in candidates]))
    rows = [{"variant": name, "ms_1t": float(np.median(ms[(name, 1)])), "ms_2t": float(np.median(ms[(name, 2)])),
             "bytes_per_vector": per_vector * (2 if "copy" in name else 1), "max_abs_error": error[name]}
            for name in variants]
    return {"index": index_dir, "queries": len(queries), "depth": depth, "n_vectors": n_vectors,
            "candidate_vectors_per_query": mean_vectors, "rounds": rounds, "rows": rows}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import labelled_scatter

    lines = [f"Rescoring {result['depth']} candidates per query ({result['candidate_vectors_per_query']:.0f} stored "
             f"vectors), {result['queries']} queries, median of {result['rounds']} rounds\n",
             "| variant | ms per query, 1 thread | 2 threads | codes + residual bytes per stored vector | "
             "largest difference to decoding |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['ms_1t']:.2f} | {r['ms_2t']:.2f} | {r['bytes_per_vector']} | "
                     f"{r['max_abs_error']:.1e} |")
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    labelled_scatter([(r["ms_1t"], r["bytes_per_vector"], r["variant"]) for r in result["rows"]],
                     out / "rescoring.png", xlabel="ms per query (1 thread, log scale)",
                     ylabel="bytes per stored vector", title="Rescoring: time against bytes")
    save_table(out, "rescoring", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.rescoring", description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default="docs/rescoring")
    args = p.parse_args(argv)
    print(report(run(args.index, args.dataset, args.rounds, args.limit), Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
