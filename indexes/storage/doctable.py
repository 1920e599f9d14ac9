"""A segment's stored documents, memory-mapped: no Python object per document at open.

    documents.jsonl      one JSON object per line {"id", "title", "text", "metadata"} (the data)
    doc_lines.npy        (n + 1,) int64 byte offset of each line in documents.jsonl, then its size
    id_hashes.npy        (n,) uint64 64-bit BLAKE2b of each id, sorted
    id_order.npy         (n,) int32 the document (line) of each sorted hash

`table[i]` parses line i on demand; `table.find(doc_id)` binary-searches the hash and confirms
the id on the line (two ids sharing a hash are both checked). Segments written before format
version 5 have only documents.jsonl; their table is built in memory at open, as before.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np

from indexes.files import IndexFormatError

__all__ = ["DocumentTable", "TABLE_FILES", "id_hash", "table_arrays"]

TABLE_FILES = ("doc_lines.npy", "id_hashes.npy", "id_order.npy")
_ID_PREFIX = b'{"id": "'      # every line starts so (json.dumps of {"id": ..., ...}, indexes/storage/segment.py)
_ID_HEAD = 256                # bytes read for an id before falling back to the whole line


def id_hash(doc_id: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest(), "little"))


def table_arrays(lines: list[bytes], ids: list[str]) -> dict[str, np.ndarray]:
    """The index arrays of a table whose documents.jsonl holds `lines` (each ending in newline)."""
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(line) for line in lines])
    hashes = np.array([id_hash(i) for i in ids], dtype=np.uint64)
    order = np.argsort(hashes, kind="stable").astype(np.int32)
    return {"doc_lines.npy": offsets, "id_hashes.npy": hashes[order], "id_order.npy": order}


class DocumentTable:
    """Read-only documents of one segment, by line number (see the module docstring)."""

    def __init__(self, blob: np.ndarray, lines: np.ndarray, hashes: np.ndarray, order: np.ndarray, path: Path):
        self.blob, self.lines, self.hashes, self.order, self.path = blob, lines, hashes, order, path

    @classmethod
    def open(cls, folder: Path, arrays: dict[str, np.ndarray]) -> "DocumentTable":
        """arrays: the memory-mapped TABLE_FILES (keys without .npy), or {} for a pre-v5 segment."""
        path = folder / "documents.jsonl"
        size = path.stat().st_size
        blob = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        if arrays:
            table = cls(blob, arrays["doc_lines"], arrays["id_hashes"], arrays["id_order"], path)
            if int(table.lines[-1]) != size:
                raise ValueError(f"{path}: {size} bytes, doc_lines.npy says {int(table.lines[-1])}")
            return table
        raw = path.read_bytes().splitlines(keepends=True)          # a version 1-4 segment
        built = table_arrays(raw, [json.loads(line)["id"] for line in raw])
        return cls(blob, built["doc_lines.npy"], built["id_hashes.npy"], built["id_order.npy"], path)

    def __len__(self) -> int:
        return len(self.lines) - 1

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"document {i} outside 0..{len(self) - 1} of {self.path}")
        start, end = int(self.lines[i]), int(self.lines[i + 1])
        try:
            return json.loads(self.blob[start:end].tobytes())
        except (ValueError, UnicodeDecodeError) as e:
            raise IndexFormatError(f"{self.path}: line {i + 1} is damaged ({e})") from e

    def id_at(self, i: int) -> str:
        """The id of document i, read from the head of its line without parsing the rest."""
        if not 0 <= i < len(self):
            raise IndexError(f"document {i} outside 0..{len(self) - 1} of {self.path}")
        start, end = int(self.lines[i]), int(self.lines[i + 1])
        head = self.blob[start:min(end, start + _ID_HEAD)].tobytes()
        if head.startswith(_ID_PREFIX):
            try:        # a head cut inside the id (or a character) fails here and reads the whole line
                return json.decoder.scanstring(head.decode("utf-8", "replace"), len(_ID_PREFIX))[0]
            except ValueError:
                pass
        return self[i]["id"]

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(len(self)))

    def find(self, doc_id: str) -> int:
        """The line of `doc_id`, or -1."""
        h = id_hash(doc_id)
        j = int(np.searchsorted(self.hashes, h))
        while j < len(self.hashes) and self.hashes[j] == h:
            line = int(self.order[j])
            if self[line]["id"] == doc_id:
                return line
            j += 1
        return -1

    def ids(self) -> Iterator[str]:
        return (d["id"] for d in self)
