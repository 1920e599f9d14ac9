"""Compare two TREC runs on the same judgements: per-metric deltas with a paired t-test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import DEFAULT_METRICS, per_query_scores

__all__ = ["read_trec_run", "compare_runs"]


def read_trec_run(path: str | Path) -> dict[str, dict[str, float]]:
    """{query_id: {doc_id: score}} from `qid Q0 docid rank score tag` lines."""
    run: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            cells = line.split()
            if len(cells) != 6:
                raise ValueError(f"{path}:{line_no}: {len(cells)} fields, expected 'qid Q0 docid rank score tag'")
            try:
                score = float(cells[4])
            except ValueError:
                raise ValueError(f"{path}:{line_no}: field 'score' is not a number: {cells[4]!r}") from None
            run.setdefault(cells[0], {})[cells[2]] = score
    return run


def compare_runs(run_a: dict, run_b: dict, qrels: dict, metrics: dict | None = None) -> list[dict]:
    """One row per metric: mean of A, mean of B, B - A, and the two-sided paired t-test p-value
    over the judged queries (a query missing from a run scores 0 there)."""
    from scipy.stats import ttest_rel

    metrics = metrics or DEFAULT_METRICS
    a, b = per_query_scores(run_a, qrels, metrics), per_query_scores(run_b, qrels, metrics)
    rows = []
    for name in metrics:
        xa = np.array([a[q][name] for q in qrels])
        xb = np.array([b[q][name] for q in qrels])
        p = float(ttest_rel(xb, xa).pvalue) if np.any(xa != xb) else 1.0
        rows.append({"metric": name, "a": float(xa.mean()), "b": float(xb.mean()), "delta": float((xb - xa).mean()),
                     "p_value": p, "queries": len(qrels)})
    return rows
