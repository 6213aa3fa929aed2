"""Perceptual losses of Johnson, Alahi & Fei-Fei (ECCV 2016), Section 3.

Notation: φ_j(x) is the activation of a loss-network tap with shape C_j × H_j × W_j. Every loss
below is averaged over the batch, so it does not grow with the batch size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature reconstruction loss, paper eq. (2): ‖φ_j(ŷ) − φ_j(y)‖²₂ / (C_j H_j W_j).

    Args: (N, C, H, W) activations of the output and of the target. Returns a scalar: the squared
    Euclidean distance divided by C·H·W, averaged over the batch (i.e. the mean squared error).
    """
    return F.mse_loss(features, target, reduction="mean")


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix, paper eq. (3): G_j(x)_{c,c'} = Σ_{h,w} φ(x)_{h,w,c} φ(x)_{h,w,c'} / (C_j H_j W_j).

    (N, C, H, W) → (N, C, C). Computed in float32 whatever the input dtype, autocast included (which
    would run the product in float16 again): the sums of H·W products overflow float16.
    """
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        flat = features.reshape(n, c, h * w).float()
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Style reconstruction loss, paper eq. (4): ‖G_j(ŷ) − G_j(y)‖²_F, averaged over the batch.

    Args: (N, C, C) Gram matrices of the output; the target's (N or 1, C, C) broadcasts.
    """
    diff = gram - target_gram
    return diff.pow(2).sum(dim=(1, 2)).mean()


def total_variation_loss(images: torch.Tensor) -> torch.Tensor:
    """Total-variation regulariser ℓ_TV (Mahendran & Vedaldi 2015, as used by the paper), β = 2.

    (N, C, H, W) → scalar: Σ (x_{i+1,j} − x_{i,j})² + Σ (x_{i,j+1} − x_{i,j})², summed over channels
    and pixels, divided by C·H·W and averaged over the batch.
    """
    n, c, h, w = images.shape
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).sum(dim=(1, 2, 3))
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).sum(dim=(1, 2, 3))
    return ((dy + dx) / (c * h * w)).mean()


def pixel_loss(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixel loss, paper Section 3.3: ‖ŷ − y‖²₂ / (C H W), averaged over the batch (the MSE)."""
    return F.mse_loss(images, target, reduction="mean")
