"""Encode a corpus once, in shards saved to disk, so a long run can stop and resume.

A cache folder holds `shard-00000.npz`, `shard-00001.npz`, ... (each a `DocumentEmbeddings`)
and `cache.json` naming the encoder, shard size and document ids it was made for. A shard is
written to a temporary name and renamed, so a killed run loses at most the shard in progress.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from .corpus import Document
from .encoder import DocumentEmbeddings, Encoder
from .passages import WINDOWING

__all__ = ["encode_corpus_cached", "concat_embeddings"]


def _fingerprint(encoder: Encoder, documents: Sequence[Document], shard_size: int) -> dict:
    ids = hashlib.sha256("\n".join(d.id for d in documents).encode()).hexdigest()
    text = hashlib.sha256("\n".join(d.full_text for d in documents).encode()).hexdigest()
    # Only the settings that shape document vectors: query-side settings may change freely.
    config = {k: v for k, v in encoder.config.to_dict().items()
              if k in ("doc_maxlen", "doc_stride", "doc_marker", "skiplist")}
    config["passages"] = [*encoder.passage_window, WINDOWING]     # caches of other windows never match
    return {"encoder": encoder.name, "config": config, "dim": encoder.dim,
            "n_docs": len(documents), "doc_ids_sha256": ids, "text_sha256": text, "shard_size": shard_size}


def concat_embeddings(parts: Sequence[DocumentEmbeddings]) -> DocumentEmbeddings:
    """Join embeddings of consecutive document batches into one."""
    return DocumentEmbeddings(
        vectors=np.concatenate([p.vectors for p in parts]),
        token_ids=np.concatenate([p.token_ids for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        norms=np.concatenate([p.norms for p in parts]),
        seconds=sum(p.seconds for p in parts),
        n_input_tokens=sum(p.n_input_tokens for p in parts),
        passage_lengths=np.concatenate([p.passage_lengths for p in parts]),
        passages=np.concatenate([p.passages for p in parts]),
        spans=None if any(p.spans is None for p in parts) else np.concatenate([p.spans for p in parts]),
    )


def encode_corpus_cached(encoder: Encoder, documents: Sequence[Document], cache_dir: str | Path, *,
                         shard_size: int = 512, batch_size: int | None = None,
                         show_progress: bool = True) -> DocumentEmbeddings:
    """Embeddings of `documents`, reusing every shard already in `cache_dir`.

    A cache made for other documents or another encoder is refused rather than mixed in.
    `seconds` of the result counts encoding time of all shards, including earlier runs.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = _fingerprint(encoder, documents, shard_size)
    meta_path = cache_dir / "cache.json"
    if meta_path.is_file():
        if json.loads(meta_path.read_text()) != meta:
            raise ValueError(f"{cache_dir}: the cache was made for other documents or another encoder; "
                             "remove it or choose another folder")
    else:
        meta_path.write_text(json.dumps(meta, indent=1))
    parts = []
    n_shards = (len(documents) + shard_size - 1) // shard_size
    for shard in tqdm(range(n_shards), desc="corpus shards", unit="shard", disable=not show_progress):
        path = cache_dir / f"shard-{shard:05d}.npz"
        if not path.is_file():
            chunk = documents[shard * shard_size:(shard + 1) * shard_size]
            emb = encoder.encode_documents([d.full_text for d in chunk], batch_size=batch_size,
                                           show_progress=False)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, vectors=emb.vectors, token_ids=emb.token_ids, lengths=emb.lengths, norms=emb.norms,
                     seconds=emb.seconds, n_input_tokens=emb.n_input_tokens, passage_lengths=emb.passage_lengths,
                     passages=emb.passages, spans=emb.spans)
            os.replace(tmp, path)
        with np.load(path) as z:
            parts.append(DocumentEmbeddings(z["vectors"], z["token_ids"], z["lengths"], z["norms"],
                                            float(z["seconds"]), int(z["n_input_tokens"]),
                                            z["passage_lengths"], z["passages"], z["spans"]))
    return concat_embeddings(parts)
