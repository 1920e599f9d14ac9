"""IR metrics through pytrec_eval (trec_eval's own code), and TREC run files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_METRICS", "evaluate", "per_query_scores", "write_trec_run"]

# name shown -> (pytrec_eval measure, its output key, run depth evaluated or None for all).
# trec_eval's recip_rank has no cut-off, so MRR@10 is recip_rank over each run's top 10.
DEFAULT_METRICS = {
    "nDCG@10": ("ndcg_cut.10", "ndcg_cut_10", None),
    "Recall@100": ("recall.100", "recall_100", None),
    "Recall@1000": ("recall.1000", "recall_1000", None),
    "MRR@10": ("recip_rank", "recip_rank", 10),
    "MAP": ("map", "map", None),
}


def _truncate(run: dict[str, dict[str, float]], depth: int | None) -> dict[str, dict[str, float]]:
    if depth is None:
        return run
    # trec_eval ranks by score, ties by doc id descending; cut in that same order.
    def ranked(docs: dict[str, float]) -> list:
        by_id = sorted(docs.items(), key=lambda kv: kv[0], reverse=True)
        return sorted(by_id, key=lambda kv: -kv[1])[:depth]
    return {q: dict(ranked(docs)) for q, docs in run.items()}


def per_query_scores(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]],
                     metrics: dict | None = None) -> dict[str, dict[str, float]]:
    """{query_id: {metric name: value}} for every judged query (0 where the run has none).

    run: {query_id: {doc_id: score}}; qrels: {query_id: {doc_id: relevance}}.
    """
    import pytrec_eval

    metrics = metrics or DEFAULT_METRICS
    run = {q: {d: float(s) for d, s in docs.items()} for q, docs in run.items() if q in qrels}
    out = {q: {} for q in qrels}
    for depth in {spec[2] for spec in metrics.values()}:
        group = {name: spec for name, spec in metrics.items() if spec[2] == depth}
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {spec[0] for spec in group.values()})
        raw = evaluator.evaluate(_truncate(run, depth))
        for q in qrels:
            for name, (_, key, _) in group.items():
                out[q][name] = raw.get(q, {}).get(key, 0.0)
    return out


def evaluate(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]],
             metrics: dict | None = None) -> dict[str, float]:
    """Mean of each metric over the queries that have judgements (BEIR's convention)."""
    metrics = metrics or DEFAULT_METRICS
    per_query = per_query_scores(run, qrels, metrics)
    return {name: float(np.mean([per_query[q][name] for q in qrels])) if qrels else float("nan")
            for name in metrics}


def write_trec_run(path: str | Path, run: dict[str, dict[str, float]], tag: str = "tessera") -> None:
    """Write `qid Q0 docid rank score tag` lines, best first per query."""
    with open(path, "w", encoding="utf-8") as f:
        for qid, docs in run.items():
            ranked = sorted(docs.items(), key=lambda kv: -kv[1])
            for rank, (did, score) in enumerate(ranked, start=1):
                f.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
