"""The `cam` window: an OpenCV window showing frames with an FPS / latency / drops overlay and key controls.

Built-in keys: ``o`` overlay on/off, ``b`` side-by-side original | stylised, ``s`` or space snapshot,
``q`` or Esc quit. Commands add their own keys (``cam`` adds next/previous style) through
``key_actions``. OpenCV's GUI must run on the main thread, so this sink says ``needs_main_thread``.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from livestyle.errors import OutputError
from livestyle.io.images import Image, write_image
from livestyle.io.sinks import RunStatus
from livestyle.io.sources import Frame

QUIT_KEYS = {ord("q"), 27}  # q, Esc
IDLE_WAIT_MS = 20


@dataclass
class KeyAction:
    """A key the window reacts to: ``action()`` runs on the main thread; ``help`` names it in the overlay."""

    help: str
    action: Callable[[], object]


def check_display() -> None:
    """Raise OutputError when no display is reachable (Qt would abort the whole process instead)."""
    if not sys.platform.startswith("linux"):
        return
    display = os.environ.get("DISPLAY")
    if not (display or os.environ.get("WAYLAND_DISPLAY")):
        raise OutputError("no display to open a window on (DISPLAY is not set); use --no-window")
    if display and not _x_display_reachable(display):
        raise OutputError(f"cannot connect to display {display}; use --no-window")


def _x_display_reachable(display: str) -> bool:
    """Try to open (and close) an X connection with libX11; True when libX11 is not there to ask."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if name is None:
        return True
    try:
        xlib = ctypes.CDLL(name)
    except OSError:
        return True
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    connection = xlib.XOpenDisplay(display.encode())
    if not connection:
        return False
    xlib.XCloseDisplay(connection)
    return True


def side_by_side(content: np.ndarray, stylised: np.ndarray) -> np.ndarray:
    """uint8 RGB content and stylised frames → one uint8 RGB frame [content | stylised] at the stylised height."""
    h, w = stylised.shape[:2]
    if content.shape[:2] != (h, w):
        content = cv2.resize(content, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.hstack([content, stylised])


def draw_overlay(bgr: np.ndarray, lines: list[str]) -> None:
    """Write ``lines`` top-left on a darkened box, in place (uint8 BGR)."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    sizes = [cv2.getTextSize(line, font, scale, thick)[0] for line in lines]
    line_h = max(s[1] for s in sizes) + 8
    box_w = min(bgr.shape[1], max(s[0] for s in sizes) + 12)
    box_h = min(bgr.shape[0], line_h * len(lines) + 6)
    region = bgr[:box_h, :box_w]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken so text reads on any frame
    for i, line in enumerate(lines):
        cv2.putText(bgr, line, (6, line_h * (i + 1)), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


class WindowSink:
    """Shows ``frame.output`` in a window; keys switch overlay, side-by-side, snapshot, quit and more.

    ``stats`` (a PipelineStats) and ``title_text()`` feed the overlay; ``write``/``idle`` return False
    once the user quits (key or closed window).
    """

    needs_main_thread = True

    def __init__(self, title: str = "livestyle", *, snapshot_dir: str | os.PathLike = ".",
                 key_actions: dict[str, KeyAction] | None = None, label: Callable[[], str] | None = None,
                 show_overlay: bool = True):
        check_display()
        self.title = title
        self.snapshot_dir = Path(snapshot_dir)
        self.key_actions = dict(key_actions or {})
        self.label = label or (lambda: "")
        self.show_overlay = show_overlay
        self.side_by_side = False
        self.stats = None
        self.snapshots: list[Path] = []
        self._last: Frame | None = None
        self._quit = False
        self._opened = False

    def _open(self) -> None:
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        except cv2.error as exc:
            raise OutputError(f"cannot open a window: {exc}; use --no-window") from exc
        self._opened = True

    def compose(self, frame: Frame) -> np.ndarray:
        """The uint8 RGB picture for ``frame``: stylised, or content | stylised side by side."""
        return side_by_side(frame.image, frame.output) if self.side_by_side else frame.output

    def _overlay_lines(self) -> list[str]:
        lines = [self.label()] if self.label() else []
        if self.stats is not None:
            s = self.stats
            lines.append(f"{s.recent_fps:5.1f} fps  {1000 * s.latency_last_s:4.0f} ms  "
                         f"dropped {s.dropped}")
        keys = "  ".join(f"{k} {a.help}" for k, a in self.key_actions.items())
        lines.append(f"{keys}  b split  s snap  o overlay  q quit".strip())
        return lines

    def _show(self) -> None:
        if self._last is None:
            return
        bgr = np.ascontiguousarray(self.compose(self._last)[..., ::-1])
        if self.show_overlay:
            draw_overlay(bgr, self._overlay_lines())
        cv2.imshow(self.title, bgr)

    def _handle_key(self, wait_ms: int) -> bool:
        key = cv2.waitKey(wait_ms)
        if self._opened and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self._quit = True  # the user closed the window
        if key == -1:
            return not self._quit
        key &= 0xFF
        char = chr(key)
        redraw = True
        if key in QUIT_KEYS:
            self._quit = True
        elif char == "o":
            self.show_overlay = not self.show_overlay
        elif char == "b":
            self.side_by_side = not self.side_by_side
        elif char in ("s", " "):
            self.snapshot()
        elif char in self.key_actions:
            self.key_actions[char].action()
        else:
            redraw = False
        if redraw and not self._quit:
            self._show()
        return not self._quit

    def snapshot(self) -> Path | None:
        """Save the picture being shown (without the overlay) as a PNG in ``snapshot_dir``; a snapshot
        that cannot be written is a warning (the live session goes on), and None."""
        if self._last is None:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.snapshot_dir / f"livestyle-{stamp}-{len(self.snapshots) + 1:03d}.png"
        rgb = self.compose(self._last).astype(np.float32) / 255.0
        try:
            self.snapshots.append(write_image(path, Image(rgb)))
        except OutputError as exc:
            warnings.warn(f"snapshot not saved: {exc}")
            return None
        return path

    def write(self, frame: Frame) -> bool:
        if not self._opened:
            self._open()
        self._last = frame
        self._show()
        return self._handle_key(1)

    def idle(self) -> bool:
        """Keep the window responsive while no frame arrives."""
        if not self._opened:
            return not self._quit
        return self._handle_key(IDLE_WAIT_MS)

    def close(self, status: RunStatus = "complete") -> None:
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)  # let the GUI process the close
            self._opened = False
