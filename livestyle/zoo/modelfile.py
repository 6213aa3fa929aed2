"""Model files: self-describing safetensors (task and architecture in the metadata), saved and
loaded without pickle; pytorch/examples checkpoints and ONNX files are recognised by their content."""
from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from livestyle.errors import WeightsError
from livestyle.files import sha256_of
from livestyle.zoo.registry import build_model, task_of


def model_metadata(model: nn.Module, **extra: str) -> dict[str, str]:
    """Safetensors metadata that makes a model file self-describing (task + architecture)."""
    task = task_of(model)
    return {"livestyle.task": task, "livestyle.arch": json.dumps(model.config.to_dict()), **extra}


def save_model_file(model: nn.Module, path: str | os.PathLike, **extra_metadata: str) -> str:
    """Write ``model`` as a self-describing safetensors file; returns its sha256.

    Written as bytes by Python, so the file gets the usual permissions (umask); safetensors' own
    ``save_file`` creates it readable by its owner only.
    """
    Path(path).write_bytes(model_bytes(model, **extra_metadata))
    return sha256_of(path)


def model_bytes(model: nn.Module, **extra_metadata: str) -> bytes:
    """``model`` as the bytes of a self-describing safetensors file (what ``save_model_file`` writes)."""
    from safetensors.torch import save

    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    return save(state, metadata=model_metadata(model, **extra_metadata))


def load_model_bytes(data: bytes) -> tuple[nn.Module, dict[str, str]]:
    """The model in ``model_bytes``' output (no pickle). Returns (model in eval mode, metadata)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        header_size = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
        state = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"not a readable safetensors model ({exc})") from exc
    return _build(state, metadata, "the model sent"), metadata


def load_model_file(path: str | os.PathLike) -> tuple[nn.Module, dict[str, str]]:
    """Load a model file (no pickle). Returns (model in eval mode, metadata).

    Livestyle safetensors files, and community style models detected from their content:
    pytorch/examples fast_neural_style checkpoints and fast-neural-style ONNX files (see livestyle.zoo.community).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from livestyle.zoo.community import OnnxFileNet, community_kind, load_community_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    if community_kind(path) is not None:
        model = load_community_file(path)
        if isinstance(model, OnnxFileNet):
            return model, {"livestyle.task": "style", "livestyle.source": "onnx",
                           "livestyle.value_range": f"{model.value_range:g}"}
        return model, {"livestyle.task": "style", "livestyle.source": "pytorch_examples_checkpoint",
                       "livestyle.arch": json.dumps(model.config.to_dict())}
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors model file ({exc})") from exc
    return _build(state, metadata, path), metadata


def _build(state: dict, metadata: dict[str, str], what) -> nn.Module:
    """The network a livestyle safetensors file's metadata states, with its weights, in eval mode."""
    if "livestyle.task" not in metadata or "livestyle.arch" not in metadata:
        raise WeightsError(f"{what} is not a livestyle model file (its metadata states no task/architecture)")
    model = build_model(metadata["livestyle.task"], json.loads(metadata["livestyle.arch"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise WeightsError(f"{what}: weights do not match the architecture its metadata states") from exc
    return model.eval()
