"""Index directory: round trip, inverted lists, version and damage checks, crash safety."""

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

import indexes.files as files_module
from indexes.build import build_index
from indexes.files import writer_lock
from indexes.store import FORMAT_VERSION, IndexFormatError, IndexStore, delete_documents
from conftest import synthetic_batch, synthetic_docs, stored

ROOT = Path(__file__).resolve().parents[1]


def make_index(path, n_docs=40, seed=0, recipe="res2", prefix="d"):
    batch = synthetic_batch(n_docs=n_docs, seed=seed)
    build_index(path, batch, synthetic_docs(n_docs, prefix), recipe=recipe, info={"encoder": {"name": "t"}},
                vocab_size=500, stopword_ids=np.array([1, 2]))
    return batch


def test_round_trip_and_inverted_lists(tmp_path):
    batch = make_index(tmp_path, recipe="fp16")
    store = IndexStore.open(tmp_path)
    assert store.manifest["version"] == FORMAT_VERSION and store.manifest["recipe"] == "fp16"
    seg = store.segments[0]
    assert isinstance(seg.codes, np.memmap)
    assert store.n_docs == 40 and store.document(3)["metadata"] == {"n": 3}
    np.testing.assert_array_equal(np.diff(seg.doc_offsets), batch.lengths)
    np.testing.assert_array_equal(seg.member_token_ids, batch.token_ids.astype(np.uint16))
    decoded = store.codec.decompress(*stored(seg)).numpy()
    assert np.abs(decoded - batch.vectors.astype(np.float32)).max() < 2e-3
    # Each centroid's list holds exactly the vectors coded to it, in increasing order.
    offsets, ids = np.asarray(seg.ivf_offsets), np.asarray(seg.ivf_vector_ids)
    assert offsets[-1] == len(seg.codes) and sorted(ids.tolist()) == list(range(len(seg.codes)))
    for c in range(store.codec.n_centroids):
        members = ids[offsets[c]:offsets[c + 1]]
        assert (seg.vector_codes(members.astype(np.int64)) == c).all() and (np.diff(members.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(seg.doc_of_vector, np.repeat(np.arange(40), batch.lengths))


def test_other_format_version_is_refused(tmp_path):
    make_index(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] = FORMAT_VERSION + 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version"):
        IndexStore.open(tmp_path)


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexFormatError, match="no Tessera index"):
        IndexStore.open(tmp_path)


def _segment(path: Path) -> Path:
    return next(p for p in path.iterdir() if p.name.startswith("seg-"))


@pytest.mark.parametrize("fname", ["residuals.npy", "codes.npy", "documents.jsonl", "ivf_vector_ids.npy"])
def test_flipped_byte_is_detected(tmp_path, fname):
    make_index(tmp_path)
    target = _segment(tmp_path) / fname
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="checksum mismatch"):
        IndexStore.open(tmp_path)


def test_corrupt_codec_and_truncation_are_detected(tmp_path):
    make_index(tmp_path)
    codec = next(p for p in tmp_path.iterdir() if p.name.startswith("codec-"))
    (codec / "centroids.npy").write_bytes((codec / "centroids.npy").read_bytes()[:-4])
    with pytest.raises(IndexFormatError, match="truncated"):
        IndexStore.open(tmp_path, verify=False)


def test_failed_rebuild_keeps_the_old_index(tmp_path, monkeypatch):
    make_index(tmp_path, seed=1, prefix="old")
    before = IndexStore.open(tmp_path)
    calls = {"n": 0}
    real = files_module.write_file

    def failing(path, write):
        calls["n"] += 1
        if calls["n"] == 6:  # part-way through the new index's files
            raise OSError("disk full (simulated)")
        return real(path, write)

    monkeypatch.setattr(files_module, "write_file", failing)
    with pytest.raises(OSError, match="disk full"):
        make_index(tmp_path, seed=2, prefix="new")
    monkeypatch.undo()
    after = IndexStore.open(tmp_path)
    assert list(after.position_of) == list(before.position_of)
    np.testing.assert_array_equal(after.segments[0].residuals, before.segments[0].residuals)
    # The next successful write clears the debris of the failed one.
    make_index(tmp_path, seed=3, prefix="next")
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")
    assert len(names) == 3 and not any(n.endswith(".tmp") for n in names)


def test_second_writer_is_refused(tmp_path):
    make_index(tmp_path)
    with writer_lock(tmp_path):
        with pytest.raises(RuntimeError, match="another process is writing"):
            delete_documents(tmp_path, ["d1"])


KILL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    sys.path.insert(0, sys.argv[1] + "/tests")
    from conftest import synthetic_batch, synthetic_docs
    from indexes.build import add_to_index, build_index, compact_index
    from indexes.store import delete_documents
    path, action = sys.argv[2], sys.argv[3]
    if action == "prepare":
        build_index(path, synthetic_batch(60, dim=64, seed=0), synthetic_docs(60, "a"), recipe="res2",
                    info={"encoder": {}}, vocab_size=500)
        delete_documents(path, ["a3", "a7"])
    elif action == "add":
        print("go", flush=True)
        add_to_index(path, synthetic_batch(6000, dim=64, seed=1, min_len=20, max_len=60), synthetic_docs(6000, "b"))
    elif action == "compact":
        add_to_index(path, synthetic_batch(3000, dim=64, seed=1, min_len=20, max_len=60), synthetic_docs(3000, "b"))
        delete_documents(path, ["b5"])
        print("go", flush=True)
        compact_index(path, retrain=True)
""")


def _run_and_kill(tmp_path, action, delay):
    script = tmp_path / "writer.py"
    script.write_text(KILL_SCRIPT)
    index = tmp_path / "idx"
    subprocess.run([sys.executable, str(script), str(ROOT), str(index), "prepare"], check=True)
    proc = subprocess.Popen([sys.executable, str(script), str(ROOT), str(index), action], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"go"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return IndexStore.open(index)


OLD = {f"a{i}" for i in range(60)} - {"a3", "a7"}


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5])
def test_sigkill_during_add_leaves_old_or_new(tmp_path, delay):
    store = _run_and_kill(tmp_path, "add", delay)
    assert set(store.position_of) in (OLD, OLD | {f"b{i}" for i in range(6000)})


@pytest.mark.parametrize("delay", [0.0, 0.5, 1.5])
def test_sigkill_during_compact_leaves_old_or_new(tmp_path, delay):
    store = _run_and_kill(tmp_path, "compact", delay)
    assert set(store.position_of) == OLD | {f"b{i}" for i in range(3000)} - {"b5"}
    assert len(store.segments) in (1, 2)
