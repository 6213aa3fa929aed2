"""The one timer of livestyle's benchmarks: milliseconds per call (CUDA events on a GPU, the
performance counter on the CPU), the p90, and interleaved timing of several candidates."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch


def timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """A function that runs a thunk once and returns its time in ms (CUDA events on the GPU)."""
    if device.type == "cuda":
        def timed(thunk):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            thunk()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        return timed

    def timed(thunk):
        begin = time.perf_counter()
        thunk()
        return (time.perf_counter() - begin) * 1000.0
    return timed


def p90(values: list[float]) -> float:
    """The 90th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def interleaved_times(thunks: dict[str, Callable[[], object]], *, rounds: int, iters: int,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Wall-clock ms of each thunk (CPU work), ``iters`` calls per round, the thunks taking turns
    each round so that all of them see the same machine load; ``warmup`` untimed calls each first."""
    for thunk in thunks.values():
        for _ in range(warmup):
            thunk()
    timed = timer(torch.device("cpu"))
    times: dict[str, list[float]] = {name: [] for name in thunks}
    for _ in range(rounds):
        for name, thunk in thunks.items():
            times[name] += [timed(thunk) for _ in range(iters)]
    return times
