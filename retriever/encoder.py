"""Token-level encoder: text in, L2-normalised contextual token vectors out.

One `Encoder` serves every checkpoint layout (see `retriever.checkpoints`): a Hugging Face
transformer, an optional stack of linear projections, and an `EncoderConfig` that says how
queries and documents are framed (markers, lengths, [MASK] augmentation, skiplist).
"""

from __future__ import annotations

import itertools
import math
import string
import time
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .embeddings import DocumentEmbeddings, per_document
from .passages import FramedPassages, default_stride, frame_passages, special_frame
from .runtime import make_runtime

__all__ = ["EncoderConfig", "DocumentEmbeddings", "Encoder", "QueryTruncatedWarning"]


class QueryTruncatedWarning(UserWarning):
    """A query was longer than the encoder's cap (query_max_tokens, or the model's maximum)."""


@dataclass(frozen=True)
class EncoderConfig:
    """How a checkpoint frames queries and documents.

    query_maxlen / doc_maxlen count every token, special tokens and markers included.
    A document longer than doc_maxlen is never truncated: it is split into passages of
    doc_maxlen tokens starting every doc_stride text tokens (None: four fifths of the window,
    retriever/passages.py), each encoded on its own, so every token is encoded. Queries are never cut at query_maxlen: it is the
    length a short query is padded to ([MASK] augmentation) and the step by which a longer
    query's length is rounded up, so a query is encoded whole.
    query_max_tokens: a cap on query tokens (None: the model's own maximum). A query over the
    cap is truncated with a QueryTruncatedWarning saying how many tokens were dropped.
    query_marker / doc_marker: a token (e.g. "[unused0]", "[Q]") inserted right after the
    first special token, as ColBERT does; None for no marker.
    query_augment: pad every query to query_maxlen with [MASK] and keep a vector for each
    position (ColBERT's query augmentation); otherwise queries keep their real tokens only.
    attend_to_mask_tokens: whether the other tokens may attend to the [MASK] padding.
    skiplist: token strings whose document vectors are dropped (punctuation by default);
    they are still encoded, so they shape their neighbours' vectors.
    """

    query_maxlen: int = 32
    doc_maxlen: int = 256
    doc_stride: int | None = None
    query_marker: str | None = None
    doc_marker: str | None = None
    query_augment: bool = False
    attend_to_mask_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)
    query_max_tokens: int | None = None

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["skiplist"] = list(self.skiplist)
        return d


@dataclass
class Encoder:
    """A transformer + projections producing ColBERT-style token embeddings.

    model: a Hugging Face encoder whose forward returns `last_hidden_state`.
    projections: linear layers applied in order to the hidden states (may be empty).
    """

    model: torch.nn.Module
    tokenizer: object
    config: EncoderConfig
    projections: list[torch.nn.Module] = field(default_factory=list)
    name: str = "encoder"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    runtime: str = "torch"                # documents: retriever.runtime.RUNTIMES (torch, torch-bf16, onnx, onnx-int8)
    query_runtime: str | None = None      # queries: one of the same (None: as documents)
    cache_dir: str | None = None          # converted models (onnx runtimes); default ~/.cache/tessera

    def __post_init__(self) -> None:
        tok = self.tokenizer
        if tok.pad_token_id is None or tok.mask_token_id is None:
            raise ValueError(f"{self.name}: the tokenizer needs a pad and a mask token")
        self.model.to(self.device).eval()
        for p in self.projections:
            p.to(self.device).eval()
        self._query_marker_id = self._marker_id(self.config.query_marker)
        self._doc_marker_id = self._marker_id(self.config.doc_marker)
        self._skip_ids = self._skiplist_ids(self.config.skiplist)
        asked = self.runtime
        self._runtime = make_runtime(self.runtime, self.model, self.projections, self.device, self.cache_dir)
        self.runtime = self._runtime.name         # what actually runs (torch after a fallback)
        if self.query_runtime in (None, asked, self.runtime):
            self._query_runtime = self._runtime
        else:
            self._query_runtime = make_runtime(self.query_runtime, self.model, self.projections, self.device,
                                               self.cache_dir)
        self.query_runtime = self._query_runtime.name

    @property
    def dim(self) -> int:
        """Width of the output vectors."""
        if self.projections:
            return int(self.projections[-1].out_features)
        return int(self.model.config.hidden_size)

    # ---- framing -------------------------------------------------------------------------

    def _marker_id(self, marker: str | None) -> int | None:
        if not marker:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(marker.strip())
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"{self.name}: marker token {marker!r} is not in the tokenizer's vocabulary")
        return int(token_id)

    def _skiplist_ids(self, words: Sequence[str]) -> np.ndarray:
        ids = set()
        for word in words:
            for token_id in self.tokenizer.encode(word, add_special_tokens=False)[:1]:
                if token_id != self.tokenizer.unk_token_id:
                    ids.add(int(token_id))
        return np.array(sorted(ids), dtype=np.int64)

    @property
    def passage_window(self) -> tuple[int, int]:
        """(text tokens per passage, tokens between passage starts) for documents: doc_maxlen (at
        most the model's maximum) less the special tokens and the marker, and doc_stride (default:
        retriever.passages.default_stride)."""
        special = sum(map(len, special_frame(self.tokenizer))) + (self._doc_marker_id is not None)
        # A passage never holds more than the model can read (its position embeddings).
        window = min(self.config.doc_maxlen, self._token_limit()) - special
        if window < 1:
            raise ValueError(f"{self.name}: document length {self.config.doc_maxlen} leaves no room for text")
        stride = self.config.doc_stride or default_stride(window)
        if not 1 <= stride <= window:
            raise ValueError(f"{self.name}: doc_stride {stride} must lie in 1..{window} (the passage's text tokens)")
        return window, stride

    def frame_documents(self, texts: Sequence[str]) -> FramedPassages:
        """Documents as passages of framed token ids (retriever/passages.py), none cut off."""
        window, stride = self.passage_window
        return frame_passages(self.tokenizer, texts, window, stride, self._doc_marker_id)

    # ---- forward -------------------------------------------------------------------------

    @torch.inference_mode()
    def _forward(self, input_ids: torch.Tensor, attention: torch.Tensor,
                 queries: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) int64 ids and mask -> (B, L, dim) float32 unit vectors, (B, L) norms before scaling."""
        hidden = (self._query_runtime if queries else self._runtime).forward(input_ids, attention).float()
        norms = hidden.norm(dim=-1)
        return hidden / norms.clamp_min(1e-12).unsqueeze(-1), norms

    def _pad(self, batch: list[list[int]], length: int, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, length) int64 ids (right-padded with `fill`) and attention mask of token id lists."""
        sizes = np.fromiter(map(len, batch), dtype=np.int64, count=len(batch))
        attention = np.arange(length)[None, :] < sizes[:, None]
        ids = np.full((len(batch), length), fill, dtype=np.int64)
        ids[attention] = np.fromiter(itertools.chain.from_iterable(batch), dtype=np.int64, count=int(sizes.sum()))
        return torch.from_numpy(ids), torch.from_numpy(attention.astype(np.int64))

    @property
    def query_token_limit(self) -> int:
        """Most tokens a query may have: the user's cap (query_max_tokens), else the model's
        own maximum (the tokenizer's model_max_length, bounded by the position embeddings)."""
        return self._token_limit(self.config.query_max_tokens)

    def _token_limit(self, cap: int | None = None) -> int:
        limits = [getattr(self.model.config, "max_position_embeddings", None),
                  getattr(self.tokenizer, "model_max_length", None), cap]
        limits = [int(n) for n in limits if n is not None and 0 < n < 1_000_000]
        return min(limits) if limits else 512

    def _frame_queries(self, queries: Sequence[str]) -> list[list[int]]:
        """Token ids of each query, whole: special tokens and the marker, cut only past
        `query_token_limit` (then the final special token is kept and a warning names the loss)."""
        limit = self.query_token_limit
        marker = self._query_marker_id
        if limit < 3 + (marker is not None):
            raise ValueError(f"{self.name}: query limit {limit} leaves no room for text")
        framed = self.tokenizer(list(queries), add_special_tokens=True, truncation=False,
                                verbose=False)["input_ids"]
        dropped = []
        for ids in framed:
            if marker is not None:
                ids.insert(1, marker)
            if len(ids) > limit:
                dropped.append(len(ids) - limit)
                ids[limit - 1:] = ids[-1:]            # keep the closing special token ([SEP])
        if dropped:
            warnings.warn(f"{self.name}: {len(dropped)} of {len(framed)} queries exceed {limit} tokens and were "
                          f"truncated, dropping {sum(dropped)} tokens (at most {max(dropped)} from one query); "
                          "raise or unset query_max_tokens to keep them", QueryTruncatedWarning, stacklevel=3)
        return framed

    def query_length(self, n_tokens: int) -> int:
        """Rows a query of n_tokens framed tokens gets. With [MASK] augmentation: query_maxlen,
        or for a longer query its length rounded up to a multiple of query_maxlen (capped at the
        limit), the rest padded with [MASK]; without augmentation: its own tokens."""
        if not self.config.query_augment:
            return n_tokens
        step = max(1, self.config.query_maxlen)
        return min(max(step, step * math.ceil(n_tokens / step)), max(n_tokens, self.query_token_limit))

    def tokenize_queries(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs for a batch of queries, each encoded whole.

        Returns (input_ids, attention, keep), each (n_queries, L) int64, L = max(query_maxlen,
        the longest query's `query_length`). With augmentation each query is padded with [MASK]
        to its own `query_length` (attended to only if the config says so) and those rows are
        kept; positions past that (a longer query shares the batch) are padding: not attended
        to and not kept, so a query's vectors do not depend on its batch.
        """
        cfg, tok = self.config, self.tokenizer
        framed = self._frame_queries(queries)
        lengths = [self.query_length(len(ids)) for ids in framed]
        width = max([cfg.query_maxlen, *lengths])
        ids = torch.full((len(framed), width), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(framed), width), dtype=torch.long)
        keep = torch.zeros((len(framed), width), dtype=torch.long)
        for row, (seq, length) in enumerate(zip(framed, lengths)):
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
            if cfg.query_augment:
                ids[row, len(seq):length] = tok.mask_token_id
                if cfg.attend_to_mask_tokens:
                    attention[row, :length] = 1
            keep[row, :length] = 1
        return ids, attention, keep

    def encode_queries(self, queries: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Encode queries whole to one block.

        Returns (n_queries, L, dim) float32 with L = max(query_maxlen, the longest query's
        `query_length`). Rows past a query's own length are zero: each adds the same 0 to every
        document's MaxSim score, and token retrieval skips them.
        """
        if isinstance(queries, str):
            raise TypeError("encode_queries takes a list of strings; wrap a single query in a list")
        parts = []
        for start in range(0, len(queries), batch_size):
            ids, attention, keep = self.tokenize_queries(queries[start : start + batch_size])
            vectors = self._forward(ids, attention, queries=True)[0] * keep.unsqueeze(-1).to(self.device)
            parts.append(vectors.cpu().numpy())
        width = max([self.config.query_maxlen, *(p.shape[1] for p in parts)])
        out = np.zeros((len(queries), width, self.dim), dtype=np.float32)
        row = 0
        for p in parts:
            out[row : row + len(p), : p.shape[1]] = p
            row += len(p)
        return out

    def query_term_ids(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, L) int32, L as `encode_queries` gives for the same list (same batch_size):
        the vocabulary id behind each row, -1 where the row stands for no text term (special
        tokens, marker, [MASK], padding).

        The vocabulary-list first stage probes only these terms' lists."""
        if isinstance(queries, str):
            raise TypeError("query_term_ids takes a list of strings")
        with warnings.catch_warnings():        # encode_queries already warned about truncation
            warnings.simplefilter("ignore", QueryTruncatedWarning)
            ids, _, keep = self.tokenize_queries(queries)
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids) | {self._query_marker_id or -1}))
        text = keep.bool() & ~torch.isin(ids, special)
        return torch.where(text, ids, -1).numpy().astype(np.int32)

    @property
    def document_batch_size(self) -> int:
        """Documents per forward pass when none is given: 32 on the CPU (the fastest on 2 cores for
        the torch-bf16 and onnx runtimes, docs/benchmarks.md), 128 on CUDA (larger batches keep a GPU
        busy; not measured here)."""
        return 128 if self.device.type == "cuda" else 32

    def document_token_ids(self, documents: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The token ids encode_documents keeps, without running the model: (ids (t,) int32,
        lengths (n,) int64), document after document (for collection statistics such as idf)."""
        framed = self.frame_documents(documents)
        ids = [np.asarray(f, dtype=np.int64) for f in framed.ids]
        kept = [x[~np.isin(x, self._skip_ids) & (x != self.tokenizer.pad_token_id)] for x in ids]
        per_passage = np.array([len(x) for x in kept], dtype=np.int64)
        return (np.concatenate(kept).astype(np.int32) if kept else np.zeros(0, np.int32),
                per_document(per_passage, framed.counts))

    def encode_documents(self, documents: Sequence[str], batch_size: int | None = None,
                         show_progress: bool = True) -> DocumentEmbeddings:
        """Encode documents into their kept token vectors (padding and skiplist removed).

        Batches are formed from documents sorted by length (length buckets) so little compute goes
        to padding; results come back in input order. batch_size: default `document_batch_size`.
        """
        batch_size = batch_size or self.document_batch_size
        if isinstance(documents, str):
            raise TypeError("encode_documents takes a list of strings")
        started = time.perf_counter()
        passages = self.frame_documents(documents)
        framed = passages.ids                 # one model input per passage, document after document
        order = np.argsort([-len(ids) for ids in framed], kind="stable")
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []    # per batch, sorted order
        bar = tqdm(total=len(framed), desc=f"encoding ({self.name})", unit="passage",
                   disable=not show_progress)
        for start in range(0, len(order), batch_size):
            batch = [framed[i] for i in order[start : start + batch_size]]
            ids, attention = self._pad(batch, len(batch[0]), self.tokenizer.pad_token_id)
            vectors, norms = self._forward(ids, attention)
            ids_np = ids.numpy()
            keep = attention.numpy().astype(bool) & ~np.isin(ids_np, self._skip_ids)     # (B, L)
            # Kept rows of the whole batch at once, document after document.
            parts.append((vectors.to(torch.float16).cpu().numpy()[keep], ids_np[keep].astype(np.int32),
                          norms.to(torch.float16).cpu().numpy()[keep], keep.sum(1)))
            bar.update(len(batch))
        bar.close()
        n_input = sum(map(len, framed))
        if not framed:
            empty = np.zeros(0, np.int64)
            return DocumentEmbeddings(np.zeros((0, self.dim), np.float16), np.zeros(0, np.int32), empty,
                                      np.zeros(0, np.float16), time.perf_counter() - started, 0,
                                      empty, empty, np.zeros((0, 2), np.int64))
        sorted_lengths = np.concatenate([p[3] for p in parts]).astype(np.int64)
        lengths = np.empty(len(framed), dtype=np.int64)
        lengths[order] = sorted_lengths
        # Back to input order: document i's rows start at sorted_starts[rank of i].
        sorted_starts = np.concatenate([[0], np.cumsum(sorted_lengths)[:-1]])
        starts = np.empty(len(framed), dtype=np.int64)
        starts[order] = sorted_starts
        rows = np.repeat(starts, lengths) + np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return DocumentEmbeddings(
            vectors=np.concatenate([p[0] for p in parts])[rows],
            token_ids=np.concatenate([p[1] for p in parts])[rows],
            lengths=per_document(lengths, passages.counts),
            norms=np.concatenate([p[2] for p in parts])[rows],
            seconds=time.perf_counter() - started,
            n_input_tokens=n_input,
            passage_lengths=lengths,
            passages=passages.counts,
            spans=passages.spans,
        )

