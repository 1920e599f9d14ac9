"""Where an encoder's transformer runs: torch (the reference, and the GPU path), torch with
bfloat16 autocast (CPUs with native bfloat16 arithmetic), or ONNX Runtime on the CPU, in float32
or with int8 dynamic quantisation of the linear layers.

    runtime = make_runtime("onnx-int8", model, projections, cache_dir=None)
    hidden = runtime.forward(input_ids, attention)      # (B, L) int64 each -> (B, L, dim) float32 tensor

The ONNX model is exported once from the loaded checkpoint (any layout: the export takes the
torch modules Tessera already built) and kept in a cache folder named by a hash of the weights,
the runtime and the library versions, so it is reused while the checkpoint is unchanged and
re-exported when it changes. Without onnxruntime (or on CUDA) the torch runtime serves, with a
warning that says how to get the faster one.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from indexes.codec.kmeans import native_bf16

__all__ = ["RUNTIMES", "default_runtime", "default_query_runtime", "native_bf16", "TorchRuntime", "OnnxRuntime",
           "make_runtime", "default_cache_dir", "RuntimeFallbackWarning"]

RUNTIMES = ("torch", "torch-bf16", "onnx", "onnx-int8")


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def default_runtime(device: torch.device) -> str:
    """Where documents are encoded by default: the highest throughput that keeps nDCG@10 within
    0.5% of torch float32 on every shared collection (docs/benchmarks.md "Encoding throughput",
    `python -m eval.encoders`): on a CPU with native bfloat16, torch-bf16 (2.65x torch float32);
    else ONNX Runtime float32 when installed (1.64x); else torch. On CUDA torch (float16
    autocast). No warning: nothing was asked."""
    if device.type != "cpu":
        return "torch"
    if native_bf16():
        return "torch-bf16"
    return "onnx" if _has_onnxruntime() else "torch"


def default_query_runtime(device: torch.device) -> str:
    """Where queries are encoded by default: the lowest one-query latency at float32 precision,
    ONNX Runtime on the CPU (3.6 ms p50 for a short query vs 4.6 ms bfloat16 and 7.6 ms torch),
    so a query's vectors are the same whichever batch it came in; torch on CUDA or without
    onnxruntime."""
    return "onnx" if device.type == "cpu" and _has_onnxruntime() else "torch"


_EXPORT_VERSION = 2            # part of the cache key: raise when the export or quantisation changes


class RuntimeFallbackWarning(UserWarning):
    """The runtime asked for is not available here; the torch runtime serves instead."""


class _Stack(torch.nn.Module):
    """Transformer + projections as one module: ids, mask -> hidden states (what is exported)."""

    def __init__(self, model: torch.nn.Module, projections: list[torch.nn.Module]):
        super().__init__()
        self.model, self.projections = model, torch.nn.ModuleList(projections)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        for p in self.projections:
            hidden = p(hidden)
        return hidden


class TorchRuntime:
    """torch in float32 on the CPU, float16 autocast on CUDA (vectors are stored in float16
    anyway); with bf16=True bfloat16 autocast on either (matrix products in bfloat16, softmax,
    layer norms and the output in float32)."""

    def __init__(self, model: torch.nn.Module, projections: list[torch.nn.Module], device: torch.device,
                 bf16: bool = False):
        self.stack, self.device = _Stack(model, projections).eval(), device
        self.name = "torch-bf16" if bf16 else "torch"
        if bf16:
            self.autocast = {"device_type": device.type, "dtype": torch.bfloat16, "enabled": True}
        else:
            self.autocast = {"device_type": "cuda", "dtype": torch.float16, "enabled": device.type == "cuda"}

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        with torch.autocast(**self.autocast):
            return self.stack(input_ids.to(self.device), attention.to(self.device)).float()


def default_cache_dir() -> Path:
    """$TESSERA_CACHE, else $XDG_CACHE_HOME/tessera, else ~/.cache/tessera."""
    if os.environ.get("TESSERA_CACHE"):
        return Path(os.environ["TESSERA_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tessera"


def weights_fingerprint(modules: list[torch.nn.Module]) -> str:
    """A hash of every parameter and buffer (names, shapes, values): the checkpoint's identity."""
    h = hashlib.blake2b(digest_size=12)
    for module in modules:
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(str(tuple(tensor.shape)).encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class OnnxRuntime:
    """ONNX Runtime on the CPU; `quantize` = int8 dynamic quantisation of the MatMul weights."""

    def __init__(self, model: torch.nn.Module, projections: list[torch.nn.Module], *, quantize: bool,
                 cache_dir: str | Path | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.name = "onnx-int8" if quantize else "onnx"
        stack = _Stack(model, projections).eval()
        key = (f"{weights_fingerprint([stack])}-{self.name}-v{_EXPORT_VERSION}-ort{ort.__version__}"
               f"-torch{torch.__version__}")
        folder = Path(cache_dir or default_cache_dir()) / "onnx" / key
        self.path = folder / "model.onnx"
        self.converted = not self.path.is_file()
        if self.converted:
            _export(stack, folder, quantize)
        self._ort, self._threads, self._sessions = ort, threads, {}
        self.session            # made here, so a model the runtime cannot load fails (and falls back) now

    @property
    def session(self):
        """The session for the current thread count (torch.get_num_threads() unless fixed), made on
        first use. Its worker threads never spin: ONNX Runtime's default keeps them busy-waiting
        after each call, which takes the cores the search kernels run on next (two threads were
        slower end to end than one; docs/benchmarks.md "End-to-end latency")."""
        threads = self._threads or torch.get_num_threads()
        session = self._sessions.get(threads)
        if session is None:
            ort = self._ort
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            self._sessions[threads] = session
        return session

    def forward(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        out = self.session.run(["hidden"], {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                                            "attention_mask": attention.cpu().numpy().astype(np.int64)})[0]
        return torch.from_numpy(out).float()


def _export(stack: torch.nn.Module, folder: Path, quantize: bool) -> None:
    """Export to folder/model.onnx (int8-quantised if asked), written under a temporary name first
    so a killed export never leaves a half model behind."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"export-{os.getpid()}.onnx"
    ids = torch.ones((2, 16), dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(stack, (ids, torch.ones_like(ids)), str(tmp), input_names=["input_ids", "attention_mask"],
                          output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"},
                                        "hidden": {0: "batch", 1: "length"}})
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / f"export-{os.getpid()}-int8.onnx"
        # Per-channel weight scales: token-vector cosine to float32 0.990 mean vs 0.935 per-tensor (Cranfield).
        quantize_dynamic(str(tmp), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        tmp.unlink()
        tmp = quantized
    os.replace(tmp, folder / "model.onnx")


def make_runtime(name: str, model: torch.nn.Module, projections: list[torch.nn.Module], device: torch.device,
                 cache_dir: str | Path | None = None):
    """The runtime `name` (one of RUNTIMES); torch, with a RuntimeFallbackWarning, where it cannot run."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, got {name!r}")
    if name == "torch":
        return TorchRuntime(model, projections, device)
    if name == "torch-bf16":
        if device.type == "cpu" and not native_bf16():
            warnings.warn("this CPU has no native bfloat16 (AVX512-BF16, AMX or Arm BF16): emulated bfloat16 is "
                          "slower than float32; encoding with torch float32 instead", RuntimeFallbackWarning,
                          stacklevel=3)
            return TorchRuntime(model, projections, device)
        return TorchRuntime(model, projections, device, bf16=True)
    if device.type != "cpu":
        warnings.warn(f"the {name} runtime serves the CPU; on {device} the torch runtime runs (with autocast)",
                      RuntimeFallbackWarning, stacklevel=3)
        return TorchRuntime(model, projections, device)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        warnings.warn(f"the {name} runtime needs onnxruntime (pip install onnxruntime, or bash scripts/install.sh); "
                      "encoding with torch instead", RuntimeFallbackWarning, stacklevel=3)
        return TorchRuntime(model, projections, device)
    try:
        return OnnxRuntime(model, projections, quantize=name == "onnx-int8", cache_dir=cache_dir)
    except Exception as e:  # noqa: BLE001 - an export or session a model's architecture does not support
        warnings.warn(f"the {name} runtime cannot run this model ({type(model).__name__}: {type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200] if str(e) else ''}); encoding with torch instead",
                      RuntimeFallbackWarning, stacklevel=3)
        return TorchRuntime(model, projections, device)
