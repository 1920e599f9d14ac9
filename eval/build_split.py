"""Where an index build's time goes: encoding against everything after it (pooling, codec fit,
compression, lists and write), per encoder runtime, side by side in one run.

    python -m eval.build_split --dataset ../shared/data/scifact --runtimes torch torch-bf16 --out docs/build

Each runtime encodes the whole collection (timed), then the same embeddings are built into an
index with the compiled pooling (the default) and, with --reference, once more with the
per-document scipy pooling it replaced. Prints a table; writes build.md, build.json and a
stacked-bar plot build.png to --out.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

STAGES = ("reduce_seconds", "codec_fit_seconds", "compress_seconds", "write_seconds")


def _build(embeddings, documents, encoder, directory: Path, compiled: bool) -> dict:
    from indexes.builder import reduce
    from retriever.index import Index

    saved = reduce._agglomerate
    if not compiled:
        reduce._agglomerate = None
    try:
        shutil.rmtree(directory, ignore_errors=True)
        started = time.perf_counter()
        index = Index.build_from_embeddings(directory, embeddings, documents, encoder)
        total = time.perf_counter() - started
    finally:
        reduce._agglomerate = saved
    build = index.build_stats
    return {**{s: build[s] for s in STAGES}, "after_encoding_seconds": total,
            "stored_vectors": build["n_stored_vectors"]}


def run(args) -> list[dict]:
    from retriever import load_encoder
    from .datasets import load_dataset

    data = load_dataset(args.dataset)
    documents = data.documents[: args.limit] if args.limit else data.documents
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in args.runtimes:
            encoder = load_encoder(device="cpu", runtime=runtime)
            encoder.encode_documents([d.full_text for d in documents[:32]], show_progress=False)   # warm-up
            embeddings = encoder.encode_documents([d.full_text for d in documents], show_progress=True)
            for compiled in ([True, False] if args.reference else [True]):
                row = {"runtime": encoder.runtime, "pooling": "compiled" if compiled else "scipy per document",
                       "documents": len(documents), "input_tokens": embeddings.n_input_tokens,
                       "encoding_seconds": embeddings.seconds,
                       **_build(embeddings, documents, encoder, Path(tmp) / "index", compiled)}
                row["after_encoding_share"] = row["after_encoding_seconds"] / row["encoding_seconds"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| runtime | pooling | encoding s (tokens/s) | reduce s | codec fit s | compress s | write s "
             "| after encoding s | after / encoding |", "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['runtime']} | {r['pooling']} | {r['encoding_seconds']:.1f} "
                     f"({r['input_tokens'] / r['encoding_seconds']:,.0f}) | "
                     + " | ".join(f"{r[s]:.1f}" for s in STAGES)
                     + f" | {r['after_encoding_seconds']:.1f} | {100 * r['after_encoding_share']:.1f}% |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.6))
    labels = [f"{r['runtime']}\n{r['pooling']}" for r in rows]
    left = [0.0] * len(rows)
    for key, name in [("encoding_seconds", "encoding"), *[(s, s.replace("_seconds", "")) for s in STAGES]]:
        widths = [r[key] for r in rows]
        ax.barh(labels, widths, left=left, label=name)
        left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("seconds (build of the whole collection)")
    ax.invert_yaxis()
    ax.legend(fontsize=8, ncol=5, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.build_split", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True, help="collection folder (BEIR layout)")
    p.add_argument("--runtimes", nargs="+", default=["torch", "torch-bf16"])
    p.add_argument("--reference", action="store_true", help="also build with the per-document scipy pooling")
    p.add_argument("--limit", type=int, default=None, help="first N documents only")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = run(args)
    table = markdown(rows)
    print(table)
    if args.out:
        from .report import save_table

        out = Path(args.out)
        save_table(out, "build", rows, table)
        plot(rows, out / "build.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
