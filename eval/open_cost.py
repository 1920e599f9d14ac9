"""What opening an index costs with many documents: time and resident memory after open, for
the memory-mapped document table (format v5) and the same index without it (a v4 index, whose
documents are parsed into Python objects at open).

    python -m eval.open_cost --docs 300000 --work /tmp/open-cost --out docs/open

Documents are synthetic passages (~600 characters, metadata, 4 vectors each); each measurement
runs in a fresh process: open (verify=False), then one id lookup and one document read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

MEASURE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
from indexes.storage.store import IndexStore
before = rss()
t = time.perf_counter()
store = IndexStore.open({path!r}, verify=False)
opened = time.perf_counter() - t
t = time.perf_counter()
p = store.position_of["p{probe}"]
doc = store.document(p)
lookup = time.perf_counter() - t
print(json.dumps({{"open_s": opened, "lookup_ms": 1000 * lookup, "rss_mib": rss() - before, "ok": doc["id"] == "p{probe}"}}))
"""


def build(path: Path, n_docs: int) -> None:
    from indexes.builder.pipeline import TokenBatch, build_index

    rng = np.random.default_rng(0)
    lengths = np.full(n_docs, 4, dtype=np.int64)
    raw = rng.standard_normal((4 * n_docs, 32)).astype(np.float32)
    norms = np.linalg.norm(raw, axis=1)
    batch = TokenBatch((raw / norms[:, None]).astype(np.float16), rng.integers(0, 500, 4 * n_docs).astype(np.int32),
                       lengths, norms.astype(np.float16))
    words = np.array("solar wind tidal energy grid battery cell panel turbine storage".split())
    docs = [{"id": f"p{i}", "title": f"passage {i}", "text": " ".join(words[rng.integers(0, 10, 90)]),
             "metadata": {"year": 1990 + i % 30, "source": f"s{i % 7}"}} for i in range(n_docs)]
    build_index(path, batch, docs, recipe="res2", info={"encoder": {"name": "synthetic"}}, vocab_size=500)


def as_version_4(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["version"] = 4
    for entry in manifest["segments"]:
        for name in ("doc_lines.npy", "id_hashes.npy", "id_order.npy"):
            entry["files"].pop(name)
            (dst / entry["name"] / name).unlink()
    (dst / "manifest.json").write_text(json.dumps(manifest))


def measure(path: Path, probe: int) -> dict:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", MEASURE.format(root=root, path=str(path), probe=probe)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = argparse.ArgumentParser(prog="python -m eval.open_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--docs", type=int, default=300_000)
    p.add_argument("--work", required=True)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    v5, v4 = work / "v5", work / "v4"
    build(v5, args.docs)
    as_version_4(v5, v4)
    size = sum(f.stat().st_size for f in v5.rglob("*") if f.is_file()) / 2**20
    rows = []
    for label, path in (("v5: memory-mapped document table", v5), ("v4: documents parsed at open", v4)):
        runs = [measure(path, probe) for probe in (args.docs // 3, args.docs - 1, 7)]
        assert all(r["ok"] for r in runs)
        rows.append({"format": label, "open_s": float(np.median([r["open_s"] for r in runs])),
                     "rss_mib": float(np.median([r["rss_mib"] for r in runs])),
                     "lookup_ms": float(np.median([r["lookup_ms"] for r in runs]))})
    lines = [f"{args.docs:,} documents, index {size:,.0f} MiB on disk; median of 3 fresh processes",
             "", "| format | open s | resident after open, MiB | % of index size | id lookup + read, ms |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['format']} | {r['open_s']:.3f} | {r['rss_mib']:.1f} | {100 * r['rss_mib'] / size:.1f}% | "
              f"{r['lookup_ms']:.3f} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "open_cost.md").write_text(table + "\n")
        (out / "open_cost.json").write_text(json.dumps({"docs": args.docs, "index_mib": size, "rows": rows}, indent=1))
        fig, axes = plt.subplots(1, 2, figsize=(9, 3))
        names = ["v5 (mapped)", "v4 (parsed)"]
        axes[0].bar(names, [r["open_s"] for r in rows])
        axes[0].set_ylabel("open, s")
        axes[1].bar(names, [r["rss_mib"] for r in rows])
        axes[1].set_ylabel("resident after open, MiB")
        fig.suptitle(f"Opening an index of {args.docs:,} documents ({size:,.0f} MiB)")
        fig.tight_layout()
        fig.savefig(out / "open_cost.png", dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
