"""Where a search's time goes (indexes/search/timings.py): every stage the search ran is recorded,
none it did not run, and together they stay within the time the search took."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import SAMPLE
from indexes.search.timings import Timings
from retriever import Index, Searcher, load_encoder, read_corpus


@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    return Index.build(tmp_path_factory.mktemp("timings") / "idx", read_corpus(SAMPLE), load_encoder(device="cpu"),
                       show_progress=False)


def test_a_hybrid_search_records_every_stage_within_its_own_time(tiny_index):
    searcher = Searcher(tiny_index)
    searcher.search("solar panels", k=3)                      # warm
    timings = Timings()
    started = time.perf_counter()
    searcher.search("how do solar panels make electricity", k=3, timings=timings)
    total = time.perf_counter() - started
    assert {"encoding", "first_stage", "rescoring", "dense", "lexical", "fusion"} <= set(timings)
    assert all(v >= 0 for v in timings.values())
    assert timings["first_stage"] + timings["rescoring"] <= timings["dense"] + 1e-6
    assert sum(timings[k] for k in ("encoding", "dense", "lexical", "fusion")) <= total
    assert timings.ms()["dense"] == pytest.approx(1000 * timings["dense"])


def test_a_dense_search_of_vectors_records_no_encoding_lexical_or_fusion(tiny_index):
    searcher = Searcher(tiny_index, hybrid=False)
    vectors = searcher.encoder.encode_queries(["wind turbines", "solar panels"])
    timings = Timings()
    plain = searcher.search_batch(vectors, k=3)
    timed = searcher.search_batch(vectors, k=3, timings=timings)
    assert set(timings) == {"first_stage", "rescoring", "dense"}
    np.testing.assert_array_equal(plain.indices, timed.indices)       # timing changes no result


def test_the_device_benchmark_runs_the_torch_path_on_the_cpu(tiny_index, tmp_path):
    """eval.gpu on the CPU: the torch (reference) path with its stages timed; the same top-10 as
    the compiled path it stands in for."""
    from eval import gpu

    result = gpu.run(str(tiny_index.directory), str(SAMPLE), "cpu")
    assert result["device"] == "cpu" and result["queries"] > 0 and result["bandwidth_share"] is None
    assert result["first_stage_ms"] > 0 and result["rescoring_ms"] > 0 and result["batch_qps"] > 0
    assert "rescoring" in gpu.report(result, tmp_path) and (tmp_path / "gpu-cpu.png").is_file()
    vectors = Searcher(tiny_index).encoder.encode_queries(["solar panels", "wind power"])
    torch_path = Searcher(tiny_index, hybrid=False, backend="reference").search_batch(vectors, k=5)
    compiled = Searcher(tiny_index, hybrid=False, backend="compiled").search_batch(vectors, k=5)
    np.testing.assert_array_equal(torch_path.indices, compiled.indices)
