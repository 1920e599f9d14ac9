"""Flip trials: one byte of one file of an index flipped (or the file cut short: "cut"
outcomes), then the index opened *without* checksums (verify=False; --verify: with every one)
and searched: dense (compiled kernels), exhaustive, BM25, a filter, the ids.

Each trial ends as one of: "error" (a clean IndexFormatError / ValueError naming the problem),
"same" (results equal the intact index's), "different" (results changed and nothing noticed:
bytes whose every value is a valid code, which only checksums catch). A crash (a segfault in a
kernel) kills the process: the caller sees the trial it was on in the progress file.

    python tests/flip_trials.py --out report.json [--per-file 0] [--verify]   # 0: every byte of every file
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(directory: Path) -> None:
    """Three segments, deletions in two of them."""
    from conftest import synthetic_batch, synthetic_docs
    from indexes.builder.pipeline import add_to_index, build_index
    from indexes.storage.writes import delete_documents

    build_index(directory, synthetic_batch(24, seed=1), synthetic_docs(24, "a"), recipe="res2",
                info={"encoder": {"name": "t"}}, vocab_size=500)
    add_to_index(directory, synthetic_batch(8, seed=2), synthetic_docs(8, "b"))
    add_to_index(directory, synthetic_batch(6, seed=3), synthetic_docs(6, "c"))
    delete_documents(directory, ["a3", "b1"])


def search(directory: Path, verify: bool = False) -> list:
    from conftest import synthetic_batch
    from indexes.search.engine import Engine
    from indexes.search.bm25 import LexicalQueries, store_bm25
    from indexes.storage.store import IndexStore
    from retriever.filters import filter_mask
    from retriever.index import Index

    store = IndexStore.open(directory, verify=verify)
    queries = synthetic_batch(n_docs=4, dim=32, seed=9, min_len=6, max_len=7).vectors.astype(np.float32).reshape(4, 6, 32)
    engine = Engine(store, nprobe=4, n_candidates=16, device="cpu")
    out = []
    for first_stage in ("token", "exhaustive"):
        scores, positions = engine.search(queries, 5, first_stage=first_stage)
        out.append((np.round(scores, 4).tolist(), positions.tolist()))
    out.append(store_bm25(store, LexicalQueries.from_texts([f"text {i}" for i in (2, 7)]), 5)[1].tolist())
    out.append(np.flatnonzero(filter_mask(Index(store), {"n": {"gte": 3}})).tolist())
    out.append([store.document(p)["id"] for p in range(store.n_positions) if store.alive[p]])
    return out


def positions_of(size: int, per_file: int) -> list[int]:
    """Every byte (per_file 0 or >= size), else every 8th byte of the first 128 (the npy header)
    and per_file evenly spaced ones."""
    if per_file <= 0 or per_file >= size:
        return list(range(size))
    return sorted(set(range(0, min(size, 128), 8)) | set(np.linspace(0, size - 1, per_file).astype(int).tolist()))


def main(argv: list[str] | None = None) -> int:
    from indexes.storage.store import read_manifest
    from indexes.storage.verify import manifest_files

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON report: outcome counts per file")
    p.add_argument("--progress", default=None, help="file naming the trial in progress (for a crash)")
    p.add_argument("--per-file", type=int, default=0, help="bytes flipped per file (0: every byte)")
    p.add_argument("--verify", action="store_true", help="open with every checksum verified instead")
    args = p.parse_args(argv)
    shm = Path("/dev/shm")        # memory-backed where there is one: thousands of small rewrites
    work = Path(tempfile.mkdtemp(prefix="tessera-flips-", dir=shm if shm.is_dir() else None))
    try:
        index = work / "idx"
        prepare(index)
        want = search(index)
        report: dict[str, Counter] = {}
        for path, _ in manifest_files(index, read_manifest(index)):
            original = path.read_bytes()
            name = f"{path.parent.name.split('-')[0]}/{path.name}" if path.parent != index else path.name.split("-")[0]
            counts = report.setdefault(name, Counter())
            # Each byte flipped alone, then the file cut by one byte and to half its size.
            trials = [("flip", at) for at in positions_of(len(original), args.per_file)]
            trials += [("cut", len(original) - 1), ("cut", len(original) // 2)]
            for kind, at in trials:
                if args.progress:
                    Path(args.progress).write_text(f"{path} {kind} {at}\n")
                if kind == "flip":
                    changed = bytearray(original)
                    changed[at] ^= 0xFF
                else:
                    changed = original[:at]
                path.write_bytes(bytes(changed))
                prefix = "" if kind == "flip" else "cut "
                try:
                    got = search(index, args.verify)
                    counts[prefix + ("same" if got == want else "different")] += 1
                except Exception as e:  # noqa: BLE001 - every other kind of exception is counted apart
                    counts[prefix + ("error" if type(e).__name__ == "IndexFormatError" else
                                     f"other {type(e).__name__}")] += 1
                finally:
                    path.write_bytes(original)
        Path(args.out).write_text(json.dumps({k: dict(v) for k, v in report.items()}, indent=1))
        totals = sum(report.values(), Counter())
        print(json.dumps(dict(totals)))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
