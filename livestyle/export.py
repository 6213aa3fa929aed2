"""Export: torch → ONNX (dynamic batch/height/width), FP16 ONNX, ONNX → TensorRT engine, with caches.

ONNX graphs take and give float32 RGB (N, 3, H, W) in [0, 1] (names ``input``/``output``), FP16
graphs included: they cast inside, and keep every instance norm in FP32 (Cast → InstanceNormalization
→ Cast) so that TensorRT's strongly typed networks compute the statistics in FP32.

Caches (``default_cache_dir()``): ONNX files keyed by the model's weights digest, torch version and
export options; TensorRT engines keyed by (model sha256, GPU name, TensorRT version, shape
profile, precision) with a JSON sidecar holding the key, rebuilt when any part changes; one
timing cache per GPU and TensorRT version so that rebuilds are fast.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ._files import atomic_output
from .errors import BackendUnavailableError, ExportError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
ENV_CACHE_DIR = "LIVESTYLE_CACHE_DIR"
MAX_SIDE = 8192  # the dynamic height/width range stated in the ONNX export
FORMATS = ("onnx", "tensorrt")
# Part of the ONNX cache key: bump when the exported graph changes for the same weights
# (2: space-to-depth output conv; 3: SR nets edge-pad inputs under 5 px).
EXPORT_VERSION = 3


def export_graph_version() -> str:
    """What, besides the weights and options, decides the exported ONNX graph: this exporter's version
    and torch's (part of the ONNX and TensorRT cache keys)."""
    return f"livestyle-export-{EXPORT_VERSION}-torch-{torch.__version__}"


def default_cache_dir() -> Path:
    """$LIVESTYLE_CACHE_DIR, else the source tree's export/, else the user cache dir (~/.cache/livestyle)."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    source_tree = Path(__file__).resolve().parent.parent / "export"
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


# --------------------------------------------------------------------------------------------- shapes

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


# ----------------------------------------------------------------------------------------------- ONNX

class _FloatIO(nn.Module):
    """Wraps a half-precision network so that its graph takes and gives float32 (casts inside)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def exportable_network(model: nn.Module, *, fp16: bool = False, rewrite: bool = False) -> nn.Module:
    """The module that gets exported: a CPU float copy, optionally rewritten, optionally FP16 inside."""
    from .engines.rewrites import (rewrite_for_inference, safe_half_norms, to_half_keeping_norms_fp32)

    net = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays where it is
    net = rewrite_for_inference(net, fused_norm=False) if rewrite else net
    if fp16:
        net = to_half_keeping_norms_fp32(safe_half_norms(net, native=True), torch.float16)
        return _FloatIO(net, torch.float16).eval()
    return net


def export_onnx(model: nn.Module, path: str | os.PathLike | None = None, *, fp16: bool = False,
                rewrite: bool = False, check: bool = True):
    """Export ``model`` to ONNX with dynamic batch, height and width; returns the ``onnx.ModelProto``.

    Graph I/O: float32 (N, 3, H, W) in [0, 1] named ``input``/``output``. ``fp16``: FP16 weights and
    activations, instance norms in FP32. ``rewrite``: apply the exact sub-pixel rewrite first.
    Written atomically to ``path`` when given. ``check``: run ``onnx.checker`` (full check).
    """
    import onnx

    net = exportable_network(model, fp16=fp16, rewrite=rewrite)
    # Odd sample sizes: the networks pad H, W to a multiple of 4 and the exporter must trace that
    # branch (a multiple-of-4 sample would bake in "no padding"); batch 2 keeps N symbolic.
    sample = torch.rand(2, 3, 37, 29)
    dims = {0: torch.export.Dim("batch", min=1, max=1024),
            2: torch.export.Dim("height", min=1, max=MAX_SIDE),
            3: torch.export.Dim("width", min=1, max=MAX_SIDE)}
    # The exporter reports its progress on stdout; library code must stay quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            program = torch.onnx.export(net, (sample,), dynamo=True, verbose=False,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=(dims,))
        except Exception as exc:  # the exporter raises many types; the user needs one message
            raise ExportError(f"ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    proto = program.model_proto
    proto.doc_string = json.dumps({"livestyle.scale": model_scale(model), "livestyle.fp16": fp16,
                                   "livestyle.model_sha256": model_digest(model)})
    if check:
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported ONNX graph fails onnx.checker: {exc}") from exc
    if path is not None:
        with atomic_output(path) as tmp:
            onnx.save_model(proto, str(tmp))
    return proto


FP32_TOLERANCE = 1e-4  # max abs error, ONNX Runtime vs torch, on [0, 1] images
FP16_TOLERANCE = 2e-2


def verify_onnx_runtime(model: nn.Module, path: str | os.PathLike, *, fp16: bool = False,
                        shape: tuple[int, int, int, int] = (1, 3, 37, 29)) -> float:
    """Run the ONNX file with ONNX Runtime (CPU) and torch (FP32) on one random input; return the max
    abs error, or raise ExportError when it exceeds the FP32/FP16 tolerance."""
    import numpy as np
    import onnxruntime as ort

    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = copy.deepcopy(model).to("cpu", torch.float32).eval()(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    error = float(np.abs(actual - expected).max()) if actual.shape == expected.shape else float("inf")
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    if not error <= tolerance:
        raise ExportError(f"ONNX Runtime output of {path} differs from torch by {error:.3g} (> {tolerance})")
    return error


def onnx_cache_path(model: nn.Module, cache_dir: str | os.PathLike, *, fp16: bool = False,
                    rewrite: bool = False, digest: str | None = None) -> Path:
    """Where the cached ONNX export of ``model`` with these options lives (key: weights, torch, options)."""
    digest = digest or model_digest(model)
    key = hashlib.sha256(json.dumps([digest, torch.__version__, EXPORT_VERSION, fp16, rewrite]).encode()).hexdigest()
    kind = "superres" if model_scale(model) > 1 else "style"
    return Path(cache_dir) / f"{kind}-{digest[:12]}-{'fp16' if fp16 else 'fp32'}{'-rw' if rewrite else ''}-{key[:8]}.onnx"


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


def cached_onnx(model: nn.Module, *, cache_dir: str | os.PathLike | None = None, fp16: bool = False,
                rewrite: bool = False) -> Path:
    """Path of an ONNX export of ``model``, exported now unless the cache already holds it.

    Where the cache folder cannot be written, the export goes to a temporary folder (see writable_cache_dir).
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    path = onnx_cache_path(model, folder, fp16=fp16, rewrite=rewrite)
    if not path.is_file():
        path = onnx_cache_path(model, writable_cache_dir(folder), fp16=fp16, rewrite=rewrite)
        export_onnx(model, path, fp16=fp16, rewrite=rewrite)
    return path


# ------------------------------------------------------------------------------------------- TensorRT

@dataclass(frozen=True)
class TensorRTKey:
    """Everything a TensorRT engine depends on; any change means a rebuild."""

    model_sha256: str
    gpu_name: str
    tensorrt_version: str
    profile: ShapeProfile
    fp16: bool
    onnx_graph: str = ""  # export_graph_version(): the ONNX graph the engine is built from

    def to_dict(self) -> dict:
        return {"model_sha256": self.model_sha256, "gpu_name": self.gpu_name,
                "tensorrt_version": self.tensorrt_version, "profile": self.profile.to_dict(), "fp16": self.fp16,
                "onnx_graph": self.onnx_graph}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_cache_paths(key: TensorRTKey, cache_dir: str | os.PathLike) -> tuple[Path, Path]:
    """(engine file, JSON sidecar) for ``key`` in ``cache_dir``."""
    stem = f"trt-{key.model_sha256[:12]}-{'fp16' if key.fp16 else 'fp32'}-{key.digest()[:16]}"
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
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps({"key": key.to_dict(), "onnx": str(onnx_path)}, indent=2))
    return engine_path, True


def tensorrt_key(model: nn.Module, *, profile: ShapeProfile, fp16: bool = True, device: torch.device | str = "cuda",
                 trt=None) -> TensorRTKey:
    """The cache key of ``model`` on this machine's GPU and TensorRT."""
    trt = trt or import_tensorrt()
    return TensorRTKey(model_sha256=model_digest(model), gpu_name=torch.cuda.get_device_name(device),
                       tensorrt_version=str(trt.__version__), profile=profile, fp16=fp16,
                       onnx_graph=export_graph_version())


def export_tensorrt(model: nn.Module, *, profile: ShapeProfile | None = None, fp16: bool = True,
                    cache_dir: str | os.PathLike | None = None, device: torch.device | str = "cuda") -> Path:
    """ONNX export (cached) then TensorRT engine (cached); returns the engine path. Needs CUDA and TensorRT."""
    trt = import_tensorrt()
    if not torch.cuda.is_available():
        raise BackendUnavailableError("building a TensorRT engine needs an NVIDIA GPU; CUDA is not available here")
    profile = profile or default_profile(model)
    key = tensorrt_key(model, profile=profile, fp16=fp16, device=device, trt=trt)
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    if cached_engine_is_valid(key, folder):
        return engine_cache_paths(key, folder)[0]
    folder = writable_cache_dir(folder)  # once here: the ONNX file and the engine share a fallback folder
    onnx_path = cached_onnx(model, cache_dir=folder, fp16=fp16)
    return build_tensorrt_engine(onnx_path, key, cache_dir=folder, trt=trt)[0]


__all__ = ["FORMATS", "INPUT_NAME", "OUTPUT_NAME", "ShapeProfile", "TensorRTKey", "build_tensorrt_engine",
           "cached_engine_is_valid", "cached_onnx", "default_cache_dir", "default_profile", "engine_cache_paths",
           "export_onnx", "export_tensorrt", "import_tensorrt", "model_digest", "parse_shape",
           "strongly_typed_flags", "tensorrt_key", "timing_cache_path", "writable_cache_dir"]
