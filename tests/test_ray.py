"""Sharded indexes on Ray: a build that survives a killed worker, and search through the one
Searcher with shards as Ray actors on a three-node cluster (ray.cluster_utils.Cluster in this
machine), equal to the in-process executor, with a clear error when a node dies mid-service."""

from __future__ import annotations

import numpy as np
import pytest

from indexes import faults
from retriever import Index, Searcher, load_encoder, open_index, read_corpus, read_queries
from conftest import SAMPLE

ray = pytest.importorskip("ray", reason="Ray not installed (bash scripts/install.sh --ray)")

NODE = dict(num_cpus=1, object_store_memory=80 * 2**20)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


def test_ray_build_survives_a_killed_worker(tmp_path, encoder):
    documents = read_corpus(SAMPLE)
    marker = tmp_path / "crashed-once"
    faults.crash_at("shard:encoded", once=marker)       # the first shard task to get there kills its worker
    try:
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False,
                 object_store_memory=200 * 2**20)
        index = Index.build(tmp_path / "ray", documents, encoder, shards=2, use_ray=True, show_progress=False)
    finally:
        faults.crash_at(None)
        ray.shutdown()
    assert marker.exists(), "no worker was killed: the test did not test a retry"
    assert index.manifest["ray"] and sum(s["documents"] for s in index.manifest["build"]["shards"]) == len(documents)
    texts = [q.text for q in read_queries(SAMPLE)]
    assert all(len(r) == 5 for r in Searcher(index, encoder).search_batch(texts, k=5).doc_ids)


def test_shards_as_actors_on_three_nodes_rank_as_threads_and_fail_clearly_when_a_node_dies(tmp_path, encoder):
    from ray.cluster_utils import Cluster

    from indexes.search.ray_executor import ShardUnavailableError

    documents = read_corpus(SAMPLE)
    Index.build(tmp_path / "s", documents, encoder, shards=3, show_progress=False)
    texts = [q.text for q in read_queries(SAMPLE)]
    expected = {kw: Searcher(open_index(tmp_path / "s"), encoder, **dict(kw)).search_batch(texts, k=6)
                for kw in ((), (("hybrid", False),), (("fusion", "lexical"),))}
    cluster = Cluster(initialize_head=True, head_node_args=NODE)
    try:
        nodes = [cluster.add_node(**NODE) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        index = open_index(tmp_path / "s", executor="ray")
        for kw, want in expected.items():
            got = Searcher(index, encoder, **dict(kw)).search_batch(texts, k=6)
            assert got.doc_ids == want.doc_ids, kw
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
        from server.state import IndexHandle           # what `tessera serve --ray` serves

        handle = IndexHandle("s", tmp_path / "s", encoder=encoder, verify=False, executor="ray")
        served = handle.snapshot.searcher("token", "balanced", encoder, hybrid=True).search_batch(texts, k=6)
        assert served.doc_ids == expected[()].doc_ids
        searcher = Searcher(index, encoder)
        homes = searcher.ranker.executor.nodes()
        assert len(set(homes)) == 3, f"the three shard actors share nodes: {homes}"
        victim = next(n for n in nodes if n.node_id in homes)
        cluster.remove_node(victim)
        with pytest.raises(ShardUnavailableError, match="shard .*unavailable"):
            searcher.search_batch(texts, k=6)
    finally:
        ray.shutdown()
        cluster.shutdown()
