"""Community style models: pytorch/examples ``fast_neural_style`` checkpoints and ONNX exports.

``load_community_file`` recognises a file by its first bytes (zip or pickle → ``.pth`` checkpoint,
protobuf ``ModelProto`` → ONNX) and never unpickles objects (``torch.load(weights_only=True)``).
Checkpoints load into ``livestyle.models.community.CommunityTransformNet``; ONNX files run through
ONNX Runtime inside ``OnnxFileNet``, or are rebuilt as that network by ``community_net_from_onnx``.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livestyle.errors import BackendUnavailableError, WeightsError
from livestyle.models.community import CommunityTransformNet, community_net_from_state_dict

_ONNX_NEXT_TAGS = b"\x12\x1a\x22\x28\x32\x3a"  # producer_name … graph: fields 2–7 of ModelProto


def load_community_checkpoint(path: str | os.PathLike) -> CommunityTransformNet:
    """Load a pytorch/examples ``.pth`` checkpoint (tensors only, ``weights_only=True``)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:  # a file object: torch would read a path ending in .safetensors as one
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files that are not safe tensor pickles
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path} is not a loadable PyTorch checkpoint (tensors only): {first}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} holds no state_dict of tensors")
    state = {k.removeprefix("module."): v.float() for k, v in state.items()}
    return community_net_from_state_dict(state)


def _onnx_session(model_bytes: bytes, device: torch.device):
    """An onnxruntime session on CUDA if asked for and available, else on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise BackendUnavailableError("ONNX models need onnxruntime: pip install onnxruntime") from exc
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, options, providers=providers)


def _with_free_image_size(model) -> bytes:
    """The ONNX model with its input/output H and W made symbolic (community exports fix them)."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value, prefix in ((model.graph.input[0], "in"), (model.graph.output[0], "out")):
        dims = value.type.tensor_type.shape.dim
        for i in (2, 3):
            dims[i].ClearField("dim_value")
            dims[i].dim_param = f"{prefix}_{'hw'[i - 2]}"
    del model.graph.value_info[:]  # stale static shapes of intermediate tensors
    return model.SerializeToString()


class OnnxFileNet(nn.Module):
    """A fast-neural-style ONNX file run with onnxruntime, behind the project's [0, 1] convention.

    Input/output: float RGB (N, 3, H, W) in [0, 1] on any device (frames run one at a time on the
    CPU, or on CUDA where onnxruntime-gpu is installed). ``value_range`` is what the file's network
    expects and gives: 255 (pytorch/examples) or 1. Files exported at a fixed size get symbolic
    H/W; if the graph refuses other sizes, frames are resized to its fixed size and back.
    It has no parameters: it cannot be trained, exported again or tiled.
    """

    def __init__(self, path: str | os.PathLike, *, value_range: float | None = None):
        super().__init__()
        import onnx

        self.path = Path(path)
        try:
            proto = onnx.load(str(self.path))
        except Exception as exc:  # onnx raises DecodeError and others for files that are not ONNX
            raise WeightsError(f"{self.path} is not a readable ONNX file ({type(exc).__name__})") from exc
        graph = proto.graph
        initializers = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1 or len(graph.output) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
            raise WeightsError(f"{self.path}: expected one image input (N, 3, H, W) and one output")
        del graph.input[:]
        graph.input.extend(inputs)
        dims = inputs[0].type.tensor_type.shape.dim
        self.fixed_size = (dims[2].dim_value, dims[3].dim_value) if dims[2].dim_value and dims[3].dim_value else None
        self.input_name, self._proto = inputs[0].name, proto
        self._session = None
        self._session_device: torch.device | None = None
        self._resize_to_fixed = False
        metadata = {p.key: p.value for p in proto.metadata_props}
        if value_range is None and "livestyle.value_range" in metadata:
            value_range = float(metadata["livestyle.value_range"])
        self.value_range = float(value_range) if value_range is not None else self.detect_value_range()
        if self.value_range not in (1.0, 255.0):
            raise WeightsError(f"value range must be 1 or 255, got {self.value_range:g}")

    def __getstate__(self) -> dict:
        # engines copy their model; an onnxruntime session cannot be copied, so a copy makes its own
        state = self.__dict__.copy()
        state["_session"], state["_session_device"] = None, None
        return state

    def _session_for(self, device: torch.device):
        if self._session is None or self._session_device != device:
            if self.fixed_size is None or self._resize_to_fixed:
                self._session = _onnx_session(self._proto.SerializeToString(), device)
            else:
                try:
                    self._session = _onnx_session(_with_free_image_size(self._proto), device)
                except Exception:  # graph tied to its export size: run at that size instead
                    self._session = _onnx_session(self._proto.SerializeToString(), device)
                    self._resize_to_fixed = True
            self._session_device = device
        return self._session

    def _run_one(self, image: np.ndarray, device: torch.device) -> np.ndarray:
        """(1, 3, H, W) float32 in the file's range → its raw output."""
        try:
            return self._session_for(device).run(None, {self.input_name: image})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise WeightsError(f"{self.path.name}: onnxruntime failed: {str(exc).splitlines()[0]}") from exc

    def _infer(self, image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """(1, 3, H, W) float in [0, 1] → (1, 3, H, W) float in [0, 1]; falls back to the export size once."""
        h, w = image.shape[-2:]
        resize = self._resize_to_fixed and (h, w) != self.fixed_size
        if resize:
            image = F.interpolate(image, size=self.fixed_size, mode="bilinear", align_corners=False)
        try:
            raw = self._run_one(np.ascontiguousarray(image.cpu().numpy() * self.value_range), device)
        except WeightsError:
            if self.fixed_size is None or self._resize_to_fixed:
                raise
            # the graph is tied to its export size (e.g. constant Reshapes): run it at that size
            self._session = _onnx_session(self._proto.SerializeToString(), device)
            self._session_device, self._resize_to_fixed = device, True
            return self._infer(image, device)
        y = torch.from_numpy(raw).float() / self.value_range
        if resize:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return y[..., :h, :w].clamp(0.0, 1.0)

    def detect_value_range(self) -> float:
        """255 if the network's output on a [0, 1] test image reaches beyond a few units, else 1."""
        h, w = self.fixed_size or (64, 64)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        probe = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), 0.5 + 0.4 * np.sin(xx / 5.0)])[None]
        out = self._run_one(np.ascontiguousarray(probe, dtype=np.float32), torch.device("cpu"))
        # A [0, 1] network maps this probe to about [0, 1]; a 0–255 network's output stays in
        # its own range whatever the input's scale, as instance norm follows its first conv.
        return 255.0 if float(np.percentile(np.abs(out), 99)) > 4.0 else 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self._infer(frame[None].float(), x.device) for frame in x]
        return torch.cat(outputs).to(x.device, x.dtype)


def community_kind(path: str | os.PathLike) -> str | None:
    """'checkpoint', 'onnx' or None, from the file's content (the suffix is not trusted)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        return "checkpoint"  # torch.save's zip format
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "checkpoint"  # legacy torch.save (pickle protocol 2+)
    if head[8:9] == b"{":
        return None  # safetensors: an 8-byte header length, then the JSON header
    # An ONNX ModelProto opens with field 1 (ir_version, a small varint), then another field's tag.
    if len(head) >= 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] in _ONNX_NEXT_TAGS:
        return "onnx"
    return None


def load_community_file(path: str | os.PathLike, *, value_range: float | None = None) -> nn.Module:
    """A community style model from ``path`` ([0, 1] in and out, eval mode), kind detected from content."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    kind = community_kind(path)
    if kind == "checkpoint":
        return load_community_checkpoint(path)
    if kind == "onnx":
        return OnnxFileNet(path, value_range=value_range).eval()
    raise WeightsError(f"{path} is neither a pytorch/examples checkpoint nor an ONNX file")


def community_net_from_onnx(path: str | os.PathLike, *, value_range: float | None = None,
                            atol: float = 2e-3) -> CommunityTransformNet:
    """Rebuild a pytorch/examples TransformerNet from an ONNX export of it, checked against onnxruntime.

    Weights are taken from the graph's Conv and InstanceNormalization nodes in order; the rebuilt
    net must reproduce onnxruntime's output on a test image within ``atol`` ([0, 1] scale).
    """
    from onnx import numpy_helper

    runner = OnnxFileNet(path, value_range=value_range)
    if runner.value_range != 255.0:
        raise WeightsError(f"{Path(path).name}: takes values in 0–1, so it is not a pytorch/examples export")
    graph = runner._proto.graph
    tensors = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    for node in graph.node:  # some exporters keep weights in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = torch.from_numpy(numpy_helper.to_array(node.attribute[0].t).copy())
    convs = [n for n in graph.node if n.op_type == "Conv"]
    norms = [n for n in graph.node if n.op_type == "InstanceNormalization"]
    blocks = (len(convs) - 6) // 2
    if len(convs) < 6 or len(convs) % 2 or len(norms) != len(convs) - 1:
        raise WeightsError(f"{Path(path).name}: graph is not a pytorch/examples TransformerNet "
                           f"({len(convs)} convolutions, {len(norms)} instance norms)")
    conv_names = ["conv1", "conv2", "conv3"]
    norm_names = ["in1", "in2", "in3"]
    for i in range(1, blocks + 1):
        conv_names += [f"res{i}.conv1", f"res{i}.conv2"]
        norm_names += [f"res{i}.in1", f"res{i}.in2"]
    conv_names += ["deconv1", "deconv2", "deconv3"]
    norm_names += ["in4", "in5"]
    state = {}
    try:
        for name, node in zip(conv_names, convs):
            state[f"{name}.conv2d.weight"] = tensors[node.input[1]]
            state[f"{name}.conv2d.bias"] = tensors[node.input[2]]
        for name, node in zip(norm_names, norms):
            state[f"{name}.weight"], state[f"{name}.bias"] = tensors[node.input[1]], tensors[node.input[2]]
    except (KeyError, IndexError) as exc:
        raise WeightsError(f"{Path(path).name}: a convolution or norm has weights computed in the graph") from exc
    net = community_net_from_state_dict(state)
    h, w = runner.fixed_size or (64, 64)
    probe = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        error = (net(probe) - runner(probe)).abs().max().item()
    if error > atol:
        raise WeightsError(f"{Path(path).name}: rebuilt network differs from the ONNX graph by {error:.3g}; "
                           "it is not a pytorch/examples TransformerNet")
    return net
