"""A full disk for real (a small tmpfs mounted for the test; CI runs as root): every write path
fails with one clear NoSpaceError, removes what it created, and leaves the index as it was."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from indexes.builder.pipeline import add_to_index, build_index, compact_index
from indexes.files import NoSpaceError
from indexes.storage.store import IndexStore
from indexes.storage.verify import verify_index
from indexes.storage.writes import delete_documents
from conftest import SAMPLE, synthetic_batch, synthetic_docs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk, leave: int) -> None:
    """Take all but `leave` bytes of the disk with a filler file."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "ab") as f:
        f.write(b"\0" * max(0, free - leave))


def _listing(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def _index(disk, n=40):
    path = disk / "idx"
    build_index(path, synthetic_batch(n, seed=1), synthetic_docs(n, "a"), recipe="res2", info={"encoder": {}},
                vocab_size=500)
    add_to_index(path, synthetic_batch(5, seed=2), synthetic_docs(5, "b"))
    return path


def _unchanged(path, before, ids):
    assert _listing(path) == before                       # no debris: nothing new, nothing emptied
    assert all(c.ok for c in verify_index(path))
    assert sorted(IndexStore.open(path).position_of) == ids


@pytest.mark.parametrize("write", ["rebuild", "add", "delete", "compact"])
def test_every_write_on_a_full_disk_leaves_no_debris(disk, write):
    path = _index(disk)
    ids = sorted(IndexStore.open(path).position_of)
    before = _listing(path)
    _fill(disk, leave=3_000 if write != "delete" else 0)
    with pytest.raises(NoSpaceError, match=rf"no space left on device while writing {path}: about [0-9.]+ MiB needed"):
        if write == "rebuild":
            build_index(path, synthetic_batch(300, seed=4), synthetic_docs(300, "r"), recipe="res2",
                        info={"encoder": {}}, vocab_size=500)
        elif write == "add":
            add_to_index(path, synthetic_batch(200, seed=3), synthetic_docs(200, "c"))
        elif write == "delete":
            delete_documents(path, ["a1", "a7"])
        else:
            compact_index(path)
    _unchanged(path, before, ids)
    (disk / "filler").unlink()                          # space again: the same write now succeeds
    if write == "delete":
        assert delete_documents(path, ["a1", "a7"]) == 2
    elif write == "add":
        add_to_index(path, synthetic_batch(20, seed=3), synthetic_docs(20, "c"))
    assert all(c.ok for c in verify_index(path))


def test_the_cli_says_one_line_when_the_disk_is_full(disk, tmp_path):
    target = disk / "sample-index"
    _fill(disk, leave=20_000)
    done = subprocess.run([sys.executable, "-m", "tessera", "index", "--corpus", str(SAMPLE), "--index", str(target)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and "it/s" not in line and "%|" not in line]
    assert lines == [lines[-1]] and lines[-1].startswith(
        f"tessera index: error: no space left on device while writing {target}: about"), done.stderr[-2000:]
    leftovers = [p.name for p in target.iterdir() if p.name != ".lock"] if target.exists() else []
    assert leftovers == []


def test_the_server_answers_507_and_keeps_serving(disk, tmp_path):
    from fastapi.testclient import TestClient

    from retriever import Index, load_encoder, read_corpus
    from server.app import create_app
    from server.state import IndexHandle

    Index.build(tmp_path / "built", read_corpus(SAMPLE), load_encoder(device="cpu"), show_progress=False)
    shutil.copytree(tmp_path / "built", disk / "served")
    handle = IndexHandle("docs", disk / "served")
    before = _listing(disk / "served")
    _fill(disk, leave=2_000)
    with TestClient(create_app({"docs": handle}, api_key="k" * 12)) as client:
        r = client.post("/indexes/docs/documents", headers={"X-API-Key": "k" * 12},
                        json={"documents": [{"id": "full-1", "text": "tidal power " * 200}]})
        assert r.status_code == 507 and r.json()["detail"].startswith("no space left on device while writing")
        assert client.post("/search", json={"query": "solar panels", "k": 2}).status_code == 200
    assert _listing(disk / "served") == before
