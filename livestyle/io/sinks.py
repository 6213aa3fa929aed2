"""Frame sinks: video files written with PyAV (audio carried over), image folders, null.

A sink takes :class:`~livestyle.io.sources.Frame` objects whose ``output`` holds uint8 RGB (H, W, 3)
pixels: ``write(frame)`` returns False to ask the pipeline to stop (a window's quit key), and
``close(status)`` ends it, where ``status`` is "complete", "interrupted" or "failed".
The window sink lives in :mod:`livestyle.io.window`.
"""
from __future__ import annotations

import ctypes
import functools
import os
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from livestyle.files import check_output_path, same_file, temporary_path
from livestyle.errors import InputError, OutputError
from livestyle.io.sources import Frame

RunStatus = Literal["complete", "interrupted", "failed"]

# Encoders to try for the container's default video codec, fastest good one first.
VIDEO_ENCODERS = {"h264": ("libx264", "h264"), "vp9": ("libvpx-vp9",), "hevc": ("libx264", "h264")}
AUDIO_ENCODERS = {"opus": ("libopus", "opus"), "aac": ("aac",)}

_M_PERTURB = -6  # glibc's mallopt() parameter: fill new allocations with (byte ^ 0xFF), freed ones with byte


@functools.cache  # once per process
def zero_new_allocations() -> bool:
    """Have glibc's malloc hand this process zeroed memory from now on, as a fresh process gets; True
    where it took effect (glibc only). Freed memory is filled with 0xFF (glibc's perturb setting).

    A lossy libx264 encode reads some memory that it did not write. In a fresh process that memory is
    zero; in a `batch` worker that has decoded and encoded before it held leftovers, and some of its
    lossy outputs differed from what `livestyle video` wrote for the same file (bench/experiments/
    cluster-batch/findings.md). `batch` workers call this as they start. `video` does not: it encodes
    once per process, and the filling costs about 6% of its time on a CPU.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(_M_PERTURB, 0xFF))
    except (AttributeError, OSError):  # not glibc
        return False


class Sink(Protocol):
    """Where processed frames go. ``needs_main_thread``: GUI sinks must run on the main thread."""

    needs_main_thread: bool

    def write(self, frame: Frame) -> bool: ...

    def close(self, status: RunStatus) -> None: ...


def partial_path(output: Path) -> Path:
    """Where an interrupted run's playable output is kept: ``NAME.partial.EXT`` beside ``output``."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


class AudioCarrier:
    """Carries one audio stream of an input file into an output container.

    The packets are copied unchanged when the output format accepts the codec (so sound and its
    timestamps stay exactly as they were); otherwise they are decoded and re-encoded with the
    format's default audio codec. The input is opened a second time, so the video decoder is untouched.
    """

    def __init__(self, output, source_path: Path, stream_index: int):
        import av

        self._input = av.open(str(source_path), metadata_errors="ignore")
        self._in_stream = self._input.streams[stream_index]
        name = self._in_stream.codec_context.name
        self.copied = name in output.supported_codecs and _muxer_takes(output.format.name, source_path, stream_index)
        if self.copied:
            self.stream = output.add_stream_from_template(self._in_stream)
        else:
            in_ctx = self._in_stream.codec_context
            codec = _pick_encoder(output.default_audio_codec, AUDIO_ENCODERS, "audio")
            rate = 48000 if "opus" in codec else in_ctx.sample_rate
            self.stream = output.add_stream(codec, rate=rate, layout=_named_layout(in_ctx.layout))
        self.codec_name = self.stream.codec_context.name
        self._output = output
        self._packets = self._input.demux(self._in_stream)
        self._pending = None  # a packet read ahead of the mux horizon
        self.bad_packets = 0
        self._exhausted = False

    def _next_packet(self):
        import av

        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        while not self._exhausted:
            try:
                packet = next(self._packets)
            except StopIteration:
                self._exhausted = True
                return None
            except av.FFmpegError:  # truncated/damaged input: keep the audio that did demux
                self.bad_packets += 1
                self._exhausted = True
                return None
            if packet.dts is None and packet.size == 0:
                continue  # the demuxer's flush packet
            return packet
        return None

    def pump(self, until_s: float | None) -> None:
        """Mux the audio up to ``until_s`` seconds (all of it when None)."""
        import av

        while (packet := self._next_packet()) is not None:
            start = packet.pts if packet.pts is not None else packet.dts
            if until_s is not None and start is not None and float(start * packet.time_base) > until_s:
                self._pending = packet
                return
            if self.copied:
                packet.stream = self.stream
                self._output.mux(packet)
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.bad_packets += 1
                continue
            for frame in frames:
                self._output.mux(self.stream.encode(frame))

    def finish(self, until_s: float | None) -> None:
        """Mux what is left (up to ``until_s``), flush the encoder, close the input."""
        try:
            self.pump(until_s)
            if not self.copied:
                self._output.mux(self.stream.encode(None))
        finally:
            self._input.close()


class VideoFileSink:
    """Writes ``frame.output`` to a video file with PyAV: H.264 (VP9 for WebM), input timestamps kept.

    The audio stream ``audio_stream`` of ``audio_from`` is carried over (copied, else re-encoded).
    The file is written under a temporary name beside ``output``; ``close("complete")`` renames it to
    ``output``; ``close("interrupted")`` keeps the playable part as :func:`partial_path` (or as
    ``output`` when ``partial_on_interrupt`` is False: a recording has no "complete"); a failed run
    leaves nothing behind; ``output`` may not be ``audio_from`` or one of ``inputs``. Frames of odd
    width/height are padded by one edge pixel (4:2:0 needs even sizes). ``container_options``: the
    muxer's own options (FFmpeg's names), e.g. MP4 timescales that keep every timestamp exact.
    """

    needs_main_thread = False

    def __init__(self, output: str | os.PathLike, *, rate: Fraction, audio_from: str | os.PathLike | None = None,
                 audio_stream: int | None = None, crf: int = 18, preset: str = "veryfast",
                 partial_on_interrupt: bool = True, inputs: tuple = (), container_options: dict | None = None):
        import av

        self.output = check_output_path(output, audio_from, *inputs)
        self._inputs = tuple(Path(p) for p in (audio_from, *inputs) if p is not None)
        self.rate = Fraction(rate).limit_denominator(1_000_000) if rate else Fraction(30)
        self.crf, self.preset = crf, preset
        self.partial_on_interrupt = partial_on_interrupt
        self.final_path: Path | None = None
        self.frames_written = 0
        self._tmp = temporary_path(self.output)
        try:
            self._container = av.open(str(self._tmp), "w", format=_format_for(self.output),
                                      options=dict(container_options or {}))
        except (av.FFmpegError, ValueError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.output}: {exc}") from exc
        self._audio_from = Path(audio_from) if audio_from is not None and audio_stream is not None else None
        self._audio_stream_index = audio_stream
        self.audio: AudioCarrier | None = None
        self._video = None
        self._last_pts: int | None = None
        self._end_s = 0.0

    def _open_streams(self, frame: Frame) -> None:
        import av

        height, width = _even(frame.output.shape[0]), _even(frame.output.shape[1])
        codec = _pick_encoder(self._container.default_video_codec, VIDEO_ENCODERS, "video")
        stream = self._container.add_stream(codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if frame.time_base is not None:
            # The input's own clock: every frame keeps its timestamp, variable frame rate included.
            stream.codec_context.time_base = frame.time_base
            stream.time_base = frame.time_base
        if codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": self.preset}
        elif codec == "libvpx-vp9":
            stream.options = {"crf": str(max(self.crf, 24)), "b": "0", "deadline": "realtime", "cpu-used": "8",
                              "row-mt": "1"}
        self._video = stream
        if self._audio_from is not None:
            try:
                self.audio = AudioCarrier(self._container, self._audio_from, self._audio_stream_index)
            except av.FFmpegError as exc:
                raise InputError(f"cannot carry the audio of {self._audio_from} over ({exc}); use --no-audio") from exc

    def write(self, frame: Frame) -> bool:
        import av

        if self._video is None:
            self._open_streams(frame)
        pixels = _pad_to_even(frame.output)
        if pixels.shape[1] != self._video.width or pixels.shape[0] != self._video.height:
            raise OutputError(f"frame {frame.index} is {pixels.shape[1]}×{pixels.shape[0]}, but the video "
                              f"is {self._video.width}×{self._video.height}: a video cannot change size")
        video_frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        # A frame without a timestamp is placed by its index on the output's own clock.
        time_base = frame.time_base if frame.pts is not None and frame.time_base else 1 / self.rate
        pts = frame.pts if frame.pts is not None else frame.index
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # encoders need strictly increasing timestamps
        self._last_pts = pts
        video_frame.pts, video_frame.time_base = pts, time_base
        if frame.duration:
            video_frame.duration = frame.duration
        start_s = float(pts * time_base)
        self._end_s = start_s + float((frame.duration or 0) * time_base) if frame.duration else start_s
        try:
            if self.audio is not None:
                # Sound only up to this frame's end: a stopped run's file must not run on without
                # picture. (The encoder holds frames back, so the muxer still sees the audio first.)
                self.audio.pump(self._end_s)
            self._container.mux(self._video.encode(video_frame))
        except av.FFmpegError as exc:
            raise OutputError(f"cannot encode into {self.output}: {exc}") from exc
        self.frames_written += 1
        return True

    def close(self, status: RunStatus = "complete") -> None:
        """Flush and close the container, then rename (complete / interrupted) or delete (failed)."""
        import av

        keep = status != "failed" and self.frames_written > 0
        close_error: Exception | None = None
        try:
            if self._video is not None and keep:
                if self.audio is not None:
                    # A complete run carries all the audio; a stopped one only what its video covers.
                    self.audio.finish(None if status == "complete" else self._end_s)
                self._container.mux(self._video.encode(None))
        except av.FFmpegError as exc:
            keep = False
            raise OutputError(f"cannot finish {self.output}: {exc}") from exc
        finally:
            try:
                self._container.close()  # writes the trailer: a full disk or a refused stream shows here
            except av.FFmpegError as exc:
                close_error = exc if keep else None
                keep = False
            if not keep:
                self._tmp.unlink(missing_ok=True)
            else:
                interrupted = status == "interrupted" and self.partial_on_interrupt
                self.final_path = self._partial_path() if interrupted else self.output
                os.replace(self._tmp, self.final_path)
        if close_error is not None:
            raise OutputError(f"cannot finish {self.output}: {close_error}") from close_error

    def _partial_path(self) -> Path:
        """:func:`partial_path`, or ``NAME.partial-N.EXT`` where that name is one of the inputs."""
        candidate, n = partial_path(self.output), 1
        while any(same_file(candidate, inp) for inp in self._inputs):
            n += 1
            candidate = self.output.with_name(f"{self.output.stem}.partial-{n}{self.output.suffix}")
        return candidate


class ImageFolderSink:
    """Writes each output frame as ``frame_NNNNNN.png`` into a folder (created if missing; one that
    already holds such frames is refused)."""

    needs_main_thread = False

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.folder}: {exc.strerror}") from exc
        earlier = sorted(self.folder.glob("frame_*.png"))
        if earlier:  # new frames would overwrite some of them and sit among the rest
            raise OutputError(f"{self.folder} already holds frames ({earlier[0].name} and {len(earlier) - 1} more); "
                              "choose a new or empty folder")
        self.frames_written = 0
        self.final_path = self.folder

    def write(self, frame: Frame) -> bool:
        path = self.folder / f"frame_{frame.index:06d}.png"
        if not cv2.imwrite(str(path), np.ascontiguousarray(frame.output[..., ::-1])):
            raise OutputError(f"cannot write {path}")
        self.frames_written += 1
        return True

    def close(self, status: RunStatus = "complete") -> None:
        pass


class NullSink:
    """Discards frames (benchmarks, headless runs); counts them."""

    needs_main_thread = False
    discards = True  # no output work: the pipeline reports no output stage for it

    def __init__(self):
        self.frames_written = 0

    def write(self, frame: Frame) -> bool:
        self.frames_written += 1
        return True

    def close(self, status: RunStatus = "complete") -> None:
        pass


# FFmpeg's default layout per channel count, for inputs whose layout is unspecified ("2 channels"):
# encoders such as AAC refuse an unspecified layout.
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _named_layout(layout) -> str:
    if layout.name.endswith("channels"):
        return DEFAULT_LAYOUTS.get(layout.nb_channels, layout.name)
    return layout.name


def _muxer_takes(format_name: str, source_path: Path, stream_index: int) -> bool:
    """Whether a ``format_name`` container really takes this audio stream's packets unchanged: a trial
    mux of its first packets into memory. A format's codec list can name codecs its muxer then
    refuses when the file is finished (PCM in MP4), which would cost the whole output."""
    import io

    import av

    try:
        with av.open(str(source_path), metadata_errors="ignore") as source:
            stream = source.streams[stream_index]
            with av.open(io.BytesIO(), "w", format=format_name) as trial:
                copy = trial.add_stream_from_template(stream)
                for n, packet in enumerate(p for p in source.demux(stream) if p.dts is not None):
                    packet.stream = copy
                    trial.mux(packet)
                    if n >= 2:
                        break
        return True
    except (av.FFmpegError, ValueError):
        return False


def _format_for(path: Path) -> str | None:
    # PyAV guesses from the name, but a temporary name ends in ".partEXT"; the suffix is what counts.
    import av

    suffix = path.suffix.lower().lstrip(".")
    aliases = {"mkv": "matroska", "m4v": "mp4", "ts": "mpegts"}
    name = aliases.get(suffix, suffix)
    if name not in av.formats_available:
        raise OutputError(f"cannot write {path}: unknown video format {path.suffix!r} (use .mp4, .mkv, .mov or "
                          ".webm; end a folder's name with / for PNG frames)")
    return name


def _pick_encoder(default: str, table: dict[str, tuple[str, ...]], kind: str) -> str:
    import av

    for name in table.get(default, ()) + (default,):
        if name in av.codecs_available:
            try:
                av.Codec(name, "w")
            except (av.FFmpegError, ValueError):
                continue
            return name
    raise OutputError(f"no {kind} encoder for this output format ({default}) in this PyAV build")


def _even(n: int) -> int:
    return n + (n % 2)


def _pad_to_even(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) → (even H, even W, 3), repeating the last row/column where needed."""
    pad_h, pad_w = rgb.shape[0] % 2, rgb.shape[1] % 2
    if not (pad_h or pad_w):
        return rgb
    return np.pad(rgb, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
