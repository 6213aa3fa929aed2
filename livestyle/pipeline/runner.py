"""The threaded capture → infer → output pipeline (DESIGN.md, "The pipeline").

Three stages joined by bounded queues, each on its own thread (the output stage runs on the main
thread when a sink needs it, as GUI windows do):

* live sources (``source.is_live``) go through one-slot mailboxes: a new frame replaces an unread
  one and the drop is counted, so capture never waits for a slow model;
* file sources go through bounded FIFO queues: nothing is dropped and order is kept;
* one ``stop`` event ends every thread (each checks it at least every ``queues.POLL_S``); on stop the
  output stage still writes what inference already finished, so Ctrl-C leaves a file holding every
  processed frame; an exception in any stage sets ``stop`` and is re-raised by :meth:`Pipeline.run`.
"""
from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence

from livestyle.errors import LivestyleError
from livestyle.io.sinks import RunStatus, Sink
from livestyle.io.sources import Frame
from livestyle.pipeline.infer import InferStage
from livestyle.pipeline.queues import DEFAULT_QUEUE_SIZE, END, FrameQueue, LatestQueue
from livestyle.pipeline.stats import PipelineResult, PipelineStats, StageStats

JOIN_TIMEOUT_S = 1.0
# Signals that stop a run the way Ctrl-C does, keeping what was written: Ctrl-C, and the polite kill
# that `timeout`, `kill`, systemd and `docker stop` send.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INFER_JOIN_TIMEOUT_S = 30.0  # one frame of a big model on a slow CPU


class PipelineError(LivestyleError):
    """A pipeline stage failed with an unexpected error; the message names the stage."""


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
