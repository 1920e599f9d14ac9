"""Every change to an index directory: build, append, delete, rewrite (compaction).

Each change runs under the directory's writer lock (one writer across processes, from reading
the state it builds on to its commit), writes new files only, then replaces manifest.json by an
atomic rename. Generations only go up, across rebuilds too.

What a commit no longer references is *retired*, not deleted: the manifest lists it with the time,
and a later commit deletes it once GRACE_SECONDS have passed, so a reader in another process that
read the previous manifest can still open its files. A commit deletes only names that an earlier
manifest of this index listed, or leftovers of a killed writer that carry Tessera's own naming
(`seg-`/`codec-` + 12 hex digits, `tomb-` + 12 hex `.npy`, `manifest.json.tmp`) and are older
than the grace period; anything else in the folder is left alone. A build refuses a folder that
holds anything but a Tessera index unless forced. docs/index-format.md has the layout.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from indexes import faults
from indexes.codec.residual import ResidualCodec
from indexes.storage.sharded import SHARDS_FILE
from indexes.files import IndexFormatError, NoSpaceError, fsync_dir, write_file, write_npy, writer_lock
from indexes.storage.segment import SegmentArrays, write_segment
from indexes.storage.store import FORMAT_NAME, FORMAT_VERSION, MANIFEST, IndexStore, read_manifest
from indexes.storage.verify import require_intact

__all__ = ["GRACE_SECONDS", "LOCK_TIMEOUT", "check_build_target", "create_index", "append_segment",
           "delete_documents", "rewrite_index"]

GRACE_SECONDS = 60.0      # retired files outlive their last manifest this long (readers opening it)
LOCK_TIMEOUT = 60.0       # seconds a write waits for another process's write by default
_OWN_NAME = re.compile(r"^(seg|codec)-[0-9a-f]{12}(\.tmp)?$|^tomb-[0-9a-f]{12}\.npy$|^manifest\.json\.tmp$")


def _new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _names(manifest: dict) -> set[str]:
    """Every file or folder a manifest references."""
    return {manifest["codec"]["name"]} | {s["name"] for s in manifest["segments"]} | \
        {s["deleted"]["file"] for s in manifest["segments"] if s.get("deleted")}


def _needed_bytes(arrays: SegmentArrays | None, documents: list[dict], codec: ResidualCodec | None = None) -> int:
    """About what a write puts on disk: the segment's arrays, its documents, the codec."""
    total = sum(np.asarray(a).nbytes for a in arrays.files().values()) if arrays is not None else 0
    total += sum(64 + len(d.get("text") or "") + len(d.get("title") or "") for d in documents)
    if codec is not None:
        total += sum(np.asarray(a).nbytes for a in codec.arrays().values())
    return total + (1 << 16)


def _out_of_space(error: BaseException, directory: Path, needed: int) -> bool:
    if not isinstance(error, OSError):
        return False
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # numpy's writers report a short write without an errno ("N requested and M written").
    try:
        return error.errno is None and shutil.disk_usage(directory).free < needed
    except OSError:
        return False


@contextmanager
def _undo_on_failure(directory: Path, needed: int = 1 << 16):
    """Run one write (under the writer lock); if it fails, remove every file and folder it created
    that the committed manifest does not name (temporary folders, an unreferenced codec, an empty
    tombstone), then raise; a full disk is raised as NoSpaceError with one line to say."""
    before = set(os.listdir(directory))
    try:
        yield
    except BaseException as e:
        committed = _current(directory)
        keep = (_names(committed) | {r["name"] for r in committed.get("retired", [])}) if committed else set()
        for name in set(os.listdir(directory)) - before - keep:
            if _OWN_NAME.match(name):
                entry = directory / name
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        if _out_of_space(e, directory, needed):
            free = shutil.disk_usage(directory).free
            raise NoSpaceError(errno.ENOSPC, f"no space left on device while writing {directory}: about "
                               f"{needed / 2**20:.1f} MiB needed, {free / 2**20:.1f} MiB free "
                               "(the index is unchanged; free some space and try again)") from e
        raise


def check_build_target(directory: str | Path, force: bool = False) -> None:
    """Refuse to build into a folder holding anything but a Tessera index (force: build anyway;
    the user's files are never deleted either way)."""
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise IndexFormatError(f"{directory}: exists and is not a folder")
    if (directory / MANIFEST).is_file() or (directory / SHARDS_FILE).is_file() or force:
        return
    foreign = sorted(e.name for e in directory.iterdir() if e.name != ".lock")
    if foreign:
        raise IndexFormatError(f"{directory}: holds files that are not a Tessera index (e.g. {foreign[0]!r}); "
                               "build into a new or empty folder (or force, which keeps those files)")


def _write_codec(directory: Path, codec: ResidualCodec, extras: dict[str, np.ndarray]) -> dict:
    name = _new_name("codec")
    tmp = directory / f"{name}.tmp"
    tmp.mkdir()
    arrays = {**codec.arrays(), **{f"{k}.npy": v for k, v in extras.items() if v is not None}}
    files = {fname: write_npy(tmp / fname, array) for fname, array in arrays.items()}
    faults.point("codec:written")
    fsync_dir(tmp)
    os.rename(tmp, directory / name)
    faults.point("codec:renamed")
    fsync_dir(directory)
    return {"name": name, "nbits": codec.nbits, "n_centroids": codec.n_centroids, "dim": codec.dim,
            "files": files}


def _commit(directory: Path, manifest: dict, previous: dict | None) -> dict:
    """Atomically make `manifest` the live one (previous: the manifest it replaces, read under the
    lock), then delete what has been retired for longer than the grace period."""
    now = time.time()
    manifest["generation"] = max(int(manifest.get("generation", 0)), int((previous or {}).get("generation", 0))) + 1
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    live = _names(manifest)
    retired = [r for r in (previous or {}).get("retired", []) if r["name"] not in live]
    if previous is not None:
        known = {r["name"] for r in retired}
        retired += [{"name": n, "since": now} for n in sorted(_names(previous) - live - known)]
    expired = {r["name"] for r in retired if now - r["since"] >= GRACE_SECONDS}
    manifest["retired"] = [r for r in retired if r["name"] not in expired]
    faults.point("commit:before-manifest")
    write_file(directory / f"{MANIFEST}.tmp", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    faults.point("commit:manifest-written")
    os.replace(directory / f"{MANIFEST}.tmp", directory / MANIFEST)
    faults.point("commit:renamed")
    fsync_dir(directory)
    faults.point("commit:durable")
    keep = live | {r["name"] for r in manifest["retired"]}
    for entry in directory.iterdir():
        name = entry.name
        if name in keep:
            continue
        leftover = _OWN_NAME.match(name) and now - entry.stat().st_mtime >= GRACE_SECONDS
        if name in expired or leftover:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            faults.point("cleanup:removed")
    return manifest


def _current(directory: Path) -> dict | None:
    """The manifest now on disk, or None where there is none (a damaged one counts as none)."""
    try:
        return read_manifest(directory)
    except IndexFormatError:
        return None


def create_index(directory: str | Path, codec: ResidualCodec, extras: dict[str, np.ndarray],
                 arrays: SegmentArrays, documents: list[dict], info: dict, *, force: bool = False,
                 lock_timeout: float = LOCK_TIMEOUT) -> dict:
    """Write a new index (replacing any index in `directory` atomically) with one segment.

    info: manifest fields describing the index (encoder, recipe, dims, build statistics).
    """
    directory = Path(directory)
    _check_unique([d["id"] for d in documents])
    check_build_target(directory, force)
    with writer_lock(directory, lock_timeout), _undo_on_failure(directory, _needed_bytes(arrays, documents, codec)):
        previous = _current(directory)
        codec_entry = _write_codec(directory, codec, extras)
        segment = write_segment(directory, _new_name("seg"), arrays, documents)
        faults.point("segment:written")
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    **info, "codec": codec_entry, "segments": [segment]}
        return _commit(directory, manifest, previous)


def append_segment(directory: str | Path, arrays: SegmentArrays | Callable[[IndexStore], SegmentArrays],
                   documents: list[dict], *, upsert: bool = False, info: dict | None = None,
                   codec_name: str | None = None, lock_timeout: float = LOCK_TIMEOUT) -> dict:
    """Add documents as a new segment coded with the existing codec.

    arrays: the segment's arrays, or a function computing them from the store as read under the
    lock (so no other writer can change the codec between coding and commit). codec_name: the
    codec precomputed arrays were coded with; refused if the index's codec is another.
    An id already live in the index is an error, unless upsert=True: then the old version is
    deleted in the same atomic commit that adds the new one.
    """
    directory = Path(directory)
    ids = [str(d["id"]) for d in documents]
    _check_unique(ids)
    with writer_lock(directory, lock_timeout), _undo_on_failure(directory, _needed_bytes(
            None if callable(arrays) else arrays, documents)):
        store = IndexStore.open(directory, verify=False)
        require_intact(directory, store.manifest, "add documents", segments=False)   # codes with the codec
        if codec_name is not None and codec_name != store.manifest["codec"]["name"]:
            raise ValueError(f"{directory}: the index's codec changed (rebuilt or retrained) since these "
                             "documents were coded; code them again")
        clash = [i for i in ids if i in store.position_of]
        if clash and not upsert:
            raise ValueError(f"{len(clash)} document id(s) already in the index, e.g. {clash[0]!r}; "
                             "delete them first or add with upsert")
        if callable(arrays):
            arrays = arrays(store)
        manifest = dict(store.manifest)
        manifest["segments"] = _with_deletions(directory, store, [store.position_of[i] for i in clash])
        manifest["segments"].append(write_segment(directory, _new_name("seg"), arrays, documents))
        faults.point("segment:written")
        manifest.update(info or {})
        return _commit(directory, manifest, store.manifest)


def delete_documents(directory: str | Path, doc_ids: list[str], missing_ok: bool = False, *,
                     lock_timeout: float = LOCK_TIMEOUT) -> int:
    """Mark documents deleted (tombstones); returns how many were live."""
    directory = Path(directory)
    with writer_lock(directory, lock_timeout), _undo_on_failure(directory):
        store = IndexStore.open(directory, verify=False)
        require_intact(directory, store.manifest, "delete documents", segments=False)   # rewrites tombstones
        missing = [i for i in doc_ids if str(i) not in store.position_of]
        if missing and not missing_ok:
            raise KeyError(f"{len(missing)} document id(s) not in the index, e.g. {missing[0]!r}")
        positions = sorted({store.position_of[str(i)] for i in doc_ids if str(i) in store.position_of})
        if positions:
            manifest = dict(store.manifest)
            manifest["segments"] = _with_deletions(directory, store, positions)
            _commit(directory, manifest, store.manifest)
        return len(positions)


def rewrite_index(directory: str | Path, codec: ResidualCodec | None, extras: dict[str, np.ndarray],
                  arrays: SegmentArrays, documents: list[dict], info: dict, expected_generation: int, *,
                  sources: list[tuple[str, int]] | None = None, lock_timeout: float = LOCK_TIMEOUT) -> dict:
    """Replace segments by one (compaction), with a new codec or the current one.

    expected_generation: the manifest generation the caller read. sources: for each document of
    the new segment, the (segment name, position in it) it was copied from. When another writer
    committed since, a compaction with the current codec still commits: the new segment replaces
    the segments it was made from, documents deleted or replaced since are tombstoned in it, and
    segments added since stay beside it; so compaction cannot starve under steady writes. A new
    codec (retrain), or a rebuild or other compaction since, refuses instead: nothing is lost.
    """
    directory = Path(directory)
    with writer_lock(directory, lock_timeout), _undo_on_failure(directory, _needed_bytes(arrays, documents, codec)):
        manifest = read_manifest(directory)
        previous = dict(manifest)
        since = _changes_since(directory, manifest, expected_generation, codec, sources)
        if codec is not None:
            manifest["codec"] = _write_codec(directory, codec, extras)
        entry = write_segment(directory, _new_name("seg"), arrays, documents)
        faults.point("segment:written")
        if since is None:
            manifest["segments"] = [entry]
        else:
            dead, newer = since
            if dead:
                name = f"{_new_name('tomb')}.npy"
                entry["deleted"] = {"file": name, "count": len(dead),
                                    **write_npy(directory / name, np.array(dead, dtype=np.int32))}
                faults.point("tombstone:written")
            manifest["segments"] = [entry] + newer
        manifest["version"] = FORMAT_VERSION   # the segment written is in the current version
        manifest.update(info)
        return _commit(directory, manifest, previous)


def _changes_since(directory: Path, manifest: dict, expected_generation: int, codec, sources):
    """None when nothing was committed since the compaction read the index; else (positions of
    the new segment to tombstone, the manifest entries of segments added since)."""
    if manifest.get("generation") == expected_generation:
        return None
    if codec is not None or sources is None:
        raise RuntimeError(f"{directory}: the index changed while compacting; run compact again")
    store = IndexStore.open(directory, verify=False)
    names = [s["name"] for s in manifest["segments"]]
    copied = {name for name, _ in sources}
    if not copied <= set(names):
        raise RuntimeError(f"{directory}: the index was rebuilt or compacted meanwhile; run compact again")
    alive = {name: store.alive[int(store.segment_bases[i]):int(store.segment_bases[i + 1])]
             for i, name in enumerate(names)}
    dead = [i for i, (name, local) in enumerate(sources) if not alive[name][local]]
    return dead, [dict(e) for e in manifest["segments"] if e["name"] not in copied]


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
        faults.point("tombstone:written")
    fsync_dir(directory)
    return entries


def _check_unique(ids: list[str]) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            raise ValueError(f"document ids must be unique; {i!r} appears more than once")
        seen.add(i)
