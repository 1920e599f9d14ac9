"""An index directory: manifest, shared codec, immutable segments, tombstones.

    DIR/manifest.json       what is live (format, version, encoder, recipe, codec, segments)
    DIR/codec-<hex>/        centroids, residual buckets, optional projection, idf, stopword ids
    DIR/seg-<hex>/          one segment per build, add or compaction (indexes/storage/segment.py)
    DIR/tomb-<hex>.npy      (n_deleted,) int32 sorted local indices of a segment's deleted documents

Every change writes new files only, then replaces manifest.json by an atomic rename, then
deletes what the new manifest no longer names. A process killed at any point leaves the old
or the new state. docs/index-format.md is the reference for all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from indexes.codec.residual import ResidualCodec
from indexes.files import IndexFormatError, check_file, load_npy, read_json
from indexes.positions import doc_blocks, locate, part_bases
from indexes.storage.segment import Segment
from indexes.storage.structure import check_codec, check_segment

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "IndexStore", "read_manifest", "MANIFEST"]

FORMAT_NAME = "tessera-index"
FORMAT_VERSION = 6
# v1 segments lack vocabulary lists, v1-2 lexical lists, v1-3 store vectors in vector (not list)
# order, v1-4 the document table's line offsets and id index (built in memory at open), v1-5 the
# passage map (one passage per document); all are read, and compaction rewrites them in the
# current version.
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
MANIFEST = "manifest.json"


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
    memo: dict = field(default_factory=dict, repr=False, compare=False)   # derived data kept with this snapshot

    @classmethod
    def open(cls, directory: str | Path, verify: bool = True) -> "IndexStore":
        """Open the index; verify=True also checks each file's CRC32 (reads every file once).

        A writer in another process may commit while this reads; if a file the manifest named is
        gone and the manifest has changed since, the newer manifest is opened instead."""
        directory = Path(directory)
        for attempt in range(5):
            manifest = read_manifest(directory)
            try:
                return cls._open(directory, manifest, verify)
            except (IndexFormatError, FileNotFoundError) as e:
                if read_manifest(directory).get("generation") == manifest.get("generation") or attempt == 4:
                    if isinstance(e, FileNotFoundError):
                        raise IndexFormatError(f"{e.filename}: file missing") from e
                    raise
        raise AssertionError("unreachable")

    @classmethod
    def _open(cls, directory: Path, manifest: dict, verify: bool) -> "IndexStore":
        codec_entry = manifest["codec"]
        codec_dir = directory / codec_entry["name"]
        for fname, expected in codec_entry["files"].items():
            check_file(codec_dir / fname, expected, verify)
        codec = ResidualCodec.load(codec_dir, codec_entry["nbits"])
        check_codec(codec_dir, codec)
        extras = {n: load_npy(codec_dir / f"{n}.npy")
                  for n in ("idf", "stopword_ids") if f"{n}.npy" in codec_entry["files"]}
        segments, alive = [], []
        for entry in manifest["segments"]:
            segment = Segment.open(directory, entry, verify)
            check_segment(segment, codec.n_centroids, int(manifest.get("vocab_size") or 2**31))
            keep = np.ones(segment.n_docs, dtype=bool)
            if entry.get("deleted"):
                tomb_path = directory / entry["deleted"]["file"]
                check_file(tomb_path, entry["deleted"], verify)
                tomb = load_npy(tomb_path)
                if tomb.ndim != 1 or len(tomb) != entry["deleted"].get("count", len(tomb)) or \
                        (len(tomb) and (int(tomb.min()) < 0 or int(tomb.max()) >= segment.n_docs)):
                    raise IndexFormatError(f"{tomb_path}: tombstones out of range or miscounted (file damaged)")
                keep[tomb] = False
            segments.append(segment)
            alive.append(keep)
        return cls(directory, manifest, codec, segments,
                   np.concatenate(alive) if alive else np.zeros(0, bool), extras.get("idf"), extras.get("stopword_ids"))

    # ---- documents ---------------------------------------------------------------------

    @cached_property
    def segment_bases(self) -> np.ndarray:
        """(n_segments + 1,) int64 first global position of each segment, then the total."""
        return part_bases([s.n_docs for s in self.segments])

    @property
    def n_positions(self) -> int:
        return int(self.segment_bases[-1])

    @property
    def n_docs(self) -> int:
        """Live documents."""
        return int(self.alive.sum())

    def locate(self, position: int) -> tuple[Segment, int]:
        """The segment holding a global position, and the position within it."""
        s, local = locate(self.segment_bases, position)
        if s < 0:
            raise IndexError(f"position {position} outside 0..{self.n_positions - 1}")
        return self.segments[int(s)], int(local)

    def document(self, position: int) -> dict:
        segment, local = self.locate(position)
        return segment.documents[local]

    def doc_ids(self, positions: np.ndarray) -> list[list[str]]:
        """The document id at each position of a (n, k) array, row by row (-1 padding left out)."""
        segment_of, local = locate(self.segment_bases, positions)
        tables = [s.documents for s in self.segments]
        return [[tables[s].id_at(p) for s, p in zip(srow, prow) if s >= 0]
                for srow, prow in zip(segment_of.tolist(), local.tolist())]

    def passage_counts(self, positions: np.ndarray) -> np.ndarray:
        """(c,) int64 passages of the document at each position (1 for a document stored whole)."""
        positions = np.asarray(positions, dtype=np.int64)
        counts = np.ones(len(positions), dtype=np.int64)
        segment_of, local = locate(self.segment_bases, positions)
        for s in np.unique(segment_of):
            doc_passages = self.segments[s].doc_passages
            if doc_passages is not None:
                which = segment_of == s
                counts[which] = np.diff(np.asarray(doc_passages))[local[which]]
        return counts

    @cached_property
    def position_of(self) -> "LivePositions":
        """Live document id -> global position (a read-only mapping over the document tables)."""
        return LivePositions(self)

    def blocks(self, block_vectors: int = 16384):
        """Block source for `maxsim.search_blocks`: decompressed vectors of consecutive documents,
        with their passages' vector counts and passages per document."""
        def generate(device):
            for s, segment in enumerate(self.segments):
                base = int(self.segment_bases[s])
                offsets = np.asarray(segment.doc_offsets)
                for first, end in doc_blocks(offsets, block_vectors):
                    rows = slice(int(offsets[first]), int(offsets[end]))
                    vectors = self.codec.decompress(segment.vector_codes(rows), segment.vector_residuals(rows),
                                                    device)
                    _, lengths, passages = segment.passages_of(np.arange(first, end))
                    yield (base + first, torch.as_tensor(lengths, device=device), vectors,
                           torch.as_tensor(passages, device=device))
        return generate

    @property
    def has_lexical(self) -> bool:
        """Every segment has lexical (BM25) lists (format v3+)."""
        return all(s.has_lexical for s in self.segments)

    def nbytes(self) -> dict[str, int]:
        """Bytes on disk: 'search' (everything search reads) and 'documents' (stored texts)."""
        total = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        docs = sum((self.directory / s.entry["name"] / "documents.jsonl").stat().st_size for s in self.segments)
        return {"search": total - docs, "documents": docs, "total": total}


class LivePositions(Mapping):
    """id -> global position of the live documents, looked up in each segment's id hash index
    (newest segment first: an upserted id's older copies are deleted anyway). Iterating reads
    every document table; lookups read one line."""

    def __init__(self, store: IndexStore):
        self.store = store

    def __getitem__(self, doc_id: str) -> int:
        store = self.store
        if isinstance(doc_id, str):
            for s in range(len(store.segments) - 1, -1, -1):
                local = store.segments[s].documents.find(doc_id)
                if local >= 0 and store.alive[int(store.segment_bases[s]) + local]:
                    return int(store.segment_bases[s]) + local
        raise KeyError(doc_id)

    def __contains__(self, doc_id) -> bool:
        try:
            self[doc_id]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        store = self.store
        for s, segment in enumerate(store.segments):
            base = int(store.segment_bases[s])
            for local, doc_id in enumerate(segment.documents.ids()):
                if store.alive[base + local]:
                    yield doc_id

    def __len__(self) -> int:
        return self.store.n_docs
