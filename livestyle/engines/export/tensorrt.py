"""ONNX → TensorRT engine: strongly typed (precision comes from the ONNX graph), one shape profile,
cached by (model sha256, GPU, TensorRT version, profile, precision) with a JSON sidecar holding the
key, and one timing cache per GPU and TensorRT version so that rebuilds are fast."""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from livestyle.engines.export.cache import (default_cache_dir, export_graph_version, model_digest, model_scale,
                                            writable_cache_dir)
from livestyle.engines.export.onnx import INPUT_NAME, cached_onnx
from livestyle.errors import BackendUnavailableError, ExportError
from livestyle.files import atomic_output, write_json

@dataclass(frozen=True)
class ShapeProfile:
    """TensorRT optimisation profile of the input: (N, 3, H, W) at min ≤ opt ≤ max, element-wise."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def __post_init__(self):
        for shape in (self.min, self.opt, self.max):
            if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
                raise ExportError(f"bad profile shape {shape}: need (N, 3, H, W) with positive sizes")
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ExportError(f"profile needs min ≤ opt ≤ max in every dimension, got {self.min}, {self.opt}, {self.max}")

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        return " / ".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}


def parse_shape(text: str) -> tuple[int, int, int, int]:
    """``"HxW"`` or ``"NxHxW"`` (also ``"NxCxHxW"`` with C = 3) → (N, 3, H, W)."""
    parts = re.split(r"[x×,]", text.strip().lower())
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ExportError(f"bad shape {text!r}: use HxW or NxHxW, e.g. 1080x1920") from None
    if len(values) == 2:
        values = [1, 3, *values]
    elif len(values) == 3:
        values = [values[0], 3, values[1], values[2]]
    elif len(values) != 4 or values[1] != 3:
        raise ExportError(f"bad shape {text!r}: use HxW or NxHxW, e.g. 1080x1920")
    if min(values) < 1:
        raise ExportError(f"bad shape {text!r}: sizes must be positive")
    return tuple(values)


def default_profile(model: nn.Module) -> ShapeProfile:
    """Profile for live use: style nets 32²…2160×3840 (opt 1080p); SR nets 16²…1080×1920 input (opt 270×480)."""
    if model_scale(model) > 1:
        return ShapeProfile((1, 3, 16, 16), (1, 3, 270, 480), (1, 3, 1080, 1920))
    return ShapeProfile((1, 3, 32, 32), (1, 3, 1080, 1920), (1, 3, 2160, 3840))


@dataclass(frozen=True)
class TensorRTKey:
    """Everything a TensorRT engine depends on; any change means a rebuild."""

    model_sha256: str
    gpu_name: str
    tensorrt_version: str
    profile: ShapeProfile
    precision: str  # "fp32" | "fp16"
    onnx_graph: str = ""  # export_graph_version(): the ONNX graph the engine is built from

    def to_dict(self) -> dict:
        return {"model_sha256": self.model_sha256, "gpu_name": self.gpu_name,
                "tensorrt_version": self.tensorrt_version, "profile": self.profile.to_dict(), "precision": self.precision,
                "onnx_graph": self.onnx_graph}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_cache_paths(key: TensorRTKey, cache_dir: str | os.PathLike) -> tuple[Path, Path]:
    """(engine file, JSON sidecar) for ``key`` in ``cache_dir``."""
    stem = f"trt-{key.model_sha256[:12]}-{key.precision}-{key.digest()[:16]}"
    folder = Path(cache_dir)
    return folder / f"{stem}.engine", folder / f"{stem}.json"


def timing_cache_path(gpu_name: str, tensorrt_version: str, cache_dir: str | os.PathLike) -> Path:
    """One timing cache per GPU model and TensorRT version (timings do not transfer between them)."""
    return Path(cache_dir) / f"trt-timing-{_slug(gpu_name)}-{_slug(tensorrt_version)}.cache"


def cached_engine_is_valid(key: TensorRTKey, cache_dir: str | os.PathLike) -> bool:
    """True when the engine for ``key`` exists and its sidecar states exactly this key."""
    engine_path, meta_path = engine_cache_paths(key, cache_dir)
    if not (engine_path.is_file() and meta_path.is_file()) or engine_path.stat().st_size == 0:
        return False
    try:
        return json.loads(meta_path.read_text()).get("key") == key.to_dict()
    except (OSError, ValueError):
        return False


def import_tensorrt():
    """The ``tensorrt`` module, or a BackendUnavailableError naming what to install."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailableError(
            "TensorRT is not installed (pip install 'livestyle[trt]' from NVIDIA's package index, "
            "on a machine with an NVIDIA GPU); run with --backend torch or onnx, or export --format onnx") from None
    return tensorrt


def strongly_typed_flags(trt) -> int:
    """``create_network`` flags: STRONGLY_TYPED on TensorRT 10.x; 0 on 11+ (always strongly typed there)."""
    major = int(str(trt.__version__).split(".")[0])
    if major >= 11:
        return 0
    if major == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    raise BackendUnavailableError(f"TensorRT {trt.__version__} is too old; livestyle needs TensorRT 10 or newer")


def build_tensorrt_engine(onnx_path: str | os.PathLike, key: TensorRTKey, *,
                          cache_dir: str | os.PathLike | None = None, workspace_bytes: int = 4 << 30,
                          trt=None) -> tuple[Path, bool]:
    """Build (or reuse) the serialized TensorRT engine for an ONNX file; returns (engine path, built now).

    The network is strongly typed, so precision comes from the ONNX graph (FP16 graph → FP16
    engine with FP32 instance norms). ``trt`` is the tensorrt module (imported when None).
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if cached_engine_is_valid(key, folder):
        return engine_cache_paths(key, folder)[0], False
    folder = writable_cache_dir(folder)
    engine_path, meta_path = engine_cache_paths(key, folder)
    trt = trt or import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(strongly_typed_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors or 'unknown error'}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    timing_path = timing_cache_path(key.gpu_name, key.tensorrt_version, folder)
    timing_cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, key.profile.min, key.profile.opt, key.profile.max)
    config.add_optimization_profile(profile)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    with atomic_output(engine_path) as tmp:
        tmp.write_bytes(bytes(serialized))
    with atomic_output(timing_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    write_json(meta_path, {"key": key.to_dict(), "onnx": str(onnx_path)})
    return engine_path, True


def tensorrt_key(model: nn.Module, *, profile: ShapeProfile, precision: str = "fp16", device: torch.device | str = "cuda",
                 trt=None) -> TensorRTKey:
    """The cache key of ``model`` on this machine's GPU and TensorRT."""
    trt = trt or import_tensorrt()
    return TensorRTKey(model_sha256=model_digest(model), gpu_name=torch.cuda.get_device_name(device),
                       tensorrt_version=str(trt.__version__), profile=profile, precision=precision,
                       onnx_graph=export_graph_version())


def export_tensorrt(model: nn.Module, *, profile: ShapeProfile | None = None, precision: str = "fp16",
                    cache_dir: str | os.PathLike | None = None, device: torch.device | str = "cuda") -> Path:
    """ONNX export (cached) then TensorRT engine (cached); returns the engine path. Needs CUDA and TensorRT."""
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailableError("building a TensorRT engine needs an NVIDIA GPU; CUDA is not available here")
    profile = profile or default_profile(model)
    key = tensorrt_key(model, profile=profile, precision=precision, device=device, trt=trt)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if cached_engine_is_valid(key, folder):
        return engine_cache_paths(key, folder)[0]
    folder = writable_cache_dir(folder)  # once here: the ONNX file and the engine share a fallback folder
    onnx_path = cached_onnx(model, cache_dir=folder, precision=precision)
    return build_tensorrt_engine(onnx_path, key, cache_dir=folder, trt=trt)[0]
