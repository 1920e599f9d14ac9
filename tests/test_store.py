"""The exact token store: round trip, version and damage checks, atomic replacement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import indexes.store as store_module
from indexes.store import FORMAT_VERSION, IndexFormatError, TokenStore, write_store

ROOT = Path(__file__).resolve().parents[1]


def collection(n_docs: int = 6, dim: int = 8, seed: int = 0, prefix: str = "d"):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=n_docs)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    vectors = rng.standard_normal((offsets[-1], dim)).astype(np.float16)
    token_ids = rng.integers(0, 1000, size=offsets[-1]).astype(np.int32)
    docs = [{"id": f"{prefix}{i}", "title": f"title {i}", "text": f"text {i}", "metadata": {"n": i}}
            for i in range(n_docs)]
    return vectors, token_ids, offsets, docs


def test_round_trip(tmp_path):
    vectors, token_ids, offsets, docs = collection()
    write_store(tmp_path / "idx", vectors, token_ids, offsets, docs, encoder={"name": "x"})
    store = TokenStore.open(tmp_path / "idx")
    assert isinstance(store.vectors, np.memmap)
    np.testing.assert_array_equal(store.vectors, vectors)
    np.testing.assert_array_equal(store.token_ids, token_ids)
    np.testing.assert_array_equal(store.offsets, offsets)
    assert store.doc_ids == [d["id"] for d in docs]
    assert store.documents[2]["metadata"] == {"n": 2}
    assert store.manifest["version"] == FORMAT_VERSION


def test_other_format_version_is_refused(tmp_path):
    write_store(tmp_path, *collection(), encoder={})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] = FORMAT_VERSION + 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version"):
        TokenStore.open(tmp_path)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexFormatError, match="no Tessera index"):
        TokenStore.open(tmp_path)


def _segment(path: Path) -> Path:
    return next(p for p in path.iterdir() if p.name.startswith("seg-"))


def test_flipped_byte_is_detected(tmp_path):
    write_store(tmp_path, *collection(), encoder={})
    target = _segment(tmp_path) / "vectors.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        TokenStore.open(tmp_path)


def test_truncated_file_is_detected(tmp_path):
    write_store(tmp_path, *collection(), encoder={})
    target = _segment(tmp_path) / "doc_offsets.npy"
    target.write_bytes(target.read_bytes()[:-8])
    with pytest.raises(IndexFormatError, match="truncated"):
        TokenStore.open(tmp_path, verify=False)


def test_bad_arrays_are_refused(tmp_path):
    vectors, token_ids, offsets, docs = collection()
    with pytest.raises(ValueError, match="offsets"):
        write_store(tmp_path, vectors, token_ids, offsets[:-1], docs, encoder={})
    docs[1]["id"] = docs[0]["id"]
    with pytest.raises(ValueError, match="unique"):
        write_store(tmp_path, vectors, token_ids, offsets, docs, encoder={})
    assert not (tmp_path / "manifest.json").exists()


def test_failed_rebuild_keeps_the_old_index(tmp_path, monkeypatch):
    old = collection(seed=1, prefix="old")
    write_store(tmp_path, *old, encoder={})
    calls = {"n": 0}
    real = store_module._write_file

    def failing(path, write):
        calls["n"] += 1
        if calls["n"] == 3:  # part-way through the new segment's files
            raise OSError("disk full (simulated)")
        return real(path, write)

    monkeypatch.setattr(store_module, "_write_file", failing)
    with pytest.raises(OSError, match="disk full"):
        write_store(tmp_path, *collection(seed=2, prefix="new"), encoder={})
    monkeypatch.undo()
    store = TokenStore.open(tmp_path)
    assert store.doc_ids == [d["id"] for d in old[3]]
    np.testing.assert_array_equal(store.vectors, old[0])
    # The next successful write clears the debris of the failed one.
    write_store(tmp_path, *collection(seed=3, prefix="next"), encoder={})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("seg-")] == \
        [TokenStore.open(tmp_path).manifest["segments"][0]["name"]]


KILL_SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    from indexes.store import write_store
    n = int(sys.argv[2])
    rng = np.random.default_rng(n)
    vectors = rng.standard_normal((n * 50, 64)).astype(np.float16)
    offsets = np.arange(0, n * 50 + 1, 50, dtype=np.int64)
    docs = [{"id": f"v{n}-{i}"} for i in range(n)]
    print("writing", flush=True)
    write_store(sys.argv[1], vectors, np.zeros(n * 50, np.int32), offsets, docs, encoder={})
""")


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_sigkill_during_rebuild_leaves_old_or_new(tmp_path, delay):
    """A writer killed at an arbitrary moment: the index opens and is wholly old or wholly new."""
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    index = tmp_path / "idx"
    subprocess.run([sys.executable, str(script), str(index), "3"], check=True, env=env)
    proc = subprocess.Popen([sys.executable, str(script), str(index), "20000"], env=env,
                            stdout=subprocess.PIPE)
    proc.stdout.readline()
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = TokenStore.open(index)
    assert store.doc_ids in (["v3-0", "v3-1", "v3-2"], [f"v20000-{i}" for i in range(20000)])
