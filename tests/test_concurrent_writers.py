"""Two writer processes and two reader processes on one index directory for a bounded time:
every committed write is present afterwards, no reader ever fails, and the final index equals a
serial replay of the commits in generation order."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

from conftest import synthetic_batch, synthetic_docs

SECONDS = 8.0


def _writer(directory: str, w: int, log: str, until: float) -> None:
    from indexes.builder.pipeline import add_to_index, compact_index
    from indexes.storage.writes import delete_documents

    r = 0
    with open(log, "a") as out:
        while time.time() < until or r < 8:     # at least 8 rounds, however late this process started
            r += 1
            if r % 5 == 0:
                if w == 0:
                    try:
                        compact_index(directory)
                    except RuntimeError as e:     # another commit landed meanwhile: refused, nothing lost
                        assert "changed while compacting" in str(e)
                else:
                    delete_documents(directory, [f"w{w}r{r - 1}-0"])
                    out.write(json.dumps({"op": "delete", "ids": [f"w{w}r{r - 1}-0"]}) + "\n")
                continue
            docs = synthetic_docs(3, f"w{w}r{r}-")
            manifest = add_to_index(directory, synthetic_batch(3, seed=100 * w + r), docs)
            out.write(json.dumps({"op": "add", "w": w, "r": r, "generation": manifest["generation"]}) + "\n")
            out.flush()


def _reader(directory: str, log: str, until: float) -> None:
    from indexes.storage.store import IndexStore

    opened, errors = 0, []
    while time.time() < until or opened < 20:  # at least 20 opens, however late this process started
        try:
            store = IndexStore.open(directory, verify=False)
            for p in range(0, store.n_positions, 7):
                store.document(p)
            store.codec.decompress(store.segments[-1].vector_codes(slice(0, 4)),
                                   store.segments[-1].vector_residuals(slice(0, 4)))
            opened += 1
        except Exception as e:  # noqa: BLE001 - every failure is the finding
            errors.append(f"{type(e).__name__}: {e}")
    Path(log).write_text(json.dumps({"opened": opened, "errors": errors[:5], "n_errors": len(errors)}))


def test_two_writers_and_readers_never_lose_or_break_anything(tmp_path):
    from indexes.builder.pipeline import build_index
    from indexes.storage.store import IndexStore

    directory = tmp_path / "idx"
    build_index(directory, synthetic_batch(20, seed=0), synthetic_docs(20, "s"), recipe="res2",
                info={"encoder": {"name": "t"}}, vocab_size=500)
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["indexes.builder.pipeline", "indexes.storage.writes", "conftest"])
    until = time.time() + SECONDS
    procs = [ctx.Process(target=_writer, args=(str(directory), w, str(tmp_path / f"w{w}.log"), until))
             for w in range(2)]
    procs += [ctx.Process(target=_reader, args=(str(directory), str(tmp_path / f"r{i}.log"), until))
              for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    readers = [json.loads((tmp_path / f"r{i}.log").read_text()) for i in range(2)]
    assert all(r["n_errors"] == 0 for r in readers), readers
    assert all(r["opened"] > 5 for r in readers), readers
    events = [json.loads(line) for w in range(2) for line in (tmp_path / f"w{w}.log").read_text().splitlines()]
    adds = [e for e in events if e["op"] == "add"]
    assert {e["w"] for e in adds} == {0, 1} and len(adds) >= 4
    deleted = {i for e in events if e["op"] == "delete" for i in e["ids"]}
    store = IndexStore.open(directory, verify=True)
    expected = {f"s{i}" for i in range(20)} | {f"w{e['w']}r{e['r']}-{j}" for e in adds for j in range(3)}
    assert set(store.position_of) == expected - deleted
    generations = [e["generation"] for e in adds]
    assert len(set(generations)) == len(generations)          # every commit got its own generation

    # Serial replay of the adds in commit order, deletions last: the same documents with the same content.
    replay = tmp_path / "replay"
    build_index(replay, synthetic_batch(20, seed=0), synthetic_docs(20, "s"), recipe="res2",
                info={"encoder": {"name": "t"}}, vocab_size=500)
    from indexes.builder.pipeline import add_to_index
    from indexes.storage.writes import delete_documents
    for e in sorted(adds, key=lambda e: e["generation"]):
        add_to_index(replay, synthetic_batch(3, seed=100 * e["w"] + e["r"]), synthetic_docs(3, f"w{e['w']}r{e['r']}-"))
    if deleted:
        delete_documents(replay, sorted(deleted))
    serial = IndexStore.open(replay)
    assert set(serial.position_of) == set(store.position_of)
    for doc_id, p in store.position_of.items():
        a, b = store.document(p), serial.document(serial.position_of[doc_id])
        assert a == b
