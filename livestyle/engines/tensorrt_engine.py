"""TensorRT backend: a cached engine (``livestyle.engines.export.tensorrt``) run by the native runtime, with device buffers
kept from call to call and execution enqueued asynchronously on the engine's own CUDA stream."""
from __future__ import annotations

import os

import torch
from torch import nn

from livestyle.engines.device import resolve_device
from livestyle.engines.export.cache import model_scale
from livestyle.engines.export.onnx import INPUT_NAME, OUTPUT_NAME
from livestyle.engines.export.tensorrt import ShapeProfile, default_profile, export_tensorrt, import_tensorrt
from livestyle.errors import BackendUnavailableError, InputError


def torch_dtype_of(trt, dtype) -> torch.dtype:
    """TensorRT tensor dtype → torch dtype (the livestyle graphs use float32 I/O; FP16 is accepted)."""
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
    if dtype not in table:
        raise BackendUnavailableError(f"unexpected TensorRT I/O type {dtype}; re-export the engine")
    return table[dtype]


class TensorRTEngine:
    """Runs a network through a TensorRT engine built from its FP16 (or FP32) ONNX export.

    The engine is cached under ``cache_dir`` and rebuilt only when the model, GPU,
    TensorRT version or shape profile changes. Input: float32 (N, 3, H, W) in [0, 1] within the
    profile; output: float32 on the engine's CUDA device.
    """

    def __init__(self, model: nn.Module, *, device: torch.device | str | None = "cuda", precision: str = "fp16",
                 profile: ShapeProfile | None = None, cache_dir: str | os.PathLike | None = None):
        trt = import_tensorrt()
        self.device = resolve_device(device)
        if self.device.type != "cuda":
            raise BackendUnavailableError("the TensorRT backend needs a CUDA device")
        self.scale = model_scale(model)
        self.profile = profile or default_profile(model)
        with torch.cuda.device(self.device):
            engine_path = export_tensorrt(model, profile=self.profile, precision=precision, cache_dir=cache_dir,
                                          device=self.device)
            self._trt = trt
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self.engine is None:
                raise BackendUnavailableError(f"TensorRT could not load {engine_path}; delete it to rebuild")
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
        self._in_dtype = torch_dtype_of(trt, self.engine.get_tensor_dtype(INPUT_NAME))
        self._out_dtype = torch_dtype_of(trt, self.engine.get_tensor_dtype(OUTPUT_NAME))
        self._shape: tuple[int, ...] | None = None
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        self.engine_path = engine_path
        self.name = f"tensorrt-{precision}"

    def _bind(self, shape: tuple[int, ...]) -> None:
        """(Re)allocate the device buffers for a new input shape and hand their addresses to TensorRT."""
        if not self.profile.contains(shape):
            raise InputError(f"input {'x'.join(map(str, shape))} is outside the TensorRT profile "
                             f"{self.profile.describe()}; bring frames within it with --size/--scale, "
                             f"or use --backend torch")
        self.context.set_input_shape(INPUT_NAME, shape)
        out_shape = tuple(self.context.get_tensor_shape(OUTPUT_NAME))
        self._input = torch.empty(shape, device=self.device, dtype=self._in_dtype)
        self._output = torch.empty(out_shape, device=self.device, dtype=self._out_dtype)
        self.context.set_tensor_address(INPUT_NAME, self._input.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, self._output.data_ptr())
        self._shape = shape

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        max_batch = self.profile.max[0]
        if batch.shape[0] > max_batch:  # e.g. `video --batch 4` with the batch-1 live profile: in turns
            return torch.cat([self(batch[i:i + max_batch]) for i in range(0, batch.shape[0], max_batch)])
        shape = tuple(batch.shape)
        with torch.cuda.device(self.device):
            if shape != self._shape:
                self.stream.synchronize()  # the old buffers may still be in use
                self._bind(shape)
            caller = torch.cuda.current_stream(self.device)
            self.stream.wait_stream(caller)  # the input may be produced on the caller's stream
            with torch.cuda.stream(self.stream):
                self._input.copy_(batch, non_blocking=True)
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise BackendUnavailableError("TensorRT execution failed (see its log)")
                out = self._output.float() if self._out_dtype != torch.float32 else self._output.clone()
            caller.wait_stream(self.stream)
            out.record_stream(caller)  # allocated on our stream, used on the caller's
            return out
