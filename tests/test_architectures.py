"""Checkpoints of the architectures ColBERT models use today (BERT; ModernBERT as in
GTE-ModernColBERT and answerai-colbert; XLM-RoBERTa as in multilingual ColBERTs), tiny and random,
in colbert-ai and PyLate layouts: every runtime gives the vectors of a plain transformers forward
pass, and a runtime that cannot run a model falls back to torch with a warning, not a traceback."""

from __future__ import annotations

import json
import string
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModel, BertConfig, ModernBertConfig, PreTrainedModel, XLMRobertaConfig

from retriever import load_encoder
from retriever.runtime import RuntimeFallbackWarning, native_bf16
from conftest import make_tokenizer

TEXT = "the cat sat on the mat"
ARCHITECTURES = ("bert", "modernbert", "xlm-roberta")
TOLERANCE = {"torch": 2e-3, "onnx": 2e-3, "torch-bf16": 3e-2}    # float16 storage; bfloat16 arithmetic


def _config(arch: str, tokenizer):
    shape = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    if arch == "bert":
        return BertConfig(**shape)
    if arch == "xlm-roberta":
        return XLMRobertaConfig(**shape)
    return ModernBertConfig(**shape, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                            global_attn_every_n_layers=2, local_attention=16)


def _colbert_ai(folder, arch: str):
    """colbert-ai's layout: HF_ColBERT = the base model under its own prefix + `linear`, artifact.metadata."""
    tokenizer = make_tokenizer(folder)
    config = _config(arch, tokenizer)
    base = AutoModel.from_config(config)

    class HF_ColBERT(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = base.base_model_prefix
        _supports_sdpa = True         # the wrapped model chooses its own attention

        def __init__(self, cfg):
            super().__init__(cfg)
            setattr(self, base.base_model_prefix, AutoModel.from_config(cfg))
            self.linear = torch.nn.Linear(cfg.hidden_size, 16, bias=False)

    model = HF_ColBERT(config).eval()
    model.config.architectures = ["HF_ColBERT"]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "artifact.metadata").write_text(json.dumps({
        "query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 12, "doc_maxlen": 20,
        "mask_punctuation": True, "attend_to_mask_tokens": False, "dim": 16}))
    return tokenizer, getattr(model, base.base_model_prefix), model.linear, "[unused1]"


def _pylate(folder, arch: str):
    """PyLate's layout: the transformer at the root, 1_Dense, sentence-transformers configs."""
    from safetensors.torch import save_file

    tokenizer = make_tokenizer(folder)
    tokenizer.add_tokens(["[Q]", "[D]"])
    base = AutoModel.from_config(_config(arch, tokenizer)).eval()
    base.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    dense = torch.nn.Linear(32, 24, bias=False)
    (folder / "1_Dense").mkdir()
    save_file({"linear.weight": dense.weight.detach().contiguous()}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "1_Dense" / "config.json").write_text(json.dumps({"in_features": 32, "out_features": 24, "bias": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"}]))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 10, "document_length": 20,
        "do_query_expansion": True, "skiplist_words": list(string.punctuation)}))
    return tokenizer, base, dense, "[D]"


@pytest.fixture(scope="module", params=[(a, layout) for a in ARCHITECTURES for layout in ("colbert-ai", "pylate")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def checkpoint(request, tmp_path_factory):
    arch, layout = request.param
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(f"{arch}-{layout}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer, base, projection, marker = (_colbert_ai if layout == "colbert-ai" else _pylate)(folder, arch)
    ids = [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids(marker),
           *tokenizer.encode(TEXT, add_special_tokens=False), tokenizer.sep_token_id]
    with torch.no_grad():          # the plain transformers forward pass, without Tessera
        hidden = base.eval()(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        expected = torch.nn.functional.normalize(projection(hidden.last_hidden_state[0]), dim=-1).numpy()
    return folder, ids, expected


@pytest.mark.parametrize("runtime", ["torch", "torch-bf16", "onnx"])
def test_every_runtime_gives_the_vectors_of_a_plain_forward_pass(checkpoint, runtime, tmp_path):
    folder, ids, expected = checkpoint
    if runtime == "torch-bf16" and not native_bf16():
        pytest.skip("this CPU has no native bfloat16 (torch-bf16 falls back to torch float32 here)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeFallbackWarning)      # no silent fallback for these three
        encoder = load_encoder(folder, device="cpu", runtime=runtime, cache_dir=tmp_path)
        out = encoder.encode_documents([TEXT], show_progress=False)
    assert out.token_ids.tolist() == ids
    np.testing.assert_allclose(out.vectors.astype(np.float32), expected, atol=TOLERANCE[runtime])
    queries = encoder.encode_queries(["what is late interaction"])
    reference = load_encoder(folder, device="cpu", runtime="torch").encode_queries(["what is late interaction"])
    np.testing.assert_allclose(queries, reference, atol=TOLERANCE[runtime])


def test_a_runtime_that_cannot_export_a_model_falls_back_with_a_message(checkpoint, tmp_path, monkeypatch):
    folder, ids, expected = checkpoint

    def refuse(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::fancy_attention' to ONNX opset version 17 is not supported")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    with pytest.warns(RuntimeFallbackWarning, match="cannot run this model.*fancy_attention.*torch instead"):
        encoder = load_encoder(folder, device="cpu", runtime="onnx", cache_dir=tmp_path)
    out = encoder.encode_documents([TEXT], show_progress=False)
    np.testing.assert_allclose(out.vectors.astype(np.float32), expected, atol=2e-3)


def test_the_runtime_asked_for_is_the_one_that_runs(checkpoint, tmp_path):
    folder, _, _ = checkpoint
    for runtime in ("torch", "onnx") + (("torch-bf16",) if native_bf16() else ()):
        encoder = load_encoder(folder, device="cpu", runtime=runtime, cache_dir=tmp_path)
        assert encoder.runtime == runtime and encoder.query_runtime == runtime
        assert type(encoder._runtime).__name__ == ("OnnxRuntime" if runtime == "onnx" else "TorchRuntime")
