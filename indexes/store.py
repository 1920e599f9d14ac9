"""An index directory: manifest, shared codec, immutable segments, tombstones.

    DIR/manifest.json       what is live (format, version, encoder, recipe, codec, segments)
    DIR/codec-<hex>/        centroids, residual buckets, optional projection, idf, stopword ids
    DIR/seg-<hex>/          one segment per build, add or compaction (indexes/segment.py)
    DIR/tomb-<hex>.npy      (n_deleted,) int32 sorted local indices of a segment's deleted documents

Every change writes new files only, then replaces manifest.json by an atomic rename, then
deletes what the new manifest no longer names. A process killed at any point leaves the old
or the new state. docs/index-format.md is the reference for all of it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .codec import ResidualCodec
from .maxsim import doc_blocks
from .files import IndexFormatError, check_file, fsync_dir, read_json, write_file, write_npy, writer_lock
from .lexical import bm25_search
from .segment import Segment, SegmentArrays, write_segment

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "IndexStore", "read_manifest", "create_index", "append_segment",
           "delete_documents", "rewrite_index"]

FORMAT_NAME = "tessera-index"
FORMAT_VERSION = 4
# v1 segments lack vocabulary lists, v1-2 lexical lists, v1-3 store vectors in vector (not list)
# order; all are read, and compaction rewrites them in the current version.
READABLE_VERSIONS = (1, 2, 3, 4)
MANIFEST = "manifest.json"


def _new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read_manifest(directory: str | Path) -> dict:
    """The manifest of the index in `directory`, its format and version checked."""
    path = Path(directory) / MANIFEST
    manifest = read_json(path, f"{directory}: no Tessera index here ({MANIFEST} missing)")
    if manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not a Tessera index manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise IndexFormatError(f"{path}: index format version {manifest.get('version')}, "
                               f"this Tessera reads versions {READABLE_VERSIONS}; rebuild the index")
    return manifest


@dataclass
class IndexStore:
    """A snapshot of an index directory opened for reading.

    Documents have global positions: segments in manifest order, each document in file order.
    Deleted documents keep their position; `alive` (n_positions,) bool marks the live ones.
    """

    directory: Path
    manifest: dict
    codec: ResidualCodec
    segments: list[Segment]
    alive: np.ndarray
    idf: np.ndarray | None
    stopword_ids: np.ndarray | None

    @classmethod
    def open(cls, directory: str | Path, verify: bool = True) -> "IndexStore":
        """Open the index; verify=True also checks each file's CRC32 (reads every file once)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        codec_entry = manifest["codec"]
        codec_dir = directory / codec_entry["name"]
        for fname, expected in codec_entry["files"].items():
            check_file(codec_dir / fname, expected, verify)
        codec = ResidualCodec.load(codec_dir, codec_entry["nbits"])
        extras = {n: np.load(codec_dir / f"{n}.npy", allow_pickle=False)
                  for n in ("idf", "stopword_ids") if f"{n}.npy" in codec_entry["files"]}
        segments, alive = [], []
        for entry in manifest["segments"]:
            segment = Segment.open(directory, entry, verify)
            keep = np.ones(segment.n_docs, dtype=bool)
            if entry.get("deleted"):
                check_file(directory / entry["deleted"]["file"], entry["deleted"], verify)
                keep[np.load(directory / entry["deleted"]["file"], allow_pickle=False)] = False
            segments.append(segment)
            alive.append(keep)
        return cls(directory, manifest, codec, segments,
                   np.concatenate(alive) if alive else np.zeros(0, bool), extras.get("idf"), extras.get("stopword_ids"))

    # ---- documents ---------------------------------------------------------------------

    @cached_property
    def segment_bases(self) -> np.ndarray:
        """(n_segments + 1,) int64 first global position of each segment, then the total."""
        return np.concatenate([[0], np.cumsum([s.n_docs for s in self.segments])]).astype(np.int64)

    @property
    def n_positions(self) -> int:
        return int(self.segment_bases[-1])

    @property
    def n_docs(self) -> int:
        """Live documents."""
        return int(self.alive.sum())

    def locate(self, position: int) -> tuple[Segment, int]:
        """The segment holding a global position, and the position within it."""
        s = int(np.searchsorted(self.segment_bases, position, side="right")) - 1
        return self.segments[s], int(position - self.segment_bases[s])

    def document(self, position: int) -> dict:
        segment, local = self.locate(position)
        return segment.documents[local]

    @cached_property
    def position_of(self) -> dict[str, int]:
        """Live document id -> global position."""
        out = {}
        for s, segment in enumerate(self.segments):
            base = int(self.segment_bases[s])
            for local, doc in enumerate(segment.documents):
                if self.alive[base + local]:
                    out[doc["id"]] = base + local
        return out

    def blocks(self, block_vectors: int = 16384):
        """Block source for `maxsim.search_blocks`: decompressed vectors of consecutive documents."""
        def generate(device):
            for s, segment in enumerate(self.segments):
                base = int(self.segment_bases[s])
                offsets = np.asarray(segment.doc_offsets)
                lengths = np.diff(offsets)
                for first, end in doc_blocks(offsets, block_vectors):
                    rows = slice(int(offsets[first]), int(offsets[end]))
                    vectors = self.codec.decompress(segment.vector_codes(rows), segment.vector_residuals(rows),
                                                    device)
                    yield base + first, torch.as_tensor(lengths[first:end], device=device), vectors
        return generate

    def bm25(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live documents by BM25 over their words: (scores (c,) float32, positions (c,)
        int64), best first, c <= k (indexes/lexical.py)."""
        old = next((s.folder for s in self.segments if not s.has_lexical), None)
        if old is not None:
            raise IndexFormatError(f"{old}: no lexical lists (written by index format version < 3); "
                                   "compact the index (Index.compact) or rebuild it to add them")
        return bm25_search(self.segments, self.segment_bases, self.alive, query, k)

    def nbytes(self) -> dict[str, int]:
        """Bytes on disk: 'search' (everything search reads) and 'documents' (stored texts)."""
        total = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        docs = sum((self.directory / s.entry["name"] / "documents.jsonl").stat().st_size for s in self.segments)
        return {"search": total - docs, "documents": docs, "total": total}


# ---- writing ----------------------------------------------------------------------------

def _write_codec(directory: Path, codec: ResidualCodec, extras: dict[str, np.ndarray]) -> dict:
    name = _new_name("codec")
    tmp = directory / f"{name}.tmp"
    tmp.mkdir()
    arrays = {**codec.arrays(), **{f"{k}.npy": v for k, v in extras.items() if v is not None}}
    files = {fname: write_npy(tmp / fname, array) for fname, array in arrays.items()}
    fsync_dir(tmp)
    os.rename(tmp, directory / name)
    fsync_dir(directory)
    return {"name": name, "nbits": codec.nbits, "n_centroids": codec.n_centroids, "dim": codec.dim,
            "files": files}


def _commit(directory: Path, manifest: dict) -> dict:
    """Atomically make `manifest` the live one, then delete what it no longer references."""
    manifest["generation"] = int(manifest.get("generation", 0)) + 1
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_file(directory / f"{MANIFEST}.tmp", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    os.replace(directory / f"{MANIFEST}.tmp", directory / MANIFEST)
    fsync_dir(directory)
    live = {manifest["codec"]["name"]} | {s["name"] for s in manifest["segments"]} | \
        {s["deleted"]["file"] for s in manifest["segments"] if s.get("deleted")}
    for entry in directory.iterdir():
        if entry.name.startswith(("seg-", "codec-", "tomb-")) and entry.name not in live or entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
    return manifest


def create_index(directory: str | Path, codec: ResidualCodec, extras: dict[str, np.ndarray],
                 arrays: SegmentArrays, documents: list[dict], info: dict) -> dict:
    """Write a new index (replacing any index in `directory` atomically) with one segment.

    info: manifest fields describing the index (encoder, recipe, dims, build statistics).
    """
    directory = Path(directory)
    _check_unique([d["id"] for d in documents])
    with writer_lock(directory):
        codec_entry = _write_codec(directory, codec, extras)
        segment = write_segment(directory, _new_name("seg"), arrays, documents)
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **info, "codec": codec_entry, "segments": [segment]}
        return _commit(directory, manifest)


def append_segment(directory: str | Path, arrays: SegmentArrays, documents: list[dict], *,
                   upsert: bool = False, info: dict | None = None) -> dict:
    """Add documents as a new segment coded with the existing codec.

    An id already live in the index is an error, unless upsert=True: then the old version is
    deleted in the same atomic commit that adds the new one.
    """
    directory = Path(directory)
    ids = [str(d["id"]) for d in documents]
    _check_unique(ids)
    with writer_lock(directory):
        store = IndexStore.open(directory, verify=False)
        clash = [i for i in ids if i in store.position_of]
        if clash and not upsert:
            raise ValueError(f"{len(clash)} document id(s) already in the index, e.g. {clash[0]!r}; "
                             "delete them first or add with upsert")
        manifest = dict(store.manifest)
        manifest["segments"] = _with_deletions(directory, store, [store.position_of[i] for i in clash])
        manifest["segments"].append(write_segment(directory, _new_name("seg"), arrays, documents))
        manifest.update(info or {})
        return _commit(directory, manifest)


def delete_documents(directory: str | Path, doc_ids: list[str], missing_ok: bool = False) -> int:
    """Mark documents deleted (tombstones); returns how many were live."""
    directory = Path(directory)
    with writer_lock(directory):
        store = IndexStore.open(directory, verify=False)
        missing = [i for i in doc_ids if str(i) not in store.position_of]
        if missing and not missing_ok:
            raise KeyError(f"{len(missing)} document id(s) not in the index, e.g. {missing[0]!r}")
        positions = sorted({store.position_of[str(i)] for i in doc_ids if str(i) in store.position_of})
        if positions:
            manifest = dict(store.manifest)
            manifest["segments"] = _with_deletions(directory, store, positions)
            _commit(directory, manifest)
        return len(positions)


def rewrite_index(directory: str | Path, codec: ResidualCodec | None, extras: dict[str, np.ndarray],
                  arrays: SegmentArrays, documents: list[dict], info: dict, expected_generation: int) -> dict:
    """Replace all segments by one (compaction), with a new codec or the current one.

    expected_generation: the manifest generation the caller read; if another writer committed
    since, the rewrite would lose its change, so it is refused.
    """
    directory = Path(directory)
    with writer_lock(directory):
        manifest = read_manifest(directory)
        if manifest.get("generation") != expected_generation:
            raise RuntimeError(f"{directory}: the index changed while compacting; run compact again")
        if codec is not None:
            manifest["codec"] = _write_codec(directory, codec, extras)
        manifest["segments"] = [write_segment(directory, _new_name("seg"), arrays, documents)]
        manifest["version"] = FORMAT_VERSION   # the one segment left is written in the current version
        manifest.update(info)
        return _commit(directory, manifest)


def _with_deletions(directory: Path, store: IndexStore, positions: list[int]) -> list[dict]:
    """Segment entries with `positions` added to their tombstones (new tombstone files)."""
    entries = [dict(e) for e in store.manifest["segments"]]
    by_segment: dict[int, list[int]] = {}
    for p in positions:
        s = int(np.searchsorted(store.segment_bases, p, side="right")) - 1
        by_segment.setdefault(s, []).append(p - int(store.segment_bases[s]))
    for s, local in by_segment.items():
        base = int(store.segment_bases[s])
        dead = np.flatnonzero(~store.alive[base:base + store.segments[s].n_docs]).tolist()
        tomb = np.array(sorted(set(dead) | set(local)), dtype=np.int32)
        name = f"{_new_name('tomb')}.npy"
        entries[s]["deleted"] = {"file": name, "count": len(tomb), **write_npy(directory / name, tomb)}
    fsync_dir(directory)
    return entries


def _check_unique(ids: list[str]) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"document ids must be unique; {i!r} appears more than once")
        seen.add(i)
