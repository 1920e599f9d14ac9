"""The compiled (numba) search path equals its numpy / torch reference (indexes/search/retrieval.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from indexes.search import kernels
from indexes.builder.pipeline import TokenBatch, add_to_index, build_index
from indexes.search.compiled import CompiledSearch
from indexes.search.retrieval import rescore, retrieve_candidates
from indexes.storage.store import IndexStore
from indexes.storage.writes import delete_documents
from conftest import synthetic_batch, synthetic_docs



def _split(batch: TokenBatch, first: int, end: int) -> TokenBatch:
    offsets = np.concatenate([[0], np.cumsum(batch.lengths)])
    rows = slice(int(offsets[first]), int(offsets[end]))
    return TokenBatch(batch.vectors[rows], batch.token_ids[rows], batch.lengths[first:end], batch.norms[rows])


@pytest.fixture(scope="module", params=["res2", "res1", "pool2,res4"])
def store(request, tmp_path_factory):
    """Three segments (a build and two adds) and deletions in two of them."""
    path = tmp_path_factory.mktemp(request.param.replace(",", "_"))
    batch = synthetic_batch(n_docs=150, dim=32, seed=21)
    docs = synthetic_docs(150)
    build_index(path, _split(batch, 0, 90), docs[:90], recipe=request.param, info={"encoder": {}}, vocab_size=500)
    add_to_index(path, _split(batch, 90, 120), docs[90:120])
    add_to_index(path, _split(batch, 120, 150), docs[120:150])
    delete_documents(path, ["d3", "d50", "d95", "d121", "d149"])
    store = IndexStore.open(path)
    assert len(store.segments) == 3 and store.n_docs == 145
    return store


def _queries(n: int = 6, seed: int = 9) -> np.ndarray:
    batch = synthetic_batch(n_docs=n, dim=32, seed=seed, min_len=7, max_len=8)
    return batch.vectors.astype(np.float32).reshape(n, 7, 32)


@pytest.mark.parametrize("nprobe, n_candidates", [(1, 10), (2, 32), (4, 200), (10_000, 40)])
def test_candidates_equal_the_reference(store, nprobe, n_candidates):
    fast = CompiledSearch(store)
    for q in _queries():
        ref_docs, ref_scores = retrieve_candidates(store, torch.from_numpy(q), nprobe=nprobe, n_candidates=n_candidates)
        docs, scores = fast.candidates(q, nprobe=nprobe, n_candidates=n_candidates)
        assert docs.tolist() == ref_docs.tolist()
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)
        assert not set(docs.tolist()) & {3, 50, 95, 121, 149}         # deleted documents never come back


def test_rescoring_equals_the_reference(store):
    fast = CompiledSearch(store)
    live = np.flatnonzero(store.alive)
    for i, q in enumerate(_queries(seed=4)):
        positions = np.random.default_rng(i).permutation(live)[:37]
        ref = rescore(store, torch.from_numpy(q)[None], positions)[0].numpy()
        np.testing.assert_allclose(fast.rescore(q, positions), ref, rtol=1e-5, atol=1e-4)


def test_a_long_document_is_rescored_like_the_reference(tmp_path):
    batch = synthetic_batch(n_docs=3, dim=32, seed=2, min_len=5000, max_len=5001)
    build_index(tmp_path, batch, synthetic_docs(3), recipe="res2", info={"encoder": {}}, vocab_size=500)
    store = IndexStore.open(tmp_path)
    q = _queries(1)[0]
    ref = rescore(store, torch.from_numpy(q)[None], np.arange(3))[0].numpy()
    np.testing.assert_allclose(CompiledSearch(store).rescore(q, np.arange(3)), ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("engine", ["token", "union"])
def test_searcher_backends_agree_with_filters(store, engine):
    from retriever import Index, Searcher

    index = Index(store)
    q = _queries(5, seed=13)
    terms = np.random.default_rng(0).integers(0, 500, size=q.shape[:2])
    allowed = np.zeros(store.n_positions, bool)
    allowed[::3] = True
    for kwargs in ({}, {"allowed": allowed}):
        a = Searcher(index, engine=engine, backend="compiled", device="cpu").search_batch(q, k=8, term_ids=terms,
                                                                                           **kwargs)
        b = Searcher(index, engine=engine, backend="reference", device="cpu").search_batch(q, k=8, term_ids=terms,
                                                                                            **kwargs)
        assert a.doc_ids == b.doc_ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-4)


def test_k_prime_and_float16_take_the_reference_path(store, tmp_path):
    from retriever import Index, Searcher

    q = _queries(3)
    auto = Searcher(Index(store), k_prime=20, device="cpu").search_batch(q, k=5)
    ref = Searcher(Index(store), k_prime=20, backend="reference", device="cpu").search_batch(q, k=5)
    assert auto.doc_ids == ref.doc_ids
    with pytest.raises(ValueError, match="compiled backend serves"):
        Searcher(Index(store), k_prime=20, backend="compiled", device="cpu").search_batch(q, k=5)


def test_constructing_and_searching_changes_no_process_setting(store):
    from retriever import Index, Searcher

    environ, threads = dict(os.environ), torch.get_num_threads()
    Searcher(Index(store), device="cpu").search_batch(_queries(2), k=3)
    assert dict(os.environ) == environ and torch.get_num_threads() == threads


def test_list_major_layout_and_older_vector_order_search_alike(store, tmp_path):
    """Format v4 stores codes / residuals list by list; a v3 segment (vector order) reads the same."""
    import json
    import shutil
    from indexes.files import write_npy
    from retriever import Index, Searcher

    for segment in store.segments:
        offsets = np.asarray(segment.ivf_offsets)
        codes = np.asarray(segment.codes)
        assert segment.list_major
        assert all((codes[offsets[c]:offsets[c + 1]] == c).all() for c in range(len(offsets) - 1))
    old = tmp_path / "v3"
    shutil.copytree(store.directory, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for entry in manifest["segments"]:                         # rewrite as vector order, the v3 layout
        folder = old / entry["name"]
        order = np.argsort(np.load(folder / "ivf_vector_ids.npy"))
        for name in ("codes.npy", "residuals.npy"):
            entry["files"][name] = write_npy(folder / name, np.load(folder / name)[order])
        del entry["layout"]
    manifest["version"] = 3
    (old / "manifest.json").write_text(json.dumps(manifest))
    old_store = IndexStore.open(old)
    assert not any(s.list_major for s in old_store.segments)
    q = _queries(4, seed=17)
    for backend in ("compiled", "reference"):
        a = Searcher(Index(store), backend=backend, device="cpu").search_batch(q, k=6)
        b = Searcher(Index(old_store), backend=backend, device="cpu").search_batch(q, k=6)
        assert a.doc_ids == b.doc_ids
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    exhaustive = [Searcher(Index(s), engine="exhaustive").search_batch(q, k=6).scores for s in (store, old_store)]
    np.testing.assert_allclose(exhaustive[0], exhaustive[1], rtol=1e-6)


def test_batch_searched_in_parallel_equals_one_query_at_a_time(store):
    from retriever import Index, Searcher

    q = _queries(6, seed=23)
    searcher = Searcher(Index(store), backend="compiled", device="cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(2)                                     # queries of the batch run two at a time
    try:
        together = searcher.search_batch(q, k=7)
    finally:
        torch.set_num_threads(previous)
    for i in range(len(q)):
        alone = searcher.search_batch(q[i:i + 1], k=7)
        assert together.doc_ids[i] == alone.doc_ids[0]
        np.testing.assert_allclose(together.scores[i], alone.scores[0], rtol=1e-6)


@pytest.mark.parametrize("threads", [2, 3])
def test_probing_on_several_threads_equals_the_reference(store, threads):
    fast = CompiledSearch(store)
    for q in _queries(seed=31):
        ref_docs, ref_scores = retrieve_candidates(store, torch.from_numpy(q), nprobe=3, n_candidates=40)
        docs, scores = fast.candidates(q, nprobe=3, n_candidates=40, threads=threads)
        # Partial sums per thread add up in another order: equal scores to float rounding.
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)
        assert set(docs.tolist()) == set(ref_docs.tolist())
        again = fast.candidates(q, nprobe=3, n_candidates=40)                 # the workspace was reset
        assert again[0].tolist() == ref_docs.tolist()


@pytest.mark.parametrize("threads", [1, 2])
def test_rescoring_from_codes_equals_decoding_then_maxsim(store, threads):
    """Scores read from the packed codes through per-query tables (indexes/search/code_maxsim.py)
    equal decoding every candidate to float32 and taking MaxSim (the torch reference and the
    compiled decoder eval.rescoring compares against), on one thread and split over two, on the
    first query (inverse norms computed) and again (inverse norms reused)."""
    from eval.decoded import rescore_decoded

    fast = CompiledSearch(store)
    live = np.flatnonzero(store.alive)
    kernels.nb.set_num_threads(min(threads, kernels.nb.config.NUMBA_NUM_THREADS))
    for i, q in enumerate(_queries(seed=7)):
        positions = np.random.default_rng(i).permutation(live)[:41]
        decoded = rescore(store, torch.from_numpy(q)[None], positions)[0].numpy()
        np.testing.assert_allclose(rescore_decoded(fast, q, positions, threads), decoded, rtol=1e-5, atol=1e-5)
        for _ in range(2):
            np.testing.assert_allclose(fast.rescore(q, positions, threads=threads), decoded, rtol=1e-5, atol=1e-5)
    filled = sum(int((n > 0).sum()) for n in fast._inverse_norms)
    assert 0 < filled < sum(len(n) for n in fast._inverse_norms)       # only what was rescored


def test_rescoring_reuses_the_first_stage_centroid_scores(store):
    fast = CompiledSearch(store)
    q = _queries(1, seed=3)[0]
    scores = fast.centroid_scores(q)
    docs, _ = fast.candidates(q, nprobe=2, n_candidates=20, centroid_scores=scores)
    np.testing.assert_allclose(fast.rescore(q, docs, centroid_scores=scores), fast.rescore(q, docs), rtol=1e-6)
