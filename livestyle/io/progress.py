"""One progress display for every long command (video, image --optimize, train, bench).

On a terminal, tqdm draws its bar. Anywhere else (nohup, a log file, a pipe) a redraw per step
would write a line each time, so a plain status line is written every ``interval`` seconds instead,
and a last one at the end where any was written::

    video kandinsky: 120/250 frames (48%), 3.1 fps, ETA 0:42

Rates below one per second are shown as seconds per unit (``27.4 s/frame``), never as ``0.0 fps``.
Imports nothing heavy: the command line loads it before torch.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

STATUS_INTERVAL_S = 10.0  # between status lines where stderr is not a terminal


def format_rate(per_second: float, unit: str) -> str:
    """'3.1 fps', '12.0 it/s'; below one a second: '27.4 s/frame'."""
    if per_second <= 0:
        return f"– {unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f} fps" if unit == "frame" else f"{per_second:.1f} {unit}/s"
    return f"{1 / per_second:.1f} s/{unit}"


def format_duration(seconds: float) -> str:
    """'0:42', '12:05', '2:03:10' (rounded to the second)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration_in_words(seconds: float) -> str:
    """'40 s', '12 min', '2 h 10 min' (for estimates: rounded to what matters)."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def plural(count: int, unit: str) -> str:
    return unit if count == 1 or unit.endswith("s") or unit == "it" else f"{unit}s"


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """Progress of ``total`` steps of ``unit`` (``None``: unknown), shown on ``stream`` (default stderr).

    ``enabled=False`` shows nothing (library callers keep quiet). ``initial``: steps done before
    (a resumed run); rates and ETAs count only the steps done here. ``clock`` is injectable for tests.
    A context manager; ``close()`` ends the display.
    """

    def __init__(self, total: int | None, *, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
                 stream: TextIO | None = None, interval: float = STATUS_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.interval, self.clock = interval, clock
        self.done = self.initial = initial
        self.postfix = ""
        self.lines_written = 0
        self._reported: int | None = None  # steps shown by the last status line
        self._started = self._last_line = clock()
        self._bar = None
        if enabled and is_terminal(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True)

    # --- what callers report ----------------------------------------------------------------------
    def update(self, steps: int = 1) -> None:
        """``steps`` more steps are done."""
        self.update_to(self.done + steps)

    def update_to(self, done: int) -> None:
        """``done`` steps are done in all (counts from the pipeline's statistics, say)."""
        if done == self.done:
            return
        if self._bar is not None:
            self._bar.update(done - self.done)
        self.done = done
        if self._bar is None and self.enabled and self.clock() - self._last_line >= self.interval:
            self._write_status()

    def set_postfix(self, text: str) -> None:
        """A few words shown after the rate (e.g. the loss); shown with the next redraw or status line."""
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def message(self, text: str) -> None:
        """A line of its own, above the bar on a terminal."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """End the display: the bar stays as it is; a log that had status lines gets a last one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.lines_written and self.done != self._reported:
            self._write_status()
        self.enabled = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the status line --------------------------------------------------------------------------
    def rate(self) -> float:
        """Steps per second since this display started (0 before the first step)."""
        elapsed = self.clock() - self._started
        return (self.done - self.initial) / elapsed if elapsed > 0 else 0.0

    def status_line(self) -> str:
        """``desc: done/total unit (pct%), rate, ETA m:ss[, postfix]``."""
        rate = self.rate()
        if self.total:
            words = [f"{self.done}/{self.total} {plural(self.total, self.unit)} ({100 * self.done / self.total:.0f}%)"]
        else:
            words = [f"{self.done} {plural(self.done, self.unit)}"]
        words.append(format_rate(rate, self.unit))
        if self.total and rate > 0:
            left = max(0, self.total - self.done)
            words.append(f"ETA {format_duration(left / rate)}" if left else
                         f"took {format_duration(self.clock() - self._started)}")
        if self.postfix:
            words.append(self.postfix)
        return f"{self.desc}: {', '.join(words)}"

    def _write_status(self) -> None:
        print(self.status_line(), file=self.stream, flush=True)
        self._last_line, self._reported = self.clock(), self.done
        self.lines_written += 1
