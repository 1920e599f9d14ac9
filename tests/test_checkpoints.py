"""Both checkpoint layouts load through `load_encoder` and reproduce the saved model's vectors."""

from __future__ import annotations

import json
import string
import warnings

import numpy as np
import pytest
import torch

from retriever import load_encoder
from retriever.encoder import QueryTruncatedWarning
from conftest import reference_vectors


def test_colbert_ai_layout_reads_metadata(colbert_ai_checkpoint):
    folder, _ = colbert_ai_checkpoint
    enc = load_encoder(folder, device="cpu")
    assert enc.dim == 16
    cfg = enc.config
    assert (cfg.query_maxlen, cfg.doc_maxlen) == (12, 20)
    assert (cfg.query_marker, cfg.doc_marker) == ("[unused0]", "[unused1]")
    assert cfg.query_augment and not cfg.attend_to_mask_tokens


def test_colbert_ai_document_vectors_match_saved_model(colbert_ai_checkpoint):
    folder, model = colbert_ai_checkpoint
    enc = load_encoder(folder, device="cpu")
    out = enc.encode_documents(["the cat sat, on the mat."], show_progress=False)
    tok = enc.tokenizer
    ids = [tok.cls_token_id, tok.convert_tokens_to_ids("[unused1]")] + \
        tok.encode("the cat sat, on the mat.", add_special_tokens=False) + [tok.sep_token_id]
    expected = reference_vectors(model.bert, model.linear, ids)
    keep = [i for i, t in enumerate(ids) if tok.convert_ids_to_tokens(t) not in string.punctuation]
    assert out.vectors.shape == (len(keep), 16)
    assert out.token_ids.tolist() == [ids[i] for i in keep]
    np.testing.assert_allclose(out.vectors.astype(np.float32), expected[keep].numpy(), atol=2e-3)


def test_pylate_layout_loads_dense_and_prefixes(pylate_checkpoint):
    folder, bert, dense = pylate_checkpoint
    enc = load_encoder(folder, device="cpu")
    assert enc.dim == 24
    assert (enc.config.query_maxlen, enc.config.doc_maxlen) == (10, 20)
    assert (enc.config.query_marker, enc.config.doc_marker) == ("[Q]", "[D]")
    out = enc.encode_documents(["hello world"], show_progress=False)
    tok = enc.tokenizer
    ids = [tok.cls_token_id, tok.convert_tokens_to_ids("[D]"), *tok.encode("hello world", add_special_tokens=False),
           tok.sep_token_id]
    assert out.token_ids.tolist() == ids
    np.testing.assert_allclose(out.vectors.astype(np.float32), reference_vectors(bert, dense, ids).numpy(), atol=2e-3)


@pytest.mark.parametrize("layout", ["colbert_ai_checkpoint", "pylate_checkpoint"])
def test_vectors_are_unit_norm(layout, request):
    folder = request.getfixturevalue(layout)[0]
    enc = load_encoder(folder, device="cpu")
    docs = enc.encode_documents(["what is late interaction", "a dog", ""], show_progress=False)
    assert docs.vectors.dtype == np.float16 and docs.token_ids.dtype == np.int32
    assert (docs.lengths >= 1).all() and docs.lengths.sum() == len(docs.vectors)
    np.testing.assert_allclose(np.linalg.norm(docs.vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    q = enc.encode_queries(["late interaction"])
    assert q.shape == (1, enc.config.query_maxlen, enc.dim)
    np.testing.assert_allclose(np.linalg.norm(q[0], axis=1), 1.0, atol=1e-5)


def test_query_augmentation_pads_with_mask(colbert_ai_checkpoint):
    folder, model = colbert_ai_checkpoint
    enc = load_encoder(folder, device="cpu")
    tok = enc.tokenizer
    ids, attention, keep = enc.tokenize_queries(["what is colbert"])
    body = tok.encode("what is colbert", add_special_tokens=False)
    expected = [tok.cls_token_id, tok.convert_tokens_to_ids("[unused0]"), *body, tok.sep_token_id]
    assert ids.shape == (1, 12)
    assert ids[0, : len(expected)].tolist() == expected
    assert (ids[0, len(expected):] == tok.mask_token_id).all()
    # colbert-ai default: [MASK] tokens are not attended to, yet each still yields a vector.
    assert attention[0].tolist() == [1] * len(expected) + [0] * (12 - len(expected))
    assert keep.all()
    q = enc.encode_queries(["what is colbert"])[0]
    ref = reference_vectors(model.bert, model.linear, ids[0].tolist(), attention[0].tolist())
    np.testing.assert_allclose(q, ref.numpy(), atol=1e-4)


def test_attend_to_mask_tokens_comes_from_config(colbert_ai_checkpoint):
    enc = load_encoder(colbert_ai_checkpoint[0], device="cpu", attend_to_mask_tokens=True)
    _, attention, _ = enc.tokenize_queries(["what is colbert"])
    assert attention.all()


def test_long_query_is_encoded_whole_and_padded_to_a_multiple(pylate_checkpoint):
    enc = load_encoder(pylate_checkpoint[0], device="cpu")       # query_length 10, [MASK] expansion
    tok = enc.tokenizer
    with warnings.catch_warnings():
        warnings.simplefilter("error", QueryTruncatedWarning)    # nothing may be cut silently or not
        ids, attention, keep = enc.tokenize_queries([" ".join(["cat"] * 50)])
    n = 50 + 3                                                   # [CLS] [Q] cat x 50 [SEP]
    assert ids.shape == (1, 60)                                  # rounded up to a multiple of 10
    assert (ids[0, 2:52] == tok.convert_tokens_to_ids("cat")).all() and ids[0, 52] == tok.sep_token_id
    assert (ids[0, n:] == tok.mask_token_id).all() and keep.all()
    assert attention[0].tolist() == [1] * n + [0] * (60 - n)


def test_capped_query_is_truncated_with_a_warning(pylate_checkpoint):
    enc = load_encoder(pylate_checkpoint[0], device="cpu", query_max_tokens=20)
    with pytest.warns(QueryTruncatedWarning, match="dropping 33 tokens"):
        ids, _, keep = enc.tokenize_queries([" ".join(["cat"] * 50), "dog"])
    assert ids.shape == (2, 20) and ids[0, 19] == enc.tokenizer.sep_token_id
    assert keep[1].sum() == 10                                   # the short query keeps its own length


def test_queries_of_mixed_lengths_encode_as_alone(pylate_checkpoint, colbert_ai_checkpoint):
    texts = ["cat", " ".join(["the cat sat on the mat"] * 6), "dog sat", " ".join(["hello world"] * 9)]
    for folder, overrides in ((pylate_checkpoint[0], {}), (colbert_ai_checkpoint[0], {}),
                              (pylate_checkpoint[0], {"query_augment": False})):
        enc = load_encoder(folder, device="cpu", **overrides)
        together = enc.encode_queries(texts)
        terms = enc.query_term_ids(texts)
        assert terms.shape == together.shape[:2]
        for i, text in enumerate(texts):
            alone = enc.encode_queries([text])[0]
            width = alone.shape[0]
            np.testing.assert_allclose(together[i, :width], alone, atol=1e-4)
            assert not together[i, width:].any()                  # padding rows are zero
            np.testing.assert_array_equal(terms[i, :width], enc.query_term_ids([text])[0])


def test_without_augmentation_padding_rows_are_zero(pylate_checkpoint):
    enc = load_encoder(pylate_checkpoint[0], device="cpu", query_augment=False)
    q = enc.encode_queries(["cat", "the cat sat on the mat"])
    n_short = 4  # [CLS] [Q] cat [SEP]
    assert np.all(np.linalg.norm(q[0, :n_short], axis=1) > 0.99)
    assert np.all(q[0, n_short:] == 0)


def test_punctuation_is_skipped_in_documents_only(colbert_ai_checkpoint):
    enc = load_encoder(colbert_ai_checkpoint[0], device="cpu")
    tok = enc.tokenizer
    docs = enc.encode_documents(["hello , world ! ?"], show_progress=False)
    tokens = tok.convert_ids_to_tokens(docs.token_ids.tolist())
    assert tokens == ["[CLS]", "[unused1]", "hello", "world", "[SEP]"]
    ids, _, keep = enc.tokenize_queries(["hello , world"])
    assert tok.convert_tokens_to_ids(",") in ids[0][keep[0].bool()].tolist()


def test_long_document_split_into_passages_none_dropped(colbert_ai_checkpoint):
    # doc_maxlen 20 with [CLS], marker and [SEP]: 17 text tokens a passage, a stride of 14.
    enc = load_encoder(colbert_ai_checkpoint[0], device="cpu")
    words = [f"w{i}" for i in range(100)]
    text = " ".join(words)
    docs = enc.encode_documents([text, "short one"], show_progress=False)
    assert enc.passage_window == (17, 14)
    n_text = len(enc.tokenizer(text, add_special_tokens=False)["input_ids"])
    n = -(-(n_text - 3) // 14)                          # the fewest passages overlapping by >= 3 tokens
    assert docs.passages.tolist() == [n, 1]
    length = -(-(n_text + 3 * (n - 1)) // n)            # all of one length, at most 17 text tokens
    assert docs.passage_lengths.tolist()[:-1] == [length + 3] * n and length <= 17
    assert docs.lengths.tolist() == [(length + 3) * n, docs.passage_lengths[-1]]
    # Every text token is encoded in some passage, and each span is that passage's text.
    kept = set(docs.token_ids.tolist())
    assert set(enc.tokenizer(text, add_special_tokens=False)["input_ids"]) <= kept
    first, last = docs.spans[0], docs.spans[docs.passages[0] - 1]
    assert first[0] == 0 and last[1] == len(text)
    assert text[first[0]:first[1]].split()[0] == "w0" and text[last[0]:last[1]].split()[-1] == "w99"
    assert docs.spans[-1].tolist() == [0, len("short one")]


def test_batches_sorted_by_length_return_input_order(pylate_checkpoint):
    enc = load_encoder(pylate_checkpoint[0], device="cpu")
    texts = ["cat", "the cat sat on the mat and the dog", "dog sat", "hello world"]
    together = enc.encode_documents(texts, batch_size=2, show_progress=False)
    alone = [enc.encode_documents([t], show_progress=False) for t in texts]
    assert together.lengths.tolist() == [a.lengths[0] for a in alone]
    np.testing.assert_allclose(together.vectors.astype(np.float32),
                               np.concatenate([a.vectors for a in alone]).astype(np.float32), atol=2e-3)


def test_plain_huggingface_directory_loads(tmp_path, pylate_checkpoint):
    from transformers import AutoModel, AutoTokenizer
    src = pylate_checkpoint[0]
    AutoModel.from_pretrained(src).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(src).save_pretrained(tmp_path)
    enc = load_encoder(tmp_path, device="cpu")
    assert enc.dim == 32 and enc.config.query_marker is None and not enc.config.query_augment


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_encoder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        load_encoder(tmp_path / "empty")


def test_unknown_override_is_refused(pylate_checkpoint):
    with pytest.raises(TypeError, match="unknown encoder settings"):
        load_encoder(pylate_checkpoint[0], device="cpu", query_len=3)


def test_bad_marker_is_refused(pylate_checkpoint):
    with pytest.raises(ValueError, match="not in the tokenizer"):
        load_encoder(pylate_checkpoint[0], device="cpu", query_marker="[NOPE]")
