"""Compile the engine's numba kernels ahead of first use (scripts/install.sh runs this once).

    python -m retriever.warmup

numba compiles a kernel on first call and caches the machine code beside its source
(`cache=True`), so the first `tessera index` on a fresh machine spent ~16 s compiling (24 s
against 8 s for the second build of the sample, measured 2026-12-02). This builds a small
synthetic index with the default recipe and each residual width, adds to it, compacts it and
searches it (dense, hybrid, each first stage), so every kernel a build or a search calls is
compiled and cached before a user waits on it. No model is loaded; nothing is kept.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["warm_up"]

RECIPES = ("pool2,min16,res2", "res1", "res4", "kpool2,res2", "merge90,res2")


def _batch(n_docs: int, dim: int, rng: np.random.Generator):
    from indexes.builder.pipeline import TokenBatch

    lengths = rng.integers(3, 40, n_docs).astype(np.int64)
    vectors = rng.standard_normal((int(lengths.sum()), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return TokenBatch(vectors.astype(np.float16), rng.integers(5, 500, len(vectors)).astype(np.int32), lengths,
                      np.ones(len(vectors), np.float16))


def warm_up(dim: int = 32) -> float:
    """Build, change and search throwaway indexes; returns the seconds it took."""
    import torch

    from indexes.builder.pipeline import add_to_index, build_index, compact_index
    from indexes.search.bm25 import LexicalQueries
    from indexes.search.engine import Engine
    from indexes.storage.store import IndexStore

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    words = "solar wind power cells turbines energy light heat water grid".split()
    with tempfile.TemporaryDirectory(prefix="tessera-warmup-") as tmp:
        for r, recipe in enumerate(RECIPES):
            path = Path(tmp) / f"idx{r}"
            docs = [{"id": f"d{i}", "text": " ".join(rng.choice(words, 6))} for i in range(300)]
            build_index(path, _batch(300, dim, rng), docs, recipe=recipe, info={"encoder": {}}, vocab_size=500)
        add_to_index(path, _batch(20, dim, rng), [{"id": f"n{i}", "text": "more solar"} for i in range(20)])
        compact_index(path)
        store = IndexStore.open(Path(tmp) / "idx0", verify=False)
        engine = Engine(store, nprobe=4, n_candidates=32, device="cpu")
        queries = rng.standard_normal((3, 8, dim)).astype(np.float32)
        texts = ["solar power", "wind turbines", "heat"]
        term_ids = rng.integers(5, 500, (3, 8))
        for first_stage in ("token", "vocab", "union", "exhaustive"):
            engine.search(queries, 10, first_stage=first_stage, term_ids=term_ids)
        for fusion in ("adaptive", "rrf", "interpolate"):
            engine.search(queries, 10, fusion=fusion, lexical=LexicalQueries.from_texts(texts))
        threads = torch.get_num_threads()
        torch.set_num_threads(2)         # one query on two threads: the parallel probe and rescoring kernels
        try:
            engine.search(queries[:1], 10)
        finally:
            torch.set_num_threads(threads)
    return time.perf_counter() - started


if __name__ == "__main__":
    print(f"tessera: kernels compiled and cached in {warm_up():.1f} s")
