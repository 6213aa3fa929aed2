"""Style + super-resolution in one engine, and the one place that turns a model choice into an engine.

``ChainEngine(style_engine, sr_engine)`` stylises at the input's (low) resolution and upscales the
result ×scale: at a 1280×720 output with ×4 the style network runs at 320×180, 1/16 of the pixels.
Measured on a CPU: bench/results/chain-cpu.md.
"""
from __future__ import annotations

import torch

from .catalog import ModelChoice
from .engines import Engine, TorchEngine, create_engine
from .errors import BackendUnavailableError


STYLE_ONLY_OPTIONS = ("infer_scale", "upsample")  # create_engine options that make no sense for SR


class ChainEngine:
    """Two engines run one after the other (Engine interface): stylise, then upscale.

    Input: float32 RGB (N, 3, h, w) in [0, 1]; output (N, 3, s·h, s·w) with s = the product of
    both engines' scales, on the second engine's device.
    """

    def __init__(self, style_engine: Engine, sr_engine: Engine):
        self.style_engine, self.sr_engine = style_engine, sr_engine
        self.scale = style_engine.scale * sr_engine.scale
        self.name = f"{style_engine.name} → {sr_engine.name}"
        self.device = sr_engine.device

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.sr_engine(self.style_engine(batch))


def build_engine(choice: ModelChoice, *, backend: str = "auto", device: str | None = None, fp16: bool = False,
                 tile: int | None = None, **engine_options) -> Engine:
    """The engine for a ``choose_model`` result: a chain for style + SR, tiled if ``tile`` is given.

    ``tile``: run each network in tiles of ``tile`` input pixels (TiledEngine, torch backend, exact
    whole-frame instance-norm statistics). ``engine_options`` go to ``create_engine`` (e.g.
    ``cache_dir``; ``infer_scale``/``upsample`` to the style stage only); community ONNX files always
    run through onnxruntime on the CPU, inside a TorchEngine shell.
    """
    def one(model, options: dict) -> Engine:
        from .community import OnnxFileNet

        if isinstance(model, OnnxFileNet):
            if tile:
                raise BackendUnavailableError("--tile needs a PyTorch model; an ONNX file cannot be tiled")
            if options.get("compile"):
                raise BackendUnavailableError("--compile needs a PyTorch model; an ONNX file runs in ONNX Runtime")
            engine = TorchEngine(model, device=torch.device("cpu"))  # onnxruntime runs it on the CPU
            engine.name = "onnxruntime-cpu-fp32"  # what runs, not the shell around it
            return engine
        if tile:
            if backend not in ("auto", "torch"):
                raise BackendUnavailableError(f"--tile runs on the torch backend, not {backend!r}")
            if options.get("compile"):
                raise BackendUnavailableError("--tile runs the network eagerly; leave out --compile")
            if options.get("infer_scale", 1.0) != 1.0:
                raise BackendUnavailableError("--tile runs the network at the frame's own size; leave out --infer-scale")
            from .tiling import TiledEngine

            return TiledEngine(model, tile=tile, device=device, fp16=fp16)
        return create_engine(model, backend=backend, device=device, fp16=fp16, **options)

    engine = one(choice.model, engine_options)
    if choice.superres_model is not None:
        sr_options = {k: v for k, v in engine_options.items() if k not in STYLE_ONLY_OPTIONS}
        engine = ChainEngine(engine, one(choice.superres_model, sr_options))
    return engine
