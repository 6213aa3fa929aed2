"""ONNX Runtime, one thread: bicubic ×4 of a 640×480 frame as a cubic Resize against the fixed phase
convolution + pixel shuffle of SubpixelSRNet's skip, and x4_fast whole. Prints the median ms of 3 calls.

    OMP_NUM_THREADS=1 .venv/bin/python bench/experiments/fast-sr/resize_vs_phase.py
"""
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from livestyle.engines.onnx_engine import OnnxRuntimeEngine
from livestyle.models.subpixel_sr import bicubic_phase_kernels
from livestyle.zoo.catalog import Catalog

SCALE = 4


class Resize(nn.Module):
    """The skip as F.interpolate: a cubic Resize on the ×4 grid in ONNX."""

    scale = SCALE

    def forward(self, x):
        return F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False)


class Phase(nn.Module):
    """The skip as SubpixelSRNet computes it: a 5×5 convolution at the low resolution, then a shuffle."""

    scale = SCALE

    def __init__(self):
        super().__init__()
        self.register_buffer("kernels", bicubic_phase_kernels(SCALE).float().repeat(3, 1, 1).unsqueeze(1))
        self.shuffle = nn.PixelShuffle(SCALE)

    def forward(self, x):
        return self.shuffle(F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), self.kernels, groups=3))


def main() -> None:
    catalog = Catalog(Path(__file__).resolve().parents[3] / "weights")
    x = torch.rand(1, 3, 480, 640)
    for name, model in (("cubic Resize", Resize()), ("phase conv + shuffle", Phase()),
                        ("x4_fast", catalog.load(catalog.get("x4_fast")))):
        engine = OnnxRuntimeEngine(model.eval(), device="cpu", threads=1)
        engine(x)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            engine(x)
            times.append(time.perf_counter() - start)
        print(f"{name}: {statistics.median(times) * 1000:.0f} ms (load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
