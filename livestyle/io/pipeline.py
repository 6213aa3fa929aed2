"""The threaded capture → infer → output pipeline (see DESIGN.md, "The pipeline").

Three stages joined by bounded queues, each on its own thread (the output stage runs on the main
thread when a sink needs it, as GUI windows do):

* live sources (``source.is_live``) go through one-slot mailboxes: a new frame replaces an unread
  one and the drop is counted, so capture never waits for a slow model;
* file sources go through bounded FIFO queues: nothing is dropped and order is kept;
* one ``stop`` event ends every thread (each checks it at least every ``POLL_S``); on stop the
  output stage still writes what inference already finished, so Ctrl-C leaves a file holding every
  processed frame; an exception in any stage sets ``stop`` and is re-raised by :meth:`Pipeline.run`.

The infer stage accepts post-process hooks (:data:`PostProcess`) applied to each frame after the
engine; style strength, colour preservation and cross-fades plug in there. On CUDA engines it uses
pinned host buffers and a dedicated copy stream, one batch in flight, so copies overlap compute.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..engines import Engine, batch_to_frames, frames_to_batch
from ..errors import LivestyleError
from .sinks import RunStatus, Sink
from .sources import Frame

POLL_S = 0.05  # how often a waiting thread looks at the stop event
JOIN_TIMEOUT_S = 1.0
# Signals that stop a run the way Ctrl-C does, keeping what was written: Ctrl-C, and the polite kill
# that `timeout`, `kill`, systemd and `docker stop` send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INFER_JOIN_TIMEOUT_S = 30.0  # one frame of a big model on a slow CPU
DEFAULT_QUEUE_SIZE = 8

PostProcess = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A per-frame hook run after the engine: ``hook(content, stylised) → frame``.

``content`` is the uint8 RGB (H, W, 3) frame the engine was given (inference size); ``stylised`` is
the current uint8 RGB (s·H, s·W, 3) result (the engine's output, or the previous hook's); the hook
returns a uint8 RGB frame of the stylised frame's size. Hooks run in order on the infer thread and
may keep state between frames (e.g. a cross-fade); they may be replaced while the pipeline runs by
assigning ``InferStage.postprocess`` a new list.
"""


class PipelineError(LivestyleError):
    """A pipeline stage failed with an unexpected error; the message names the stage."""


class _End:
    """The end-of-stream marker passed down the queues."""

    def __repr__(self) -> str:
        return "END"


END = _End()


# --------------------------------------------------------------------------------------------- queues
class FrameQueue:
    """A bounded FIFO between two stages of a file pipeline: blocks when full, never drops."""

    def __init__(self, maxsize: int = DEFAULT_QUEUE_SIZE):
        self._queue: queue.Queue = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, item, stop: threading.Event, *, grace_s: float = 0.5) -> bool:
        """Wait for room; after ``stop`` only ``grace_s`` more (a draining consumer takes it). False if not put."""
        deadline = None
        while True:
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                if stop.is_set():
                    deadline = deadline or time.perf_counter() + grace_s
                    if time.perf_counter() > deadline:
                        return False

    def get(self, timeout: float = POLL_S):
        """The next item; raises ``queue.Empty`` after ``timeout``."""
        return self._queue.get(timeout=timeout)

    def empty(self) -> bool:
        return self._queue.empty()


class LatestQueue:
    """A one-slot mailbox for live sources: a new frame replaces an unread one (counted in ``dropped``).

    END never replaces a frame: the consumer gets the last frame first, then END.
    """

    def __init__(self):
        self._item = None
        self._ended = False
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item, stop: threading.Event | None = None, *, grace_s: float = 0.0) -> bool:
        """Never waits (``stop`` and ``grace_s`` are accepted for FrameQueue's signature)."""
        with self._cond:
            if self._ended:
                return False
            if item is END:
                self._ended = True
            else:
                if self._item is not None:
                    self.dropped += 1
                self._item = item
            self._cond.notify()
        return True

    def get(self, timeout: float = POLL_S):
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._ended, timeout):
                raise queue.Empty
            if self._item is None:
                return END
            item, self._item = self._item, None
            return item

    def empty(self) -> bool:
        with self._cond:
            return self._item is None and not self._ended


# ---------------------------------------------------------------------------------------------- stats
@dataclass
class StageStats:
    """Frames handled by one stage and the time it spent working on them (waiting excluded)."""

    name: str
    frames: int = 0
    busy_s: float = 0.0

    def add(self, frames: int, seconds: float) -> None:
        self.frames += frames
        self.busy_s += seconds

    @property
    def fps(self) -> float:
        return self.frames / self.busy_s if self.busy_s > 0 else 0.0


@dataclass
class PipelineStats:
    """Live and final numbers: per-stage fps, drops, end-to-end latency and throughput."""

    stages: dict[str, StageStats] = field(default_factory=dict)
    frames_out: int = 0
    dropped: int = 0
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    latency_last_s: float = 0.0
    latency_total_s: float = 0.0
    recent_fps: float = 0.0  # exponential moving average of the output rate (the overlay's FPS)
    _last_out: float | None = None

    def stage(self, name: str) -> StageStats:
        if name not in self.stages:
            self.stages[name] = StageStats(name)
        return self.stages[name]

    def frame_out(self, frame: Frame) -> None:
        now = time.perf_counter()
        self.frames_out += 1
        self.latency_last_s = now - frame.captured_at
        self.latency_total_s += self.latency_last_s
        if self._last_out is not None and now > self._last_out:
            instant = 1.0 / (now - self._last_out)
            self.recent_fps = instant if self.recent_fps == 0 else 0.9 * self.recent_fps + 0.1 * instant
        self._last_out = now

    @property
    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def fps(self) -> float:
        """End-to-end frames per second over the whole run."""
        return self.frames_out / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def latency_mean_s(self) -> float:
        return self.latency_total_s / self.frames_out if self.frames_out else 0.0

    def summary(self) -> str:
        """One line: frames, drops, end-to-end fps and latency, average fps of each stage."""
        stages = ", ".join(f"{s.name} {s.fps:.1f} fps" for s in self.stages.values() if s.frames)
        return (f"{self.frames_out} frames, {self.dropped} dropped, {self.elapsed_s:.2f} s, end-to-end "
                f"{self.fps:.1f} fps, latency {1000 * self.latency_mean_s:.0f} ms; stages: {stages}")

    def to_dict(self) -> dict:
        return {
            "frames": self.frames_out, "dropped": self.dropped, "seconds": round(self.elapsed_s, 4),
            "fps": round(self.fps, 3), "latency_mean_ms": round(1000 * self.latency_mean_s, 3),
            "stages": {s.name: {"frames": s.frames, "busy_s": round(s.busy_s, 4), "fps": round(s.fps, 3)}
                       for s in self.stages.values()},
        }


@dataclass
class PipelineResult:
    """How a run ended: ``status`` is "complete" (end of input or quit key), "interrupted" or "failed"."""

    status: RunStatus
    stats: PipelineStats
    stuck_threads: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ inference
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
                batch = device_in.permute(0, 3, 1, 2).float().div_(255.0)
                out = engine(batch)
                out_u8 = out.float().clamp_(0.0, 1.0).mul_(255.0).add_(0.5).to(torch.uint8)
                out_u8 = out_u8.permute(0, 2, 3, 1).contiguous()
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
    """

    def __init__(self, engine: Engine, *, postprocess: Sequence[PostProcess] = (), batch_size: int = 1):
        self._engine = engine
        self._lock = threading.Lock()
        self.postprocess: list[PostProcess] = list(postprocess)
        self.batch_size = max(1, int(batch_size))
        self._cuda: _CudaTransfer | None = None
        self._bind(engine)

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
        """Use ``engine`` from the next batch on (thread-safe)."""
        with self._lock:
            self._engine = engine
            self._bind(engine)

    def submit(self, frames: list[Frame]):
        with self._lock:
            engine, cuda = self._engine, self._cuda
        images = [f.image for f in frames]
        if cuda is not None:
            return frames, cuda.submit(engine, images), True
        batch = frames_to_batch(images, engine.device)
        return frames, batch_to_frames(engine(batch)), False

    def collect(self, handle) -> list[Frame]:
        frames, result, on_cuda = handle
        outputs = _CudaTransfer.collect(result) if on_cuda else result
        hooks = list(self.postprocess)
        for frame, output in zip(frames, outputs):
            for hook in hooks:
                output = hook(frame.image, output)
            frame.output = output
        return frames

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        """Synchronous: engine + hooks on ``frames`` (all the same size)."""
        return self.collect(self.submit(frames))


# ------------------------------------------------------------------------------------------- pipeline
class Pipeline:
    """source → infer → sinks on threads with bounded queues, one stop event and one error path.

    ``run()`` blocks until the input ends, a sink asks to quit, Ctrl-C or a polite kill (SIGINT,
    SIGTERM: caught while running on the main thread; ``stop_signal`` says which) or an error; it
    closes the sinks with the run's status and the source, then
    returns a :class:`PipelineResult` or re-raises the first stage error.
    """

    def __init__(self, source, infer: InferStage, sinks: Sequence[Sink], *, queue_size: int = DEFAULT_QUEUE_SIZE):
        self.source = source
        self.infer = infer
        self.sinks = list(sinks)
        self.live = bool(getattr(source, "is_live", False))
        self.stop = threading.Event()
        self.stats = PipelineStats()
        self.interrupted = False
        self.stop_signal: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
        self.quit_requested = False
        self._output_refused = False  # a finished frame could not be handed to the output stage
        self._errors: list[tuple[str, BaseException]] = []
        self._errors_lock = threading.Lock()
        if self.live:
            self._to_infer, self._to_output = LatestQueue(), LatestQueue()
        else:
            self._to_infer, self._to_output = FrameQueue(queue_size), FrameQueue(queue_size)
        self._threads: dict[str, threading.Thread] = {}
        # Set by each stage thread as it exits. Waited on instead of Thread.join: a KeyboardInterrupt
        # inside join can leave a running thread reported as stopped (CPython 3.11), and a sink closed
        # under a writer that is still running loses frames.
        self._done: dict[str, threading.Event] = {}

    # -- stages -------------------------------------------------------------------------------------
    def _fail(self, stage: str, exc: BaseException) -> None:
        with self._errors_lock:
            self._errors.append((stage, exc))
        self.stop.set()

    def _capture(self) -> None:
        stats = self.stats.stage("capture")
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                frame = self.source.read()
                if frame is None:
                    break
                stats.add(1, time.perf_counter() - t0)
                if not self._to_infer.put(frame, self.stop, grace_s=0.0):
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by run()
            self._fail("capture", exc)
        finally:
            # After a stop nobody waits for END (a stopped, finished upstream means the end).
            self._to_infer.put(END, self.stop, grace_s=0.0)

    def _take_batch(self, held: list[Frame]) -> list[Frame] | None:
        """Up to ``batch_size`` frames of one size: wait for the first, take the rest only if ready."""
        batch = held[:1]
        del held[:1]
        while not batch:
            if self.stop.is_set():
                return None
            try:
                item = self._to_infer.get()
            except queue.Empty:
                continue
            if item is END:
                return None
            batch.append(item)
        while len(batch) < self.infer.batch_size:
            try:
                item = self._to_infer.get(timeout=0)
            except queue.Empty:
                break
            if item is END:
                held.append(END)
                break
            if item.image.shape != batch[0].image.shape:
                held.append(item)
                break
            batch.append(item)
        return batch

    def _infer(self) -> None:
        stats = self.stats.stage("infer")
        pending = None  # a submitted batch not yet collected
        held: list = []
        # Files on CUDA keep one batch in flight: the GPU computes it while the previous one is
        # downloaded and written. Live sources finish each frame at once to keep latency low; on
        # the CPU, submit() is synchronous, so there is nothing to overlap.
        keep_in_flight = not self.live and self.infer.asynchronous
        try:
            while not self.stop.is_set() and not (held and held[0] is END):
                batch = self._take_batch(held)
                if batch is None:
                    break
                t0 = time.perf_counter()
                handle = self.infer.submit(batch)
                if keep_in_flight:
                    handle, pending = pending, handle
                    stats.add(0, time.perf_counter() - t0)
                    if handle is None:
                        continue
                    t0 = time.perf_counter()
                self._emit(handle, stats, t0)
            if pending is not None and not self._errors:
                self._emit(pending, stats, time.perf_counter())  # finished work is written, even on Ctrl-C
        except BaseException as exc:  # noqa: BLE001
            self._fail("infer", exc)
        finally:
            self._to_output.put(END, self.stop, grace_s=0.0)

    def _emit(self, handle, stats: StageStats, t0: float) -> None:
        frames = self.infer.collect(handle)
        stats.add(len(frames), time.perf_counter() - t0)
        for frame in frames:
            # Once a frame could not be handed on after a stop, none after it is: a later one getting
            # through would leave a gap in the middle of the kept video.
            if self._output_refused or not self._to_output.put(frame, self.stop):
                self._output_refused = True
                return

    def _output(self, on_main_thread: bool, monitor: Callable[[PipelineStats], None] | None,
                interval_s: float) -> None:
        # Sinks that only discard do no output work; timing them would report millions of fps.
        stats = None if all(getattr(s, "discards", False) for s in self.sinks) else self.stats.stage("output")
        idle_hooks = [s.idle for s in self.sinks if hasattr(s, "idle")]
        next_monitor = 0.0
        try:
            while True:
                if on_main_thread and monitor is not None and time.perf_counter() >= next_monitor:
                    monitor(self.stats)
                    next_monitor = time.perf_counter() + interval_s
                try:
                    item = self._to_output.get()
                except queue.Empty:
                    if self.stop.is_set() and self._done["infer"].is_set() and self._to_output.empty():
                        break  # stopped and drained: every finished frame has been written
                    for idle in idle_hooks:
                        if idle() is False:
                            self.quit_requested = True
                            self.stop.set()
                    if self.quit_requested:
                        break
                    continue
                if item is END:
                    break
                self.stats.dropped = self._to_infer.dropped + self._to_output.dropped
                t0 = time.perf_counter()
                keep_going = True
                for sink in self.sinks:
                    keep_going = sink.write(item) is not False and keep_going
                if stats is not None:
                    stats.add(1, time.perf_counter() - t0)
                self.stats.frame_out(item)
                if not keep_going:
                    self.quit_requested = True
                    self.stop.set()
                    break
        except BaseException as exc:  # noqa: BLE001
            self._fail("output", exc)

    # -- running ------------------------------------------------------------------------------------
    def _on_stop_signal(self, signum, frame) -> None:
        # Later signals change nothing: the run is already finishing the frames in flight and the file
        # (bounded by the join timeouts), and tearing that apart would cost the frames the user keeps.
        if not self.interrupted:
            self.stop_signal = signum
        self.interrupted = True
        self.stop.set()

    def run(self, monitor: Callable[[PipelineStats], None] | None = None, *, interval_s: float = 0.1) -> PipelineResult:
        """Run to the end; ``monitor(stats)`` is called every ``interval_s`` on the calling thread."""
        on_main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in STOP_SIGNALS} if on_main else {}
        try:
            return self._run(monitor, interval_s)
        finally:
            # Restored only now: a Ctrl-C while the sinks close (encoder flush) must not tear them apart.
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, monitor: Callable[[PipelineStats], None] | None, interval_s: float) -> PipelineResult:
        output_on_main = any(getattr(s, "needs_main_thread", False) for s in self.sinks)
        self.stats.started = time.perf_counter()
        self._add_thread("capture", self._capture)
        self._add_thread("infer", self._infer)
        if not output_on_main:
            self._add_thread("output", self._output, False, None, interval_s)
        try:
            for thread in self._threads.values():
                thread.start()
            if output_on_main:
                self._output(True, monitor, interval_s)
            else:
                while not self._done["output"].wait(interval_s):
                    if monitor is not None:
                        monitor(self.stats)
        except BaseException as exc:  # a failing monitor, or Ctrl-C off the main thread: stop, then re-raise
            self._fail("main", exc)
        self.stop.set()
        stuck = self._join_all()
        self.stats.finished = time.perf_counter()
        self.stats.dropped = self._to_infer.dropped + self._to_output.dropped
        if monitor is not None and not self._errors:
            monitor(self.stats)
        status: RunStatus = "failed" if self._errors else "interrupted" if self.interrupted else "complete"
        if self._errors and isinstance(self._errors[0][1], KeyboardInterrupt):
            status = "interrupted"  # Ctrl-C without our handler: keep what was written
        self._close(status, stuck)
        if self._errors:
            stage, exc = self._errors[0]
            if isinstance(exc, (LivestyleError, KeyboardInterrupt)):
                raise exc
            raise PipelineError(f"{stage} stage failed: {type(exc).__name__}: {exc}") from exc
        return PipelineResult(status, self.stats, stuck)

    def _add_thread(self, name: str, target: Callable, *args) -> None:
        done = self._done[name] = threading.Event()

        def body() -> None:
            try:
                target(*args)
            finally:
                done.set()

        self._threads[name] = threading.Thread(target=body, name=f"livestyle-{name}", daemon=True)

    def _join_all(self) -> list[str]:
        """Wait for the stage threads (bounded); returns the names of those still running."""
        deadline = time.perf_counter() + JOIN_TIMEOUT_S
        for name in self._threads:
            # Inference is computing, not waiting: its frame ends. Left running, it would be torn down
            # inside the library at exit (a C++ "terminate called" abort), so it gets longer.
            limit = INFER_JOIN_TIMEOUT_S if name == "infer" else max(0.0, deadline - time.perf_counter())
            self._done[name].wait(limit)
        return [name for name in self._threads if not self._done[name].is_set()]

    def _close(self, status: RunStatus, stuck: list[str]) -> None:
        """Close sinks (with the status) and the source; a stuck thread's resources are left alone."""
        first_error: BaseException | None = None
        if "output" not in stuck:
            for sink in self.sinks:
                try:
                    sink.close(status)
                except BaseException as exc:  # noqa: BLE001 - close all, report the first
                    first_error = first_error or exc
        if "capture" not in stuck and hasattr(self.source, "close"):
            self.source.close()
        if first_error is not None and not self._errors:
            self._fail("output", first_error)

