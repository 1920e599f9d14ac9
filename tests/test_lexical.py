"""BM25 lists stored in the index: equal to bm25s, kept in step with add/delete/compact, fused."""

from __future__ import annotations

import numpy as np
import pytest

from indexes.files import IndexFormatError
from indexes.search.bm25 import LexicalQueries, LexicalStats, bm25_batch, lexical_stats
from indexes.storage.lexical_lists import build_lexical_lists
from retriever import Document, Index, Searcher, read_corpus, read_queries
from eval.hybrid import interpolate_scores, reciprocal_rank_fusion
from conftest import SAMPLE


class _Lists:
    def __init__(self, texts):
        for name, array in build_lexical_lists(texts).items():
            setattr(self, name[:-4], array)


def bm25_search(segments, bases, alive, text, k):
    """One query's (scores, positions) with the padding cut off."""
    queries = LexicalQueries.from_texts([text])
    scores, positions = bm25_batch(segments, bases, alive, queries, lexical_stats(segments, bases[-1], queries), k)
    keep = positions[0] >= 0
    return scores[0][keep], positions[0][keep]


def test_a_batch_scores_as_its_queries_one_by_one_and_shards_as_one_index():
    texts = [d.full_text for d in read_corpus(SAMPLE)]
    queries = [q.text for q in read_queries(SAMPLE)] + ["", "the of and", "zzzunknownword"]
    whole, bases, alive = _Lists(texts), np.array([0, len(texts)]), np.ones(len(texts), bool)
    batch = LexicalQueries.from_texts(queries)
    scores, positions = bm25_batch([whole], bases, alive, batch, lexical_stats([whole], len(texts), batch), 7)
    for i, q in enumerate(queries):
        s, p = bm25_search([whole], bases, alive, q, 7)
        np.testing.assert_array_equal(positions[i][:len(p)], p)
        assert (positions[i][len(p):] == -1).all()
        np.testing.assert_array_equal(scores[i][:len(s)], s)
    # Two shards (positions local to each) with merged statistics score exactly as one index.
    cut = len(texts) // 3
    shards = [_Lists(texts[:cut]), _Lists(texts[cut:])]
    stats = LexicalStats.merge([lexical_stats([shards[0]], cut, batch), lexical_stats([shards[1]], len(texts) - cut, batch)])
    parts = [bm25_batch([shards[0]], np.array([0, cut]), alive[:cut], batch, stats, 7),
             bm25_batch([shards[1]], np.array([0, len(texts) - cut]), alive[cut:], batch, stats, 7)]
    for i in range(len(queries)):
        got = {int(p) + (cut if j else 0): float(s) for j, (ss, pp) in enumerate(parts)
               for s, p in zip(ss[i], pp[i]) if p >= 0}
        want = {int(p): float(s) for s, p in zip(scores[i], positions[i]) if p >= 0}
        assert all(got[p] == s for p, s in want.items())      # bit-equal scores


def test_bm25_equals_bm25s_on_the_sample():
    import bm25s

    texts = [d.full_text for d in read_corpus(SAMPLE)]
    lists = _Lists(texts)
    reference = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    reference.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    for q in read_queries(SAMPLE):
        scores, positions = bm25_search([lists], np.array([0, len(texts)]), np.ones(len(texts), bool), q.text, 5)
        ids, ref = reference.retrieve(bm25s.tokenize([q.text], stopwords="en", show_progress=False),
                                      k=len(texts), show_progress=False)
        ref_scores = dict(zip(ids[0].tolist(), ref[0].tolist()))
        assert len(positions) > 0
        # bm25s (like Lucene since 8.0) leaves out BM25's constant factor k1 + 1.
        for p, s in zip(positions.tolist(), scores.tolist()):
            assert s / 2.2 == pytest.approx(ref_scores[p], rel=1e-4)
        assert sorted(ref_scores.values(), reverse=True)[0] == pytest.approx(scores[0] / 2.2, rel=1e-4)


def test_statistics_span_segments_and_skip_deleted_documents():
    texts = ["red kites fly", "red boats float", "blue kites", "green tea", "kites and boats"]
    whole = _Lists(texts)
    first, second = _Lists(texts[:2]), _Lists(texts[2:])
    alive = np.ones(5, bool)
    a = bm25_search([whole], np.array([0, 5]), alive, "red kites", 5)
    b = bm25_search([first, second], np.array([0, 2, 5]), alive, "red kites", 5)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    alive[0] = False
    assert 0 not in bm25_search([first, second], np.array([0, 2, 5]), alive, "red kites", 5)[1]


@pytest.fixture
def small_index(tmp_path, pylate_checkpoint):
    from retriever import load_encoder

    encoder = load_encoder(pylate_checkpoint[0], device="cpu")
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(
        ["the cat sat on the mat", "a dog in the world", "hello world", "fast slow search", "late interaction"])]
    return Index.build(tmp_path / "idx", docs, encoder, recipe="res2", show_progress=False), encoder


def test_lexical_lists_follow_add_delete_and_compact(small_index):
    index, encoder = small_index
    lexical = Searcher(index, encoder=encoder, fusion="lexical")
    assert lexical.search("colbert", k=3).doc_ids[0] == []
    index.add([Document(id="new", text="colbert colbert index")], encoder)
    lexical = Searcher(index, encoder=encoder, fusion="lexical")
    assert lexical.search("colbert", k=3).doc_ids[0] == ["new"]
    before = lexical.search("world dog", k=5)
    index.delete(["d1"])
    lexical = Searcher(index, encoder=encoder, fusion="lexical")
    assert "d1" not in lexical.search("world dog", k=5).doc_ids[0]
    index.compact()
    after = Searcher(Index.open(index.directory), encoder=encoder, fusion="lexical").search("world dog", k=5)
    assert after.doc_ids[0] == [d for d in before.doc_ids[0] if d != "d1"]
    files = Index.open(index.directory).manifest["segments"][0]["files"]
    assert {"lex_terms.npy", "lex_docs.npy", "lex_tf.npy", "lex_offsets.npy", "lex_doc_lengths.npy"} <= set(files)


def test_flipped_lexical_byte_is_caught_at_open(small_index):
    index, _ = small_index
    segment = index.directory / index.manifest["segments"][0]["name"]
    raw = bytearray((segment / "lex_tf.npy").read_bytes())
    raw[-1] ^= 0xFF
    (segment / "lex_tf.npy").write_bytes(bytes(raw))
    with pytest.raises(IndexFormatError, match="lex_tf.npy"):
        Index.open(index.directory)


def test_hybrid_searcher_fuses_the_two_rankings(small_index):
    index, encoder = small_index
    query = "hello world"
    dense = Searcher(index, encoder=encoder, hybrid=False).search(query, k=100).hits(0)
    lexical = Searcher(index, encoder=encoder, fusion="lexical").search(query, k=100).hits(0)
    for fusion, expected in (("rrf", reciprocal_rank_fusion([[d for d, _ in dense], [d for d, _ in lexical]])),
                             ("interpolate", interpolate_scores(dense, lexical, 0.3))):
        got = Searcher(index, encoder=encoder, fusion=fusion, alpha=0.3).search(query, k=4).hits(0)
        assert [d for d, _ in got] == [d for d, _ in expected[:4]]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected[:4]], rtol=1e-5)
    default = Searcher(index, encoder=encoder).search(query, k=3)          # hybrid is the default with texts
    explicit = Searcher(index, encoder=encoder, fusion="adaptive").search(query, k=3)
    assert default.doc_ids == explicit.doc_ids and default.scores.tolist() == explicit.scores.tolist()
    arrays = Searcher(index, encoder=encoder).search_batch(encoder.encode_queries([query]), k=3)   # no texts
    assert arrays.doc_ids[0] == [d for d, _ in dense[:3]]
    with pytest.raises(ValueError, match="needs the query texts"):
        Searcher(index, encoder=encoder, hybrid=True).search_batch(encoder.encode_queries([query]), k=3)
    with pytest.raises(ValueError, match="fusion must be one of"):
        Searcher(index, encoder=encoder, fusion="max")


def test_hybrid_honours_the_filter(small_index):
    index, encoder = small_index
    allowed = np.zeros(index.store.n_positions, bool)
    allowed[[0, 3]] = True
    results = Searcher(index, encoder=encoder, hybrid=True).search_batch(["hello world cat"], k=5, allowed=allowed)
    assert set(results.doc_ids[0]) <= {"d0", "d3"} and "d0" in results.doc_ids[0]
