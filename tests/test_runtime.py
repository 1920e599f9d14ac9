"""Encoder runtimes: torch bfloat16 and ONNX Runtime (float32, int8) against the torch float32
reference on tiny checkpoints of each layout; the converted-model cache; the fallbacks when a
runtime cannot run here; the default's choice."""

from __future__ import annotations

import builtins
import shutil

import numpy as np
import pytest

import torch

from retriever import load_encoder, runtime as runtimes
from retriever.runtime import RuntimeFallbackWarning


@pytest.fixture
def onnxruntime():
    return pytest.importorskip("onnxruntime", reason="onnxruntime not installed (bash scripts/install.sh installs it)")

DOCS = ["the quick brown fox jumps over the lazy dog", "late interaction keeps one vector per token",
        "a b c", "solar panels turn light into electricity, and wind turbines turn air into it"]


def _plain_hf(tmp_path, pylate_checkpoint):
    path = tmp_path / "plain"
    shutil.copytree(pylate_checkpoint[0], path)
    (path / "modules.json").unlink()
    return path


@pytest.mark.parametrize("layout", ["colbert_ai_checkpoint", "pylate_checkpoint", "plain"])
@pytest.mark.parametrize("runtime, tolerance", [("onnx", 1e-3), ("onnx-int8", 0.15), ("torch-bf16", 0.02)])
def test_runtime_vectors_match_torch(layout, runtime, tolerance, request, tmp_path, pylate_checkpoint, monkeypatch):
    if runtime.startswith("onnx"):
        request.getfixturevalue("onnxruntime")
    else:       # bfloat16 runs (emulated, slowly) on any CPU: check its vectors even without native support
        monkeypatch.setattr(runtimes, "native_bf16", lambda: True)
    path = _plain_hf(tmp_path, pylate_checkpoint) if layout == "plain" else request.getfixturevalue(layout)[0]
    reference = load_encoder(path, device="cpu", runtime="torch")
    fast = load_encoder(path, device="cpu", runtime=runtime, cache_dir=tmp_path / "cache")
    assert fast.runtime == runtime
    a = reference.encode_documents(DOCS, show_progress=False)
    b = fast.encode_documents(DOCS, show_progress=False)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    cosine = (a.vectors.astype(np.float32) * b.vectors.astype(np.float32)).sum(1)
    assert cosine.min() > 1 - tolerance, cosine.min()
    q_ref, q_fast = reference.encode_queries(["what turns light into electricity?"]), \
        fast.encode_queries(["what turns light into electricity?"])
    assert q_ref.shape == q_fast.shape
    real = np.abs(q_ref).sum(-1) > 0
    assert ((q_ref * q_fast).sum(-1)[real] > 1 - tolerance).all()


def test_converted_model_is_cached_and_redone_when_the_checkpoint_changes(tmp_path, pylate_checkpoint, onnxruntime):
    cache = tmp_path / "cache"
    first = load_encoder(pylate_checkpoint[0], device="cpu", runtime="onnx", cache_dir=cache)
    assert first._runtime.converted
    again = load_encoder(pylate_checkpoint[0], device="cpu", runtime="onnx", cache_dir=cache)
    assert not again._runtime.converted and again._runtime.path == first._runtime.path
    changed = tmp_path / "changed"
    shutil.copytree(pylate_checkpoint[0], changed)
    modified = load_encoder(changed, device="cpu", runtime="torch")
    with torch.no_grad():
        modified.projections[0].weight.mul_(1.5)
    modified.projections[0].weight.data[0, 0] += 0.1
    from retriever.runtime import OnnxRuntime
    other = OnnxRuntime(modified.model, modified.projections, quantize=False, cache_dir=cache)
    assert other.converted and other.path != first._runtime.path
    assert len(list((cache / "onnx").iterdir())) == 2


def test_a_missing_runtime_falls_back_to_torch_with_a_message(monkeypatch, pylate_checkpoint):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.warns(RuntimeFallbackWarning, match="pip install onnxruntime"):
        encoder = load_encoder(pylate_checkpoint[0], device="cpu", runtime="onnx-int8")
    assert encoder.runtime == "torch"
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_encoder(pylate_checkpoint[0], device="cpu", runtime="tensorrt")


def test_bf16_without_native_support_falls_back_to_float32_with_a_message(monkeypatch, pylate_checkpoint):
    monkeypatch.setattr(runtimes, "native_bf16", lambda: False)
    with pytest.warns(RuntimeFallbackWarning, match="no native bfloat16"):
        encoder = load_encoder(pylate_checkpoint[0], device="cpu", runtime="torch-bf16")
    assert encoder.runtime == "torch"


@pytest.mark.parametrize("native, has_onnx, expected", [(True, True, "torch-bf16"), (True, False, "torch-bf16"),
                                                         (False, True, "onnx"), (False, False, "torch")])
def test_the_default_is_bf16_where_native_then_onnx_then_torch(monkeypatch, native, has_onnx, expected):
    monkeypatch.setattr(runtimes, "native_bf16", lambda: native)
    real_import = builtins.__import__

    def maybe_no_onnxruntime(name, *args, **kwargs):
        if not has_onnx and name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", maybe_no_onnxruntime)
    assert runtimes.default_runtime(torch.device("cpu")) == expected
    assert runtimes.default_runtime(torch.device("cuda")) == "torch"


def test_native_bf16_reads_the_cpu_flags(monkeypatch, tmp_path):
    from indexes.codec import kmeans

    flags = tmp_path / "cpuinfo"
    real_path = kmeans.Path
    monkeypatch.setattr(kmeans, "Path", lambda p: flags if p == "/proc/cpuinfo" else real_path(p))
    flags.write_text("flags : fpu sse avx512f avx512bw\n")
    assert not kmeans.native_bf16()
    flags.write_text("flags : fpu sse avx512f avx512_bf16\n")
    assert kmeans.native_bf16()


def test_the_cli_offers_every_runtime():
    from retriever.cli import _index_parser

    action = next(a for a in _index_parser()._actions if a.dest == "runtime")
    assert tuple(action.choices) == runtimes.RUNTIMES


def test_documents_go_through_in_batches_of_the_device_default(pylate_checkpoint, monkeypatch):
    encoder = load_encoder(pylate_checkpoint[0], device="cpu", runtime="torch")
    assert encoder.document_batch_size == 32
    sizes, forward = [], encoder._runtime.forward
    monkeypatch.setattr(encoder._runtime, "forward", lambda ids, att: sizes.append(len(ids)) or forward(ids, att))
    encoder.encode_documents([f"document {i} " * (1 + i % 5) for i in range(70)], show_progress=False)
    assert sizes == [32, 32, 6]
    sizes.clear()
    encoder.encode_documents(["a short one", "and another"] * 5, batch_size=4, show_progress=False)
    assert sizes == [4, 4, 2]


def test_onnx_sessions_follow_the_thread_count_and_never_spin(tmp_path, pylate_checkpoint, onnxruntime):
    """One session per thread count (made when that count is first used), each with spinning
    worker threads turned off, all giving the same vectors."""
    encoder = load_encoder(pylate_checkpoint[0], device="cpu", runtime="onnx", cache_dir=tmp_path)
    runtime = encoder._query_runtime
    previous = torch.get_num_threads()
    try:
        vectors = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            vectors[threads] = encoder.encode_queries(["late interaction on two threads"])
            options = runtime.session.get_session_options()
            assert options.intra_op_num_threads == threads
            assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
            assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
        assert set(runtime._sessions) == {1, 2} and runtime._sessions[1] is not runtime._sessions[2]
        np.testing.assert_allclose(vectors[1], vectors[2], atol=1e-5)
    finally:
        torch.set_num_threads(previous)
