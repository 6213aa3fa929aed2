"""OpenVINO backend: the cached ONNX export of a network, compiled by OpenVINO's CPU plugin for each
input shape (static shapes ran faster than one dynamic-shape compile; bench/README.md links the
measurements), in FP32 or, on CPUs with native BF16, BF16."""
from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livestyle.engines.device import cpu_has_native_bf16, resolve_device
from livestyle.engines.export.cache import model_scale
from livestyle.engines.export.onnx import cached_onnx
from livestyle.errors import BackendUnavailableError

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}  # livestyle's precision → OpenVINO's inference precision
MAX_COMPILED_SHAPES = 8  # compiled models kept (one per input shape, least recently used dropped)


def import_openvino():
    """The ``openvino`` module, or a BackendUnavailableError naming what to install."""
    try:
        import openvino
    except ImportError:
        raise BackendUnavailableError("OpenVINO is not installed (pip install openvino)") from None
    return openvino


@functools.cache
def openvino_core():
    """The process's one OpenVINO Core, kept until exit. Destroying Cores unloads the CPU plugin, and
    a Ctrl-C after that crashed the process (OpenVINO 2026.4, two engines built and freed)."""
    return import_openvino().Core()


def openvino_has_bf16(core) -> bool:
    """Whether OpenVINO's CPU plugin offers BF16 here (and no instruction-set cap rules it out)."""
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") and cpu_has_native_bf16()


class OpenVinoEngine:
    """Runs a network's ONNX export (with the exact CPU rewrites) with OpenVINO on the CPU.

    ``precision``: "fp32" or "bf16" (CPUs with native BF16; instance-norm statistics are OpenVINO's
    own). ``threads``: OpenVINO's inference threads (default: its own, one per core). The graph is
    compiled for each new input shape (a tenth of a second for the small style nets), the last
    MAX_COMPILED_SHAPES kept. ``onnx_path``: use this file instead of the cached export.
    Input/output: float32 (N, 3, H, W) in [0, 1] on the CPU.
    """

    def __init__(self, model: nn.Module, *, device: torch.device | str | None = "cpu", precision: str = "fp32",
                 threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                 onnx_path: str | os.PathLike | None = None, progress: Callable[[str], None] | None = None):
        import_openvino()  # says what to install where it is missing
        self._core = openvino_core()
        self.device = resolve_device(device)
        if self.device.type != "cpu":
            raise BackendUnavailableError("livestyle runs OpenVINO on the CPU; use --backend torch or tensorrt on CUDA")
        if precision not in PRECISION_HINTS:
            raise BackendUnavailableError(f"OpenVINO runs FP32 or BF16 here, not {precision!r}")
        if precision == "bf16" and not openvino_has_bf16(self._core):
            raise BackendUnavailableError("BF16 on the CPU needs AVX512-BF16 or AMX, which this CPU lacks")
        self.scale = model_scale(model)
        self.precision, self.threads = precision, threads
        self._path = Path(onnx_path) if onnx_path else cached_onnx(model, cache_dir=cache_dir, rewrite=True,
                                                                   progress=progress)
        self._config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY",
                        "NUM_STREAMS": 1}
        if threads:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._requests: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.name = f"openvino-cpu-{precision}" + (f"-t{threads}" if threads else "")

    def _request_for(self, shape: tuple[int, ...]):
        """An infer request of the graph compiled for ``shape``, compiled on first use."""
        if shape in self._requests:
            self._requests.move_to_end(shape)
            return self._requests[shape]
        graph = self._core.read_model(str(self._path))
        graph.reshape(list(shape))
        request = self._core.compile_model(graph, "CPU", self._config).create_infer_request()
        if len(self._requests) >= MAX_COMPILED_SHAPES:
            self._requests.popitem(last=False)
        self._requests[shape] = request
        return request

    def primitive_types(self, shape: tuple[int, ...]) -> set[str]:
        """The kernels OpenVINO picked for ``shape`` (e.g. "brgconv_avx512_bf16"): which instruction
        set and precision run, for benchmarks that cap the instruction set."""
        model = self._request_for(tuple(shape)).get_compiled_model().get_runtime_model()
        kinds = set()
        for op in model.get_ops():
            info = op.get_rt_info()
            if "primitiveType" in info:
                kinds.add(info["primitiveType"].astype(str))
        return kinds

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        request = self._request_for(x.shape)
        request.infer({0: x})
        # A copy: the request's output buffer is overwritten by its next inference.
        return torch.from_numpy(np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True))
