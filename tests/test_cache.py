"""Encoded-shard cache: resumes without re-encoding, refuses a cache made for other input."""

from __future__ import annotations

import numpy as np
import pytest

from retriever import Document, load_encoder
from retriever.cache import encode_corpus_cached


def docs(n, text="the cat sat on the mat"):
    return [Document(id=str(i), text=f"{text} {'dog ' * i}") for i in range(n)]


def test_resume_encodes_only_missing_shards(tmp_path, pylate_checkpoint):
    encoder = load_encoder(pylate_checkpoint[0], device="cpu")
    first = encode_corpus_cached(encoder, docs(10), tmp_path, shard_size=3, show_progress=False)
    assert len(list(tmp_path.glob("shard-*.npz"))) == 4
    (tmp_path / "shard-00002.npz").unlink()                      # as if the run died during shard 2
    calls = []
    real = encoder.encode_documents
    encoder.encode_documents = lambda texts, **kw: calls.append(len(texts)) or real(texts, **kw)
    again = encode_corpus_cached(encoder, docs(10), tmp_path, shard_size=3, show_progress=False)
    assert calls == [3]
    np.testing.assert_array_equal(first.vectors, again.vectors)
    np.testing.assert_array_equal(first.lengths, again.lengths)
    whole = real([d.full_text for d in docs(10)], show_progress=False)
    np.testing.assert_array_equal(whole.token_ids, again.token_ids)
    np.testing.assert_allclose(whole.vectors.astype(np.float32), again.vectors.astype(np.float32), atol=2e-3)


def test_cache_for_other_documents_is_refused(tmp_path, pylate_checkpoint):
    encoder = load_encoder(pylate_checkpoint[0], device="cpu")
    encode_corpus_cached(encoder, docs(4), tmp_path, shard_size=2, show_progress=False)
    with pytest.raises(ValueError, match="other documents or another encoder"):
        encode_corpus_cached(encoder, docs(4, text="hello world"), tmp_path, shard_size=2, show_progress=False)


def test_query_settings_do_not_invalidate_the_cache(tmp_path, pylate_checkpoint):
    encoder = load_encoder(pylate_checkpoint[0], device="cpu")
    encode_corpus_cached(encoder, docs(4), tmp_path, shard_size=2, show_progress=False)
    capped = load_encoder(pylate_checkpoint[0], device="cpu", query_max_tokens=8, query_maxlen=16)
    encode_corpus_cached(capped, docs(4), tmp_path, shard_size=2, show_progress=False)      # reused
    longer_docs = load_encoder(pylate_checkpoint[0], device="cpu", doc_maxlen=12)
    with pytest.raises(ValueError, match="other documents or another encoder"):
        encode_corpus_cached(longer_docs, docs(4), tmp_path, shard_size=2, show_progress=False)
