"""`Index`: build an index from documents with an encoder, open, change and compact it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from indexes.builder.pipeline import add_to_index, build_index, compact_index
from indexes.builder.recipe import DEFAULT_RECIPE, Recipe
from indexes.values import check_stored_value
from indexes.storage.store import IndexStore
from indexes.storage.writes import LOCK_TIMEOUT, check_build_target, delete_documents

from .cache import encode_corpus_cached
from .checkpoints import encoder_from_spec, encoder_spec

if TYPE_CHECKING:
    from indexes.storage.verify import BackgroundVerification
from .corpus import MAX_TEXT_CHARS, Document, text_too_long
from .encoder import DocumentEmbeddings, Encoder
from .stopwords import stopword_token_ids

__all__ = ["Index", "encoder_spec", "check_documents"]


def check_documents(documents: Sequence[Document], max_text_chars: int = MAX_TEXT_CHARS) -> None:
    """ValueError naming the document and field that could not be stored and read back as given,
    or whose title or text is over max_text_chars characters."""
    for d in documents:
        problem = text_too_long(d, max_text_chars)
        if problem:
            raise ValueError(f"document {str(d.id)[:80]!r}: {problem}")
        for name, value in d.to_dict().items():
            check_stored_value(value, f"document {str(d.id)[:80]!r} {name}")


@dataclass
class Index:
    """An index directory opened for search (see docs/index-format.md).

    The object is a snapshot: `add`, `delete` and `compact` commit a new state on disk and
    reload it here; other open `Index` objects keep reading their own snapshot.
    """

    store: IndexStore
    build_stats: dict | None = None  # set by build: seconds per stage (writing included), vectors removed
    verification: BackgroundVerification | None = None   # open(verify="background")

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

    @property
    def n_positions(self) -> int:
        """Positions in this snapshot (deleted documents keep theirs until compaction)."""
        return self.store.n_positions

    @property
    def snapshot(self) -> IndexStore:
        """What a search reads now (a new object after every commit this Index reloads)."""
        return self.store

    @property
    def memo(self) -> dict:
        """Derived data (filter columns) kept with the current snapshot and dropped with it."""
        return self.store.memo

    @property
    def n_centroids(self) -> int:
        return self.store.codec.n_centroids

    def engine(self, **settings):
        """The search engine over this snapshot (indexes.search.engine.Engine; settings: its keywords)."""
        from indexes.search.engine import Engine

        return Engine(self.store, **settings)

    def document(self, position: int) -> dict:
        """The stored document at a position that search results or filter masks give."""
        return self.store.document(position)

    def position_of(self, doc_id: str) -> int | None:
        """The position of a live document id in this snapshot, or None."""
        return self.store.position_of.get(doc_id)

    def stats(self) -> dict:
        """Size and shape of this snapshot (what the server's /indexes reports)."""
        store = self.store
        return {"documents": len(self), "shards": 1, "recipe": self.manifest["recipe"],
                "stored_vectors": sum(s.entry["n_vectors"] for s in store.segments),
                "bytes": store.nbytes()["total"], "bytes_search": store.nbytes()["search"], "segments": len(store.segments),
                "encoder": self.encoder_spec["name"], "generation": self.manifest["generation"],
                "growth": self.growth()}

    @classmethod
    def open(cls, directory: str | Path, verify: bool | str = True) -> "Index":
        """Open an existing index. verify=True checks every file's checksum first (reads every
        byte); False checks only the structure (indexes/storage/structure.py); "background" checks the
        structure now and every checksum in a background thread, and searches raise
        IndexFormatError naming the file once it finds damage (`index.verification.wait()`)."""
        if verify not in (True, False, "background"):
            raise ValueError(f"verify must be True, False or 'background', got {verify!r}")
        if verify != "background":
            return cls(IndexStore.open(directory, verify=verify))
        from indexes.storage.verify import BackgroundVerification

        store = IndexStore.open(directory, verify=False)
        return cls(store, verification=BackgroundVerification(store.directory, store.manifest))

    def check_intact(self) -> None:
        """Raise IndexFormatError once a background verification found a damaged file."""
        if self.verification is not None:
            self.verification.check()

    def reload(self) -> "Index":
        self.store = IndexStore.open(self.directory, verify=False)
        return self

    @classmethod
    def build(cls, directory: str | Path, documents: Sequence[Document], encoder: Encoder, *,
              recipe: str | Recipe = DEFAULT_RECIPE, batch_size: int | None = None, cache_dir: str | Path | None = None,
              show_progress: bool = True, seed: int = 0, force: bool = False,
              max_text_chars: int = MAX_TEXT_CHARS, shards: int = 1, use_ray: bool = False,
              ray_address: str | None = None):
        """Encode `documents`, reduce and compress them by `recipe`, and write the index.

        shards > 1: a sharded index (retriever/sharded.py: one plan, one codec, every shard built
        alike; returns a ShardedIndex), its shards built in this process or, use_ray, as Ray tasks
        on `ray_address` (which encode their own documents unless cache_dir is given).

        An index already in `directory` stays readable until the new one replaces it in one
        rename; if anything fails before that, the old index is untouched. cache_dir: keep
        encoded shards there so an interrupted build resumes without re-encoding. A folder that
        holds anything but a Tessera index is refused before encoding starts (force: build anyway,
        keeping those files).
        """
        if not documents:
            raise ValueError("cannot build an index from zero documents")
        check_build_target(directory, force)
        check_documents(documents, max_text_chars)
        if isinstance(recipe, str):
            Recipe.parse(recipe)          # a bad recipe fails before encoding, not after
        _check_kind(Path(directory), shards)
        if shards > 1 and use_ray and cache_dir is None:
            return _build_shards(directory, documents, encoder, None, recipe, shards, use_ray, ray_address, seed)
        if cache_dir is not None:
            embeddings = encode_corpus_cached(encoder, documents, cache_dir, batch_size=batch_size,
                                              show_progress=show_progress)
        else:
            embeddings = encoder.encode_documents([d.full_text for d in documents], batch_size=batch_size,
                                                  show_progress=show_progress)
        if shards > 1:
            return _build_shards(directory, documents, encoder, embeddings, recipe, shards, use_ray, ray_address, seed)
        return cls.build_from_embeddings(directory, embeddings, documents, encoder, recipe=recipe, seed=seed,
                                         force=force)

    @classmethod
    def build_from_embeddings(cls, directory: str | Path, embeddings: DocumentEmbeddings,
                              documents: Sequence[Document], encoder: Encoder, *,
                              recipe: str | Recipe = DEFAULT_RECIPE, seed: int = 0, force: bool = False) -> "Index":
        """Write an index from embeddings the encoder already produced for `documents`."""
        stopwords = stopword_token_ids(encoder.tokenizer, encoder.config.skiplist)
        info = {"encoder": encoder_spec(encoder),
                "encoding": {"runtime": encoder.runtime, "seconds": round(embeddings.seconds, 3),
                             "input_tokens": embeddings.n_input_tokens,
                             "tokens_per_second": round(embeddings.tokens_per_second, 1)}}
        manifest = build_index(directory, embeddings.to_batch(documents), [d.to_dict() for d in documents], recipe=recipe,
                               info=info, vocab_size=len(encoder.tokenizer), stopword_ids=stopwords, seed=seed,
                               force=force)
        return cls(IndexStore.open(directory, verify=False), build_stats=manifest["build"])

    def add(self, documents: Sequence[Document], encoder: Encoder | None = None, *, upsert: bool = False,
            batch_size: int | None = None, show_progress: bool = False, lock_timeout: float = LOCK_TIMEOUT,
            max_text_chars: int = MAX_TEXT_CHARS) -> "Index":
        """Encode and append documents as a new segment (existing codec, no rewrite of old files).

        An id already in the index is an error unless upsert=True (then it is replaced).
        """
        if not documents:
            return self
        check_documents(documents, max_text_chars)
        encoder = encoder or self.load_encoder()
        embeddings = encoder.encode_documents([d.full_text for d in documents], batch_size=batch_size,
                                              show_progress=show_progress)
        add_to_index(self.directory, embeddings.to_batch(documents), [d.to_dict() for d in documents], upsert=upsert,
                     lock_timeout=lock_timeout)
        return self.reload()

    def delete(self, doc_ids: Sequence[str], missing_ok: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> int:
        """Tombstone documents by id; returns how many were deleted. Unknown ids raise KeyError
        unless missing_ok."""
        count = delete_documents(self.directory, [str(i) for i in doc_ids], missing_ok=missing_ok,
                                 lock_timeout=lock_timeout)
        self.reload()
        return count

    def compact(self, retrain: bool = False, lock_timeout: float = LOCK_TIMEOUT) -> "Index":
        """Merge segments and drop deleted documents; retrain=True refits centroids and buckets."""
        compact_index(self.directory, retrain=retrain, lock_timeout=lock_timeout)
        return self.reload()

    def growth(self) -> dict:
        """How far the collection has outgrown its codec (indexes.builder.pipeline.growth)."""
        from indexes.builder.pipeline import growth

        return growth(self.store)

    def maintain(self, lock_timeout: float = LOCK_TIMEOUT) -> dict:
        """Compact, refitting the codec when the collection has outgrown it (IndexStore.growth);
        returns the growth figures it acted on."""
        growth = self.growth()
        self.compact(retrain=growth["retrain"], lock_timeout=lock_timeout)
        return growth

    def load_encoder(self, device=None) -> Encoder:
        """The encoder recorded in the manifest, with the same settings."""
        return encoder_from_spec(self.encoder_spec, device=device)


def _check_kind(directory: Path, shards: int) -> None:
    """Refuse a sharded build over a single index and a single build over a sharded one."""
    from indexes.storage.sharded import SHARDS_FILE
    from indexes.storage.store import MANIFEST

    if shards < 1:
        raise ValueError(f"shards must be at least 1, got {shards}")
    if shards > 1 and (directory / MANIFEST).is_file():
        raise ValueError(f"{directory}: holds a single index; build the {shards} shards into another folder")
    if shards == 1 and (directory / SHARDS_FILE).is_file():
        raise ValueError(f"{directory}: holds a sharded index; build with shards=N or into another folder")


def _build_shards(directory, documents, encoder, embeddings, recipe, shards, use_ray, ray_address, seed):
    from .sharded import build_sharded
    from .sharded_index import ShardedIndex

    build_sharded(directory, documents, encoder, n_shards=shards, recipe=str(recipe), embeddings=embeddings,
                  use_ray=use_ray, ray_address=ray_address, seed=seed)
    return ShardedIndex.open(directory, verify=False, open_shard=Index.open)
