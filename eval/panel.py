"""The hybrid panel: every collection x every fusion setting, from the rankings eval.defaults saved.

For each collection (WORK/runs/<collection>.<recipe>.npz: the dense default's and BM25's 100-deep
rankings over one index; <collection>.uncompressed.npz: exhaustive MaxSim over the uncompressed
vectors) it scores, with nDCG@10 from pytrec_eval:

- dense (the default engine on `recipe`), BM25 (the index's lexical lists), the uncompressed
  reference;
- every fusion of indexes.search.fusion over dense + BM25: the default ("adaptive"), the previous
  default (interpolate at 0.65), a grid of fixed weights and RRF;
- the hybrid reference: the default fusion over the uncompressed reference + the same BM25.

The table gives each setting's worst case in its own columns: the smallest ratio to the better of
dense and BM25 on any collection, and the smallest ratio to the uncompressed reference. It also
times the fusion per query on one thread (the previous per-query Python loop of
eval.hybrid.fuse against the array fusion of indexes.search.fusion, same rankings).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from indexes.search.fusion import fuse

from .metrics import evaluate

__all__ = ["SETTINGS", "panel", "fusion_latency"]

OLD_DEFAULT = ("interpolate", 0.65)
SETTINGS = {"adaptive (new default)": ("adaptive", 0.5), "interpolate 0.65 (old default)": OLD_DEFAULT,
            "rrf": ("rrf", 0.5), **{f"interpolate {a}": ("interpolate", a) for a in (0.3, 0.5, 0.8, 0.9)}}


def _ndcg(data, ids: np.ndarray, scores: np.ndarray, positions: np.ndarray) -> float:
    run = {q.id: {ids[p]: float(s) for p, s in zip(positions[i], scores[i]) if p >= 0}
           for i, q in enumerate(data.queries)}
    return evaluate(run, data.qrels)["nDCG@10"]


def collection_row(name: str, data, work: Path, recipe: str) -> dict[str, float]:
    """nDCG@10 of every setting on one collection (index positions are document order: one
    fresh segment built from the collection's documents in order)."""
    from .collections import load_rankings

    runs = work / "runs"
    got = load_rankings(runs / f"{name}.{recipe}.npz")
    reference = load_rankings(runs / f"{name}.uncompressed.npz")["reference"]
    dense, lexical = got["dense"], got["lexical"]
    ids = np.array([d.id for d in data.documents])
    row = {"dense": _ndcg(data, ids, *dense), "BM25": _ndcg(data, ids, *lexical),
           "uncompressed reference": _ndcg(data, ids, *reference)}
    for setting, (fusion, alpha) in SETTINGS.items():
        row[setting] = _ndcg(data, ids, *fuse(dense, lexical, 100, fusion, alpha))
    row["hybrid reference"] = _ndcg(data, ids, *fuse(reference, lexical, 100, "adaptive"))
    return row


def panel(collections: list[str], work: Path, out: Path, recipe: str) -> str:
    """Markdown of the panel (also OUT/panel.md, OUT/panel.json and OUT/panel.png)."""
    import json

    from .collections import load_collection
    from .plots import grouped_bars

    table = {c: collection_row(c, load_collection(c), work, recipe) for c in collections
             if (work / "runs" / f"{c}.{recipe}.npz").is_file()}
    names = list(table)
    settings = list(next(iter(table.values())))
    parent = {c: max(table[c]["dense"], table[c]["BM25"]) for c in names}
    lines = [f"nDCG@10 on `{recipe}` (dense and BM25 100 deep each). Worst cases: the smallest ratio on any "
             "collection to the better of dense and BM25, and to the uncompressed dense reference.", "",
             "| setting | " + " | ".join(names) + " | worst / better parent | worst / uncompressed |",
             "|---|" + "---|" * len(names) + "---|---|"]
    for s in settings:
        vs_parent = min(table[c][s] / parent[c] for c in names)
        vs_reference = min(table[c][s] / table[c]["uncompressed reference"] for c in names)
        lines.append(f"| {s} | " + " | ".join(f"{table[c][s]:.4f}" for c in names) +
                     f" | {vs_parent:.3f} | {vs_reference:.3f} |")
    markdown = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "panel.md").write_text(markdown + "\n")
    (out / "panel.json").write_text(json.dumps({"recipe": recipe, "table": table}, indent=1))
    shown = ["dense", "BM25", "interpolate 0.65 (old default)", "rrf", "adaptive (new default)", "hybrid reference"]
    grouped_bars(names, {s: [table[c][s] / parent[c] for c in names] for s in shown}, out / "panel.png",
                 ylabel="nDCG@10 / better of dense and BM25", hline=0.99, ylim=(0.7, 1.1),
                 title=f"Hybrid fusion per collection on {recipe} (dashed: 0.99)")
    return markdown


def fusion_latency(work: Path, collection: str, recipe: str, rounds: int = 3) -> dict[str, float]:
    """p50 ms per query of fusing one query's two 100-deep rankings: the previous list fusion
    (eval.hybrid.fuse, interpolate, a Python loop per query) and the array fusion (adaptive
    and interpolate), each query alone, one thread; best p50 of `rounds` interleaved rounds; and the
    adaptive array fusion of the whole batch in one call, per query."""
    import torch

    from eval.hybrid import fuse as fuse_lists

    from .collections import load_rankings

    got = load_rankings(work / "runs" / f"{collection}.{recipe}.npz")
    dense, lexical = got["dense"], got["lexical"]
    n = len(dense[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    fuse((dense[0][:1], dense[1][:1]), (lexical[0][:1], lexical[1][:1]), 10)       # compile once

    def old(i):
        hits = lambda side: [(p, s) for p, s in zip(side[1][i].tolist(), side[0][i].tolist()) if p >= 0]
        fused = fuse_lists(hits(dense), hits(lexical), *OLD_DEFAULT)[:10]
        scores = np.full((1, 10), -np.inf, dtype=np.float32)
        scores[0, :len(fused)] = [s for _, s in fused]

    def new(fusion):
        return lambda i: fuse((dense[0][i:i + 1], dense[1][i:i + 1]), (lexical[0][i:i + 1], lexical[1][i:i + 1]),
                              10, fusion, 0.65)

    timed = {"list fusion, per-query Python (old)": old, "array fusion, adaptive": new("adaptive"),
             "array fusion, interpolate": new("interpolate")}
    best = {name: float("inf") for name in timed}
    try:
        for _ in range(rounds):
            for name, fn in timed.items():
                ms = []
                for i in range(n):
                    started = time.perf_counter()
                    fn(i)
                    ms.append(1000 * (time.perf_counter() - started))
                best[name] = min(best[name], float(np.median(ms)))
        for _ in range(rounds):
            started = time.perf_counter()
            fuse(dense, lexical, 10, "adaptive")
            name = "array fusion, adaptive, the whole batch at once (per query)"
            best[name] = min(best.get(name, float("inf")), 1000 * (time.perf_counter() - started) / n)
    finally:
        torch.set_num_threads(threads)
    return best
