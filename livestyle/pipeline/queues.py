"""Queues between the pipeline's stages: bounded FIFOs for files, one-slot mailboxes for live sources."""
from __future__ import annotations

import queue
import threading
import time

POLL_S = 0.05  # how often a waiting thread looks at the stop event
DEFAULT_QUEUE_SIZE = 8

class _End:
    """The end-of-stream marker passed down the queues."""

    def __repr__(self) -> str:
        return "END"


END = _End()


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
