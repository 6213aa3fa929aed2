"""Stopping a training run cleanly: Ctrl-C or SIGTERM ends it after the step in progress, with a checkpoint."""
from __future__ import annotations

import signal
import threading

class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during training: the step in progress was finished and the checkpoint written."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class StopBetweenSteps:
    """Ctrl-C or SIGTERM asks the training loop to stop after the step in progress (an interrupt inside
    the optimizer's update would leave the weights half-updated, not fit to checkpoint); a second
    Ctrl-C stops at once. Only on the main thread, where Python delivers signals."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None  # the signal that asked
        self._previous: dict = {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_signal(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = self.requested or signum
