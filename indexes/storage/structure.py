"""Cheap structural checks of a segment and a codec, run on every open (verified or not).

Checksums catch any changed byte but read every file; an index opened with verify=False skips
them. These checks read the small arrays whole and take one min/max pass over the per-vector ids,
so that a damaged offset or id, which would make a compiled kernel read out of bounds (a crash)
or silently mix documents, is an IndexFormatError naming the file instead. Changed residual
bytes stay valid codes and are caught by checksums only (`tessera verify`, the server's scrub).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexes.files import IndexFormatError

__all__ = ["check_segment", "check_codec"]

CENTROID_NORM_TOLERANCE = 2e-3      # float16 rounding of 384 unit components stays under 1e-3


def _fail(path: Path, problem: str) -> None:
    raise IndexFormatError(f"{path}: {problem} (file damaged; tessera verify --index DIR checks every file)")


def _offsets(path: Path, offsets: np.ndarray, length: int, total: int) -> None:
    """CSR offsets: (length,) int, from 0, never decreasing, ending at total."""
    if offsets.shape != (length,) or not np.issubdtype(offsets.dtype, np.integer):
        _fail(path, f"expected ({length},) integer offsets, got {offsets.shape} {offsets.dtype}")
    if length and (int(offsets[0]) != 0 or int(offsets[-1]) != total):
        _fail(path, f"offsets must run from 0 to {total}, got {int(offsets[0])} .. {int(offsets[-1])}")
    if length > 1 and bool((np.diff(offsets) < 0).any()):
        _fail(path, "offsets decrease")


def _ids(path: Path, ids: np.ndarray, below: int) -> None:
    if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= below):
        _fail(path, f"ids must lie in 0..{below - 1}, found {int(ids.min())} .. {int(ids.max())}")


def check_segment(segment, n_centroids: int, vocab_size: int) -> None:
    """Raise IndexFormatError naming the first file of `segment` whose structure is impossible."""
    folder = segment.folder
    m, n = len(segment.codes), segment.n_docs
    _offsets(folder / "doc_offsets.npy", segment.doc_offsets, n + 1, m)
    _offsets(folder / "ivf_offsets.npy", segment.ivf_offsets, n_centroids + 1, m)
    _ids(folder / "ivf_vector_ids.npy", segment.ivf_vector_ids, m)
    if m and int(np.bincount(np.asarray(segment.ivf_vector_ids, dtype=np.int64), minlength=m).max()) != 1:
        _fail(folder / "ivf_vector_ids.npy", "a vector is listed twice")
    _ids(folder / "codes.npy", segment.codes, n_centroids)
    counts = np.asarray(segment.member_counts)
    if m and (int(counts.min()) < 1 or int(counts.sum()) != len(segment.member_token_ids)):
        _fail(folder / "member_counts.npy", "member counts disagree with member_token_ids.npy")
    _ids(folder / "member_token_ids.npy", segment.member_token_ids, vocab_size)
    if segment.vocab_offsets is not None:
        _offsets(folder / "vocab_offsets.npy", segment.vocab_offsets, len(segment.vocab_offsets),
                 len(segment.vocab_vector_ids))
        _ids(folder / "vocab_vector_ids.npy", segment.vocab_vector_ids, m)
    if segment.doc_passages is not None:
        n_passages = len(segment.passage_offsets) - 1
        _offsets(folder / "passage_offsets.npy", segment.passage_offsets, n_passages + 1, m)
        _offsets(folder / "doc_passages.npy", segment.doc_passages, n + 1, n_passages)
        if not np.array_equal(np.asarray(segment.passage_offsets)[np.asarray(segment.doc_passages)],
                              np.asarray(segment.doc_offsets)):
            _fail(folder / "doc_passages.npy", "passages disagree with doc_offsets.npy")
        if n_passages and bool((np.diff(segment.doc_passages) < 1).any()):
            _fail(folder / "doc_passages.npy", "a document without a passage")
    if segment.has_lexical:
        _offsets(folder / "lex_offsets.npy", segment.lex_offsets, len(segment.lex_terms) + 1, len(segment.lex_docs))
        _ids(folder / "lex_docs.npy", segment.lex_docs, n)
        if len(segment.lex_terms) > 1 and bool((np.diff(segment.lex_terms.astype(np.int64)) <= 0).any()):
            _fail(folder / "lex_terms.npy", "terms not strictly increasing")
        if len(segment.lex_tf) and int(np.asarray(segment.lex_tf).min()) < 1:
            _fail(folder / "lex_tf.npy", "a term frequency below 1")
        if len(segment.lex_doc_lengths) and int(np.asarray(segment.lex_doc_lengths).min()) < 0:
            _fail(folder / "lex_doc_lengths.npy", "a negative document length")
    table = segment.documents
    # (the last offset is checked against documents.jsonl's size when the table opens)
    _offsets(folder / "doc_lines.npy", np.asarray(table.lines), n + 1, int(table.lines[-1]))
    if n and not np.all(np.diff(np.asarray(table.hashes).view(np.uint64)) >= 0):
        _fail(folder / "id_hashes.npy", "hashes not sorted")
    if n:
        _ids(folder / "id_order.npy", np.asarray(table.order), n)


def check_codec(folder: Path, codec) -> None:
    """Finite numbers everywhere (a flipped exponent byte gives inf / NaN); centroids of unit
    length (they are stored normalised, to float16's precision); bucket cutoffs and values
    ascending in each dimension (they are quantiles). A flipped byte of these small files
    breaks one of them in most cases."""
    for name, array in (("centroids.npy", codec.centroids), ("bucket_values.npy", getattr(codec, "bucket_values", None)),
                        ("bucket_cutoffs.npy", getattr(codec, "cutoffs", None)),
                        ("projection.npy", getattr(codec, "projection", None))):
        if array is not None and not bool(np.isfinite(np.asarray(array, dtype=np.float32)).all()):
            _fail(folder / name, "holds NaN or infinite values")
    norms = np.linalg.norm(np.asarray(codec.centroids, dtype=np.float32), axis=1)
    if len(norms) and float(np.abs(norms - 1).max()) > CENTROID_NORM_TOLERANCE:
        _fail(folder / "centroids.npy", f"a centroid of length {float(norms[np.argmax(np.abs(norms - 1))]):.4f}, not 1")
    for name, array in (("bucket_values.npy", getattr(codec, "bucket_values", None)),
                        ("bucket_cutoffs.npy", getattr(codec, "cutoffs", None))):
        if array is not None and np.asarray(array).ndim == 2 and bool((np.diff(np.asarray(array), axis=1) < 0).any()):
            _fail(folder / name, "values not ascending within a dimension")
