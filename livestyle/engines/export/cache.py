"""The export cache: where exports live and what keys them (weights digest, exporter and torch versions)."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

ENV_CACHE_DIR = "LIVESTYLE_CACHE_DIR"
# Part of the ONNX cache key: bump when the exported graph changes for the same weights
# (2: space-to-depth output conv; 3: SR nets edge-pad inputs under 5 px; 4: SubpixelSRNet's bicubic skip
# as a low-resolution convolution, not a cubic Resize).
EXPORT_VERSION = 4


def export_graph_version() -> str:
    """What, besides the weights and options, decides the exported ONNX graph: this exporter's version
    and torch's (part of the ONNX and TensorRT cache keys)."""
    return f"livestyle-export-{EXPORT_VERSION}-torch-{torch.__version__}"


def default_cache_dir() -> Path:
    """$LIVESTYLE_CACHE_DIR, else the source tree's export/, else the user cache dir (~/.cache/livestyle)."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    source_tree = Path(__file__).resolve().parents[3] / "export"
    if source_tree.is_dir() and os.access(source_tree, os.W_OK):
        return source_tree
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "livestyle"


def model_digest(model: nn.Module) -> str:
    """sha256 of a network's architecture and weights (names, dtypes, shapes and bytes, in order)."""
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    arch = config.to_dict() if hasattr(config, "to_dict") else {}
    digest.update(json.dumps({"class": type(model).__name__, "arch": arch}, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)  # 1-D: 0-d tensors (batch-norm step counts) too
        digest.update(f"{name}:{t.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def model_scale(model: nn.Module) -> int:
    """Output size / input size of a livestyle network (SR nets: their scale; style nets: 1)."""
    return int(getattr(model, "scale", 1))


def writable_cache_dir(folder: str | os.PathLike) -> Path:
    """``folder`` (created) where files can be written in it; else, with a warning, a new temporary folder.

    A read-only or misplaced cache should cost a re-export, not the run.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        reason = None if os.access(folder, os.W_OK | os.X_OK) else "not writable"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    if reason is None:
        return folder
    fallback = _fallback_cache_dir()
    warnings.warn(f"export cache {folder} cannot be used ({reason}); exporting to {fallback} instead "
                  f"(set ${ENV_CACHE_DIR} to a writable folder to keep exports)", stacklevel=2)
    return fallback


def _fallback_cache_dir() -> Path:
    """This user's own cache folder in the temporary folder, the same for every run (a new folder per
    run would leave a full export behind each time); a fresh one where that name is not ours."""
    folder = Path(tempfile.gettempdir()) / f"livestyle-cache-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        ours = stat.S_ISDIR(info.st_mode) and (not hasattr(os, "getuid") or info.st_uid == os.getuid())
        if ours and os.access(folder, os.W_OK | os.X_OK):
            return folder
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix="livestyle-export-"))
