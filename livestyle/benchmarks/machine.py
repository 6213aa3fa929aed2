"""The machine a benchmark ran on, described once: CPU model and cores, GPU, driver, libraries."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess

import torch

from livestyle.engines.device import cpu_caps, cpu_model


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device) -> dict:
    """CPU model and cores, GPU name/driver/CUDA/cuDNN where used, OS and library versions."""
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # Other work on the machine slows CPU timings; the load when the run started says how much.
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "cpu_caps": cpu_caps(),  # instruction-set caps in the environment (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA)
        "os": platform.platform(),
        "python": platform.python_version(),
        "libraries": {p: v for p in ("livestyle", "torch", "torchvision", "numpy", "opencv-python",
                                     "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt")
                      if (v := _version(p)) is not None},
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update({
            "gpu": torch.cuda.get_device_name(device),
            "gpu_memory_gib": round(props.total_memory / 2**30, 1),
            "gpu_driver": _nvidia_driver(),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        })
    return info


def machine_label(info: dict) -> str:
    """A short human name for the machine that ran a bench: the GPU, else CPU model and cores."""
    if info.get("gpu"):
        return f"{info['gpu']} (driver {info.get('gpu_driver') or '?'}, CUDA {info.get('cuda')})"
    return f"{info['cpu']}, {info['cpu_cores']} cores (CPU)"


def device_slug(label: str) -> str:
    """A file-name-safe short form of a device label, e.g. ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "device"
