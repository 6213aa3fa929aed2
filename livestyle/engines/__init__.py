"""Inference engines: one network on one backend, behind one interface (``base.Engine``).

- ``factory``: the one place that turns a chosen model into an engine (``create_engine``,
  ``build_engine``) and picks the backend and precision for ``auto``.
- Backends: ``torch_engine`` (eager, FP16/BF16, CUDA graphs, torch.compile, exact rewrites),
  ``onnx_engine`` (ONNX Runtime), ``openvino_engine`` (OpenVINO, CPU), ``tensorrt_engine`` (native TensorRT).
- ``cpu_choice``: the CPU engine chosen by timing the candidates, cached per CPU and size class.
- Wrappers: ``chain`` (style, then SR), ``tiling`` (frames in tiles), ``memory`` (tiles where a
  frame would pass the memory budget), ``resolution`` (infer at a lower resolution, then upsample).
- ``device``: devices, the CPU's abilities and the names of machines; ``export/``: ONNX and TensorRT.

May import: ``livestyle.models``, ``livestyle.zoo``, ``livestyle.files``, ``livestyle.errors``.
Importing this package itself loads nothing heavy (the command line reads the names below).
"""

BACKENDS = ("auto", "torch", "onnx", "openvino", "tensorrt")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
UPSAMPLERS = ("bicubic", "guided")  # how reduced-resolution results are brought back to full size
