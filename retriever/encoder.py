"""Token-level encoder: text in, L2-normalised contextual token vectors out.

One `Encoder` serves every checkpoint layout (see `retriever.checkpoints`): a Hugging Face
transformer, an optional stack of linear projections, and an `EncoderConfig` that says how
queries and documents are framed (markers, lengths, [MASK] augmentation, skiplist).
"""

from __future__ import annotations

import string
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["EncoderConfig", "DocumentEmbeddings", "Encoder"]


@dataclass(frozen=True)
class EncoderConfig:
    """How a checkpoint frames queries and documents.

    query_maxlen / doc_maxlen count every token, special tokens and markers included.
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
    query_marker: str | None = None
    doc_marker: str | None = None
    query_augment: bool = False
    attend_to_mask_tokens: bool = False
    skiplist: tuple[str, ...] = tuple(string.punctuation)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["skiplist"] = list(self.skiplist)
        return d


@dataclass
class DocumentEmbeddings:
    """Token vectors of a batch of documents, concatenated.

    vectors: (n_tokens, dim) float16, L2-normalised rows.
    token_ids: (n_tokens,) int32, the vocabulary id each vector was produced for.
    lengths: (n_docs,) int64, vectors per document, in input order; always >= 1.
    norms: (n_tokens,) float16, each vector's norm before normalisation (a pruning signal).
    seconds: wall time spent encoding; n_input_tokens: tokens fed to the model.
    """

    vectors: np.ndarray
    token_ids: np.ndarray
    lengths: np.ndarray
    norms: np.ndarray
    seconds: float = 0.0
    n_input_tokens: int = 0

    @property
    def offsets(self) -> np.ndarray:
        """(n_docs + 1,) int64 start of each document's vectors, then the total."""
        return np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)

    @property
    def tokens_per_second(self) -> float:
        return self.n_input_tokens / self.seconds if self.seconds > 0 else float("nan")


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

    def _frame(self, texts: Sequence[str], maxlen: int, marker_id: int | None) -> list[list[int]]:
        """Token ids of each text: special tokens, the marker after the first one, truncated."""
        budget = maxlen - (marker_id is not None)
        if budget < 3:
            raise ValueError(f"{self.name}: maximum length {maxlen} leaves no room for text")
        framed = self.tokenizer(list(texts), add_special_tokens=True, truncation=True,
                                max_length=budget)["input_ids"]
        if marker_id is not None:
            for ids in framed:
                ids.insert(1, marker_id)
        return framed

    # ---- forward -------------------------------------------------------------------------

    @torch.inference_mode()
    def _forward(self, input_ids: torch.Tensor, attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) int64 ids and mask -> (B, L, dim) float32 unit vectors, (B, L) norms before scaling."""
        hidden = self.model(input_ids=input_ids.to(self.device),
                            attention_mask=attention.to(self.device)).last_hidden_state
        for p in self.projections:
            hidden = p(hidden)
        hidden = hidden.float()
        norms = hidden.norm(dim=-1)
        return hidden / norms.clamp_min(1e-12).unsqueeze(-1), norms

    def _pad(self, batch: list[list[int]], length: int, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(batch), length), fill, dtype=torch.long)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
        return ids, attention

    def tokenize_queries(self, queries: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Model inputs for a batch of queries.

        Returns (input_ids, attention, keep), each (n_queries, L) int64. With augmentation
        L = query_maxlen, the tail is [MASK] (attended to only if the config says so) and
        every position is kept; without it, L is the longest query and padding is not kept.
        """
        cfg, tok = self.config, self.tokenizer
        framed = self._frame(queries, cfg.query_maxlen, self._query_marker_id)
        if cfg.query_augment:
            ids, attention = self._pad(framed, cfg.query_maxlen, tok.mask_token_id)
            keep = torch.ones_like(attention)
            if cfg.attend_to_mask_tokens:
                attention = torch.ones_like(attention)
            return ids, attention, keep
        ids, attention = self._pad(framed, max(map(len, framed)), tok.pad_token_id)
        return ids, attention, attention.clone()

    def encode_queries(self, queries: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Encode queries to a fixed-length block.

        Returns (n_queries, query_maxlen, dim) float32. With query augmentation every row is a
        vector ([MASK] positions included); without it, rows past a query's tokens are zero,
        which adds the same 0 to every document's MaxSim score.
        """
        if isinstance(queries, str):
            raise TypeError("encode_queries takes a list of strings; wrap a single query in a list")
        out = np.zeros((len(queries), self.config.query_maxlen, self.dim), dtype=np.float32)
        for start in range(0, len(queries), batch_size):
            ids, attention, keep = self.tokenize_queries(queries[start : start + batch_size])
            vectors = self._forward(ids, attention)[0] * keep.unsqueeze(-1).to(self.device)
            out[start : start + len(ids), : vectors.shape[1]] = vectors.cpu().numpy()
        return out

    def query_term_ids(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, query_maxlen) int32: the vocabulary id behind each row of `encode_queries`,
        -1 where the row stands for no text term (special tokens, marker, [MASK], padding).

        The vocabulary-list first stage probes only these terms' lists."""
        if isinstance(queries, str):
            raise TypeError("query_term_ids takes a list of strings")
        ids, _, keep = self.tokenize_queries(queries)
        out = np.full((len(queries), self.config.query_maxlen), -1, dtype=np.int32)
        width = min(ids.shape[1], out.shape[1])
        special = torch.tensor(sorted(set(self.tokenizer.all_special_ids) | {self._query_marker_id or -1}))
        text = keep.bool() & ~torch.isin(ids, special)
        out[:, :width] = torch.where(text, ids, -1)[:, :width].numpy()
        return out

    def encode_documents(self, documents: Sequence[str], batch_size: int = 32,
                         show_progress: bool = True) -> DocumentEmbeddings:
        """Encode documents into their kept token vectors (padding and skiplist removed).

        Batches are formed from documents sorted by length so little compute goes to padding;
        results come back in input order.
        """
        if isinstance(documents, str):
            raise TypeError("encode_documents takes a list of strings")
        started = time.perf_counter()
        framed = self._frame(documents, self.config.doc_maxlen, self._doc_marker_id)
        order = np.argsort([-len(ids) for ids in framed], kind="stable")
        kept_vectors: list[np.ndarray | None] = [None] * len(framed)
        kept_ids: list[np.ndarray | None] = [None] * len(framed)
        kept_norms: list[np.ndarray | None] = [None] * len(framed)
        bar = tqdm(total=len(framed), desc=f"encoding ({self.name})", unit="doc",
                   disable=not show_progress)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = [framed[i] for i in rows]
            ids, attention = self._pad(batch, len(batch[0]), self.tokenizer.pad_token_id)
            vectors, norms = self._forward(ids, attention)
            vectors = vectors.to(torch.float16).cpu().numpy()                   # (B, L, dim)
            norms = norms.to(torch.float16).cpu().numpy()                       # (B, L)
            ids_np = ids.numpy()
            keep = attention.numpy().astype(bool) & ~np.isin(ids_np, self._skip_ids)
            for j, doc in enumerate(rows):
                kept_vectors[doc] = vectors[j][keep[j]]
                kept_ids[doc] = ids_np[j][keep[j]].astype(np.int32)
                kept_norms[doc] = norms[j][keep[j]]
            bar.update(len(rows))
        bar.close()
        n_input = sum(map(len, framed))
        return DocumentEmbeddings(
            vectors=np.concatenate(kept_vectors) if framed else np.zeros((0, self.dim), np.float16),
            token_ids=np.concatenate(kept_ids) if framed else np.zeros(0, np.int32),
            lengths=np.array([len(v) for v in kept_vectors], dtype=np.int64),
            norms=np.concatenate(kept_norms) if framed else np.zeros(0, np.float16),
            seconds=time.perf_counter() - started,
            n_input_tokens=n_input,
        )
