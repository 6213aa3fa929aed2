"""Exact inference rewrites of the transform and SR networks (same function, less work).

Each rewrite maps trained modules onto cheaper ones that compute the same output up to float
rounding; ``tests/test_rewrites.py`` checks each against the plain model in FP32.

- ``SubpixelUpsampleConv``: nearest ×2 upsample → reflection pad 1 → 3×3 conv equals a conv at the
  low resolution with four 2×2 phase kernels, then a pixel shuffle (2.25× fewer multiply-adds). The
  reflection padding of the upsampled image becomes replicate padding of the low-resolution one.
- ``FusedInstanceNorm``: instance norm with statistics always in FP32 (safe for FP16/BF16 inputs,
  including constant frames where the variance is 0), its affine folded into one per-channel
  scale and shift, and the following ReLU applied in the same step.
- Conv bias before an instance norm is dropped: the norm subtracts the per-channel mean, so a
  per-channel constant cancels exactly. Folding the norm's affine into the *next* convolution is
  not valid in these networks: a ReLU or a residual add always sits between the two.
- A batch norm (the SR network's) is, in eval mode, a fixed per-channel affine map: it is folded
  into the convolution before it (scaled weights, shifted bias) and disappears.
- ``SpaceToDepthConv``: the final 9×9 convolution to RGB, computed at half resolution on a
  space-to-depth input with 12 phase outputs (faster on CPUs; bench/README.md has the measurements).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.models.superres import SRNet
from livestyle.models.transform import ConvLayer, ConvNormReLU, ResidualBlock, TransformNet, UpsampleConvNormReLU

# Row (and column) combination of a 3-tap kernel for each output phase of a nearest ×2 upsample:
# output row 2i reads input rows i-1, i with taps (w0, w1+w2); row 2i+1 reads i, i+1 with (w0+w1, w2).
_PHASE_TAPS = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],
                            [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # (phase, 2 taps, 3 taps)


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """3×3 kernels (C_out, C_in, 3, 3) → 2×2 phase kernels (4·C_out, C_in, 2, 2), pixel-shuffle order.

    Output channel ``4·c + 2·a + b`` is the kernel of output channel ``c`` for output rows of parity
    ``a`` and columns of parity ``b``.
    """
    taps = _PHASE_TAPS.to(weight.device, torch.float64)
    # k[o, i, a, b, r, s] = Σ_{y,x} taps[a, r, y] · w[o, i, y, x] · taps[b, s, x]
    kernels = torch.einsum("ary,oiyx,bsx->oabirs", taps, weight.double(), taps)
    c_out, c_in = weight.shape[:2]
    return kernels.reshape(4 * c_out, c_in, 2, 2).to(weight.dtype)


def _phase_bias(conv: nn.Conv2d) -> nn.Parameter | None:
    """``conv``'s bias for its four phase outputs per channel (pixel-shuffle order), or None."""
    if conv.bias is None:
        return None
    return nn.Parameter(conv.bias.detach().repeat_interleave(4), requires_grad=False)


class SubpixelUpsampleConv(nn.Module):
    """Same output as ``Upsample(×2, nearest) → ReflectionPad2d(1) → Conv2d(3×3)``, computed at the low resolution.

    Input (N, C_in, H, W) → output (N, C_out, 2H, 2W); H, W ≥ 1.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.groups != 1 or conv.dilation != (1, 1):
            raise ValueError("the sub-pixel rewrite needs a plain 3×3 stride-1 convolution")
        self.out_channels = conv.out_channels
        self.weight = nn.Parameter(phase_kernels(conv.weight.detach()), requires_grad=False)
        self.bias = _phase_bias(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        # Replicate padding at low resolution = reflection padding (by 1) of the upsampled image.
        z = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.weight, self.bias)  # (N, 4C, H+1, W+1)
        z = z.reshape(n, self.out_channels, 2, 2, h + 1, w + 1)
        # Phase (a, b) of output pixel (2i+a, 2j+b) is the 2×2 conv at padded position (i+a, j+b).
        phases = torch.stack([z[:, :, a, b, a:a + h, b:b + w] for a in (0, 1) for b in (0, 1)], dim=2)
        return F.pixel_shuffle(phases.reshape(n, 4 * self.out_channels, h, w), 2)


def space_to_depth_kernels(weight: torch.Tensor) -> torch.Tensor:
    """k×k kernels (C_out, C_in, k, k), k odd → (4·C_out, 4·C_in, k//2+1, k//2+1) kernels on the
    space-to-depth ×2 input whose outputs, depth-to-space ×2, are the original convolution's.

    Output channel ``4·o + 2·a + b`` is output pixel (2p+a, 2q+b) of channel ``o``; input channel
    ``4·c + 2·s + t`` is input pixel (2P+s, 2Q+t) of channel ``c`` (pixel_shuffle/unshuffle order).
    Tap (P, Q) of phase (a, b) reads original tap (2P+s−a, 2Q+t−b), zero where that is outside k×k.
    """
    c_out, c_in, k, _ = weight.shape
    taps = k // 2 + 1
    # select[a, s, P, u] = 1 where original tap u = 2P + s − a
    select = torch.zeros(2, 2, taps, k, dtype=torch.float64, device=weight.device)
    for a in (0, 1):
        for s in (0, 1):
            for big in range(taps):
                u = 2 * big + s - a
                if 0 <= u < k:
                    select[a, s, big, u] = 1.0
    kernels = torch.einsum("asPu,btQv,ocuv->oabcstPQ", select, select, weight.double())
    return kernels.reshape(4 * c_out, 4 * c_in, taps, taps).to(weight.dtype)


class SpaceToDepthConv(nn.Module):
    """Same output as ``ReflectionPad2d(k//2) → Conv2d(k×k, stride 1)`` on an input of even height and
    width, computed at half resolution: reflection pad, space-to-depth ×2, a (k//2+1)² convolution to
    4 × the output channels, depth-to-space ×2.

    For the 9×9 convolutions to RGB that end both networks: a 3-channel output fills few lanes of a
    CPU's blocked (NCHWc) convolution kernels, 12 phase channels fill more: more multiply-adds,
    less time. Inputs must have even H and W (TransformNet pads to a multiple of 4; SR outputs are
    multiples of the scale).
    """

    def __init__(self, layer: ConvLayer):
        super().__init__()
        pad, conv = layer
        k = conv.kernel_size[0]
        if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.groups != 1 \
                or conv.dilation != (1, 1) or pad.padding != (k // 2,) * 4:
            raise ValueError("the space-to-depth rewrite needs an odd k×k stride-1 convolution after reflection padding k//2")
        self.pad = k // 2
        self.weight = nn.Parameter(space_to_depth_kernels(conv.weight.detach()), requires_grad=False)
        self.bias = _phase_bias(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        z = F.conv2d(F.pixel_unshuffle(F.pad(x, (p, p, p, p), mode="reflect"), 2), self.weight, self.bias)
        return F.pixel_shuffle(z, 2)


class FusedInstanceNorm(nn.Module):
    """Instance norm with FP32 statistics and its affine folded into one scale/shift; optional ReLU.

    Input (N, C, H, W) of any float dtype → same shape and dtype. The normalisation itself runs in
    FP32 too, so FP16/BF16 activations never see (x − mean)·rstd computed in half precision.
    ``native``: use ``F.instance_norm`` on the FP32 copy instead (exports as one ONNX op).
    """

    def __init__(self, norm: nn.InstanceNorm2d, *, relu: bool = False, native: bool = False):
        super().__init__()
        channels = norm.num_features
        weight = norm.weight.detach().float() if norm.affine else torch.ones(channels)
        bias = norm.bias.detach().float() if norm.affine else torch.zeros(channels)
        # Buffers, not parameters: ``to_half_keeping_norms_fp32`` leaves them in FP32 when the rest goes to FP16.
        self.register_buffer("weight", weight.clone())
        self.register_buffer("bias", bias.clone())
        self.eps = norm.eps
        self.relu = relu
        self.native = native  # one F.instance_norm call (one ONNX InstanceNormalization op for TensorRT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))
        if self.native:
            y = F.instance_norm(x32, weight=self.weight.to(x32.dtype), bias=self.bias.to(x32.dtype), eps=self.eps)
            return (y.relu_() if self.relu else y).to(x.dtype)
        var, mean = torch.var_mean(x32, dim=(2, 3), unbiased=False, keepdim=True)
        scale = self.weight.to(x32.dtype).view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        # (x − mean)·scale + beta rather than x·scale + (beta − mean·scale): no cancellation of two
        # large terms when the variance is tiny (constant frames make scale ≈ gamma/sqrt(eps)).
        y = torch.addcmul(self.bias.to(x32.dtype).view(1, -1, 1, 1), x32 - mean, scale)
        if self.relu:
            y = y.relu_()
        return y.to(x.dtype)


def _conv_without_bias(layer: ConvLayer) -> ConvLayer:
    """A copy of a ConvLayer whose bias is dropped (valid only where an instance norm follows)."""
    new = copy.deepcopy(layer)
    new[1].bias = None
    return new


def _conv_with_batch_norm(layer: ConvLayer, norm: nn.BatchNorm2d) -> ConvLayer:
    """A copy of a ConvLayer with the eval-mode batch norm after it folded in: norm(conv(x)) in one conv."""
    new = copy.deepcopy(layer)
    conv = new[1]
    with torch.no_grad():
        scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        conv.weight.copy_((conv.weight.double() * scale[:, None, None, None]).to(conv.weight.dtype))
        conv.bias = nn.Parameter(((bias - norm.running_mean.double()) * scale + norm.bias.double()).to(conv.weight.dtype))
    return new


def _conv_norm(layer: ConvLayer, norm: nn.Module, *, fused_norm: bool, relu: bool) -> list[nn.Module]:
    """ConvLayer → norm (→ ReLU) as its cheapest exact equivalent, a list of modules."""
    tail = [nn.ReLU()] if relu else []
    if isinstance(norm, nn.BatchNorm2d):
        return [_conv_with_batch_norm(layer, norm), *tail]
    if isinstance(norm, nn.InstanceNorm2d):
        if fused_norm:
            return [_conv_without_bias(layer), FusedInstanceNorm(norm, relu=relu)]
        return [_conv_without_bias(layer), copy.deepcopy(norm), *tail]
    return [copy.deepcopy(layer), *tail]  # un-normalised: the bias stays


def _rewrite_conv_norm_relu(block: ConvNormReLU, *, fused_norm: bool) -> nn.Module:
    conv_layer, norm, _ = block
    return nn.Sequential(*_conv_norm(conv_layer, norm, fused_norm=fused_norm, relu=True))


def _rewrite_upsample_block(block: UpsampleConvNormReLU, *, subpixel: bool, fused_norm: bool) -> nn.Module:
    upsample, (conv_layer, norm, _) = block
    if not subpixel:
        return nn.Sequential(upsample, _rewrite_conv_norm_relu(block[1], fused_norm=fused_norm))
    # The sub-pixel conv takes the (bias-dropped or batch-norm-folded) 3×3 conv of the same rewrite.
    conv_layer, *tail = _conv_norm(conv_layer, norm, fused_norm=fused_norm, relu=True)
    return nn.Sequential(SubpixelUpsampleConv(conv_layer[1]), *tail)


def _rewrite_residual_block(block: ResidualBlock, *, fused_norm: bool) -> ResidualBlock:
    new = copy.deepcopy(block)
    conv1, norm1, _, conv2, norm2 = block.body
    new.body = nn.Sequential(*_conv_norm(conv1, norm1, fused_norm=fused_norm, relu=True),
                             *_conv_norm(conv2, norm2, fused_norm=fused_norm, relu=False))
    return new


def rewrite_for_inference(model: nn.Module, *, subpixel: bool = True, fused_norm: bool = True,
                          space_to_depth_output: bool = True) -> nn.Module:
    """A rewritten copy of a TransformNet/SRNet (eval mode, no grads); ``model`` is left untouched.

    ``subpixel``: upsample blocks become ``SubpixelUpsampleConv``. ``fused_norm``: every instance
    norm becomes ``FusedInstanceNorm`` (with its ReLU). ``space_to_depth_output``: the final 9×9
    convolution to RGB becomes a ``SpaceToDepthConv``. Conv biases before an instance norm are
    always dropped; batch norms are always folded into their convolutions.
    """
    new = copy.deepcopy(model).eval()
    if space_to_depth_output and isinstance(new, TransformNet) and not new.config.pixel_shuffle:
        new.decoder[-1] = SpaceToDepthConv(new.decoder[-1])
    elif space_to_depth_output and isinstance(new, SRNet):
        new.tail = SpaceToDepthConv(new.tail)

    def visit(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, UpsampleConvNormReLU):
                setattr(parent, name, _rewrite_upsample_block(child, subpixel=subpixel, fused_norm=fused_norm))
            elif isinstance(child, ConvNormReLU):
                setattr(parent, name, _rewrite_conv_norm_relu(child, fused_norm=fused_norm))
            elif isinstance(child, ResidualBlock):
                setattr(parent, name, _rewrite_residual_block(child, fused_norm=fused_norm))
            else:
                visit(child)

    visit(new)
    for p in new.parameters():
        p.requires_grad_(False)
    return new


def safe_half_norms(model: nn.Module, *, native: bool = True) -> nn.Module:
    """A copy of ``model`` whose instance norms compute in FP32 whatever the activation dtype.

    Only the norms change (``FusedInstanceNorm`` without ReLU); the rest of the graph is as trained.
    """
    new = copy.deepcopy(model).eval()

    def visit(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.InstanceNorm2d):
                setattr(parent, name, FusedInstanceNorm(child, relu=False, native=native))
            else:
                visit(child)

    visit(new)
    return new


def to_half_keeping_norms_fp32(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Cast parameters and buffers to ``dtype`` (FP16/BF16) in place, except ``FusedInstanceNorm``'s (FP32)."""
    for module in model.modules():
        if isinstance(module, FusedInstanceNorm):
            continue
        for name, param in module.named_parameters(recurse=False):
            if param is not None and param.is_floating_point():
                param.data = param.data.to(dtype)
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point():
                setattr(module, name, buf.to(dtype))
    return model


__all__ = ["FusedInstanceNorm", "SubpixelUpsampleConv", "phase_kernels", "rewrite_for_inference",
           "safe_half_norms", "to_half_keeping_norms_fp32"]
