"""`Index`: build an index from documents with an encoder, open one for search."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from indexes.store import TokenStore, write_store

from .corpus import Document
from .encoder import Encoder

__all__ = ["Index"]


@dataclass
class Index:
    """An index directory opened for search (see docs/index-format.md)."""

    store: TokenStore

    @property
    def directory(self) -> Path:
        return self.store.directory

    @property
    def manifest(self) -> dict:
        return self.store.manifest

    @property
    def encoder_spec(self) -> dict:
        """The encoder name and settings the documents were encoded with."""
        return self.store.manifest["encoder"]

    def __len__(self) -> int:
        return self.store.n_docs

    @classmethod
    def open(cls, directory: str | Path, verify: bool = True) -> "Index":
        """Open an existing index; verify=True checks every file's checksum first."""
        return cls(TokenStore.open(directory, verify=verify))

    @classmethod
    def build(cls, directory: str | Path, documents: Sequence[Document], encoder: Encoder, *,
              batch_size: int = 32, show_progress: bool = True) -> "Index":
        """Encode `documents` and atomically write them as the index in `directory`.

        An index already in `directory` stays readable until the new one replaces it in one
        rename; if anything fails before that, the old index is untouched.
        """
        if not documents:
            raise ValueError("cannot build an index from zero documents")
        embeddings = encoder.encode_documents([d.full_text for d in documents], batch_size=batch_size,
                                              show_progress=show_progress)
        started = time.perf_counter()
        spec = {"name": encoder.name, "dim": encoder.dim, "config": encoder.config.to_dict()}
        build = {"encode_seconds": round(embeddings.seconds, 3),
                 "input_tokens": embeddings.n_input_tokens,
                 "tokens_per_second": round(embeddings.tokens_per_second, 1)}
        write_store(directory, embeddings.vectors, embeddings.token_ids, embeddings.offsets,
                    (d.to_dict() for d in documents), encoder=spec, extra={"build": build})
        index = cls.open(directory, verify=False)
        index.store.manifest["build"]["write_seconds"] = round(time.perf_counter() - started, 3)
        return index
