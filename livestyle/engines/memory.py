"""Memory bounds for big frames: estimate one frame's activation memory from the network, and run
the network in tiles where it would pass a budget.

The estimate is the sum of the layer outputs of one forward pass (what a runtime that kept every
activation would hold), per input pixel, from one pass over a small probe frame. The engines hold
less than that (they free or reuse buffers as they go), so the budget errs on the safe side;
bench/README.md links the measured peaks beside the estimate.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from livestyle.engines.base import Engine
from livestyle.errors import InsufficientMemoryError

GIB = 1 << 30
MIN_BUDGET = 2 * GIB
PROBE_SIDE = 48  # probe frame side: big enough for per-pixel costs to dominate, small enough for ×8 SR


def total_memory_bytes() -> int | None:
    """This machine's RAM, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_budget() -> int:
    """The larger of 2 GiB and a quarter of the RAM: the activations one frame may take before tiling."""
    total = total_memory_bytes()
    return max(MIN_BUDGET, total // 4) if total else MIN_BUDGET


def describe_bytes(size: float) -> str:
    """Bytes in the largest binary unit that keeps the number ≥ 1: "1.5 GiB"."""
    for unit, factor in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size:.0f} B"


def activation_bytes_per_pixel(model: nn.Module, *, probe: int = PROBE_SIDE) -> float:
    """Bytes of all layer outputs of one forward pass of ``model`` (eval, FP32), per input pixel,
    measured on a ``probe``² frame (each tensor counted once, in-place layers included)."""
    sizes: dict[int, int] = {}
    kept = []  # hold the outputs, so that no storage address is reused during the pass

    def record(module, inputs, output) -> None:
        if isinstance(output, torch.Tensor):
            kept.append(output)
            sizes[output.untyped_storage().data_ptr()] = output.untyped_storage().nbytes()

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    was_training = model.training
    try:
        with torch.inference_mode():
            model.eval()(torch.rand(1, 3, probe, probe))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    # 4 bytes a value for the input and output frames, beside the layers' outputs
    frame = 4 * 3 * (1 + int(getattr(model, "scale", 1)) ** 2)
    return sum(sizes.values()) / probe ** 2 + frame


def tile_for_budget(height: int, width: int, bytes_per_pixel: float, budget: int, *, margin: int, stride: int,
                    batch: int = 1, minimum: int = 16) -> tuple[int, int]:
    """The (height, width) of the tiles that cover a height×width frame in the fewest passes (then the
    fewest pixels) such that one pass, a tile with ``margin`` on every side, fits ``budget``.
    Sides are multiples of ``stride``; an InsufficientMemoryError where even ``minimum`` does not fit."""
    pixels = budget / (bytes_per_pixel * batch)
    best = None
    for rows in range(1, height // minimum + 2):
        tile_h = _round_up(-(-height // rows), stride)
        room = pixels / (tile_h + 2 * margin) - 2 * margin  # the widest tile of this height that fits
        if room < minimum:
            continue
        cols = -(-width // int(room))
        tile_w = _round_up(-(-width // cols), stride)
        while cols > 1 and (tile_h + 2 * margin) * (tile_w + 2 * margin) > pixels:
            cols += 1
            tile_w = _round_up(-(-width // cols), stride)
        if (tile_h + 2 * margin) * (tile_w + 2 * margin) > pixels:
            continue
        cost = (rows * cols, rows * cols * (tile_h + 2 * margin) * (tile_w + 2 * margin))
        if best is None or cost < best[0]:
            best = (cost, (tile_h, tile_w))
    if best is None or min(best[1]) < max(minimum, 2 * stride):
        raise InsufficientMemoryError(f"a memory budget of {describe_bytes(budget)} is too small to run this network "
                                      f"even in tiles; raise --memory-budget")
    return best[1]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class MemoryBoundedEngine:
    """Runs ``whole`` on frames whose activations fit ``budget`` bytes, and the network in tiles
    (``TiledEngine``) on larger ones (Engine interface).

    Tiles of SR nets (no norms) are exact and run through ``whole`` (the same backend); style nets
    run in torch FP32 tiles with the whole frame's instance-norm statistics, as ``--tile`` does.
    ``name`` says "tiledN" while frames are tiled. Input/output: float32 (N, 3, H, W) in [0, 1].
    """

    def __init__(self, whole: Engine, model: nn.Module, *, budget: int | None = None):
        from livestyle.engines.tiling import tile_geometry, with_stats_instance_norm

        self.whole, self.model = whole, model
        self.budget = budget or default_memory_budget()
        self.stride, self.margin = tile_geometry(model)
        self._has_norms = bool(with_stats_instance_norm(model)[1])
        self.scale, self.device = whole.scale, whole.device
        self._bytes_per_pixel: float | None = None
        self._tiled: dict[tuple[int, ...], Engine] = {}  # by input shape
        self._last: Engine = whole

    @property
    def name(self) -> str:
        return self._last.name

    @property
    def bytes_per_pixel(self) -> float:
        if self._bytes_per_pixel is None:
            self._bytes_per_pixel = activation_bytes_per_pixel(self.model)
        return self._bytes_per_pixel

    def frame_bytes(self, shape: tuple[int, ...]) -> float:
        """Estimated activation bytes of one pass over a batch of ``shape`` (N, 3, H, W)."""
        n, _, h, w = shape
        return self.bytes_per_pixel * n * h * w

    def _engine_for(self, shape: tuple[int, ...]) -> Engine:
        if self.frame_bytes(shape) <= self.budget:
            return self.whole
        if shape not in self._tiled:
            from livestyle.engines.tiling import TiledEngine

            n, _, h, w = shape
            tile = tile_for_budget(h, w, self.bytes_per_pixel, self.budget, margin=self.margin, stride=self.stride,
                                   batch=n)
            runner = None
            if not self._has_norms:  # exact tiles through the fast backend, chosen for the tile's size
                prepare = getattr(self.whole, "prepare", None)
                runner = prepare((n, 3, tile[0] + 2 * self.margin, tile[1] + 2 * self.margin)) if prepare else self.whole
            # The margin is the receptive field, so tiles are exact: no feathered overlap needed.
            self._tiled[shape] = TiledEngine(self.model, tile=tile, overlap=0, device=self.device, runner=runner)
        return self._tiled[shape]

    def prepare(self, shape: tuple[int, ...]) -> Engine:
        """Choose now what runs inputs of ``shape``: the whole-frame engine (prepared) or the tiles."""
        engine = self._engine_for(tuple(shape))
        if engine is self.whole and hasattr(self.whole, "prepare"):
            self.whole.prepare(tuple(shape))
        self._last = engine
        return engine

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        engine = self._engine_for(tuple(batch.shape))
        self._last = engine
        return engine(batch)
