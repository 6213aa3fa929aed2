"""Small inputs shared by several test modules."""
import torch

from livestyle.models import transform_net


def tiny_style():
    """A seeded width-4, one-block TransformNet in eval mode."""
    torch.manual_seed(0)
    return transform_net(width=4, blocks=1).eval()


def natural_image(h: int, w: int) -> torch.Tensor:
    """Smooth gradients with mild noise: 'natural-looking' for PSNR checks. (1, 3, H, W) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx + 3 * yy)])
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1)) * 0.1
    return (0.9 * base + noise).clamp(0, 1).unsqueeze(0)
