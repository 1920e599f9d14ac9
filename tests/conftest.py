"""Shared fixtures: tiny random ColBERT checkpoints saved in each layout a user might have."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertPreTrainedModel, BertTokenizerFast

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

WORDS = ("the a of and in is what late interaction retrieval token vector search index query "
         "document colbert model bert text hello world cat dog sat on mat fast slow").split()


def make_tokenizer(folder: Path) -> BertTokenizerFast:
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.punctuation) + WORDS
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # Positional: the first parameter is vocab_file in transformers 4 and vocab in 5.
    return BertTokenizerFast(str(folder / "vocab.txt"), do_lower_case=True)


def tiny_bert_config(vocab_size: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)


class HF_ColBERT(BertPreTrainedModel):
    """The shape of colbert-ai's checkpoint class: `bert` + a bias-free `linear` projection."""

    def __init__(self, config, dim: int = 16):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.linear = torch.nn.Linear(config.hidden_size, dim, bias=False)
        self.post_init()


@pytest.fixture(scope="session")
def colbert_ai_checkpoint(tmp_path_factory) -> tuple[Path, HF_ColBERT]:
    """A colbert-ai layout directory: config.json (HF_ColBERT), weights, tokenizer, artifact.metadata."""
    folder = tmp_path_factory.mktemp("colbert_ai")
    torch.manual_seed(0)
    tokenizer = make_tokenizer(folder)
    model = HF_ColBERT(tiny_bert_config(len(tokenizer))).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps({
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 12, "doc_maxlen": 20,
        "mask_punctuation": True, "attend_to_mask_tokens": False, "dim": 16, "similarity": "cosine"}))
    return folder, model


@pytest.fixture(scope="session")
def pylate_checkpoint(tmp_path_factory) -> tuple[Path, BertModel, torch.nn.Linear]:
    """A PyLate layout directory: modules.json, transformer at the root, 1_Dense, ST configs."""
    folder = tmp_path_factory.mktemp("pylate")
    torch.manual_seed(1)
    tokenizer = make_tokenizer(folder)
    tokenizer.add_tokens(["[Q]", "[D]"])
    model = BertModel(tiny_bert_config(len(tokenizer)), add_pooling_layer=False).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    dense = torch.nn.Linear(32, 24, bias=False)
    (folder / "1_Dense").mkdir()
    from safetensors.torch import save_file
    save_file({"linear.weight": dense.weight.detach().contiguous()}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "1_Dense" / "config.json").write_text(json.dumps(
        {"in_features": 32, "out_features": 24, "bias": False,
         "activation_function": "torch.nn.modules.linear.Identity"}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 19, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 10, "document_length": 20,
        "do_query_expansion": True, "attend_to_expansion_tokens": False,
        "skiplist_words": list(string.punctuation), "similarity_fn_name": "MaxSim"}))
    return folder, model, dense


def reference_vectors(bert: BertModel, projection: torch.nn.Linear, ids: list[int],
                      attention: list[int] | None = None) -> torch.Tensor:
    """Normalised projected hidden states of one sequence, computed without Tessera."""
    with torch.no_grad():
        input_ids = torch.tensor([ids])
        mask = torch.tensor([attention if attention is not None else [1] * len(ids)])
        hidden = bert(input_ids=input_ids, attention_mask=mask).last_hidden_state[0]
        return torch.nn.functional.normalize(projection(hidden), dim=-1)


def synthetic_batch(n_docs: int = 40, dim: int = 32, seed: int = 0, min_len: int = 3, max_len: int = 30):
    """Clustered unit vectors shaped like encoder output: (vectors f16, token_ids i32, lengths, norms)."""
    import numpy as np
    from indexes.builder.pipeline import TokenBatch

    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len, size=n_docs).astype(np.int64)
    n = int(lengths.sum())
    topics = rng.standard_normal((12, dim))
    raw = topics[rng.integers(0, 12, size=n)] + 0.5 * rng.standard_normal((n, dim))
    norms = np.linalg.norm(raw, axis=1)
    vectors = (raw / norms[:, None]).astype(np.float16)
    token_ids = rng.integers(0, 500, size=n).astype(np.int32)
    return TokenBatch(vectors, token_ids, lengths, norms.astype(np.float16))


def synthetic_docs(n_docs: int, prefix: str = "d") -> list[dict]:
    return [{"id": f"{prefix}{i}", "title": f"title {i}", "text": f"text {i}", "metadata": {"n": i}}
            for i in range(n_docs)]


def stored(segment):
    """(codes, residuals) of every vector of a segment, in vector (document) order."""
    return segment.vector_codes(slice(None)), segment.vector_residuals(slice(None))
