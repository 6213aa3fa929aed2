"""Peak memory over a block of benchmark work: the process's peak resident set on the CPU (Linux's
VmHWM, reset through /proc/self/clear_refs), the allocator's peak on CUDA."""
from __future__ import annotations

import torch

MIB = 1 << 20


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_cpu_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident set
    except OSError:
        return False
    return True


class PeakMemory:
    """``with PeakMemory(device) as peak: …`` then ``peak.peak_mb`` (the highest resident set of the
    process during the block, MiB; on CUDA the most memory torch allocated) and ``peak.growth_mb``
    (that peak less the amount at the start). Both None where the system cannot say (not Linux)."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.peak_mb: float | None = None
        self.growth_mb: float | None = None
        self._start: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        elif _reset_cpu_peak():
            self._start = _status_bytes("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self._start is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = _status_bytes("VmHWM")
        if peak is not None:
            self.peak_mb = round(peak / MIB, 1)
            self.growth_mb = round(max(0, peak - self._start) / MIB, 1)
