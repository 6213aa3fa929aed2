"""torch → ONNX with dynamic batch, height and width; FP16 graphs keep instance norms in FP32.

Graphs take and give float32 RGB (N, 3, H, W) in [0, 1] (names ``input``/``output``), FP16 graphs
included: they cast inside, around Cast → InstanceNormalization → Cast, so that TensorRT's strongly
typed networks compute the statistics in FP32.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from livestyle.engines.export import MAX_SIDE
from livestyle.engines.export.cache import (EXPORT_VERSION, default_cache_dir, model_digest, model_scale,
                                            writable_cache_dir)
from livestyle.errors import ExportError
from livestyle.files import atomic_output
from livestyle.models.rewrites import rewrite_for_inference, safe_half_norms, to_half_keeping_norms_fp32

PRECISIONS = ("fp32", "fp16")

INPUT_NAME = "input"
OUTPUT_NAME = "output"


class _FloatIO(nn.Module):
    """Wraps a half-precision network so that its graph takes and gives float32 (casts inside)."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def exportable_network(model: nn.Module, *, precision: str = "fp32", rewrite: bool = False) -> nn.Module:
    """The module that gets exported: a CPU float copy, optionally rewritten, optionally FP16 inside."""
    if precision not in PRECISIONS:
        raise ExportError(f"ONNX graphs are exported in {' or '.join(PRECISIONS)}, not {precision!r}")
    net = copy.deepcopy(model).to("cpu", torch.float32).eval()  # the caller's model stays where it is
    net = rewrite_for_inference(net, fused_norm=False) if rewrite else net
    if precision == "fp16":
        net = to_half_keeping_norms_fp32(safe_half_norms(net, native=True), torch.float16)
        return _FloatIO(net, torch.float16).eval()
    return net


def export_onnx(model: nn.Module, path: str | os.PathLike | None = None, *, precision: str = "fp32",
                rewrite: bool = False, check: bool = True):
    """Export ``model`` to ONNX with dynamic batch, height and width; returns the ``onnx.ModelProto``.

    Graph I/O: float32 (N, 3, H, W) in [0, 1] named ``input``/``output``. ``precision="fp16"``: FP16 weights and
    activations, instance norms in FP32. ``rewrite``: apply the exact sub-pixel rewrite first.
    Written atomically to ``path`` when given. ``check``: run ``onnx.checker`` (full check).
    """
    import onnx

    net = exportable_network(model, precision=precision, rewrite=rewrite)
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
    proto.doc_string = json.dumps({"livestyle.scale": model_scale(model), "livestyle.precision": precision,
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


def verify_onnx_runtime(model: nn.Module, path: str | os.PathLike, *, precision: str = "fp32",
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
    tolerance = FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE
    if not error <= tolerance:
        raise ExportError(f"ONNX Runtime output of {path} differs from torch by {error:.3g} (> {tolerance})")
    return error


def onnx_cache_path(model: nn.Module, cache_dir: str | os.PathLike, *, precision: str = "fp32",
                    rewrite: bool = False, digest: str | None = None) -> Path:
    """Where the cached ONNX export of ``model`` with these options lives (key: weights, torch, options)."""
    digest = digest or model_digest(model)
    key = hashlib.sha256(json.dumps([digest, torch.__version__, EXPORT_VERSION, precision, rewrite]).encode()).hexdigest()
    kind = "superres" if model_scale(model) > 1 else "style"
    return Path(cache_dir) / f"{kind}-{digest[:12]}-{precision}{'-rw' if rewrite else ''}-{key[:8]}.onnx"


def cached_onnx(model: nn.Module, *, cache_dir: str | os.PathLike | None = None, precision: str = "fp32",
                rewrite: bool = False, progress: Callable[[str], None] | None = None) -> Path:
    """Path of an ONNX export of ``model``, exported now unless the cache already holds it.

    Where the cache folder cannot be written, the export goes to a temporary folder (see writable_cache_dir).
    ``progress``: told when an export starts, every few seconds while it runs, and when it ends.
    """
    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    path = onnx_cache_path(model, folder, precision=precision, rewrite=rewrite)
    if not path.is_file():
        path = onnx_cache_path(model, writable_cache_dir(folder), precision=precision, rewrite=rewrite)
        kind = "super-resolution" if model_scale(model) > 1 else "style"
        with ticking(progress, f"exporting the {kind} network to ONNX ({precision}, once per model, "
                               f"cached in {path.parent})"):
            export_onnx(model, path, precision=precision, rewrite=rewrite)
    return path


@contextlib.contextmanager
def ticking(progress: Callable[[str], None] | None, what: str, every_s: float = 5.0) -> Iterator[None]:
    """Tell ``progress`` that ``what`` starts, how long it has run every ``every_s`` seconds (from a
    timer thread), and how long it took; nothing without ``progress``."""
    if progress is None:
        yield
        return
    started = time.perf_counter()
    done = threading.Event()

    def tick() -> None:
        while not done.wait(every_s):
            progress(f"… {time.perf_counter() - started:.0f} s")

    progress(what)
    timer = threading.Thread(target=tick, name="livestyle-progress", daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()
    progress(f"done in {time.perf_counter() - started:.1f} s")
