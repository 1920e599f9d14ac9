"""Long documents: every token as passages (ranked by their best passage) against the first window
only (what Tessera did before: documents truncated at the encoder's length), side by side.

For each collection, the passage index as `tessera index` builds it (encoded through the
encoding cache) and the first-window index of a truncating engine: every document that fits one
passage keeps its vectors, every longer one is encoded again from its first `window` tokens
(eval.run.truncated_windows: exactly the old truncated input). Rows,
nDCG@10 (pytrec_eval) at k = 100:

- uncompressed exhaustive MaxSim references over the encoder's vectors: first window, every
  passage by its best (MaxP), and the union of all of a document's vectors;
- each index with the default settings, dense and hybrid; the passage index also with the other
  aggregations (sum of the two best passages, union MaxSim);
- cost: stored vectors, bytes per corpus token (tokens of the text, each counted once), build
  seconds after encoding, tokens encoded, and hybrid p50 at one thread (both indexes in one
  process, rounds interleaved).

    python -m eval.long_documents --dataset ../shared/data/scifact ../shared/data/cranfield \
        --cache /tmp/cache --work /tmp/long --out docs/long-documents [--seeds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from .datasets import load_dataset
from .metrics import evaluate
from .plots import grouped_bars
from .reference import loss_percent, uncompressed_search
from .report import save_table
from .run import truncated_windows

__all__ = ["evaluate_long_documents"]

K = 100
TRUNC_DENSE, TRUNC_HYBRID = "first window: dense default", "first window: hybrid default"
DENSE, HYBRID = "passages: dense default (MaxP)", "passages: hybrid default (MaxP)"


def _run(ids: np.ndarray, queries, scores: np.ndarray, positions: np.ndarray) -> dict:
    return {q.id: {ids[p]: float(s) for p, s in zip(row_p, row_s) if p >= 0}
            for q, row_p, row_s in zip(queries, positions.tolist(), scores.tolist())}


def _ndcg(run: dict, qrels: dict) -> float:
    return evaluate(run, qrels)["nDCG@10"]


def _p50(searchers: dict, vectors: np.ndarray, texts: list[str], rounds: int) -> dict[str, float]:
    """p50 ms of each searcher, one query at a time, one thread, rounds interleaved."""
    times = {name: [] for name in searchers}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(rounds):
            for name, searcher in searchers.items():
                for i in range(len(vectors)):
                    started = time.perf_counter()
                    searcher.search_batch(vectors[i:i + 1], k=10, texts=texts[i:i + 1])
                    times[name].append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def evaluate_long_documents(folder: str, cache: Path, work: Path, rounds: int = 1, seeds: int = 1) -> dict:
    """Every row of the module docstring for one collection (a dict of numbers). seeds > 1: each
    index built that many times with other codec seeds (k-means and its sample), the index rows
    averaged over them (their spread is what the codec's randomness alone moves a score)."""
    from retriever import Index, Searcher, encode_queries, load_encoder
    from retriever.cache import encode_corpus_cached

    data = load_dataset(folder)
    encoder = load_encoder()
    embeddings = encode_corpus_cached(encoder, data.documents, cache / f"{data.name}-p")
    first = truncated_windows(encoder, data.documents, embeddings)
    indexes = {}
    for seed in range(seeds):
        for kind, emb in (("passages", embeddings), ("first", first)):
            directory = work / f"{data.name}-{kind}" / f"seed-{seed}"
            started = time.perf_counter()
            indexes[kind, seed] = Index.build_from_embeddings(directory, emb, data.documents, encoder, force=True,
                                                              seed=seed)
            indexes[kind, seed].build_stats["wall_seconds"] = time.perf_counter() - started
    texts = [q.text for q in data.queries]
    encoded = encode_queries(encoder, texts)
    ids = np.array([d.id for d in data.documents] + [""])
    rows = {}
    for name, (vectors, lengths, passage_lengths, passages) in {
            "uncompressed reference: first window": (first.vectors, first.lengths, None, None),
            "uncompressed reference: best passage (MaxP)": (embeddings.vectors, embeddings.lengths,
                                                            embeddings.passage_lengths, embeddings.passages),
            "uncompressed reference: union of passages": (embeddings.vectors, embeddings.lengths, None, None)}.items():
        scores, positions = uncompressed_search(encoded.vectors, vectors, lengths, k=min(K, len(ids) - 1),
                                                passage_lengths=passage_lengths, passages=passages)
        rows[name] = _ndcg(_run(ids, data.queries, scores, positions), data.qrels)
    settings = {TRUNC_DENSE: ("first", {"hybrid": False}), TRUNC_HYBRID: ("first", {}),
                DENSE: ("passages", {"hybrid": False}), HYBRID: ("passages", {}),
                "passages: dense, sum of the 2 best": ("passages", {"hybrid": False, "aggregation": "sum2"}),
                "passages: dense, union MaxSim": ("passages", {"hybrid": False, "aggregation": "union"}),
                "passages: hybrid, union MaxSim": ("passages", {"aggregation": "union"})}
    spread = {}
    for name, (kind, kw) in settings.items():
        values = []
        for seed in range(seeds):
            results = Searcher(indexes[kind, seed], encoder, **kw).search_batch(encoded, k=K)
            values.append(_ndcg({q.id: dict(results.hits(i)) for i, q in enumerate(data.queries)}, data.qrels))
        rows[name], spread[name] = float(np.mean(values)), values
    searchers = {name: Searcher(indexes[kind, 0], encoder, **kw) for name, (kind, kw) in settings.items()}
    encoder.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    corpus_tokens = int(sum(len(ids_) for ids_ in encoder.tokenizer([d.full_text for d in data.documents],
                                                                     add_special_tokens=False)["input_ids"]))
    cost = {}
    for (kind, seed), index in indexes.items():
        if seed:
            continue
        build = index.build_stats
        cost[kind] = {"stored_vectors": build["n_stored_vectors"], "passages": build["n_passages"],
                      "split_documents": build["n_split_documents"],
                      "bytes_search": index.store.nbytes()["search"],
                      "bytes_per_corpus_token": index.store.nbytes()["search"] / corpus_tokens,
                      "build_seconds_after_encoding": build["wall_seconds"]}
    cost["passages"]["encoded_tokens"] = embeddings.n_input_tokens
    cost["passages"]["encoding_seconds"] = embeddings.seconds
    p50 = _p50({"first": searchers[TRUNC_HYBRID], "passages": searchers[HYBRID]}, encoded.vectors, texts, rounds)
    for kind in p50:
        cost[kind]["hybrid_p50_ms_1_thread"] = p50[kind]
    return {"collection": data.name, "documents": len(data.documents), "queries": len(data.queries),
            "corpus_tokens": corpus_tokens, "ndcg@10": rows, "ndcg@10_per_seed": spread, "seeds": seeds, "cost": cost}


def _table(results: list[dict]) -> str:
    names = list(results[0]["ndcg@10"])
    lines = ["| nDCG@10 (k = 100; index rows: mean over codec seeds [min-max]) | "
             + " | ".join(f"{r['collection']} ({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})" for r in results)
             + " |",
             "|---|" + "---|" * len(results)]
    for name in names:
        cells = []
        for r in results:
            value = r["ndcg@10"][name]
            base = r["ndcg@10"][TRUNC_HYBRID if "hybrid" in name else TRUNC_DENSE]
            seeds = r["ndcg@10_per_seed"].get(name, [])
            cells.append(f"{value:.4f}" + ("" if name in (TRUNC_DENSE, TRUNC_HYBRID) or "reference" in name
                                            else f" ({loss_percent(value, base):+.1f}%)")
                         + (f" [{min(seeds):.4f}-{max(seeds):.4f}]" if len(seeds) > 1 else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| cost | " + " | ".join(r["collection"] for r in results) + " |", "|---|" + "---|" * len(results)]
    for key in ("passages", "split_documents", "stored_vectors", "bytes_per_corpus_token",
                "build_seconds_after_encoding", "hybrid_p50_ms_1_thread"):
        cells = [" / ".join(f"{r['cost'][kind][key]:,.1f}" if isinstance(r["cost"][kind][key], float)
                            else f"{r['cost'][kind][key]:,}" for kind in ("first", "passages")) for r in results]
        lines.append(f"| {key} (first window / passages) | " + " | ".join(cells) + " |")
    lines.append("| tokens encoded (passages), encoding seconds | " + " | ".join(
        f"{r['cost']['passages']['encoded_tokens']:,} of {r['corpus_tokens']:,} in the text, "
        f"{r['cost']['passages']['encoding_seconds']:.0f} s" for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.long_documents", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", nargs="+", required=True, help="BEIR folders")
    p.add_argument("--cache", required=True, help="encoding caches (one folder per collection under it)")
    p.add_argument("--work", required=True, help="where the two indexes of each collection are built")
    p.add_argument("--out", required=True, help="long-documents.json / .md / .png go here")
    p.add_argument("--rounds", type=int, default=1, help="timing rounds over the queries (interleaved)")
    p.add_argument("--seeds", type=int, default=1, help="build each index with this many codec seeds (mean, spread)")
    p.add_argument("--seeds-for", nargs="*", default=None, metavar="NAME",
                   help="collections (folder names) that get --seeds; the others one seed (default: all)")
    args = p.parse_args(argv)
    results = [evaluate_long_documents(folder, Path(args.cache), Path(args.work), args.rounds,
                                       args.seeds if args.seeds_for is None or Path(folder).name in args.seeds_for
                                       else 1)
               for folder in args.dataset]
    table = _table(results)
    out = Path(args.out)
    save_table(out, "long-documents", results, table)
    plot(results, out / "long-documents.png")
    print(table)
    return 0


def plot(results: list[dict], path: Path) -> None:
    """nDCG@10 per collection: each index and reference, first window against passages."""
    names = {TRUNC_DENSE: "first window, dense", DENSE: "passages, dense", TRUNC_HYBRID: "first window, hybrid",
             HYBRID: "passages, hybrid", "uncompressed reference: first window": "reference, first window",
             "uncompressed reference: best passage (MaxP)": "reference, passages (MaxP)"}
    grouped_bars([r["collection"].replace("-scifact", "\n(scifact)") for r in results],
                 {label: [r["ndcg@10"][n] for r in results] for n, label in names.items()}, path,
                 ylabel="nDCG@10", title="Long documents: first window only vs every passage (best passage)")


if __name__ == "__main__":
    raise SystemExit(main())
