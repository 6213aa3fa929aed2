"""Export: torch → ONNX (dynamic batch, height and width), ONNX → TensorRT engine, and their caches.

- ``cache``: the cache folder and the keys (model digest, exporter version).
- ``onnx``: FP32 and FP16 ONNX graphs (FP16 keeps instance norms in FP32), checked with ONNX Runtime.
- ``tensorrt``: strongly typed TensorRT engines keyed by model, GPU, TensorRT version and shape profile.

May import: ``livestyle.models``, ``livestyle.files``, ``livestyle.errors``; nothing else of livestyle.
"""

MAX_SIDE = 8192  # the dynamic height/width range stated in the ONNX export
FORMATS = ("onnx", "tensorrt")
