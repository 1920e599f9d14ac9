"""Sparse and hybrid first stages against Tessera's centroid token retrieval, in one table.

    python -m eval.sparse --dataset ../shared/data/scifact --cache /tmp/cache/scifact \\
        --index /tmp/scifact-v2 --work /tmp/sparse-scifact [--out docs/sparse]

Rows: BM25 through Pyserini (Lucene) and bm25s; BM25 top-100 rescored by MaxSim; vocabulary-term
lists alone and rescored; Lucene impact indexes of term weights (each weighting of
eval/impact.py) alone and rescored; centroid token retrieval + MaxSim; the union of centroid
and vocabulary candidates + MaxSim; hybrid fusion (RRF, min-max interpolation) of Lucene BM25
with token retrieval + MaxSim; exhaustive MaxSim. Every first stage hands on 100 candidates
(union: up to 200) and every row returns 100 documents, so Recall@100 compares like with like.
Reported: nDCG@10, Recall@100, first-stage recall of the exhaustive top-10 among the candidates,
and latency per query (p50, one query at a time, one torch thread; query encoding excluded:
queries are pre-encoded; a hybrid row's latency is its two sides' latencies added).
Without Pyserini the Lucene rows are left out with a note naming what to install.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

DEPTH = 100


def _per_query(fn, n: int, desc: str) -> tuple[list, np.ndarray]:
    """Call fn(i) for each query, one at a time; (outputs, milliseconds (n,))."""
    outputs, ms = [], []
    for i in tqdm(range(n), desc=desc, unit="query", leave=False):
        started = time.perf_counter()
        outputs.append(fn(i))
        ms.append(1000 * (time.perf_counter() - started))
    return outputs, np.array(ms)


class _Panel:
    """The rows of one collection: every setting's quality, first-stage recall and latency."""

    def __init__(self, data, index, encoder, work: str):
        from retriever import Searcher, encode_queries

        self.data, self.index, self.encoder, self.work = data, index, encoder, work
        self.store, self.n = index.store, len(data.queries)
        self.texts = [q.text for q in data.queries]
        encoded = encode_queries(encoder, self.texts)
        self.padded, self.term_ids = encoded.vectors, encoded.term_ids
        real = [(np.linalg.norm(p, axis=1) > 0) for p in self.padded]
        self.queries = [torch.from_numpy(self.store.codec.project(p[r])) for p, r in zip(self.padded, real)]
        self.terms = [t[r] for t, r in zip(self.term_ids, real)]
        self.exhaustive = Searcher(index, encoder=encoder, engine="exhaustive").search_batch(self.padded, k=DEPTH)
        self.reference = [set(r[:10]) for r in self.exhaustive.doc_ids]
        self.engine = index.engine()              # its "candidates" first stage rescores given positions
        self.rows, self.runs, self.notes = [], {}, []

    def ids(self, positions) -> list[str]:
        return [self.store.document(int(p))["id"] for p in positions]

    def add(self, name: str, ranked: list[list[tuple[str, float]]], first_stage: list[set[str]], ms: np.ndarray) -> None:
        from .metrics import evaluate

        run_ = {q.id: {d: s for d, s in r[:DEPTH]} for q, r in zip(self.data.queries, ranked)}
        m = evaluate(run_, self.data.qrels)
        recall = float(np.mean([len(f & ref) / len(ref) for f, ref in zip(first_stage, self.reference)]))
        self.rows.append({"setting": name, "nDCG@10": m["nDCG@10"], "Recall@100": m["Recall@100"],
                          "first_stage_recall": recall, "p50_ms": float(np.percentile(ms, 50)),
                          "p95_ms": float(np.percentile(ms, 95))})
        self.runs[name] = ranked
        print(json.dumps(self.rows[-1]), flush=True)

    def rescored(self, i: int, positions: np.ndarray) -> list[tuple[str, float]]:
        scores, found = self.engine.search(self.padded[i:i + 1], DEPTH, first_stage="candidates", candidates=[positions])
        return list(zip(self.engine.doc_ids(found)[0], scores[0][found[0] >= 0].tolist()))

    def first_stage_rows(self, name: str, candidates) -> None:
        """`candidates(i)` -> ranked (doc id, score) first stage; adds 'alone' and '+ MaxSim' rows."""
        first, ms1 = _per_query(candidates, self.n, name)
        self.add(f"{name} alone", first, [{d for d, _ in f} for f in first], ms1)
        positions = [np.array([self.store.position_of[d] for d, _ in f], dtype=np.int64) for f in first]
        final, ms2 = _per_query(lambda i: self.rescored(i, positions[i]), self.n, f"{name} + MaxSim")
        self.add(f"{name} + MaxSim", final, [{d for d, _ in f} for f in first], ms1 + ms2)

    def lexical_rows(self) -> None:
        from eval.bm25 import BM25s
        from eval.lucene import INSTALL_HINT, LuceneBM25, lucene_available

        if lucene_available():
            bm25 = LuceneBM25.build(self.data.documents, Path(self.work) / "bm25")
            self.first_stage_rows("BM25 (Pyserini Lucene)", lambda i: bm25.search(self.texts[i], DEPTH))
        else:
            self.notes.append(f"Lucene rows left out: Pyserini is not installed ({INSTALL_HINT}).")
        bm25s = BM25s(self.data.documents)
        hits, ms = _per_query(lambda i: bm25s.search(self.texts[i], DEPTH), self.n, "bm25s")
        self.add("BM25 (bm25s) alone", hits, [{d for d, _ in h} for h in hits], ms)

    def term_rows(self) -> None:
        from eval.impact import WEIGHTINGS, document_term_weights, query_term_weights, term_centroids
        from eval.lucene import LuceneImpact, lucene_available
        from indexes.search.vocab import retrieve_by_term

        store = self.store

        def vocab(i: int) -> list[tuple[str, float]]:
            positions, scores = retrieve_by_term(store, self.queries[i], self.terms[i], n_candidates=DEPTH)
            return list(zip(self.ids(positions), scores.tolist()))
        self.first_stage_rows("vocabulary lists", vocab)
        if lucene_available():
            centroids = term_centroids(store, self.index.manifest["vocab_size"])
            for weighting in WEIGHTINGS:
                impact = LuceneImpact.build(document_term_weights(store, centroids, weighting),
                                            Path(self.work) / f"impact-{weighting}")
                weights = [query_term_weights(q.numpy(), t, centroids, store.idf, weighting)
                           for q, t in zip(self.queries, self.terms)]
                self.first_stage_rows(f"Lucene impact, {weighting}", lambda i: impact.search(weights[i], DEPTH))

    def dense_rows(self) -> None:
        from retriever import Searcher

        for engine, label in (("token", "centroid token retrieval"), ("union", "union (centroid + vocabulary)")):
            searcher = Searcher(self.index, encoder=self.encoder, engine=engine, n_candidates=DEPTH)
            cands = [set(self.ids(searcher.ranker.candidates(torch.from_numpy(self.store.codec.project(self.padded[i])),
                                                             0, engine, self.term_ids[i])))
                     for i in range(self.n)]
            hits, ms = _per_query(lambda i: searcher.search_batch(self.padded[i:i + 1], k=DEPTH,
                                                                  term_ids=self.term_ids[i:i + 1]).hits(0), self.n, label)
            self.add(f"{label} + MaxSim", hits, cands, ms)

    def hybrid_rows(self) -> None:
        from eval.hybrid import interpolate_scores, reciprocal_rank_fusion
        from eval.lucene import lucene_available

        if not lucene_available():
            return
        neural, lexical = self.runs["centroid token retrieval + MaxSim"], self.runs["BM25 (Pyserini Lucene) alone"]
        side_ms = {r["setting"]: r for r in self.rows}
        for name, fuse in (("hybrid RRF (Lucene BM25, token + MaxSim)",
                            lambda a, b: reciprocal_rank_fusion([[d for d, _ in a], [d for d, _ in b]])),
                           ("hybrid interpolation a=0.5 (Lucene BM25, token + MaxSim)",
                            lambda a, b: interpolate_scores(a, b, 0.5))):
            fused, ms = _per_query(lambda i: fuse(neural[i], lexical[i]), self.n, name)
            self.add(name, [f[:DEPTH] for f in fused],
                     [{d for d, _ in a} | {d for d, _ in b} for a, b in zip(neural, lexical)], ms)
            self.rows[-1]["p50_ms"] += side_ms["centroid token retrieval + MaxSim"]["p50_ms"] + \
                side_ms["BM25 (Pyserini Lucene) alone"]["p50_ms"]
            self.rows[-1]["p95_ms"] = float("nan")   # a sum of two sides' percentiles is no percentile


def run(dataset: str, cache: str, index_dir: str, work: str, split: str = "test") -> dict:
    from retriever import Index, load_encoder
    from retriever.cache import encode_corpus_cached
    from .datasets import load_dataset

    torch.set_num_threads(1)
    data = load_dataset(dataset, split)
    encoder = load_encoder()
    if not (Path(index_dir) / "manifest.json").is_file():
        Index.build_from_embeddings(index_dir, encode_corpus_cached(encoder, data.documents, cache),
                                    data.documents, encoder)
    index = Index.open(index_dir, verify=False)
    panel = _Panel(data, index, encoder, work)
    panel.lexical_rows()
    panel.term_rows()
    panel.dense_rows()
    panel.hybrid_rows()
    exhaustive = panel.exhaustive
    panel.add("exhaustive MaxSim", [exhaustive.hits(i) for i in range(panel.n)], [set(r) for r in exhaustive.doc_ids],
              np.full(panel.n, np.nan))
    return {"dataset": Path(dataset).name, "queries": panel.n, "documents": len(index), "notes": panel.notes,
            "rows": panel.rows}


def report(result: dict, out: Path) -> str:
    from .report import save_table
    from .plots import labelled_scatter

    lines = [f"{result['dataset']}: {result['documents']:,} documents, {result['queries']} queries; "
             f"100 candidates per first stage, 100 results per row\n",
             "| setting | nDCG@10 | Recall@100 | first-stage recall of exhaustive top-10 | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['setting']} | {r['nDCG@10']:.4f} | {r['Recall@100']:.4f} | {r['first_stage_recall']:.3f} "
                     f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")
    lines += [f"\n{note}" for note in result["notes"]]
    table = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    points = [(r["p50_ms"], r["nDCG@10"], r["setting"]) for r in result["rows"] if np.isfinite(r["p50_ms"])]
    labelled_scatter(points, out / f"sparse-{result['dataset']}.png", xlabel="median latency per query, ms (log scale)",
                     ylabel="nDCG@10", title=f"Sparse, dense and hybrid first stages, {result['dataset']}")
    save_table(out, f"sparse-{result['dataset']}", result, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.sparse", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--cache", required=True, help="encoded shards of the collection (reused)")
    p.add_argument("--index", required=True, help="Tessera index (built from the cache if missing)")
    p.add_argument("--work", required=True, help="folder for the Lucene indexes this run builds")
    p.add_argument("--split", default="test")
    p.add_argument("--out", default="docs/sparse")
    args = p.parse_args(argv)
    result = run(args.dataset, args.cache, args.index, args.work, args.split)
    print(report(result, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
