"""A served index found damaged (by the scrub, a write, a compaction or a background
verification) is reported and no longer served; its data is never copied under a new checksum."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from retriever import Index, load_encoder, read_corpus
from conftest import SAMPLE

KEY = "test-key-0123456789"
W = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "idx"
    Index.build(path, read_corpus(SAMPLE), load_encoder(device="cpu"), show_progress=False)
    return path


def _rot(path: Path, count: int = 500) -> None:
    raw = bytearray(path.read_bytes())
    for i in range(200, min(len(raw), 200 + count)):
        raw[i] ^= 0x5A
    path.write_bytes(bytes(raw))


def test_a_damaged_index_is_reported_and_no_longer_served(index_dir, tmp_path):
    """The scrub finds bytes that rotted after the server opened the index: searches and writes
    answer 503 naming the file, /health answers 503 'damaged', /metrics says so."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.state import IndexHandle

    shutil.copytree(index_dir, tmp_path / "idx")
    handle = IndexHandle("docs", tmp_path / "idx")
    with TestClient(create_app({"docs": handle}, api_key=KEY)) as client:
        assert client.post("/search", json={"query": "solar panels", "k": 2}).status_code == 200
        assert all(c.ok for c in handle.scrub()) and handle.damaged is None
        residuals = tmp_path / "idx" / handle.snapshot.index.manifest["segments"][0]["name"] / "residuals.npy"
        _rot(residuals)
        assert [c.path for c in handle.scrub() if not c.ok] == [residuals]
        r = client.post("/search", json={"query": "solar panels", "k": 2})
        assert r.status_code == 503 and "residuals.npy: checksum mismatch" in r.json()["detail"]
        r = client.post("/indexes/docs/documents", headers=W, json={"documents": [{"id": "z1", "text": "tide"}]})
        assert r.status_code == 503 and "damaged" in r.json()["detail"]
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "damaged"
        assert "residuals.npy" in health.json()["damaged"]["docs"]
        assert 'tessera_index_damaged{index="docs"} 1.0' in client.get("/metrics").text


def test_background_compaction_never_copies_damaged_data(index_dir, tmp_path):
    from indexes.storage.store import read_manifest
    from retriever.corpus import Document
    from server.state import IndexHandle

    shutil.copytree(index_dir, tmp_path / "idx")
    handle = IndexHandle("docs", tmp_path / "idx", max_segments=1)
    before = len(read_manifest(tmp_path / "idx")["segments"])
    _rot(tmp_path / "idx" / handle.snapshot.index.manifest["segments"][0]["name"] / "residuals.npy")
    handle.add([Document(id="t1", text="tidal energy from the moon's pull")], upsert=False)   # the add reads no residuals
    handle.wait_for_compaction()
    assert "residuals.npy: checksum mismatch" in handle.compaction_error and handle.damaged
    assert len(read_manifest(tmp_path / "idx")["segments"]) == before + 1                   # nothing was merged
    with pytest.raises(Exception, match="damaged"):
        handle.add([Document(id="t2", text="again")], upsert=False)


def test_background_verification_serves_at_once_and_then_reports_damage(index_dir, tmp_path):
    from server.state import IndexHandle

    shutil.copytree(index_dir, tmp_path / "idx")
    from indexes.storage.store import read_manifest
    _rot(tmp_path / "idx" / read_manifest(tmp_path / "idx")["segments"][0]["name"] / "residuals.npy")
    handle = IndexHandle("docs", tmp_path / "idx", verify="background")      # opens: the structure is fine
    deadline = time.time() + 30
    while handle.damaged is None and time.time() < deadline:
        time.sleep(0.05)
    assert "residuals.npy: checksum mismatch" in handle.damaged and handle.scrubs == 1
