"""Documents longer than the encoder's window, split into overlapping passages (none cut off).

A document of n text tokens fits one passage when n <= window. A longer one gets the fewest
passages of at most `window` tokens that cover it while consecutive passages overlap by at least
window - stride tokens, all of one length and spread evenly from its first token to its last:
every token is encoded at least once, a sentence cut at one passage's edge is whole in the next,
and no passage is a short scrap (nor a near-copy of its neighbour, as a last window pushed back
to the end would be):

    >>> starts, lengths, counts = passage_windows(np.array([3, 10]), window=4, stride=3)
    >>> starts.tolist(), lengths.tolist(), counts.tolist()
    ([0, 0, 3, 6], [3, 4, 4, 4], [1, 3])

A passage keeps its character span in the encoded string (from the tokenizer's offsets), which
search results return so that a hit points at the passage to quote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

WINDOWING = "even-v1"      # how passage_windows places passages (encoding caches record it)

__all__ = ["WINDOWING", "passage_windows", "default_stride", "FramedPassages", "frame_passages", "special_frame", "text_spans"]


def default_stride(window: int) -> int:
    """The most tokens between passage starts when none is given: four fifths of the window (an
    overlap of at least a fifth, so a sentence cut at one passage's edge is whole in the next)."""
    return max(1, window - window // 5)


def passage_windows(token_counts: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each document's passages start and how long they are, in its own tokens.

    token_counts: (n_docs,) int64 text tokens per document; stride: the most tokens between two
    passage starts (the overlap is at least window - stride). Returns starts (n_passages,) int64
    and lengths (n_passages,) int64 (document after document), and counts (n_docs,) int64
    passages per document (>= 1)."""
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 1 and 1 <= stride <= window, got window={window}, stride={stride}")
    n = np.asarray(token_counts, dtype=np.int64)
    overlap = window - stride
    counts = np.where(n > window, -(-(n - overlap) // stride), 1).astype(np.int64)
    # One length per document: what covers n with count passages overlapping by `overlap` (<= window).
    length = np.minimum(-(-(n + (counts - 1) * overlap) // counts), n)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(int(counts.sum()), dtype=np.int64) - first         # passage number within its document
    span = np.repeat(n - length, counts)                                 # room the starts spread over
    steps = np.repeat(np.maximum(counts - 1, 1), counts)
    starts = (rank * span + steps // 2) // steps                         # evenly spread, rounded
    return starts, np.repeat(length, counts), counts


@dataclass
class FramedPassages:
    """Model inputs of documents split into passages.

    ids: per passage, its token ids with special tokens and marker (passage after passage,
    document after document); counts: (n_docs,) int64 passages per document; spans: (n_passages,
    2) int64 [start, end) character offsets of each passage's text in its document's string."""

    ids: list[list[int]]
    counts: np.ndarray
    spans: np.ndarray


def special_frame(tokenizer) -> tuple[list[int], list[int]]:
    """The special token ids the tokenizer puts before and after one text ([CLS] / [SEP], <s> / </s>)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    framed = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(framed) - len(plain) + 1):
        if framed[i:i + len(plain)] == plain:
            return framed[:i], framed[i + len(plain):]
    raise ValueError("the tokenizer's framing of a text does not contain the text's own tokens")


def frame_passages(tokenizer, texts: Sequence[str], window: int, stride: int,
                   marker_id: int | None) -> FramedPassages:
    """Split each text into passages of at most `window` text tokens (special tokens and the
    marker come on top), at most `stride` tokens apart (passage_windows), framed as the model expects."""
    prefix, suffix = special_frame(tokenizer)
    # Whole documents are tokenized on purpose (then split): silence transformers' one-time
    # warning that a text is longer than the model, which is true and handled here.
    getattr(tokenizer, "deprecation_warnings", {})["sequence-length-is-longer-than-the-specified-maximum"] = True
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False,
                        return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)))
    tokens = encoded["input_ids"]
    offsets = encoded.get("offset_mapping")
    starts, lengths, counts = passage_windows(np.fromiter(map(len, tokens), np.int64, len(tokens)), window, stride)
    ids, spans = [], np.zeros((len(starts), 2), dtype=np.int64)
    p = 0
    for d, text_ids in enumerate(tokens):
        for start, length in zip(starts[p:p + counts[d]].tolist(), lengths[p:p + counts[d]].tolist()):
            piece = text_ids[start:start + length]
            framed = prefix + piece + suffix
            if marker_id is not None:
                framed.insert(1, marker_id)
            ids.append(framed)
            if offsets is None or not piece:      # a slow tokenizer has no offsets: the whole text
                spans[p] = (0, len(texts[d]) if offsets is None else 0)
            else:
                spans[p] = (offsets[d][start][0], offsets[d][start + len(piece) - 1][1])
            p += 1
    return FramedPassages(ids, counts, spans)


def text_spans(documents: Sequence, spans: np.ndarray, passages: np.ndarray) -> np.ndarray:
    """(n_passages, 2) int64 spans in each document's text from spans in its `full_text` (the
    title, a space, then the text): shifted past the title and clipped to the text."""
    shift = np.zeros(len(documents), dtype=np.int64)
    sizes = np.zeros(len(documents), dtype=np.int64)
    for i, d in enumerate(documents):
        text = d.text or ""
        sizes[i] = len(text)
        if d.title:
            joined = f"{d.title} {text}"
            shift[i] = len(joined) - len(joined.lstrip()) - (len(d.title) + 1)   # full_text strips the join
    per_passage = np.repeat(shift, passages)
    limit = np.repeat(sizes, passages)[:, None]
    return np.clip(np.asarray(spans, dtype=np.int64) + per_passage[:, None], 0, limit)
