"""An evaluation run: one collection, one index, the engine(s) asked for, plus the exhaustive
reference and BM25, each with standard metrics, latency and throughput."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .datasets import Dataset
from .metrics import evaluate, write_trec_run

__all__ = ["EngineResult", "EvalRun", "open_or_build_index", "time_each_query", "run_engine", "run_uncompressed",
           "evaluate_collection", "UNCOMPRESSED", "HYBRID_REFERENCE", "TRUNCATED_REFERENCE", "truncated_windows"]


@dataclass
class EngineResult:
    """Metrics and timings of one engine on one collection."""

    name: str
    metrics: dict[str, float]
    latency_ms: dict[str, float] = field(default_factory=dict)   # p50 / p95 / p99, one query at a time
    queries_per_second: float = float("nan")                        # whole batch
    run: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)


@dataclass
class EvalRun:
    dataset: str
    split: str
    n_queries: int
    index: dict                                  # recipe, sizes, build split
    results: list[EngineResult]


def open_or_build_index(index_dir: str | Path, data: Dataset, model: str | None, recipe: str, cache_dir: Path,
                        device=None):
    """The index in `index_dir` if it was built with this encoder and recipe, else a new build.

    Encoding goes through `cache_dir` shards, so an interrupted build resumes without re-encoding.
    """
    from retriever import Index, load_encoder
    from retriever.checkpoints import DEFAULT_MODEL
    from indexes.builder.recipe import Recipe

    wanted_model = model or DEFAULT_MODEL
    from retriever import open_index
    from indexes.storage.sharded import is_sharded

    if is_sharded(index_dir):
        return open_index(index_dir)              # a sharded index is evaluated as built
    if (Path(index_dir) / "manifest.json").is_file():
        index = Index.open(index_dir)
        same_model = index.encoder_spec["name"] in (wanted_model, Path(wanted_model).name)
        if same_model and index.manifest["recipe"] == str(Recipe.parse(recipe)):
            return index
    encoder = load_encoder(model, device=device)
    return Index.build(index_dir, data.documents, encoder, recipe=recipe, cache_dir=cache_dir)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ms = 1000 * np.asarray(latencies)
    return {f"p{p}": float(np.percentile(ms, p)) for p in (50, 95, 99)}


def time_each_query(searcher, embeddings: np.ndarray, k: int, desc: str = "timing queries",
                    texts: list[str] | None = None, term_ids: np.ndarray | None = None) -> list[float]:
    """Seconds of each pre-encoded query searched alone, in order (texts: for hybrid searchers;
    term_ids: for the "vocab" and "union" engines)."""
    latencies = []
    for i in tqdm(range(len(embeddings)), desc=desc, unit="query", leave=False):
        started = time.perf_counter()
        searcher.search_batch(embeddings[i:i + 1], k=k, texts=None if texts is None else texts[i:i + 1],
                              term_ids=None if term_ids is None else term_ids[i:i + 1])
        latencies.append(time.perf_counter() - started)
    return latencies


def run_engine(name: str, searcher, embeddings: np.ndarray, data: Dataset, k: int,
               time_each: bool = True, term_ids: np.ndarray | None = None) -> EngineResult:
    """Search every judged query (pre-encoded, with their term ids) and score the run; optionally
    time queries one by one. searcher: any retriever.protocol.SearchEngine."""
    texts = [q.text for q in data.queries]
    latencies = time_each_query(searcher, embeddings, k, f"{name}: timing queries", texts,
                                term_ids) if time_each else []
    started = time.perf_counter()
    results = searcher.search_batch(embeddings, k=k, texts=texts, term_ids=term_ids)
    seconds = time.perf_counter() - started
    run = {q.id: dict(results.hits(i)) for i, q in enumerate(data.queries)}
    return EngineResult(name, evaluate(run, data.qrels), _percentiles(latencies) if latencies else {},
                        len(embeddings) / seconds, run)


def run_uncompressed(data: Dataset, doc_embeddings, query_embeddings: np.ndarray, k: int,
                     device=None, lexical_searcher=None, encoder=None) -> list[EngineResult]:
    """Exhaustive MaxSim over the uncompressed, unpooled vectors with whole queries (eval.reference),
    and, given the index's lexical searcher (fusion="lexical"), the hybrid reference: the default
    fusion (indexes.search.fusion) of that ranking with the same BM25, so that what the index loses and
    what the fusion adds can be read apart."""
    from indexes.search.fusion import fuse
    from indexes.names import DEFAULT_FUSION as HYBRID_FUSION, FUSION_DEPTH as HYBRID_DEPTH

    from .reference import uncompressed_search

    started = time.perf_counter()
    depth = min(max(k, HYBRID_DEPTH), len(data.documents))
    scores, positions = uncompressed_search(query_embeddings, doc_embeddings.vectors, doc_embeddings.lengths,
                                            k=depth, device=device, passage_lengths=doc_embeddings.passage_lengths,
                                            passages=doc_embeddings.passages)
    seconds = time.perf_counter() - started
    ids = np.array([d.id for d in data.documents] + [""])        # position -1 -> ""

    def as_run(s: np.ndarray, p: np.ndarray, id_of: np.ndarray) -> dict:
        return {q.id: {id_of[j]: float(v) for j, v in zip(p[i][:k], s[i][:k]) if j >= 0}
                for i, q in enumerate(data.queries)}

    run = as_run(scores, positions, ids)
    results = [EngineResult(UNCOMPRESSED, evaluate(run, data.qrels), {}, len(data.queries) / seconds, run)]
    if doc_embeddings.n_split and encoder is not None:
        # Beside it, the reference of an engine that reads only each document's first window.
        first = truncated_windows(encoder, data.documents, doc_embeddings)
        run = as_run(*uncompressed_search(query_embeddings, first.vectors, first.lengths, k=depth, device=device), ids)
        results.append(EngineResult(TRUNCATED_REFERENCE, evaluate(run, data.qrels), {}, float("nan"), run))
    if lexical_searcher is not None:
        texts = [q.text for q in data.queries]
        lexical = lexical_searcher.search_batch(query_embeddings, k=HYBRID_DEPTH, texts=texts)
        # The lexical side names index documents: put them in the reference's numbering by id.
        number = {d: j for j, d in enumerate(ids[:-1].tolist())}
        lex_positions = np.array([[number.get(d, -1) for d in row] + [-1] * (lexical.indices.shape[1] - len(row))
                                  for row in lexical.doc_ids], dtype=np.int64).reshape(lexical.indices.shape)
        fused = fuse((scores, positions), (lexical.scores, lex_positions), min(k, 2 * HYBRID_DEPTH), HYBRID_FUSION)
        run = as_run(*fused, ids)
        results.append(EngineResult(HYBRID_REFERENCE, evaluate(run, data.qrels), {}, results[0].queries_per_second, run))
    return results


UNCOMPRESSED = "uncompressed exhaustive MaxSim (reference)"
TRUNCATED_REFERENCE = "uncompressed exhaustive MaxSim, first window only (truncated reference)"


def truncated_windows(encoder, documents, embeddings):
    """The embeddings an engine that truncates documents at the encoder's window would store:
    each document's first `window` text tokens, encoded as one input. A document that fits one
    passage keeps its vectors; a longer one is encoded again from its text up to the end of its
    window-th token (its own first passage is shorter than the window: passages are spread evenly)."""
    from retriever.embeddings import DocumentEmbeddings
    from indexes.positions import expand_ranges

    window, _ = encoder.passage_window
    split = np.flatnonzero(embeddings.passages > 1)
    texts = [documents[i].full_text for i in split.tolist()]
    encoder.tokenizer.deprecation_warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    offsets = encoder.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    cut = encoder.encode_documents([t[:o[window - 1][1]] for t, o in zip(texts, offsets)], show_progress=False)
    first = np.cumsum(cut.passages) - cut.passages                 # a cut text re-tokenized may spill over
    lengths = embeddings.lengths.copy()
    lengths[split] = cut.passage_lengths[first]
    starts = embeddings.offsets[:-1].copy()                        # rows in [original vectors; re-encoded ones]
    starts[split] = len(embeddings.vectors) + cut.offsets[:-1][first]
    rows = expand_ranges(starts, lengths)
    return DocumentEmbeddings(np.concatenate([embeddings.vectors, cut.vectors])[rows],
                              np.concatenate([embeddings.token_ids, cut.token_ids])[rows], lengths,
                              np.concatenate([embeddings.norms, cut.norms])[rows], embeddings.seconds,
                              0)                                   # input tokens not known per window


HYBRID_REFERENCE = "uncompressed reference + BM25, default fusion (hybrid reference)"


def evaluate_collection(data: Dataset, index, settings: list[tuple[str, dict]], *, k: int = 1000,
                        baselines: bool = True, run_dir: Path | None = None, device=None,
                        reference=None) -> EvalRun:
    """Run each (name, Searcher keyword arguments) setting, plus, when `baselines`, exhaustive
    MaxSim over the index, BM25 over the index's lexical lists and hybrid search with the first
    setting; `reference` (the collection's uncompressed DocumentEmbeddings) adds the uncompressed
    reference row, against which every row's loss is reported. TREC runs go to `run_dir`."""
    from retriever import Searcher, encode_queries

    encoder = index.load_encoder(device=device)
    started = time.perf_counter()
    encoded = encode_queries(encoder, [q.text for q in data.queries])      # vectors and term ids, as the Searcher
    encode_ms = 1000 * (time.perf_counter() - started) / max(1, len(data.queries))
    embeddings, term_ids = encoded.vectors, encoded.term_ids
    results = [run_engine(name, Searcher(index, encoder, device=device, **kwargs), embeddings, data, k,
                          term_ids=term_ids) for name, kwargs in settings]
    if baselines:
        results.append(run_engine("exhaustive MaxSim", Searcher(index, encoder, engine="exhaustive",
                                                                    device=device), embeddings, data, k, time_each=False))
        results.append(run_engine("BM25 (index lexical lists)", Searcher(index, encoder, fusion="lexical"),
                                  embeddings, data, k))
        name, kwargs = settings[0]
        if kwargs.get("engine") != "exhaustive":
            other = {**kwargs, "hybrid": not kwargs.get("hybrid", True)}
            base = name.removesuffix(" + BM25 hybrid").removesuffix(" dense only")
            label = f"{base} + BM25 hybrid" if other["hybrid"] else f"{base} dense only"
            results.append(run_engine(label, Searcher(index, encoder, device=device, **other),
                                      embeddings, data, k, term_ids=term_ids))
    if reference is not None:
        results += run_uncompressed(data, reference, embeddings, k, device=device, encoder=encoder,
                                    lexical_searcher=Searcher(index, encoder, fusion="lexical"))
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        for r in results:
            stem = re.sub(r"[^a-z0-9]+", "-", r.name.lower()).strip("-")
            write_trec_run(run_dir / f"{stem}.trec", r.run, tag=r.name.replace(" ", "_"))
    m, stats = index.manifest, index.stats()
    encoding = m.get("encoding") or {}
    tokens = max(1, encoding.get("input_tokens") or 0)
    info = {"recipe": stats["recipe"], "encoder": stats["encoder"], "documents": len(index),
            "shards": stats["shards"], "bytes_search": stats["bytes_search"], "bytes_total": stats["bytes"],
            "bytes_per_token": stats["bytes_search"] / tokens if encoding else float("nan"),
            "encode_seconds": encoding.get("seconds", float("nan")),
            "build_seconds_excl_encoding": sum(v for key, v in m.get("build", {}).items()
                                               if key.endswith("_seconds") and isinstance(v, (int, float))),
            "query_encode_ms": encode_ms}
    return EvalRun(data.name, "", len(data.queries), info, results)
