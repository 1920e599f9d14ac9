"""The exact token store: one index directory, a JSON manifest, segments of `.npy` files.

Layout and guarantees are written up in docs/index-format.md. In short:

    DIR/manifest.json              format name + version, encoder settings, live segments, checksums
    DIR/seg-<hex>/vectors.npy      (n_vectors, dim) float16, L2-normalised rows
    DIR/seg-<hex>/token_ids.npy    (n_vectors,) int32, vocabulary id behind each vector
    DIR/seg-<hex>/doc_offsets.npy  (n_docs + 1,) int64, document d owns rows [off[d], off[d+1])
    DIR/seg-<hex>/documents.jsonl  one {"id", "title", "text", "metadata"} object per document

A write never touches live files: the new segment is written under a temporary name, fsynced
and renamed; then `manifest.json` is replaced by an atomic rename. A crash at any point leaves
either the previous manifest (and its segments) or the new one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "IndexFormatError", "TokenStore", "read_manifest", "write_store"]

FORMAT_NAME = "tessera-index"
FORMAT_VERSION = 0
MANIFEST = "manifest.json"
_ARRAYS = {"vectors.npy": np.float16, "token_ids.npy": np.int32, "doc_offsets.npy": np.int64}


class IndexFormatError(ValueError):
    """An index directory that is missing, of another version, or damaged."""


# ---- small durable-write helpers ----------------------------------------------------------

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _crc32(path: Path, chunk: int = 1 << 22) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


@contextmanager
def _writer_lock(directory: Path):
    """One writer per index directory at a time (readers never lock)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise RuntimeError(f"{directory}: another process is writing this index") from e
        yield


def _write_file(path: Path, write) -> dict:
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "crc32": _crc32(path)}


# ---- writing ------------------------------------------------------------------------------

def write_store(directory: str | Path, vectors: np.ndarray, token_ids: np.ndarray, offsets: np.ndarray,
                documents: Iterable[dict], encoder: dict, extra: dict | None = None) -> dict:
    """Atomically write (or replace) the index in `directory` with one segment.

    vectors: (n_vectors, dim) float16; token_ids: (n_vectors,) int32;
    offsets: (n_docs + 1,) int64 starting at 0 and ending at n_vectors;
    documents: n_docs dicts with a unique "id" (and optional "title", "text", "metadata");
    encoder: the encoder's name and settings, stored so queries are encoded the same way.
    Returns the new manifest.
    """
    directory = Path(directory)
    vectors = np.ascontiguousarray(vectors, dtype=np.float16)
    token_ids = np.ascontiguousarray(token_ids, dtype=np.int32)
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    documents = list(documents)
    _check_arrays(vectors, token_ids, offsets, len(documents))
    ids = [str(d["id"]) for d in documents]
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise ValueError(f"document ids must be unique; {dup!r} appears more than once")

    with _writer_lock(directory):
        name = f"seg-{uuid.uuid4().hex[:12]}"
        tmp = directory / f"{name}.tmp"
        tmp.mkdir()
        files = {
            "vectors.npy": _write_file(tmp / "vectors.npy", lambda f: np.save(f, vectors, allow_pickle=False)),
            "token_ids.npy": _write_file(tmp / "token_ids.npy", lambda f: np.save(f, token_ids, allow_pickle=False)),
            "doc_offsets.npy": _write_file(tmp / "doc_offsets.npy", lambda f: np.save(f, offsets, allow_pickle=False)),
            "documents.jsonl": _write_file(tmp / "documents.jsonl", lambda f: f.writelines(
                (json.dumps({"id": str(d["id"]), "title": d.get("title", ""), "text": d.get("text", ""),
                             "metadata": d.get("metadata") or {}}, ensure_ascii=False) + "\n").encode()
                for d in documents)),
        }
        _fsync_dir(tmp)
        os.rename(tmp, directory / name)
        _fsync_dir(directory)
        manifest = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "encoder": encoder,
            "dim": int(vectors.shape[1]),
            "n_docs": len(documents),
            "n_vectors": int(vectors.shape[0]),
            "segments": [{"name": name, "n_docs": len(documents), "n_vectors": int(vectors.shape[0]),
                          "files": files}],
            **(extra or {}),
        }
        _write_file(directory / f"{MANIFEST}.tmp",
                    lambda f: f.write(json.dumps(manifest, indent=2).encode()))
        os.replace(directory / f"{MANIFEST}.tmp", directory / MANIFEST)
        _fsync_dir(directory)
        _remove_unreferenced(directory, {s["name"] for s in manifest["segments"]})
    return manifest


def _check_arrays(vectors: np.ndarray, token_ids: np.ndarray, offsets: np.ndarray, n_docs: int) -> None:
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be (n_vectors, dim), got shape {vectors.shape}")
    if token_ids.shape != (vectors.shape[0],):
        raise ValueError(f"token_ids must be ({vectors.shape[0]},), got {token_ids.shape}")
    if offsets.shape != (n_docs + 1,) or offsets[0] != 0 or offsets[-1] != vectors.shape[0]:
        raise ValueError(f"offsets must be ({n_docs + 1},) from 0 to {vectors.shape[0]}")
    if np.any(np.diff(offsets) < 1):
        raise ValueError("every document needs at least one vector")


def _remove_unreferenced(directory: Path, live: set[str]) -> None:
    """Delete segments the manifest no longer names and leftovers of interrupted writes."""
    for entry in directory.iterdir():
        if entry.name.startswith("seg-") and entry.name not in live:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)


# ---- reading ------------------------------------------------------------------------------

def read_manifest(directory: str | Path) -> dict:
    """The manifest of the index in `directory`, its format and version checked."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise IndexFormatError(f"{directory}: no Tessera index here ({MANIFEST} missing)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"{path}: damaged manifest (line {e.lineno}: {e.msg})") from e
    if manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{path}: not a Tessera index manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path}: index format version {manifest.get('version')}, "
                               f"this Tessera reads version {FORMAT_VERSION}; rebuild the index")
    return manifest


@dataclass
class TokenStore:
    """A loaded exact token store; arrays are read-only memory maps.

    vectors (n_vectors, dim) float16; token_ids (n_vectors,) int32; offsets (n_docs + 1,) int64;
    doc_ids: n_docs strings; documents: the stored dicts, in index order.
    """

    directory: Path
    manifest: dict
    vectors: np.ndarray
    token_ids: np.ndarray
    offsets: np.ndarray
    documents: list[dict]

    @property
    def doc_ids(self) -> list[str]:
        return [d["id"] for d in self.documents]

    @property
    def n_docs(self) -> int:
        return len(self.documents)

    @property
    def nbytes(self) -> int:
        """Bytes of every file of the index on disk."""
        return sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())

    @classmethod
    def open(cls, directory: str | Path, verify: bool = True) -> "TokenStore":
        """Open an index; verify=True also checks every file's CRC32 (reads each file once)."""
        directory = Path(directory)
        manifest = read_manifest(directory)
        if len(manifest["segments"]) != 1:
            raise IndexFormatError(f"{directory}: version {FORMAT_VERSION} holds exactly one segment")
        segment = manifest["segments"][0]
        folder = directory / segment["name"]
        for fname, expected in segment["files"].items():
            path = folder / fname
            if not path.is_file():
                raise IndexFormatError(f"{path}: file missing")
            if path.stat().st_size != expected["bytes"]:
                raise IndexFormatError(f"{path}: {path.stat().st_size} bytes, manifest says {expected['bytes']}"
                                       " (truncated or replaced)")
            if verify and _crc32(path) != expected["crc32"]:
                raise IndexFormatError(f"{path}: checksum mismatch (file corrupted)")
        arrays = {}
        for fname, dtype in _ARRAYS.items():
            try:
                arrays[fname] = np.load(folder / fname, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise IndexFormatError(f"{folder / fname}: unreadable array ({e})") from e
            if arrays[fname].dtype != dtype:
                raise IndexFormatError(f"{folder / fname}: dtype {arrays[fname].dtype}, expected {np.dtype(dtype)}")
        with open(folder / "documents.jsonl", encoding="utf-8") as f:
            documents = [json.loads(line) for line in f]
        vectors, offsets = arrays["vectors.npy"], arrays["doc_offsets.npy"]
        if vectors.shape != (segment["n_vectors"], manifest["dim"]) or len(documents) != segment["n_docs"] \
                or offsets.shape != (len(documents) + 1,) or arrays["token_ids.npy"].shape != (vectors.shape[0],):
            raise IndexFormatError(f"{folder}: array sizes disagree with the manifest")
        return cls(directory, manifest, vectors, arrays["token_ids.npy"], offsets, documents)
