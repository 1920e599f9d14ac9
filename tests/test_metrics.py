"""Metrics through pytrec_eval, checked against values worked out by hand; qrels reading."""

from __future__ import annotations

import math

import pytest

from eval.metrics import evaluate, per_query_scores, write_trec_run
from eval.qrels import QrelsFormatError, read_qrels
from conftest import SAMPLE


def test_metrics_match_hand_computation():
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 2}, "q3": {"z": 1}}
    run = {"q1": {"x": 3.0, "a": 2.0, "y": 1.0}, "q2": {"c": 5.0}}  # q3 missing: counts as 0
    per_query = per_query_scores(run, qrels)
    # q1: relevant at rank 2 of 3; 'b' never retrieved.
    dcg = 1 / math.log2(3)
    idcg = 1 + 1 / math.log2(3)
    assert per_query["q1"]["nDCG@10"] == pytest.approx(dcg / idcg)
    assert per_query["q1"]["MRR@10"] == pytest.approx(0.5)
    assert per_query["q1"]["Recall@100"] == pytest.approx(0.5)
    assert per_query["q1"]["MAP"] == pytest.approx((1 / 2) / 2)
    assert per_query["q2"] == {"nDCG@10": 1.0, "Recall@100": 1.0, "Recall@1000": 1.0, "MRR@10": 1.0, "MAP": 1.0}
    assert per_query["q3"]["nDCG@10"] == 0.0
    mean = evaluate(run, qrels)
    assert mean["nDCG@10"] == pytest.approx((dcg / idcg + 1.0 + 0.0) / 3)


def test_mrr_at_10_ignores_rank_11():
    qrels = {"q": {"rel": 1}}
    run = {"q": {**{f"n{i}": 100.0 - i for i in range(10)}, "rel": 1.0}}
    assert per_query_scores(run, qrels)["q"]["MRR@10"] == 0.0


def test_read_beir_qrels():
    qrels = read_qrels(SAMPLE, split="test")
    assert qrels["q7"] == {"tides-1": 2, "moon-1": 1}


def test_read_trec_qrels(tmp_path):
    (tmp_path / "q.txt").write_text("1 0 d1 1\n1 0 d2 0\n2 0 d3 2\n")
    assert read_qrels(tmp_path / "q.txt") == {"1": {"d1": 1, "d2": 0}, "2": {"d3": 2}}


def test_bad_qrels_line(tmp_path):
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\tyes\n")
    with pytest.raises(QrelsFormatError, match=r"q\.tsv:2: field 'score'"):
        read_qrels(tmp_path / "q.tsv")


def test_trec_run_file(tmp_path):
    write_trec_run(tmp_path / "run.txt", {"q1": {"a": 1.0, "b": 2.0}})
    assert (tmp_path / "run.txt").read_text().splitlines() == ["q1 Q0 b 1 2.000000 tessera", "q1 Q0 a 2 1.000000 tessera"]


def test_compare_runs_paired_test(tmp_path):
    from eval.compare import compare_runs, read_trec_run
    from scipy.stats import ttest_rel

    qrels = {f"q{i}": {"rel": 1} for i in range(6)}
    # A finds the relevant document at rank 2 everywhere; B at rank 1 for four queries.
    run_a = {f"q{i}": {"x": 2.0, "rel": 1.0} for i in range(6)}
    run_b = {f"q{i}": ({"rel": 2.0, "x": 1.0} if i < 4 else {"x": 2.0, "rel": 1.0}) for i in range(6)}
    write_trec_run(tmp_path / "a.run", run_a)
    write_trec_run(tmp_path / "b.run", run_b)
    rows = {r["metric"]: r for r in compare_runs(read_trec_run(tmp_path / "a.run"), read_trec_run(tmp_path / "b.run"),
                                                 qrels)}
    mrr = rows["MRR@10"]
    assert mrr["a"] == pytest.approx(0.5) and mrr["b"] == pytest.approx((4 + 1) / 6)
    assert mrr["p_value"] == pytest.approx(ttest_rel([1, 1, 1, 1, .5, .5], [.5] * 6).pvalue)
    assert rows["Recall@100"]["p_value"] == 1.0 and rows["Recall@100"]["delta"] == 0.0


def test_bad_run_line(tmp_path):
    from eval.compare import read_trec_run

    (tmp_path / "r.run").write_text("q1 Q0 d1 1 high tag\n")
    with pytest.raises(ValueError, match=r"r\.run:1: field 'score'"):
        read_trec_run(tmp_path / "r.run")


def test_metrics_match_ir_measures_on_a_random_run():
    """A peer library (ir-measures) computes the same five numbers on graded judgements."""
    ir_measures = pytest.importorskip("ir_measures", reason="pip install ir-measures (in the test extra)")
    import numpy as np
    from ir_measures import AP, RR, R, nDCG

    rng = np.random.default_rng(0)
    qrels = {f"q{i}": {f"d{j}": int(rng.integers(0, 3)) for j in rng.choice(200, 15, replace=False)} for i in range(40)}
    run = {f"q{i}": {f"d{j}": float(rng.random()) for j in rng.choice(200, 120, replace=False)} for i in range(40)}
    ours = evaluate(run, qrels)
    theirs = {str(k): v for k, v in ir_measures.calc_aggregate([nDCG@10, R@100, R@1000, RR@10, AP], qrels, run).items()}
    expected = {"nDCG@10": theirs["nDCG@10"], "Recall@100": theirs["R@100"], "Recall@1000": theirs["R@1000"],
                "MRR@10": theirs["RR@10"], "MAP": theirs["AP"]}
    assert ours == pytest.approx(expected, abs=1e-9)
