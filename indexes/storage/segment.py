"""One immutable segment of an index: compressed vectors, document offsets, inverted lists.

Files (docs/index-format.md is the reference):

    codes.npy             (m,) uint16 (int32 past 65,536 centroids)  centroid of each stored vector
    residuals.npy         (m, dim * nbits / 8) uint8, or (m, dim) float16 for fp16 indexes
                          (format v4+, entry "layout": "ivf": both in list order, slot i holding
                          vector ivf_vector_ids[i], so a probed list is read front to back;
                          older segments: in vector order)
    doc_offsets.npy       (n_docs + 1,) int64    document d owns stored vectors [off[d], off[d+1])
    member_counts.npy     (m,) uint16            original tokens each stored vector stands for
    member_token_ids.npy  (n_members,) uint16 (int32 past 65,536 ids)  their token ids, in order
    ivf_offsets.npy       (n_centroids + 1,) int64  centroid c's list is ivf_vector_ids[off[c]:off[c+1]]
    ivf_vector_ids.npy    (m,) uint32            vector ids (within the segment) sorted by centroid
    vocab_offsets.npy     (vocab_size + 1,) int64  term t's list is vocab_vector_ids[off[t]:off[t+1]]
    vocab_vector_ids.npy  (n_pairs,) uint32      vector ids standing for each term (format v2+)
    passage_offsets.npy   (n_passages + 1,) int64  passage p owns stored vectors [off[p], off[p+1]) (format v6+;
                          absent: one passage per document)
    doc_passages.npy      (n_docs + 1,) int64    document d owns passages [off[d], off[d+1])
    passage_spans.npy     (n_passages, 2) int64  [start, end) characters of each passage in its document's
                          text (end -1: to the end of the text)
    lex_*.npy             BM25 lists of the documents' words (format v3+; indexes/storage/lexical_lists.py)
    documents.jsonl       n_docs lines {"id", "title", "text", "metadata"}
    doc_lines.npy, id_hashes.npy, id_order.npy   its line offsets and id hash index (format v5+; indexes/storage/doctable.py)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from indexes import faults
from indexes.storage.doctable import TABLE_FILES, DocumentTable, table_arrays
from indexes.positions import expand_ranges
from indexes.files import IndexFormatError, check_file, fsync_dir, load_npy, write_file, write_npy
from indexes.storage.lexical_lists import LEXICAL_FILES, build_lexical_lists
from indexes.values import check_stored_value
from indexes.storage.vocab_lists import build_vocab_lists

__all__ = ["SegmentArrays", "Segment", "write_segment", "build_ivf"]

ARRAY_FILES = ("codes.npy", "residuals.npy", "doc_offsets.npy", "member_counts.npy", "member_token_ids.npy",
               "ivf_offsets.npy", "ivf_vector_ids.npy")
PASSAGE_FILES = ("passage_offsets.npy", "doc_passages.npy", "passage_spans.npy")
OPTIONAL_FILES = ("vocab_offsets.npy", "vocab_vector_ids.npy",   # absent from format v1 segments
                  *LEXICAL_FILES,                               # absent from format v1 and v2 segments
                  *PASSAGE_FILES)                               # absent before v6 and where no document was split


def build_ivf(codes: np.ndarray, n_centroids: int) -> tuple[np.ndarray, np.ndarray]:
    """Centroid inverted lists in CSR form.

    codes: (m,) centroid id per vector. Returns offsets (n_centroids + 1,) int64 and
    vector ids (m,) uint32, sorted by centroid and, within a list, by vector id.
    """
    order = np.argsort(codes, kind="stable").astype(np.uint32)
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=n_centroids)
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), order


@dataclass
class SegmentArrays:
    """In-memory contents of a segment, as written (shapes in the module docstring)."""

    codes: np.ndarray
    residuals: np.ndarray
    doc_offsets: np.ndarray
    member_counts: np.ndarray
    member_token_ids: np.ndarray
    ivf_offsets: np.ndarray
    ivf_vector_ids: np.ndarray
    vocab_offsets: np.ndarray | None = None
    vocab_vector_ids: np.ndarray | None = None
    passage_offsets: np.ndarray | None = None
    doc_passages: np.ndarray | None = None
    passage_spans: np.ndarray | None = None

    @classmethod
    def assemble(cls, codes: np.ndarray, residuals: np.ndarray, lengths: np.ndarray, member_counts: np.ndarray,
                 member_token_ids: np.ndarray, n_centroids: int, vocab_size: int, *,
                 passages: np.ndarray | None = None, spans: np.ndarray | None = None) -> "SegmentArrays":
        """A segment's arrays from its compressed vectors, with both kinds of inverted lists built.

        lengths: (n_passages,) vectors per passage; passages: (n_docs,) passages per document
        (None: one each, lengths are then per document); spans: (n_passages, 2) their characters.
        The passage map is stored only where it says more than one passage per document."""
        ivf_offsets, ivf_ids = build_ivf(codes, n_centroids)
        vocab_offsets, vocab_ids = build_vocab_lists(member_token_ids, member_counts, vocab_size)
        passage_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        if passages is None:
            passages = np.ones(len(lengths), dtype=np.int64)
        doc_passages = np.concatenate([[0], np.cumsum(passages)]).astype(np.int64)
        split = len(passage_offsets) != len(doc_passages)     # else (0, -1) spans say it: the whole text
        return cls(codes=codes, residuals=residuals, doc_offsets=passage_offsets[doc_passages],
                   member_counts=np.asarray(member_counts).astype(np.uint16), member_token_ids=member_token_ids,
                   ivf_offsets=ivf_offsets, ivf_vector_ids=ivf_ids,
                   vocab_offsets=vocab_offsets, vocab_vector_ids=vocab_ids,
                   passage_offsets=passage_offsets if split else None, doc_passages=doc_passages if split else None,
                   passage_spans=_spans(spans, len(lengths)) if split else None)

    def files(self) -> dict[str, np.ndarray]:
        names = [f[:-4] for f in ARRAY_FILES + OPTIONAL_FILES]
        return {f"{name}.npy": getattr(self, name) for name in names if getattr(self, name, None) is not None}


def _spans(spans: np.ndarray | None, n_passages: int) -> np.ndarray:
    """(n_passages, 2) int64 spans; unknown ones (None) as (0, -1): the whole text."""
    if spans is None:
        return np.tile(np.array([0, -1], dtype=np.int64), (n_passages, 1))
    return np.ascontiguousarray(spans, dtype=np.int64).reshape(n_passages, 2)


def write_segment(directory: Path, name: str, arrays: SegmentArrays, documents: list[dict]) -> dict:
    """Write a segment folder durably (temporary name, fsync, rename); return its manifest entry."""
    if len(documents) != len(arrays.doc_offsets) - 1:
        raise ValueError(f"{len(documents)} documents but {len(arrays.doc_offsets) - 1} document offsets")
    for d in documents:
        for field_name in ("id", "title", "text", "metadata"):
            check_stored_value(d.get(field_name), f"document {str(d.get('id'))[:80]!r} {field_name}")
    tmp = directory / f"{name}.tmp"
    tmp.mkdir()
    lexical = build_lexical_lists([f"{d.get('title') or ''} {d.get('text') or ''}".strip() for d in documents])
    arrays_out = arrays.files()
    # List-major layout: the vectors of a centroid list lie together, so the first stage reads
    # each probed list sequentially (random rows cost ~5x more per vector, measured on SciFact).
    slot_order = np.asarray(arrays.ivf_vector_ids, dtype=np.int64)
    arrays_out["codes.npy"] = np.asarray(arrays.codes)[slot_order]
    arrays_out["residuals.npy"] = np.asarray(arrays.residuals)[slot_order]
    files = {fname: write_npy(tmp / fname, array) for fname, array in {**arrays_out, **lexical}.items()}
    lines = [(json.dumps({"id": str(d["id"]), "title": d.get("title", ""), "text": d.get("text", ""),
                          "metadata": d.get("metadata") or {}}, ensure_ascii=False, allow_nan=False) + "\n").encode()
             for d in documents]
    files["documents.jsonl"] = write_file(tmp / "documents.jsonl", lambda f: f.writelines(lines))
    for fname, array in table_arrays(lines, [str(d["id"]) for d in documents]).items():
        files[fname] = write_npy(tmp / fname, array)
    faults.point("segment:files-written")
    fsync_dir(tmp)
    os.rename(tmp, directory / name)
    faults.point("segment:renamed")
    fsync_dir(directory)
    return {"name": name, "n_docs": len(documents), "n_vectors": int(len(arrays.codes)),
            "n_tokens": int(len(arrays.member_token_ids)), "layout": "ivf", "files": files}


@dataclass
class Segment(SegmentArrays):
    """A loaded segment: the arrays as read-only memory maps, plus its folder, manifest entry and documents."""

    folder: Path = Path()
    entry: dict = field(default_factory=dict)
    documents: DocumentTable | None = None      # read on demand from documents.jsonl (indexes/storage/doctable.py)
    lex_terms: np.ndarray | None = None
    lex_offsets: np.ndarray | None = None
    lex_docs: np.ndarray | None = None
    lex_tf: np.ndarray | None = None
    lex_doc_lengths: np.ndarray | None = None

    @property
    def has_lexical(self) -> bool:
        return self.lex_terms is not None

    @property
    def n_docs(self) -> int:
        return len(self.documents)

    @cached_property
    def lex_total_length(self) -> int:
        """Terms in all of the segment's documents (BM25's collection length; read once, not per query)."""
        return int(np.asarray(self.lex_doc_lengths, dtype=np.int64).sum())

    @cached_property
    def member_offsets(self) -> np.ndarray:
        """(m + 1,) int64: stored vector v stands for member_token_ids[off[v]:off[v+1]]."""
        return np.concatenate([[0], np.cumsum(self.member_counts, dtype=np.int64)])

    @cached_property
    def doc_of_vector(self) -> np.ndarray:
        """(m,) int32 owning document (within the segment) of each stored vector."""
        return np.repeat(np.arange(self.n_docs, dtype=np.int32), np.diff(self.doc_offsets))

    @property
    def n_passages(self) -> int:
        return self.n_docs if self.doc_passages is None else len(self.passage_offsets) - 1

    def passages_of(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The passages of documents `local` (n,) int64 of this segment: (vector starts (P,), vector
        counts (P,), passages per document (n,)), all int64, document after document."""
        local = np.asarray(local, dtype=np.int64)
        doc_offsets = np.asarray(self.doc_offsets)
        if self.doc_passages is None:
            starts = doc_offsets[local]
            return starts, doc_offsets[local + 1] - starts, np.ones(len(local), dtype=np.int64)
        first = np.asarray(self.doc_passages)[local]
        counts = np.asarray(self.doc_passages)[local + 1] - first
        passage = expand_ranges(first, counts)
        offsets = np.asarray(self.passage_offsets)
        starts = offsets[passage]
        return starts, offsets[passage + 1] - starts, counts

    def passage_span(self, local: int, number: int) -> tuple[int, int]:
        """[start, end) characters of passage `number` of document `local` (end -1: the text's end)."""
        if self.doc_passages is None:
            return 0, -1
        start, end = self.passage_spans[int(self.doc_passages[local]) + number]
        return int(start), int(end)

    @property
    def list_major(self) -> bool:
        """codes / residuals stored in list order (format v4+), else in vector order."""
        return self.entry.get("layout") == "ivf"

    @cached_property
    def slot_of_vector(self) -> np.ndarray | None:
        """(m,) int64 slot in codes / residuals of each vector (list-major segments), else None."""
        if not self.list_major:
            return None
        slots = np.empty(len(self.ivf_vector_ids), dtype=np.int64)
        slots[np.asarray(self.ivf_vector_ids, dtype=np.int64)] = np.arange(len(slots))
        return slots

    def slots(self, vectors: np.ndarray | slice) -> np.ndarray | slice:
        """Where vectors (ids in document order, or a slice of them) lie in codes / residuals."""
        if self.slot_of_vector is None:
            return vectors
        if isinstance(vectors, slice):
            vectors = np.arange(*vectors.indices(len(self.slot_of_vector)))
        return self.slot_of_vector[vectors]

    def vector_codes(self, vectors: np.ndarray | slice) -> np.ndarray:
        """Centroid ids of vectors (ids in document order, or a slice)."""
        return np.asarray(self.codes)[self.slots(vectors)]

    def vector_residuals(self, vectors: np.ndarray | slice) -> np.ndarray:
        """Stored residuals (or float16 vectors) of vectors (ids in document order, or a slice)."""
        return np.asarray(self.residuals)[self.slots(vectors)]

    @classmethod
    def open(cls, directory: Path, entry: dict, verify: bool) -> "Segment":
        folder = directory / entry["name"]
        for fname, expected in entry["files"].items():
            check_file(folder / fname, expected, verify)
        arrays = {}
        for fname in ARRAY_FILES + tuple(f for f in OPTIONAL_FILES if f in entry["files"]):
            arrays[fname[:-4]] = load_npy(folder / fname, mmap=True)
        table = {}
        for fname in TABLE_FILES:
            if fname in entry["files"]:
                table[fname[:-4]] = load_npy(folder / fname, mmap=True)
        try:
            documents = DocumentTable.open(folder, table)
        except (ValueError, KeyError) as e:
            raise IndexFormatError(f"{folder}: document table unreadable ({e})") from e
        segment = cls(folder=folder, entry=entry, documents=documents, **arrays)
        m = entry["n_vectors"]
        if len(documents) != entry["n_docs"] or len(documents.hashes) != len(documents) \
                or segment.doc_offsets.shape != (len(documents) + 1,) \
                or segment.codes.shape != (m,) or len(segment.residuals) != m \
                or segment.member_counts.shape != (m,) or segment.ivf_vector_ids.shape != (m,) \
                or int(segment.doc_offsets[-1]) != m or len(segment.member_token_ids) != entry["n_tokens"]:
            raise IndexFormatError(f"{folder}: array sizes disagree with the manifest")
        if segment.vocab_offsets is not None and (segment.vocab_vector_ids is None
                                                  or int(segment.vocab_offsets[-1]) != len(segment.vocab_vector_ids)):
            raise IndexFormatError(f"{folder}: vocabulary lists disagree with their offsets")
        if segment.doc_passages is not None and (
                segment.passage_offsets is None or segment.passage_spans is None
                or segment.doc_passages.shape != (len(documents) + 1,) or int(segment.doc_passages[0]) != 0
                or int(segment.doc_passages[-1]) != len(segment.passage_offsets) - 1
                or segment.passage_spans.shape != (len(segment.passage_offsets) - 1, 2)
                or int(segment.passage_offsets[-1]) != m):
            raise IndexFormatError(f"{folder}: passage map disagrees with the documents or vectors")
        if segment.has_lexical and (len(segment.lex_offsets) != len(segment.lex_terms) + 1
                                    or int(segment.lex_offsets[-1]) != len(segment.lex_docs)
                                    or len(segment.lex_tf) != len(segment.lex_docs)
                                    or len(segment.lex_doc_lengths) != len(documents)):
            raise IndexFormatError(f"{folder}: lexical lists disagree with their offsets or documents")
        return segment
