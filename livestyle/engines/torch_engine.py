"""PyTorch backend: eager on CPU or CUDA; FP16/BF16 with FP32 instance norms, channels_last,
CUDA graphs per input shape, optional torch.compile, optional exact rewrites."""
from __future__ import annotations

import copy
import logging
import os
import warnings
from collections import OrderedDict

import torch
from torch import nn

from livestyle.engines.compile_cache import use_persistent_compile_cache
from livestyle.engines.device import cpu_has_native_bf16, resolve_device, torch_threads
from livestyle.errors import BackendUnavailableError
from livestyle.models.rewrites import rewrite_for_inference, safe_half_norms, to_half_keeping_norms_fp32

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_CUDA_GRAPHS = 8  # one graph per input shape; bounded so that many sizes cannot exhaust GPU memory


class TorchEngine:
    """Runs a network with PyTorch.

    ``precision``: "fp32" | "fp16" | "bf16". FP16 needs CUDA; BF16 runs on CUDA or on a CPU with
    native BF16. On CUDA the instance norms keep their statistics and normalisation in FP32; on
    the CPU they stay torch's own, which accumulate in FP32 inside (bench/README.md links the
    measurements behind these defaults).
    ``rewrites``: the exact sub-pixel upsample rewrite (``livestyle.models.rewrites``); default on
    for the CPU, off on CUDA. The name lists the options that differ from these defaults ("-plain"
    for a CPU engine without rewrites). ``channels_last``: NHWC memory layout (default off).
    ``cuda_graphs``: one CUDA graph per input shape (CUDA only, default there). ``compile``:
    torch.compile with static shapes, one compile per input shape, cached on disk in ``cache_dir``;
    where compiling fails (no C++ compiler, say), a warning says so and the engine runs eagerly.
    ``threads`` (CPU): torch's intra-op threads while this engine runs (torch's setting is
    process-wide: set for each call and put back after it); default: torch's own.
    Input/output: float32 (N, 3, H, W) in [0, 1]; output on the engine's device.
    """

    def __init__(self, model: nn.Module, *, device: torch.device | str | None = None, precision: str = "fp32",
                 rewrites: bool | None = None, channels_last: bool = False,
                 cuda_graphs: bool | None = None, compile: bool = False,
                 cache_dir: str | os.PathLike | None = None, threads: int | None = None):
        self.device = resolve_device(device)
        if precision not in DTYPES:
            raise BackendUnavailableError(f"unknown precision {precision!r}; known: {', '.join(DTYPES)}")
        on_cpu = self.device.type == "cpu"
        if on_cpu and precision == "fp16":
            raise BackendUnavailableError("FP16 needs a CUDA device; on the CPU half precision is BF16")
        if on_cpu and precision == "bf16" and not cpu_has_native_bf16():
            raise BackendUnavailableError("BF16 on the CPU needs AVX512-BF16 or AMX, which this CPU lacks")
        self.dtype = DTYPES[precision]
        self.scale = int(getattr(model, "scale", 1))
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

        default_rewrites = on_cpu
        rewrites = default_rewrites if rewrites is None else rewrites
        net = copy.deepcopy(model).eval()  # moving or casting must not change the caller's model
        if rewrites:
            net = rewrite_for_inference(net, fused_norm=False)
        half = self.dtype != torch.float32
        if half and not on_cpu:
            net = safe_half_norms(net)  # FP32 statistics for every instance norm
        net = net.to(self.device)
        if half:
            net = to_half_keeping_norms_fp32(net, self.dtype)
        self.model = net.to(memory_format=self.memory_format)
        for p in self.model.parameters():
            p.requires_grad_(False)

        self.cuda_graphs = (self.device.type == "cuda") if cuda_graphs is None else cuda_graphs
        if self.cuda_graphs and self.device.type != "cuda":
            raise BackendUnavailableError("CUDA graphs need a CUDA device; this run is on the CPU")
        self.compiled = compile
        if compile:
            # Static shapes: dynamic recompilation was 4.6× slower at 1080p on an H100 (DESIGN.md).
            # With CUDA graphs wanted, let inductor capture them ("reduce-overhead") instead of us.
            use_persistent_compile_cache(cache_dir)
            if not torch.cuda.is_available():  # its C++ builder logs a CUDA_HOME notice on every compile
                logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            mode = "reduce-overhead" if self.cuda_graphs else None
            self._forward = torch.compile(self.model, dynamic=False, mode=mode)
            self.cuda_graphs = False
        else:
            self._forward = self.model
        self._graphs: OrderedDict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = OrderedDict()

        parts = [f"torch-{self.device.type}-{precision}"]
        if rewrites != default_rewrites:
            parts.append("rewrites" if rewrites else "plain")
        parts += ["channels_last"] * channels_last
        parts += ["graphs"] * self.cuda_graphs + ["compile"] * compile
        if threads is not None and not on_cpu:
            raise BackendUnavailableError("a thread count is for CPU engines; this one runs on CUDA")
        self.threads = threads
        parts += [f"t{threads}"] * (threads is not None)
        self.name = "-".join(parts)

    def _prepare(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.to(self.device, self.dtype, non_blocking=True)
        return x.contiguous(memory_format=self.memory_format)

    def _graph_for(self, x: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]:
        """The CUDA graph of this input shape, captured on first use (after a warm-up on a side stream)."""
        key = tuple(x.shape)
        if key in self._graphs:
            self._graphs.move_to_end(key)
            return self._graphs[key]
        static_in = torch.empty_like(x).copy_(x)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up: cuDNN picks its algorithms outside the capture
            for _ in range(2):
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread may allocate or copy on the GPU meanwhile (cam builds the next
        # style's engine on the main thread while this one captures), which "global" mode forbids.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self._forward(static_in)
        if len(self._graphs) >= MAX_CUDA_GRAPHS:
            self._graphs.popitem(last=False)
        self._graphs[key] = (graph, static_in, static_out)
        return self._graphs[key]

    def _compiled_call(self, x: torch.Tensor) -> torch.Tensor:
        from torch._dynamo.exc import BackendCompilerFailed  # loaded already by torch.compile

        try:
            out = self._forward(x)
        except BackendCompilerFailed as exc:  # compiling failed (InductorError too): run eagerly from now on
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"torch.compile failed ({first_line}); {self.name} continues without compiling")
            self.compiled = False
            self._forward = self.model
            self.name = self.name.replace("-compile", "")
            return self._forward(x).float()
        # A copy: inductor's CUDA graphs ("reduce-overhead") reuse their output buffer on the next call.
        return out.float() if out.dtype != torch.float32 else out.clone()

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with torch_threads(self.threads):
            return self._run(batch)

    @torch.inference_mode()
    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        x = self._prepare(batch)
        if self.compiled:
            return self._compiled_call(x)
        if not self.cuda_graphs:
            return self._forward(x).float()
        try:
            graph, static_in, static_out = self._graph_for(x)
        except RuntimeError as exc:  # an op that cannot be captured: run eagerly from now on, and say so
            warnings.warn(f"CUDA graph capture failed ({exc}); {self.name} continues without CUDA graphs")
            self.cuda_graphs = False
            self.name = self.name.replace("-graphs", "")
            torch.cuda.synchronize(self.device)
            return self._forward(x).float()
        static_in.copy_(x)
        graph.replay()
        # A copy: the graph's output buffer is overwritten by the next replay.
        return static_out.float() if static_out.dtype != torch.float32 else static_out.clone()
