"""The inference stage: the engine on batches of frames, then the per-frame post-process hooks.

On CUDA engines it stages frames in pinned host memory and copies on a dedicated stream, one batch
in flight, so copies overlap compute.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from livestyle.engines.base import Engine
from livestyle.engines.device import torch_threads
from livestyle.errors import EngineOptionError
from livestyle.io.sources import Frame
from livestyle.models.convention import batch_to_frames, batch_to_uint8, frames_to_batch, uint8_to_batch
from livestyle.pipeline.governor import FrameRateGovernor

PostProcess = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A per-frame hook run after the engine: ``hook(content, stylised) → frame``.

``content`` is the uint8 RGB (H, W, 3) frame the engine was given (inference size); ``stylised`` is
the current uint8 RGB (s·H, s·W, 3) result (the engine's output, or the previous hook's); the hook
returns a uint8 RGB frame of the stylised frame's size. Hooks run in order on the infer thread and
may keep state between frames (e.g. a cross-fade); they may be replaced while the pipeline runs by
assigning ``InferStage.postprocess`` a new list.
"""


class _CudaTransfer:
    """Pinned host staging and a dedicated copy stream so uploads and downloads overlap compute.

    Used only when ``engine.device.type == "cuda"``. Flow per batch: pinned uint8 host tensor →
    non-blocking upload on the copy stream → compute stream waits on that event, converts to float,
    runs the engine, converts back to uint8 → copy stream waits on the compute event and downloads
    into a pinned host tensor; ``collect`` waits for that last event only.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.copy_stream = torch.cuda.Stream(device=device)
        self.compute_stream = torch.cuda.Stream(device=device)

    def submit(self, engine: Engine, images: list[np.ndarray]):
        host_in = torch.from_numpy(np.stack(images)).pin_memory()  # uint8 (N, H, W, 3)
        with torch.cuda.stream(self.copy_stream):
            device_in = host_in.to(self.device, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self.copy_stream)
        with torch.cuda.stream(self.compute_stream):
            self.compute_stream.wait_event(uploaded)
            device_in.record_stream(self.compute_stream)  # allocated on the copy stream, used here
            with torch.inference_mode():
                out_u8 = batch_to_uint8(engine(uint8_to_batch(device_in)))
            computed = torch.cuda.Event()
            computed.record(self.compute_stream)
        host_out = torch.empty(out_u8.shape, dtype=torch.uint8, pin_memory=True)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(computed)
            out_u8.record_stream(self.copy_stream)
            host_out.copy_(out_u8, non_blocking=True)
            downloaded = torch.cuda.Event()
            downloaded.record(self.copy_stream)
        return host_out, downloaded

    @staticmethod
    def collect(handle) -> list[np.ndarray]:
        host_out, downloaded = handle
        downloaded.synchronize()
        return list(host_out.numpy())


class InferStage:
    """Runs the engine on batches of frames, then the post-process hooks; sets ``frame.output``.

    ``submit(frames)`` starts a batch (on CUDA it returns before the GPU is done) and
    ``collect(handle)`` finishes it; ``set_engine`` swaps the model between batches (style switching).
    ``governor`` (a ``FrameRateGovernor``, live sources): fed each frame's time from submit to the
    end of the hooks; it changes the engine's inference scale between batches.
    """

    def __init__(self, engine: Engine, *, postprocess: Sequence[PostProcess] = (), batch_size: int = 1,
                 governor: FrameRateGovernor | None = None):
        self._engine = engine
        self._lock = threading.Lock()
        self.postprocess: list[PostProcess] = list(postprocess)
        self.batch_size = max(1, int(batch_size))
        self._cuda: _CudaTransfer | None = None
        self.governor: FrameRateGovernor | None = None
        self._bind(engine)
        if governor is not None:
            self.set_governor(governor)

    def _bind(self, engine: Engine) -> None:
        device = getattr(engine, "device", torch.device("cpu"))
        if device.type != "cuda":
            self._cuda = None
        elif self._cuda is None or self._cuda.device != device:
            self._cuda = _CudaTransfer(device)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def asynchronous(self) -> bool:
        """True when ``submit`` returns before the result is ready (CUDA engines)."""
        return self._cuda is not None

    def set_engine(self, engine: Engine) -> None:
        """Use ``engine`` from the next batch on (thread-safe); a governor's scale carries over."""
        with self._lock:
            if self.governor is not None:
                self.governor.apply(engine)
            self._engine = engine
            self._bind(engine)

    def set_governor(self, governor: FrameRateGovernor) -> None:
        """Let ``governor`` set the engine's inference scale; an EngineOptionError where the engine's
        scale cannot change (build it with ``variable_scale=True``)."""
        with self._lock:
            if not governor.apply(self._engine):
                raise EngineOptionError(f"{self._engine.name} has no variable inference scale for a governor")
            self.governor = governor

    def submit(self, frames: list[Frame]):
        started = time.perf_counter()
        with self._lock:
            engine, cuda = self._engine, self._cuda
        images = [f.image for f in frames]
        if cuda is not None:
            return frames, cuda.submit(engine, images), True, started
        # On the CPU the stage's own conversions run on one torch thread; the engine sets its own count.
        with torch_threads(1):
            batch = frames_to_batch(images, engine.device)
        output = engine(batch)
        with torch_threads(1):
            return frames, batch_to_frames(output), False, started

    def collect(self, handle) -> list[Frame]:
        frames, result, on_cuda, started = handle
        outputs = _CudaTransfer.collect(result) if on_cuda else result
        hooks = list(self.postprocess)
        for frame, output in zip(frames, outputs):
            for hook in hooks:
                output = hook(frame.image, output)
            frame.output = output
        if self.governor is not None:
            with self._lock:
                if self.governor.observe((time.perf_counter() - started) / len(frames)) is not None:
                    self.governor.apply(self._engine)
        return frames

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Synchronous: engine + hooks on ``frames`` (all the same size)."""
        return self.collect(self.submit(frames))
