"""Index directory: round trip, inverted lists, version and damage checks, crash safety."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import indexes.files as files_module
from indexes.builder.pipeline import build_index
from indexes.files import writer_lock
from indexes.storage.store import FORMAT_VERSION, IndexFormatError, IndexStore
from indexes.storage import writes
from indexes.files import IndexBusyError
from indexes.storage.writes import delete_documents
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
    # The next successful write after the grace period clears the debris of the failed one.
    monkeypatch.setattr(writes, "GRACE_SECONDS", 0.0)
    make_index(tmp_path, seed=3, prefix="next")
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")
    assert len(names) == 3 and not any(n.endswith(".tmp") for n in names)


def test_second_writer_is_refused(tmp_path):
    make_index(tmp_path)
    with writer_lock(tmp_path):
        with pytest.raises(IndexBusyError, match="another writer holds"):
            delete_documents(tmp_path, ["d1"], lock_timeout=0.1)


# Crash safety: tests/test_crash_points.py kills every write at every named crash point.


def test_a_build_refuses_a_folder_of_other_files_and_never_deletes_them(tmp_path):
    folder = tmp_path / "photos"
    (folder / "seg-photos").mkdir(parents=True)
    (folder / "seg-photos" / "a.jpg").write_bytes(b"jpeg")
    (folder / "notes.tmp").write_text("mine")
    with pytest.raises(IndexFormatError, match="not a Tessera index"):
        make_index(folder)
    assert not (folder / "manifest.json").exists()
    batch = synthetic_batch(n_docs=10, seed=0)
    build_index(folder, batch, synthetic_docs(10), recipe="res2", info={"encoder": {}}, vocab_size=500, force=True)
    build_index(folder, batch, synthetic_docs(10, "x"), recipe="res2", info={"encoder": {}}, vocab_size=500)
    delete_documents(folder, ["x1"])
    assert (folder / "seg-photos" / "a.jpg").read_bytes() == b"jpeg" and (folder / "notes.tmp").read_text() == "mine"


def test_generations_never_go_back_and_a_stale_compaction_is_refused(tmp_path):
    from indexes.builder.pipeline import compact_index

    make_index(tmp_path)
    delete_documents(tmp_path, ["d1"])
    delete_documents(tmp_path, ["d2"])
    generation = IndexStore.open(tmp_path).manifest["generation"]
    stale = IndexStore.open(tmp_path).manifest["generation"]
    make_index(tmp_path, seed=5, prefix="r")                   # a rebuild from another writer
    assert IndexStore.open(tmp_path).manifest["generation"] == generation + 1
    store = IndexStore.open(tmp_path)
    with pytest.raises(RuntimeError, match="changed while compacting"):
        writes.rewrite_index(tmp_path, None, {}, store.segments[0], [], {}, expected_generation=stale)
    compact_index(tmp_path)
    assert sorted(IndexStore.open(tmp_path).position_of) == sorted(f"r{i}" for i in range(40))


def test_retired_files_stay_for_readers_of_the_previous_manifest(tmp_path, monkeypatch):
    make_index(tmp_path)
    old = json.loads((tmp_path / "manifest.json").read_text())
    make_index(tmp_path, seed=2, prefix="n")            # replaces codec and segment
    # A reader that read the old manifest just before the commit can still open its files.
    for name in {old["codec"]["name"]} | {s["name"] for s in old["segments"]}:
        assert (tmp_path / name).is_dir()
    retired = {r["name"] for r in json.loads((tmp_path / "manifest.json").read_text())["retired"]}
    assert old["codec"]["name"] in retired
    monkeypatch.setattr(writes, "GRACE_SECONDS", 0.0)   # past the grace period, the next commit collects them
    delete_documents(tmp_path, ["n1"])
    assert not (tmp_path / old["codec"]["name"]).exists()


def test_codes_made_for_another_codec_are_refused(tmp_path):
    from indexes.builder.pipeline import _segment_arrays, _reduce
    from indexes.builder.recipe import Recipe

    make_index(tmp_path)
    store = IndexStore.open(tmp_path)
    batch = synthetic_batch(n_docs=3, seed=9)
    arrays = _segment_arrays(store.codec, _reduce(batch, Recipe.parse("res2"), store.idf, None, 0), batch, 500)
    name = store.manifest["codec"]["name"]
    make_index(tmp_path, seed=4, prefix="r")     # a rebuild lands between coding and appending
    with pytest.raises(ValueError, match="codec changed"):
        writes.append_segment(tmp_path, arrays, synthetic_docs(3, "late"), codec_name=name)


def test_documents_are_read_on_demand_and_old_segments_still_open(tmp_path):
    make_index(tmp_path, n_docs=30)
    store = IndexStore.open(tmp_path)
    seg = store.segments[0]
    assert isinstance(seg.documents.blob, np.memmap) and isinstance(seg.documents.hashes, np.memmap)
    assert store.position_of["d17"] == 17 and "nope" not in store.position_of and len(store.position_of) == 30
    assert store.document(17)["metadata"] == {"n": 17}
    # A damaged line is found when read, named by file and line; the rest stay readable.
    path = tmp_path / seg.entry["name"] / "documents.jsonl"
    data = bytearray(path.read_bytes())
    start = int(seg.documents.lines[5])
    data[start] = ord("#")
    path.write_bytes(bytes(data))
    damaged = IndexStore.open(tmp_path, verify=False)
    assert damaged.document(6)["id"] == "d6"
    with pytest.raises(ValueError, match=r"documents.jsonl: line 6 is damaged"):
        damaged.document(5)
    with pytest.raises(IndexFormatError, match="documents.jsonl: checksum mismatch"):
        IndexStore.open(tmp_path, verify=True)
    # A version 4 index (no table files) opens, its table built in memory.
    old = tmp_path / "v4"
    make_index(old, n_docs=12)
    manifest = json.loads((old / "manifest.json").read_text())
    manifest["version"] = 4
    for entry in manifest["segments"]:
        for name in ("doc_lines.npy", "id_hashes.npy", "id_order.npy"):
            del entry["files"][name]
            (old / entry["name"] / name).unlink()
    (old / "manifest.json").write_text(json.dumps(manifest))
    v4 = IndexStore.open(old)
    assert v4.position_of["d7"] == 7 and v4.document(7)["id"] == "d7"
