"""Tiled inference for frames larger than memory (or an engine's shape profile) allows.

The frame is cut into overlapping tiles; each tile is run with extra context around it (at least
the network's receptive-field radius, so the kept pixels see exactly what they would see in the
whole frame) and the kept parts are blended with feathered (linear ramp) weights where they overlap.

Instance norm would normalise each tile by that tile's own statistics, so every tile would get its
own colour cast. Here every ``InstanceNorm2d`` is swapped for a ``StatsInstanceNorm`` whose
per-channel mean and variance are found once per frame and then applied unchanged in every tile:

- ``stats="exact"`` (default): the full frame's statistics, layer by layer, without ever holding
  the full frame's activations: for norm k, every tile is run up to norm k (the earlier norms
  already fixed) and the sums over the tiles' kept regions are added up. The tiled output then
  equals the untiled one up to float rounding; it costs about (number of norms)/2 extra passes.
- ``stats="downscaled"``: one pass over a copy of the frame downscaled to ``stats_size``. One
  extra small pass, but the statistics of a network at another scale are only an estimate
  (measured on random nets in tests/test_tiling.py: colour shifts of several percent), so it is
  for video where speed matters more.

Tiling trades time for memory (exact statistics cost several passes): use it for frames that do
not fit, not for speed.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.engines.device import resolve_device
from livestyle.errors import BackendUnavailableError, LivestyleError
from livestyle.models.community import CommunityTransformNet
from livestyle.models.subpixel_sr import HEAD_KERNEL, SubpixelSRNet
from livestyle.models.superres import SRNet
from livestyle.models.transform import TransformNet, reflect_margin

DEFAULT_OVERLAP = 32


class TilingError(LivestyleError):
    """A model or tile size that tiled inference cannot use."""


class _StopForward(Exception):
    """Raised by a norm in "accumulate" mode: the rest of the network is not needed for this pass."""


class StatsInstanceNorm(nn.Module):
    """InstanceNorm2d that can record its statistics from one input and apply them to others.

    ``mode``: "live" (ordinary instance norm), "record" (normalise and keep the (N, C, 1, 1) mean
    and biased variance), "fixed" (normalise with the kept statistics), "accumulate" (add the sums
    over ``region`` to running totals and stop the forward pass; ``finish_accumulating`` turns the
    totals into statistics). Statistics are computed in float32 (sums in float64) whatever the
    input's dtype. Shares the affine parameters of the norm it replaces.
    """

    def __init__(self, norm: nn.InstanceNorm2d):
        super().__init__()
        self.eps = norm.eps
        self.weight, self.bias = norm.weight, norm.bias
        self._mode = "live"
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None
        self._scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None
        # accumulate mode: kept region as fractions (top, bottom, left, right) of the pass's input
        self.region = (0.0, 1.0, 0.0, 1.0)
        self._totals: list | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode == "fixed" and self._mode != "fixed":
            # fold the statistics and the affine part into one multiply-add per element
            scale = torch.rsqrt(self.var + self.eps)
            shift = -self.mean * scale
            if self.weight is not None:
                weight, bias = self.weight.float().view(1, -1, 1, 1), self.bias.float().view(1, -1, 1, 1)
                scale, shift = scale * weight, shift * weight + bias
            self._scale_shift = (scale, shift)
        self._mode = mode

    def start_accumulating(self) -> None:
        self._mode, self._totals = "accumulate", [0.0, 0.0, 0]

    def finish_accumulating(self) -> None:
        total, total_sq, count = self._totals
        mean = total / count
        self.mean, self.var = mean.float(), (total_sq / count - mean * mean).clamp_min(0.0).float()
        self._totals = None
        self.mode = "fixed"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "accumulate":
            h, w = x.shape[-2:]
            top, bottom, left, right = self.region
            part = x[..., round(top * h):round(bottom * h), round(left * w):round(right * w)].double()
            self._totals[0] = self._totals[0] + part.sum(dim=(2, 3), keepdim=True)
            self._totals[1] = self._totals[1] + part.square().sum(dim=(2, 3), keepdim=True)
            self._totals[2] += part.shape[-2] * part.shape[-1]
            raise _StopForward
        if self.mode == "fixed":
            scale, shift = self._scale_shift
            return torch.addcmul(shift, x.float(), scale).to(x.dtype)
        if self.mode == "live" and x.dtype == torch.float32:
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
        if self.mode == "record":
            self.mean, self.var = mean, var
        y = (x.float() - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.float().view(1, -1, 1, 1) + self.bias.float().view(1, -1, 1, 1)
        return y.to(x.dtype)


def with_stats_instance_norm(model: nn.Module) -> tuple[nn.Module, list[StatsInstanceNorm]]:
    """A copy of ``model`` with every InstanceNorm2d swapped for a StatsInstanceNorm, and those norms
    in the order the forward pass runs them (found by running it once on a small input)."""
    model = copy.deepcopy(model).eval()
    norms = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                if child.track_running_stats:
                    raise TilingError("tiling needs instance norm without running statistics")
                norm = StatsInstanceNorm(child)
                setattr(parent, name, norm)
                norms.append(norm)
    order: list[StatsInstanceNorm] = []
    hooks = [norm.register_forward_pre_hook(lambda module, args: order.append(module)) for norm in norms]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 16, 16))
    finally:
        for hook in hooks:
            hook.remove()
    if len(order) != len(norms) or set(map(id, order)) != set(map(id, norms)):
        raise TilingError("tiling needs every instance norm to run exactly once per forward pass")
    return model, order


def tile_geometry(model: nn.Module) -> tuple[int, int]:
    """(stride, receptive-field radius in input pixels) of the networks that tiling knows."""

    if isinstance(model, TransformNet):
        # 9×9 conv (4) + two stride-2 3×3 convs (1 + 2) + 2·blocks 3×3 convs at stride 4 (8 each
        # block) + two upsampled 3×3 convs (2 + 1) + final 9×9 conv (4).
        return model.stride, 14 + 8 * model.config.blocks
    if isinstance(model, CommunityTransformNet):
        return model.stride, 14 + 8 * model.config.blocks
    if isinstance(model, SRNet):
        # 9×9 head (4) + 2·blocks 3×3 convs (2 each block) + upsampled 3×3 convs (< 1 in all) + 9×9 tail (4/scale)
        return 1, 4 + 2 * model.config.blocks + 1 + math.ceil(4 / model.scale)
    if isinstance(model, SubpixelSRNet):
        # head (HEAD_KERNEL // 2) + 2·blocks 3×3 convs + the 3×3 conv before the shuffle, all at the
        # input's resolution; the bicubic skip reads 2 px either side
        return 1, max(2, HEAD_KERNEL // 2 + 2 * model.config.blocks + 1)
    raise TilingError(f"tiled inference does not know the receptive field of {type(model).__name__}; "
                      "it works with TransformNet, SRNet, SubpixelSRNet and pytorch/examples models")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets covering [0, length) with tiles of ``tile``, ``step`` apart, the last flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _feather(length: int, ramp_before: int, ramp_after: int, device, dtype) -> torch.Tensor:
    """1-D weights: linear ramps over the first/last ``ramp_*`` samples, 1 elsewhere (never 0)."""
    weights = torch.ones(length, device=device, dtype=dtype)
    if ramp_before:
        weights[:ramp_before] = (torch.arange(ramp_before, device=device, dtype=dtype) + 0.5) / ramp_before
    if ramp_after:
        weights[length - ramp_after:] = torch.minimum(
            weights[length - ramp_after:],
            (torch.arange(ramp_after, device=device, dtype=dtype).flip(0) + 0.5) / ramp_after)
    return weights


class TiledEngine:
    """Runs a TransformNet/SRNet/SubpixelSRNet (or pytorch/examples net) in overlapping, feathered tiles (Engine interface).

    ``tile``: tile side in input pixels, or (height, width) (rounded down to the network's stride);
    frames that fit in one tile run whole. ``overlap``: feathered band shared by neighbouring tiles. ``margin``:
    context added around each tile and thrown away (default: the receptive-field radius, which
    makes tiles exact). ``stats``: "exact" or "downscaled" (see the module docstring);
    ``stats_size``: longest side of the downscaled copy (default tile + 2·margin, the size of one
    tile's pass, so memory stays bounded by one tile). ``runner``: an engine that runs each tile
    instead of torch (networks without instance norms only, e.g. SR nets: their tiles need no
    statistics); ``device`` and ``precision`` are then the runner's.
    Input/output: float32 RGB (N, 3, H, W) in [0, 1]; output (N, 3, s·H, s·W) on the engine's device.
    """

    def __init__(self, model: nn.Module, *, tile: int | tuple[int, int] = 512, overlap: int = DEFAULT_OVERLAP,
                 margin: int | None = None, stats: str = "exact", stats_size: int | None = None,
                 device: torch.device | str | None = None, precision: str = "fp32", runner=None):
        if stats not in ("exact", "downscaled"):
            raise TilingError(f"unknown statistics mode {stats!r}; use exact or downscaled")
        self.stats = stats
        self.stride, radius = tile_geometry(model)
        tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
        if min(tile_h, tile_w) < max(16, 2 * self.stride):
            raise TilingError(f"tile size {tile} is too small; use at least {max(16, 2 * self.stride)}")
        self.tile_h, self.tile_w = tile_h // self.stride * self.stride, tile_w // self.stride * self.stride
        self.tile = max(self.tile_h, self.tile_w)
        shape = f"{self.tile}" if self.tile_h == self.tile_w else f"{self.tile_h}x{self.tile_w}"
        self.overlap = min(_round_up(max(overlap, 0), self.stride), min(self.tile_h, self.tile_w) // 2)
        self.margin = _round_up(radius if margin is None else max(margin, 0), self.stride)
        self.stats_size = stats_size or self.tile + 2 * self.margin
        self.device = resolve_device(device)
        if precision not in ("fp32", "fp16") or (precision == "fp16" and self.device.type != "cuda"):
            raise BackendUnavailableError("--tile runs in FP32, or FP16 on CUDA; leave out --fp16 on the CPU")
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        net, self.norms = with_stats_instance_norm(model)
        # A style net's border margin belongs to the whole frame: added once around it here, not
        # around every tile (which would reflect each tile's own edges).
        self.frame_margin = getattr(getattr(net, "config", None), "margin", 0)
        if self.frame_margin:
            net.config = dataclasses.replace(net.config, margin=0)
        self.model = net.eval().to(self.device, self.dtype)
        self.scale = getattr(model, "scale", 1)
        self.name = f"torch-{self.device.type}-{precision}-tiled{shape}"
        self._forward = self.model
        if runner is not None:
            if self.norms:
                raise TilingError("tiles of a network with instance norms run in torch (they need the frame's statistics)")
            self.device, self.dtype = runner.device, torch.float32
            self._forward = runner
            self.name = f"{runner.name}-tiled{shape}"

    def _set_mode(self, mode: str) -> None:
        for norm in self.norms:
            norm.mode = mode

    def _record_statistics(self, frame: torch.Tensor) -> None:
        """Run the network once on ``frame`` (downscaled to fit ``stats_size``) and keep its norm statistics."""
        h, w = frame.shape[-2:]
        factor = self.stats_size / max(h, w)
        if factor < 1.0:
            size = (max(self.stride, round(h * factor / self.stride) * self.stride),
                    max(self.stride, round(w * factor / self.stride) * self.stride))
            frame = F.interpolate(frame, size=size, mode="bilinear", align_corners=False, antialias=True)
        self._set_mode("record")
        try:
            self.model(frame)
        finally:
            self._set_mode("fixed")

    def _tiles(self, ph: int, pw: int) -> list[tuple[int, int, int, int, int, int, int, int]]:
        """(y0, y1, x0, x1) kept region and (iy0, iy1, ix0, ix1) input region of every tile."""
        step_h = max(self.stride, (self.tile_h - self.overlap) // self.stride * self.stride)
        step_w = max(self.stride, (self.tile_w - self.overlap) // self.stride * self.stride)
        tiles = []
        for y0 in _tile_starts(ph, self.tile_h, step_h):
            y1 = min(y0 + self.tile_h, ph)
            for x0 in _tile_starts(pw, self.tile_w, step_w):
                x1 = min(x0 + self.tile_w, pw)
                tiles.append((y0, y1, x0, x1, max(0, y0 - self.margin), min(ph, y1 + self.margin),
                              max(0, x0 - self.margin), min(pw, x1 + self.margin)))
        return tiles

    def _accumulate_statistics(self, frame: torch.Tensor) -> None:
        """The full frame's statistics, norm by norm, from tiles (each counted over its own region once)."""
        ph, pw = frame.shape[-2:]
        # each pixel is counted once: tiles own disjoint cells split at their overlaps' midlines
        tiles = self._tiles(ph, pw)
        for norm in self.norms:
            norm.start_accumulating()
            for y0, y1, x0, x1, iy0, iy1, ix0, ix1 in tiles:
                cy0, cy1 = self._owned(y0, y1, ph, [t[0] for t in tiles], [t[1] for t in tiles])
                cx0, cx1 = self._owned(x0, x1, pw, [t[2] for t in tiles], [t[3] for t in tiles])
                hh, ww = iy1 - iy0, ix1 - ix0
                norm.region = ((cy0 - iy0) / hh, (cy1 - iy0) / hh, (cx0 - ix0) / ww, (cx1 - ix0) / ww)
                try:
                    self.model(frame[:, :, iy0:iy1, ix0:ix1])
                except _StopForward:
                    pass
            norm.finish_accumulating()

    def _owned(self, start: int, end: int, length: int, starts: list[int], ends: list[int]) -> tuple[int, int]:
        """The part of [start, end) this tile owns along one axis: cut at the midline of each overlap."""
        before = [e for s, e in zip(starts, ends) if s < start and e > start]
        after = [s for s in starts if start < s < end]
        lo = start if not before else _round_up((start + max(before)) // 2, self.stride)
        hi = end if not after else _round_up((min(after) + end) // 2, self.stride)
        return lo, hi

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype, non_blocking=True)
        h, w = batch.shape[-2:]
        m = self.frame_margin
        return self._run(reflect_margin(batch, m))[:, :, m:m + h, m:m + w] if m else self._run(batch)

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        n, _, h, w = batch.shape
        if h <= self.tile_h and w <= self.tile_w:
            self._set_mode("live")
            return self._forward(batch).float()
        # pad to the stride so every tile samples the same grid as the whole frame
        ph, pw = _round_up(h, self.stride), _round_up(w, self.stride)
        frame = F.pad(batch, (0, pw - w, 0, ph - h), mode="replicate") if (ph, pw) != (h, w) else batch
        try:
            if self.stats == "exact":
                self._accumulate_statistics(frame)
            else:
                self._record_statistics(frame)
            s = self.scale
            out = torch.zeros(n, 3, ph * s, pw * s, device=self.device, dtype=torch.float32)
            weight_sum = torch.zeros(1, 1, ph * s, pw * s, device=self.device, dtype=torch.float32)
            for y0, y1, x0, x1, iy0, iy1, ix0, ix1 in self._tiles(ph, pw):
                wy = _feather((y1 - y0) * s, self.overlap * s if y0 > 0 else 0,
                              self.overlap * s if y1 < ph else 0, self.device, torch.float32)
                wx = _feather((x1 - x0) * s, self.overlap * s if x0 > 0 else 0,
                              self.overlap * s if x1 < pw else 0, self.device, torch.float32)
                result = self._forward(frame[:, :, iy0:iy1, ix0:ix1]).float().to(self.device)
                kept = result[:, :, (y0 - iy0) * s:(y1 - iy0) * s, (x0 - ix0) * s:(x1 - ix0) * s]
                mask = wy[:, None] * wx[None, :]
                out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += kept * mask
                weight_sum[:, :, y0 * s:y1 * s, x0 * s:x1 * s] += mask
        finally:
            self._set_mode("live")
        return (out / weight_sum)[:, :, :h * s, :w * s]
