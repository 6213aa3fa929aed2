"""Training precision and memory layout: autocast with gradient scaling, and the ``auto`` choice,
timed on a few steps of a throwaway copy of the model."""
from __future__ import annotations

import copy
import time

import numpy as np
import torch

from livestyle.engines.device import synchronize
from livestyle.training.recipes import RunOptions


class Precision:
    """Autocast + (fp16 only) gradient scaling for one AMP choice ("off", "bf16", "fp16")."""

    def __init__(self, amp: str, device: torch.device):
        self.amp, self.device = amp, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()


def time_steps(task, amp: str, channels_last: bool, device: torch.device, steps: int = 6) -> float:
    """Seconds per training step of a ``Task`` on a throwaway copy of its model (the run's state is untouched)."""
    model, saved_layout = task.model, task.channels_last
    task.model = copy.deepcopy(model)
    task.set_layout(channels_last)
    try:
        generator = torch.Generator().manual_seed(12345)
        optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-6)
        precision = Precision(amp, device)
        times = []
        for _ in range(steps + 3):  # the first steps pay for cuDNN's algorithm search
            batch = task.batch(generator)
            synchronize(device)
            start = time.perf_counter()
            task.optimize(batch, optimizer, precision)
            synchronize(device)
            times.append(time.perf_counter() - start)
        return float(np.median(times[3:]))
    finally:
        task.model = model
        task.set_layout(saved_layout)


def choose_precision_and_layout(task, options: RunOptions, device: torch.device) -> tuple[str, bool, dict]:
    """Resolve "auto" AMP and channels_last for a ``Task``: off on the CPU; on CUDA the fastest of the
    candidates, timed. Returns (amp, channels_last, {candidate: ms per step}).

    On the CPU, bf16 trains faster at full width where the CPU has native BF16, but it gave loss
    spikes that FP32 runs did not (bench/README.md), so it stays opt-in (``--amp bf16``).
    """
    amps = [options.amp] if options.amp != "auto" else (["off", "bf16"] if device.type == "cuda" else ["off"])
    layouts = {"on": [True], "off": [False]}.get(options.channels_last,
                                                [False, True] if device.type == "cuda" else [False])
    if len(amps) * len(layouts) == 1:
        return amps[0], layouts[0], {}
    timings = {(a, c): time_steps(task, a, c, device) for a in amps for c in layouts}
    amp, channels_last = min(timings, key=timings.get)
    report = {f"{a}{'+channels_last' if c else ''}": round(1000 * t, 2) for (a, c), t in timings.items()}
    return amp, channels_last, report
