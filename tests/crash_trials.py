"""Crash trials: a write killed (SIGKILL) at a named crash point (indexes/faults.py), then checked.

Each trial copies a prepared index, forks a child that arms one crash point and runs one write; the child must die by SIGKILL at that point, having logged it first. Then the index must
open with every checksum verified and hold exactly the state before the write (crash before the
manifest rename) or after it (at or after the rename), compared with a serial replay.

    python tests/crash_trials.py --trials 200        # randomised trials beyond the suite's walk
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OPS = ("build", "add", "upsert", "delete", "compact", "retrain")
_AFTER_RENAME = ("commit:renamed", "commit:durable", "cleanup:removed")


def prepare(directory: Path) -> None:
    """The starting index: a build, an added segment and a deletion (so compaction has work)."""
    from conftest import synthetic_batch, synthetic_docs
    from indexes.builder.pipeline import add_to_index, build_index
    from indexes.storage.writes import delete_documents

    build_index(directory, synthetic_batch(30, seed=1), synthetic_docs(30, "a"), recipe="res2",
                info={"encoder": {"name": "t"}}, vocab_size=500)
    add_to_index(directory, synthetic_batch(10, seed=2), synthetic_docs(10, "b"))
    delete_documents(directory, ["a3"])


def run_op(op: str, directory: Path) -> None:
    from conftest import synthetic_batch, synthetic_docs
    from indexes.builder.pipeline import add_to_index, build_index, compact_index
    from indexes.storage.writes import delete_documents

    if op == "build":
        build_index(directory, synthetic_batch(20, seed=3), synthetic_docs(20, "r"), recipe="res2",
                    info={"encoder": {"name": "t"}}, vocab_size=500)
    elif op == "add":
        add_to_index(directory, synthetic_batch(5, seed=4), synthetic_docs(5, "c"))
    elif op == "upsert":
        add_to_index(directory, synthetic_batch(3, seed=5), synthetic_docs(3, "b"), upsert=True)
    elif op == "delete":
        delete_documents(directory, ["a1", "b2"])
    elif op == "compact":
        compact_index(directory)
    elif op == "retrain":
        compact_index(directory, retrain=True)
    else:
        raise ValueError(op)


def _child(op: str, directory: str, point: str | None, hit: int, log: str, counts: str | None) -> None:
    from indexes import faults
    from indexes.storage import writes

    writes.GRACE_SECONDS = 0.0       # retired files are collected at once, so cleanup is walked too
    faults.crash_at(point, hit, log)
    run_op(op, Path(directory))
    if counts:
        Path(counts).write_text(repr(faults.reached()))


def state(directory: Path) -> dict:
    """What a reader sees: live ids, generation, and every live document's stored vectors' codes."""
    from indexes.storage.store import IndexStore

    store = IndexStore.open(directory, verify=True)
    codec_files = store.manifest["codec"]["files"]
    return {"ids": sorted(store.position_of), "generation": store.manifest["generation"],
            "codec": {f: e["crc32"] for f, e in codec_files.items()},      # content, not the random names
            "segments": len(store.manifest["segments"]),
            "docs": {d: store.document(p)["title"] for d, p in store.position_of.items()}}


class Trials:
    """Prepared start state, and the state each write leaves when it completes."""

    def __init__(self, work: Path):
        self.work = work
        # Plain fork: this process itself never runs OpenMP or torch kernels (the index is
        # prepared in a child too), so forked children start from a clean thread state.
        import conftest  # noqa: F401 - imported once here, so each forked child starts with it
        import indexes.builder.pipeline  # noqa: F401
        import indexes.storage.writes  # noqa: F401

        self.ctx = multiprocessing.get_context("fork")
        self.start = work / "start"
        p = self.ctx.Process(target=prepare, args=(self.start,))
        p.start()
        p.join()
        assert p.exitcode == 0, "preparing the start index failed"
        self.before = state(self.start)
        self.after, self.reached = {}, {}
        for op in OPS:
            target = work / f"done-{op}"
            shutil.copytree(self.start, target)
            counts = work / f"counts-{op}"
            self._fork(op, target, None, 1, counts)
            self.after[op] = state(target)
            self.reached[op] = eval(counts.read_text())   # noqa: S307 - our own repr of a dict

    def _fork(self, op, directory, point, hit, counts=None) -> int:
        log = self.work / "crash.log"
        log.unlink(missing_ok=True)
        p = self.ctx.Process(target=_child, args=(op, str(directory), point, hit, str(log), counts and str(counts)))
        p.start()
        p.join(120)
        if p.exitcode is None:
            p.kill()
            raise AssertionError(f"{op} at {point}#{hit}: the child hung")
        return p.exitcode

    def trial(self, op: str, point: str, hit: int, n: int) -> str:
        """Kill `op` at the hit-th `point`; check it died there and the index is old or new state."""
        directory = self.work / f"trial-{n}"
        shutil.copytree(self.start, directory)
        code = self._fork(op, directory, point, hit)
        log = (self.work / "crash.log").read_text() if (self.work / "crash.log").exists() else ""
        assert code == -9 and log == f"{point}#{hit}\n", f"{op} at {point}#{hit}: exit {code}, log {log!r}"
        got = state(directory)
        expected = self.after[op] if point in _AFTER_RENAME else self.before
        for key in ("ids", "docs", "codec", "segments"):
            assert got[key] == expected[key], f"{op} killed at {point}#{hit}: {key} differs"
        # The lock died with the writer: the next write goes through and the state moves on.
        from indexes.storage.writes import delete_documents
        delete_documents(directory, [got["ids"][0]])
        assert state(directory)["generation"] > got["generation"]
        shutil.rmtree(directory)
        return "new" if point in _AFTER_RENAME else "old"

    def walk(self, every_hit: bool = False) -> list[tuple[str, str, str]]:
        """Every crash point each write reaches, at its first hit (every_hit: at each hit)."""
        out = []
        for op in OPS:
            for point, count in sorted(self.reached[op].items()):
                for hit in range(1, (count if every_hit else 1) + 1):
                    out.append((op, f"{point}#{hit}", self.trial(op, point, hit, len(out))))
        return out

    def random(self, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
        rng = random.Random(seed)
        out = []
        for i in range(n):
            op = rng.choice(OPS)
            point = rng.choice(sorted(self.reached[op]))
            hit = rng.randint(1, self.reached[op][point])
            out.append((op, f"{point}#{hit}", self.trial(op, point, hit, 10_000 + i)))
        return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        trials = Trials(Path(work))
        walk = trials.walk(every_hit=True)
        rand = trials.random(args.trials, args.seed)
        reached = {op: sum(counts.values()) for op, counts in trials.reached.items()}
    outcomes = [o for _, _, o in walk + rand]
    print(json.dumps({"walk": len(walk), "random": len(rand), "old": outcomes.count("old"),
                      "new": outcomes.count("new"), "points_reached": reached,
                      "points": sorted({p.split("#")[0] for _, p, _ in walk})}))
    print(f"crash walk: {len(walk)} kills, one at each hit of each crash point of {len(OPS)} writes; random: "
          f"{len(rand)} kills; every kill landed where armed and the index verified after each: "
          f"{outcomes.count('old')} old state, {outcomes.count('new')} new state", file=sys.stderr)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
