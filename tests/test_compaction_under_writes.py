"""Compaction commits even when other writers commit while it merges: what they added stays
beside the merged segment, what they deleted or replaced is tombstoned in it; nothing is lost."""

from __future__ import annotations

import threading
import time

import numpy as np

import indexes.builder.pipeline as build
from indexes.builder.pipeline import add_to_index, build_index, compact_index
from indexes.storage.store import IndexStore, read_manifest
from indexes.storage.writes import delete_documents
from conftest import synthetic_batch, synthetic_docs


def _index(path):
    build_index(path, synthetic_batch(30, seed=1), synthetic_docs(30, "a"), recipe="res2", info={"encoder": {}},
                vocab_size=500)
    add_to_index(path, synthetic_batch(10, seed=2), synthetic_docs(10, "b"))
    delete_documents(path, ["a4"])


def _live(path) -> dict[str, dict]:
    store = IndexStore.open(path)
    return {store.document(p)["id"]: store.document(p) for p in range(store.n_positions) if store.alive[p]}


def test_writes_committed_during_a_compaction_are_kept(tmp_path, monkeypatch):
    path = tmp_path / "idx"
    _index(path)
    real = build.rewrite_index

    def writes_meanwhile(*args, **kwargs):
        add_to_index(path, synthetic_batch(4, seed=3), synthetic_docs(4, "c"))                    # new documents
        delete_documents(path, ["a1", "b3"])                                                       # deletes
        upserted = synthetic_docs(2, "a")
        upserted[0]["text"] = "replaced text 0"
        add_to_index(path, synthetic_batch(2, seed=4), upserted, upsert=True)                     # a0, a1 again
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "rewrite_index", writes_meanwhile)
    compact_index(path)
    live = _live(path)
    expected = ({f"a{i}" for i in range(30)} - {"a4"}) | {f"b{i}" for i in range(10)} - {"b3"} | {f"c{i}" for i in range(4)}
    assert set(live) == expected
    assert live["a0"]["text"] == "replaced text 0"                  # the upsert's copy, not the compacted one
    segments = read_manifest(path)["segments"]
    assert len(segments) == 3                                       # merged + the add + the upsert
    assert segments[0]["deleted"]["count"] == 3                     # a0, a1 (upserted) and b3 tombstoned in it
    IndexStore.open(path, verify=True)                              # every checksum holds


def test_compaction_completes_under_a_steady_stream_of_adds(tmp_path):
    """A writer adds a document every 50 ms for 8 s while compaction runs again and again."""
    path = tmp_path / "idx"
    _index(path)
    stop, added, errors = threading.Event(), [], []

    def writer():
        i = 0
        while not stop.is_set():
            try:
                add_to_index(path, synthetic_batch(1, seed=100 + i), synthetic_docs(1, f"s{i}-"))
                added.append(f"s{i}-0")
            except Exception as e:  # noqa: BLE001 - collected and failed below
                errors.append(e)
            i += 1
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    compactions, most_segments, deadline = 0, 0, time.monotonic() + 8
    try:
        while time.monotonic() < deadline:
            compact_index(path)
            compactions += 1
            most_segments = max(most_segments, len(read_manifest(path)["segments"]))
    finally:
        stop.set()
        thread.join()
    compact_index(path)
    assert not errors and len(added) >= 40
    assert compactions >= 3
    assert most_segments <= len(added) // 4 + 2                     # merged as fast as they come, not piling up
    assert set(added) <= set(_live(path)) and len(read_manifest(path)["segments"]) == 1
    np.testing.assert_array_equal(IndexStore.open(path, verify=True).alive, True)
