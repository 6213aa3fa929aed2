"""Devices: which one runs, what this CPU can do, how to wait for a GPU, and how to name a machine."""
from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from livestyle.errors import BackendUnavailableError


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" → CUDA if present, else CPU. An explicit CUDA device that is absent is an error."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendUnavailableError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but CUDA is not available on this machine")
    return dev


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that timings and reads are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Environment caps on the instruction sets the CPU libraries may use: torch's own kernels
# (ATen) and oneDNN's (torch's convolutions; OpenVINO's CPU plugin has its own copy of oneDNN).
CPU_CAP_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
# oneDNN ISA caps below which it has no BF16 dot products (its ISA names, upper case).
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_caps() -> dict[str, str]:
    """The instruction-set caps set in the environment, e.g. ``{"ONEDNN_MAX_CPU_ISA": "AVX2"}``."""
    return {name: os.environ[name] for name in CPU_CAP_VARIABLES if os.environ.get(name)}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes BF16 in hardware (AVX512-BF16 or AMX), where oneDNN's BF16
    convolutions beat FP32; elsewhere BF16 is emulated and slower. A $ONEDNN_MAX_CPU_ISA cap below
    AVX512_CORE_BF16 counts as no BF16 (oneDNN then emulates it)."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def half_precision(device: torch.device) -> str:
    """The half precision a device runs: "fp16" on CUDA, "bf16" on the CPU (what ``--fp16`` asks for)."""
    return "fp16" if device.type == "cuda" else "bf16"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_label(device: torch.device) -> str:
    """Human name of the device: the GPU's name, or the CPU's model and core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: unchanged), then put the count back.

    Torch's setting belongs to the calling thread's OpenMP pool, so a pipeline thread sets its own.
    One thread is worth it for small, memory-bound work beside a busy core: there, two threads wait
    on each other at every barrier (bench/README.md links the measurements).
    """
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
