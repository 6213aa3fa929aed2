"""Frame sources: cameras and streams (OpenCV), video files (PyAV), image folders.

Every source yields :class:`Frame` objects holding uint8 RGB (H, W, 3) pixels with their
timestamp, and returns ``None`` from ``read()`` at the end. Live sources (cameras, URLs) set
``is_live`` so the pipeline keeps only their newest frame.
"""
from __future__ import annotations

import glob
import os
import re
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from livestyle.errors import InputError, SourceError
from livestyle.io.images import list_images

# FFmpeg inside OpenCV logs damaged frames straight to stderr; we report what matters ourselves.
# Read when OpenCV first opens a capture; a value set by the user wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
MAX_FRAME_SIDE = 8192  # the exported networks' dynamic range (livestyle.export.MAX_SIDE)

LIVE_TIME_BASE = Fraction(1, 1000)  # camera timestamps: milliseconds since the first frame


@dataclass
class Frame:
    """One frame in flight: ``image`` is the content, ``output`` the engine's result (both uint8 RGB HWC).

    ``pts`` counts ``time_base`` units (the input stream's own clock for files, so timestamps survive);
    ``captured_at`` is ``time.perf_counter()`` when the frame was read (for latency).
    """

    index: int
    image: np.ndarray
    pts: int | None = None
    time_base: Fraction | None = None
    duration: int | None = None
    captured_at: float = field(default_factory=time.perf_counter)
    output: np.ndarray | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.pts is None or self.time_base is None else float(self.pts * self.time_base)


@dataclass(frozen=True)
class InferenceSize:
    """Resize frames before inference: an exact ``(width, height)`` or a ``scale`` factor (even sizes kept)."""

    width: int | None = None
    height: int | None = None
    scale: float | None = None

    def target(self, width: int, height: int) -> tuple[int, int] | None:
        """(width, height) to resize a ``width``×``height`` frame to, or None to keep it."""
        if self.width and self.height:
            size = (self.width, self.height)
        elif self.scale and self.scale != 1.0:
            # Even sizes: 4:2:0 video needs them, and the halved chroma planes then line up exactly.
            size = (max(2, 2 * round(width * self.scale / 2)), max(2, 2 * round(height * self.scale / 2)))
        else:
            return None
        if max(size) > MAX_FRAME_SIDE:
            raise InputError(f"--scale {self.scale} makes {width}×{height} frames {size[0]}×{size[1]}; the most "
                             f"is {MAX_FRAME_SIDE} pixels a side")
        return None if size == (width, height) else size

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) → resized uint8 RGB (area filter when shrinking)."""
        size = self.target(rgb.shape[1], rgb.shape[0])
        if size is None:
            return rgb
        shrink = size[0] < rgb.shape[1]
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' → (640, 480); raises InputError on anything else."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"bad size {text!r}: use WIDTHxHEIGHT, e.g. 640x360") from None
    if not (8 <= width <= MAX_FRAME_SIDE and 8 <= height <= MAX_FRAME_SIDE):
        raise InputError(f"bad size {text!r}: width and height must be from 8 to {MAX_FRAME_SIDE} pixels")
    return width, height


def rotate_for_display(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as PyAV's ``VideoFrame.rotation``)."""
    quarter_turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


@dataclass
class DecodeReport:
    """What a file source could not decode: bad packets and frames missing against the container's count."""

    frames_decoded: int = 0
    frames_expected: int | None = None
    bad_packets: int = 0
    errors: list[str] = field(default_factory=list)
    packets: int = 0  # video packets holding data, sent to the decoder
    seconds_expected: float | None = None  # the duration the container states
    seconds_decoded: float = 0.0  # end time of the last decoded frame
    slack_s: float = 0.5  # how much shorter than stated still counts as whole

    @property
    def frames_missing(self) -> bool:
        return self.frames_expected is not None and self.frames_decoded < self.frames_expected

    @property
    def time_missing(self) -> bool:
        return self.seconds_expected is not None and self.seconds_decoded < self.seconds_expected - self.slack_s

    @property
    def frames_lost(self) -> int:
        """Packets that gave no picture: the decoder dropped damaged data (known once the input is read)."""
        return max(0, self.packets - self.frames_decoded)

    @property
    def damaged(self) -> bool:
        return self.bad_packets > 0 or self.frames_lost > 0 or self.frames_missing or self.time_missing

    def describe(self) -> str:
        parts = []
        if self.bad_packets:
            parts.append(f"{self.bad_packets} damaged packet(s) skipped")
        if self.frames_lost:
            parts.append(f"{self.frames_lost} of {self.packets} frames could not be decoded (damaged data)")
        if self.frames_missing:
            parts.append(f"{self.frames_decoded} of {self.frames_expected} frames decoded "
                         "(the file is truncated or damaged)")
        elif self.time_missing:
            parts.append(f"decoded up to {self.seconds_decoded:.2f} s of {self.seconds_expected:.2f} s "
                         "(the file is truncated or damaged)")
        if self.errors:
            parts.append(f"first error: {self.errors[0]}")
        return "; ".join(parts)


class VideoFileSource:
    """Decodes a video file with PyAV: timestamps kept (VFR too), rotation metadata applied.

    ``read()`` → :class:`Frame` (uint8 RGB, display orientation, resized by ``size``) or None at the end.
    Damaged packets are skipped and counted in ``report``; decoding goes on with the next one.
    """

    is_live = False

    def __init__(self, path: str | os.PathLike, *, size: InferenceSize | None = None):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"input video not found: {self.path}")
        try:
            self._container = av.open(str(self.path), metadata_errors="ignore")
        except av.error.InvalidDataError as exc:  # FFmpeg's words carry a raw error number; say it plainly
            what = "is empty" if self.path.stat().st_size == 0 else "is not a video file livestyle can read"
            raise InputError(f"{self.path} {what} (FFmpeg recognises no video format in it)") from exc
        except av.FFmpegError as exc:
            raise InputError(f"cannot open {self.path} as a video: {exc.strerror or exc}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise InputError(f"{self.path} has no video stream")
        self.stream = self._container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame + slice threads: decoding is often the slowest stage
        self.size = size or InferenceSize()
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        self.rate: Fraction = self.stream.average_rate or self.stream.guessed_rate or Fraction(30)
        self.report = DecodeReport(frames_expected=self.stream.frames or None, seconds_expected=self.duration_s,
                                   slack_s=max(0.5, 3 / float(self.rate)))
        self._frames = self._decode()
        self._index = 0
        self._next_pts = 0  # where a frame without a timestamp goes: one frame after the previous

    @property
    def audio_stream_index(self) -> int | None:
        """Index (in the container) of the audio stream a writer should carry over, or None."""
        audio = self._container.streams.audio
        return audio[0].index if audio else None

    @property
    def duration_s(self) -> float | None:
        if self.stream.duration is not None:
            return float(self.stream.duration * self.time_base)
        if self._container.duration:
            return self._container.duration / 1_000_000
        return None

    @property
    def frames_expected(self) -> int | None:
        """The container's frame count, else one estimated from duration × rate (for progress bars)."""
        if self.report.frames_expected:
            return self.report.frames_expected
        if self.duration_s:
            return int(round(self.duration_s * self.rate))
        return None

    def _decode(self):
        import av

        for packet in self._container.demux(self.stream):
            if packet.size:
                self.report.packets += 1
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:  # a damaged packet: skip it, keep what decodes
                self.report.bad_packets += 1
                if len(self.report.errors) < 3:
                    self.report.errors.append(str(exc))
                continue
            yield from frames

    def read(self) -> Frame | None:
        import av

        try:
            decoded = next(self._frames, None)
        except av.FFmpegError as exc:  # the demuxer itself gave up (truncated container)
            self.report.bad_packets += 1
            self.report.errors.append(str(exc))
            decoded = None
        if decoded is None:
            return None
        rgb = decoded.to_ndarray(format="rgb24")
        rotation = getattr(decoded, "rotation", 0) or 0
        rgb = self.size.apply(rotate_for_display(rgb, rotation))
        time_base = decoded.time_base or self.time_base
        pts = decoded.pts
        if pts is None:  # raw streams (.h264) carry no timestamps: count on from the previous frame
            pts = self._next_pts
        self._next_pts = pts + (decoded.duration or max(1, round(1 / (self.rate * time_base))))
        frame = Frame(self._index, rgb, pts, time_base, decoded.duration or None)
        self._index += 1
        self.report.frames_decoded += 1
        if frame.seconds is not None:
            step = frame.duration if frame.duration else 1 / (self.rate * frame.time_base)
            self.report.seconds_decoded = float((frame.pts + step) * frame.time_base)
        return frame

    def close(self) -> None:
        self._container.close()


class CameraSource:
    """A camera (device index), network stream (URL) or file read with OpenCV; paced like a camera.

    Files are played at their own frame rate (so ``cam --source clip.mp4`` behaves like a camera);
    ``loop`` restarts them at the end. Timestamps are milliseconds since the first frame.
    """

    is_live = True

    def __init__(self, spec: str | int, *, size: InferenceSize | None = None, loop: bool = False):
        self.spec = spec
        self.size = size or InferenceSize()
        self.loop = loop
        self.time_base = LIVE_TIME_BASE
        index = _device_index(spec)
        self.is_file = index is None and Path(str(spec)).is_file()
        if index is None and Path(str(spec)).is_dir():
            raise SourceError(f"source {spec!r} is a folder; `livestyle video` reads folders of images")
        if index is None and not self.is_file and "://" not in str(spec):
            raise SourceError(f"source {spec!r} is neither a camera index, an existing file nor a URL")
        if self.is_file:  # PyAV's checks first: they say what is wrong where OpenCV only fails to open
            VideoFileSource(spec).close()
        with _quiet_opencv():
            self._capture = cv2.VideoCapture(index) if index is not None else cv2.VideoCapture(str(spec))
        if not self._capture.isOpened():
            self._capture.release()
            if index is not None:
                raise SourceError(f"no camera at index {index} (see `livestyle cam --list-devices`)")
            raise SourceError(f"cannot open source {spec!r}")
        if index is not None:
            self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # drivers that honour it hand out fresh frames
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.rate = Fraction(fps).limit_denominator(1001) if fps and 0 < fps < 1000 else Fraction(30)
        self._index = 0
        self._started: float | None = None

    def read(self) -> Frame | None:
        if self.is_file and self._started is not None:
            # Pace file playback to its frame rate, like a camera delivering frames.
            due = self._started + self._index / float(self.rate)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(min(delay, 0.5))
        ok, bgr = self._capture.read()
        if not ok and self.is_file and self.loop and self._index:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
        if not ok or bgr is None:
            if self._index == 0:
                raise SourceError(f"source {self.spec!r} opened but delivered no frame")
            return None
        now = time.perf_counter()
        if self._started is None:
            self._started = now
        rgb = self.size.apply(np.ascontiguousarray(bgr[..., ::-1]))
        pts = int(round((now - self._started) / float(self.time_base)))
        frame = Frame(self._index, rgb, pts, self.time_base, captured_at=now)
        self._index += 1
        return frame

    def close(self) -> None:
        self._capture.release()


def natural_key(path: Path) -> list:
    """Sort key reading runs of digits as numbers: frame9.png before frame10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class ImageFolderSource:
    """The images of a folder in natural name order (img2 before img10), one frame each (never
    dropped); pts = frame number."""

    is_live = False

    def __init__(self, folder: str | os.PathLike, *, size: InferenceSize | None = None, rate: Fraction = Fraction(25)):
        self.folder = Path(folder)
        self.files = sorted(list_images(self.folder), key=natural_key)
        self.size = size or InferenceSize()
        self.rate = rate
        self.time_base = 1 / rate
        self.report = DecodeReport(frames_expected=len(self.files))
        self.audio_stream_index = None
        self._index = 0

    @property
    def frames_expected(self) -> int:
        return len(self.files)

    def read(self) -> Frame | None:
        while self._index < len(self.files):
            path = self.files[self._index]
            self._index += 1
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                self.report.bad_packets += 1
                self.report.errors.append(f"cannot decode {path.name}")
                continue
            index = self.report.frames_decoded
            self.report.frames_decoded += 1
            return Frame(index, self.size.apply(np.ascontiguousarray(bgr[..., ::-1])), index, self.time_base, 1)
        return None

    def close(self) -> None:
        pass


def _device_index(spec: str | int) -> int | None:
    if isinstance(spec, int):
        return spec
    text = str(spec).strip()
    return int(text) if text.isdigit() else None


class _quiet_opencv:
    """Silence OpenCV's own warnings while probing devices (we report failures ourselves)."""

    def __enter__(self):
        self._level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

    def __exit__(self, *exc):
        cv2.utils.logging.setLogLevel(self._level)


@dataclass(frozen=True)
class CameraInfo:
    """A camera found by :func:`list_cameras`."""

    index: int
    name: str
    width: int
    height: int
    fps: float


def list_cameras(max_index: int = 10) -> list[CameraInfo]:
    """Cameras OpenCV can open: /dev/video* on Linux (names from sysfs), else indices 0…max_index-1."""
    if sys.platform.startswith("linux"):
        nodes = sorted(glob.glob("/dev/video[0-9]*"), key=lambda p: int(p[len("/dev/video"):]))
        indices = [int(p[len("/dev/video"):]) for p in nodes]
    else:
        indices = list(range(max_index))
    found = []
    for index in indices:
        with _quiet_opencv():
            capture = cv2.VideoCapture(index)
            try:
                if not capture.isOpened() or not capture.read()[0]:
                    continue  # metadata-only nodes (one camera often has two) deliver no frames
                name_file = Path(f"/sys/class/video4linux/video{index}/name")
                name = name_file.read_text().strip() if name_file.is_file() else f"camera {index}"
                found.append(CameraInfo(index, name, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                                        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                                        float(capture.get(cv2.CAP_PROP_FPS) or 0.0)))
            finally:
                capture.release()
    return found


def open_video_source(path: str | os.PathLike, *, size: InferenceSize | None = None):
    """A file source for ``livestyle video``: a folder of images or a video file."""
    path = Path(path)
    if path.is_dir():
        return ImageFolderSource(path, size=size)
    return VideoFileSource(path, size=size)
