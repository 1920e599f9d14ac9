"""Write an evaluation run as JSON, a Markdown table and a quality-vs-latency PNG."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .plots import labelled_scatter
from .reference import loss_percent
from .run import UNCOMPRESSED, EvalRun

__all__ = ["write_report", "markdown", "save_table"]


def save_table(out: Path, stem: str, result, table: str) -> None:
    """Write a benchmark's result as OUT/STEM.json and its Markdown table as OUT/STEM.md."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(table + "\n")


def markdown(run: EvalRun) -> str:
    info = run.index
    metric_names = list(run.results[0].metrics)
    reference = next((r.metrics["nDCG@10"] for r in run.results if r.name == UNCOMPRESSED), None)
    loss_header = " loss vs uncompressed (nDCG@10) |" if reference is not None else ""
    lines = [f"**{run.dataset}** ({run.n_queries} judged queries) — index `{info['recipe']}`, encoder "
             f"`{info['encoder']}`, {info['documents']:,} documents, {info['bytes_search'] / 2**20:.1f} MiB for search "
             f"({info['bytes_per_token']:.1f} B per original token), build {info['encode_seconds']:.1f} s encoding + "
             f"{info['build_seconds_excl_encoding']:.1f} s the rest; query encoding {info['query_encode_ms']:.1f} ms/query.",
             "",
             "| engine | " + " | ".join(metric_names) + " | p50 ms | p95 ms | p99 ms | batch q/s |" + loss_header,
             "|---|" + "---|" * (len(metric_names) + 4 + (reference is not None))]
    for r in run.results:
        lat = [f"{r.latency_ms[p]:.1f}" if p in r.latency_ms else "" for p in ("p50", "p95", "p99")]
        loss = "" if reference is None else f" {loss_percent(r.metrics['nDCG@10'], reference):+.2f}% |"
        lines.append(f"| {r.name} | " + " | ".join(f"{r.metrics[m]:.4f}" for m in metric_names) + " | " +
                     " | ".join(lat) + f" | {r.queries_per_second:.1f} |" + loss)
    return "\n".join(lines)


def write_report(run: EvalRun, out: Path) -> str:
    """report.json, report.md and report.png in `out`; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"dataset": run.dataset, "n_queries": run.n_queries, "index": run.index,
            "results": [{k: v for k, v in asdict(r).items() if k != "run"} for r in run.results]}
    (out / "report.json").write_text(json.dumps(data, indent=1))
    table = markdown(run)
    (out / "report.md").write_text(table + "\n")
    points = [(1000 / r.queries_per_second, r.metrics["nDCG@10"], r.name) for r in run.results]
    labelled_scatter(points, out / "report.png", xlabel="ms per query in batch mode (log scale)",
                     ylabel="nDCG@10", title=f"{run.dataset}: quality vs time per query")
    return table
