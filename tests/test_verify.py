"""Writes never re-sign damaged data; `tessera verify` reports every file."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tessera
from indexes.builder.pipeline import add_to_index, build_index, compact_index
from indexes.files import IndexFormatError
from indexes.storage.store import IndexStore, read_manifest
from indexes.storage.verify import verify_index
from indexes.storage.writes import delete_documents
from retriever.index import Index
from conftest import synthetic_batch, synthetic_docs


@pytest.fixture
def two_segments(tmp_path):
    path = tmp_path / "idx"
    build_index(path, synthetic_batch(30, seed=1), synthetic_docs(30, "a"), recipe="res2", info={"encoder": {}},
                vocab_size=500)
    add_to_index(path, synthetic_batch(10, seed=2), synthetic_docs(10, "b"))
    return path


def _flip(path, start=200, count=2000):
    raw = bytearray(path.read_bytes())
    end = min(len(raw), start + count)
    for i in range(start, end):
        raw[i] ^= 0xA5
    path.write_bytes(bytes(raw))


def test_compaction_refuses_bytes_that_rotted_after_the_index_was_opened(two_segments):
    index = Index(IndexStore.open(two_segments, verify=True))         # opened while intact
    first = two_segments / read_manifest(two_segments)["segments"][0]["name"] / "residuals.npy"
    _flip(first)
    generation = read_manifest(two_segments)["generation"]
    for retrain in (False, True):
        with pytest.raises(IndexFormatError, match=r"residuals\.npy: checksum mismatch.*refusing to "
                                                   + ("retrain" if retrain else "compact")):
            index.compact(retrain=retrain)
    with pytest.raises(IndexFormatError, match="residuals.npy"):
        index.maintain()
    assert read_manifest(two_segments)["generation"] == generation        # nothing was committed
    with pytest.raises(IndexFormatError, match=r"residuals\.npy: checksum mismatch"):
        IndexStore.open(two_segments, verify=True)                       # the damage is still detectable
    bad = [c for c in verify_index(two_segments) if not c.ok]
    assert [c.path for c in bad] == [first]


@pytest.mark.parametrize("write", ["add", "delete"])
def test_adds_and_deletes_refuse_a_damaged_codec(two_segments, write):
    # idf values (used to reduce the added documents) that stay plausible numbers: only the
    # checksum can tell (a damaged centroid is caught on open by its length already).
    idf = two_segments / read_manifest(two_segments)["codec"]["name"] / "idf.npy"
    _flip(idf, start=160, count=16)
    with pytest.raises(IndexFormatError, match=r"idf\.npy: checksum mismatch.*refusing to (add|delete)"):
        if write == "add":
            add_to_index(two_segments, synthetic_batch(3, seed=5), synthetic_docs(3, "c"))
        else:
            delete_documents(two_segments, ["a1"])


def test_verify_command_reports_each_file_and_exits_by_verdict(two_segments, capsys):
    assert tessera.main(["verify", "--index", str(two_segments), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    manifest = read_manifest(two_segments)
    expected = sum(len(s["files"]) for s in manifest["segments"]) + len(manifest["codec"]["files"])
    assert len(lines) == expected and all(line["ok"] for line in lines)
    delete_documents(two_segments, ["a2"])                              # a tombstone is checked too
    tomb = two_segments / read_manifest(two_segments)["segments"][0]["deleted"]["file"]
    tomb.write_bytes(tomb.read_bytes()[:-2])
    assert tessera.main(["verify", "--index", str(two_segments)]) == 3
    out, err = capsys.readouterr()
    assert f"DAMAGED {tomb}: " in out and "truncated" in out and "1 damaged" in err
    assert out.count("ok     ") == expected


def test_background_verification_opens_at_once_and_stops_searches_on_damage(two_segments):
    from retriever.searcher import Searcher

    queries = synthetic_batch(n_docs=2, dim=32, seed=9, min_len=6, max_len=7).vectors.astype(np.float32).reshape(2, 6, 32)
    intact = Index.open(two_segments, verify="background")
    assert intact.verification.wait(30) == "intact"
    before = Searcher(intact, hybrid=False).search_batch(queries, k=3)
    first = two_segments / read_manifest(two_segments)["segments"][0]["name"] / "residuals.npy"
    _flip(first)
    damaged = Index.open(two_segments, verify="background")          # opens: the structure is fine
    assert damaged.verification.wait(30) == "damaged"
    with pytest.raises(IndexFormatError, match=r"residuals\.npy: checksum mismatch .*background verification"):
        Searcher(damaged, hybrid=False).search_batch(queries, k=3)
    assert before.doc_ids                                            # the intact snapshot searched
    with pytest.raises(ValueError, match="verify must be"):
        Index.open(two_segments, verify="later")
