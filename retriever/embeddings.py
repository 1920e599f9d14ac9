"""`DocumentEmbeddings`: what an encoder produced for a list of documents, and its slices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from indexes.positions import expand_ranges

from .passages import text_spans

__all__ = ["DocumentEmbeddings", "per_document"]


def per_document(per_passage: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n_docs,) int64 sums of consecutive per-passage values, counts[d] passages for document d."""
    if len(counts) == 0:
        return np.zeros(0, np.int64)
    return np.add.reduceat(np.asarray(per_passage, dtype=np.int64), np.cumsum(counts) - counts)


@dataclass
class DocumentEmbeddings:
    """Token vectors of a batch of documents, concatenated.

    vectors: (n_tokens, dim) float16, L2-normalised rows.
    token_ids: (n_tokens,) int32, the vocabulary id each vector was produced for.
    lengths: (n_docs,) int64, vectors per document, in input order; always >= 1.
    norms: (n_tokens,) float16, each vector's norm before normalisation (a pruning signal).
    seconds: wall time spent encoding; n_input_tokens: tokens fed to the model.
    passage_lengths: (n_passages,) int64 vectors per passage (a document's passages are
    consecutive and sum to its length); passages: (n_docs,) int64 passages per document;
    spans: (n_passages, 2) int64 [start, end) characters of each passage in its document's
    string. None: one passage per document covering it all.
    """

    vectors: np.ndarray
    token_ids: np.ndarray
    lengths: np.ndarray
    norms: np.ndarray
    seconds: float = 0.0
    n_input_tokens: int = 0
    passage_lengths: np.ndarray | None = None
    passages: np.ndarray | None = None
    spans: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.passages is None:                 # one passage per document, spanning it
            self.passage_lengths = np.asarray(self.lengths, dtype=np.int64)
            self.passages = np.ones(len(self.lengths), dtype=np.int64)

    @property
    def n_split(self) -> int:
        """Documents encoded as more than one passage."""
        return int((self.passages > 1).sum())

    @property
    def offsets(self) -> np.ndarray:
        """(n_docs + 1,) int64 start of each document's vectors, then the total."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def tokens_per_second(self) -> float:
        return self.n_input_tokens / self.seconds if self.seconds > 0 else float("nan")

    def to_batch(self, documents: Sequence, docs: np.ndarray | None = None):
        """The builder's TokenBatch (indexes.builder.pipeline) of every document, or of `docs`
        (indices, in that order); `documents` are the retriever.corpus.Documents these embeddings
        were encoded from (all of them), whose texts the passage spans are moved into
        (retriever.passages.text_spans: from the encoded title and text to the text)."""
        from indexes.builder.pipeline import TokenBatch     # the build's modules, not the query path's

        docs = np.arange(len(self.lengths)) if docs is None else np.asarray(docs, dtype=np.int64)
        rows = expand_ranges(self.offsets[docs], self.lengths[docs])
        passages = expand_ranges((np.cumsum(self.passages) - self.passages)[docs], self.passages[docs])
        spans = None if self.spans is None else text_spans([documents[d] for d in docs.tolist()],
                                                             self.spans[passages], self.passages[docs])
        return TokenBatch(self.vectors[rows], self.token_ids[rows], self.lengths[docs], self.norms[rows],
                          self.passage_lengths[passages], self.passages[docs], spans)
