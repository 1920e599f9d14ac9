"""Durable file writing for index directories: fsync, checksums, atomic rename, writer lock."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["IndexFormatError", "IndexBusyError", "fsync_dir", "crc32", "write_file", "write_npy", "writer_lock", "check_file"]


class IndexFormatError(ValueError):
    """An index directory that is missing, of another version, or damaged."""


def read_json(path: Path, missing: str) -> dict:
    """A JSON object from `path`; IndexFormatError naming the file (and line) if absent or damaged."""
    if not path.is_file():
        raise IndexFormatError(missing)
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as e:
        raise IndexFormatError(f"{path}: damaged (line {e.lineno}: {e.msg})") from e
    except UnicodeDecodeError as e:
        raise IndexFormatError(f"{path}: damaged (byte {e.start} is not UTF-8)") from e
    if not isinstance(value, dict):
        raise IndexFormatError(f"{path}: not a JSON object")
    return value


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def crc32(path: Path, chunk: int = 1 << 22) -> int:
    value = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            value = zlib.crc32(block, value)
    return value


def write_file(path: Path, write) -> dict:
    """Write a file through `write(handle)`, fsync it; return its {"bytes", "crc32"}."""
    with open(path, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    return {"bytes": path.stat().st_size, "crc32": crc32(path)}


def write_npy(path: Path, array: np.ndarray) -> dict:
    return write_file(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


_HEADER_LOCK = threading.Lock()


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """np.load of an index array; a damaged header (any error numpy raises reading it) is an
    IndexFormatError naming the file.

    One thread at a time: numpy parses .npy headers with ast.literal_eval, whose AST constructor
    CPython 3.11 (before 3.11.8) does not make thread-safe ("AST constructor recursion depth
    mismatch" when two threads open arrays at once: a reader and a compaction, two shards)."""
    try:
        with _HEADER_LOCK:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, TokenError, ... on bad headers
        raise IndexFormatError(f"{path}: unreadable array ({type(e).__name__}: {e})") from None


def file_problem(path: Path, expected: dict, verify: bool = True) -> str | None:
    """What is wrong with `path` against its manifest entry {"bytes", "crc32"}: missing, of the
    wrong size, or (verify) corrupted; None when nothing is."""
    if not path.is_file():
        return "file missing"
    size = path.stat().st_size
    if size != expected["bytes"]:
        return f"{size} bytes, manifest says {expected['bytes']} (truncated or replaced)"
    if verify and crc32(path) != expected["crc32"]:
        return "checksum mismatch (file corrupted)"
    return None


def check_file(path: Path, expected: dict, verify: bool) -> None:
    """Raise IndexFormatError if `path` is missing, of the wrong size, or (verify) corrupted."""
    problem = file_problem(path, expected, verify)
    if problem:
        raise IndexFormatError(f"{path}: {problem}")


class NoSpaceError(OSError):
    """The disk filled up during a write; the write removed what it had created, the index is as
    it was before. The message is one line: the folder, the bytes the write needed, the bytes free."""

    def __str__(self) -> str:
        return self.strerror


class IndexBusyError(RuntimeError):
    """Another writer (thread or process) held the index's writer lock for the whole wait."""


@contextmanager
def writer_lock(directory: Path, timeout: float = 0.0):
    """One writer per index directory at a time (readers never lock); waits up to `timeout`
    seconds for another writer, then raises IndexBusyError."""
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    with open(directory / ".lock", "w") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as e:
                if time.monotonic() >= deadline:
                    raise IndexBusyError(f"{directory}: another writer holds the index (waited {timeout:g} s); "
                                         "try again later") from e
                time.sleep(0.02)
        yield
