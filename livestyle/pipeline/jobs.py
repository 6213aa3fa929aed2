"""One file through an engine: the work of `livestyle video` and `livestyle image`, and of each file
(or part of a file) that `livestyle batch` hands to a worker. One code path, so one output.

``VideoJob`` opens the source and the sink (the output written under a temporary name and renamed
when complete), runs the pipeline and says what it did; ``run_image`` does the same for a still.
Neither prints: the callers say what they want to say.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livestyle.engines.base import Engine
from livestyle.errors import InputError, InsufficientMemoryError, is_out_of_memory
from livestyle.files import check_output_path
from livestyle.io.sinks import RunStatus, Sink
from livestyle.io.sources import Frame, InferenceSize
from livestyle.pipeline.infer import InferStage
from livestyle.pipeline.runner import Pipeline
from livestyle.pipeline.stats import PipelineStats
from livestyle.postprocess.effects import FramePostprocess, frame_postprocessors


@dataclass(frozen=True)
class FrameEffects:
    """What happens to each frame after the network (``livestyle.postprocess``)."""

    strength: float = 1.0
    preserve_colors: bool = False
    stabilize: bool = False  # videos only


@dataclass(frozen=True)
class VideoEncoding:
    """How a video output is encoded: x264 ``crf`` and ``preset``, and whether the sound is carried over."""

    crf: int = 18
    preset: str = "veryfast"
    audio: bool = True


def output_is_folder(output: str | os.PathLike) -> bool:
    """Whether a video output names a folder of PNG frames: no extension, an existing folder, or a trailing /."""
    text = str(output)
    return Path(text).suffix == "" or Path(text).is_dir() or text.endswith(("/", os.sep))


def check_video_output(input_path: str | os.PathLike, output: str | os.PathLike) -> bool:
    """Check a video output before any work; returns whether it is a folder of PNG frames."""
    to_folder = output_is_folder(output)
    if not to_folder:
        check_output_path(output, input_path)
    elif Path(input_path).exists() and Path(output).resolve() == Path(input_path).resolve():
        raise InputError("the output folder is the input; choose another name (inputs are never overwritten)")
    return to_folder


def exact_mp4_clock(time_base) -> dict[str, str]:
    """MP4 muxer options that store timestamps (edit lists included) in ``time_base``'s own units."""
    units = str(time_base.denominator)
    return {"movie_timescale": units, "video_track_timescale": units}


def default_frame_batch(engine: Engine) -> int:
    """Frames per engine call when none is asked for: 4 on CUDA (copies overlap compute), 1 on the CPU."""
    return 4 if engine.device.type == "cuda" else 1


@dataclass
class VideoResult:
    """What a ``VideoJob`` did: ``status`` "complete" or "interrupted" (Ctrl-C, SIGTERM: ``stop_signal``)."""

    status: RunStatus
    frames: int  # frames written to the output
    seconds: float
    stats: PipelineStats
    final_path: Path | None  # the output, or its playable `.partial` part; None where nothing was kept
    warning: str | None = None  # what could not be decoded, where the input is damaged
    audio: str | None = None  # "copied", "re-encoded as CODEC", or None without sound
    stop_signal: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class VideoJob:
    """A video file (or a folder of images) through ``engine`` into ``output``, sound and timestamps kept.

    ``output``: a video file (.mp4, .mkv, .mov, .webm) or a folder for PNG frames (``output_is_folder``).
    ``size``: resize frames before inference. ``batch``: frames per engine call (``default_frame_batch``).
    ``segment`` (``livestyle.io.segments.Segment``): only that part of the video, without sound, its
    warm-up frames (stabilisation) run but not written: the parts `livestyle batch --split-seconds`
    joins. ``keep_partial``: on Ctrl-C keep the frames written so far as `NAME.partial.EXT`.
    The source and the output are opened here; ``run()`` does the work.
    """

    def __init__(self, engine: Engine, input_path: str | os.PathLike, output: str | os.PathLike, *,
                 size: InferenceSize | None = None, effects: FrameEffects = FrameEffects(),
                 encoding: VideoEncoding = VideoEncoding(), batch: int | None = None, segment=None,
                 keep_partial: bool = True):
        from livestyle.io.sinks import ImageFolderSink, VideoFileSink
        from livestyle.io.sources import open_video_source

        self.input_path, self.output = input_path, output
        self.to_folder = check_video_output(input_path, output)
        if segment is not None:
            from livestyle.io.segments import VideoSegmentSource

            if self.to_folder:
                raise InputError("a split video is joined into a video file, not a folder of frames")
            self.source = VideoSegmentSource(input_path, segment, size=size)
        else:
            self.source = open_video_source(input_path, size=size)
        try:
            if self.to_folder:
                self.sink: Sink = ImageFolderSink(output)
            else:
                audio = getattr(self.source, "audio_stream_index", None) if encoding.audio and segment is None else None
                # A part's timestamps must come back exactly when it is joined: MP4 keeps a late start in
                # an edit list, in milliseconds unless told the stream's own clock.
                clock = {} if segment is None else exact_mp4_clock(self.source.time_base)
                self.sink = VideoFileSink(output, rate=self.source.rate,
                                          audio_from=input_path if audio is not None else None, audio_stream=audio,
                                          crf=encoding.crf, preset=encoding.preset, inputs=(input_path,),
                                          container_options=clock)
        except BaseException:
            self.source.close()
            raise
        hooks, _ = frame_postprocessors(strength=effects.strength, preserve_colors=effects.preserve_colors,
                                        stabilize=effects.stabilize)
        sinks = [self.sink if segment is None else AfterWarmUp(self.sink, segment.start)]
        self.pipeline = Pipeline(self.source, InferStage(engine, postprocess=hooks,
                                                         batch_size=batch or default_frame_batch(engine)), sinks)
        self.keep_partial = keep_partial

    @property
    def frames_expected(self) -> int | None:
        return self.source.frames_expected

    def run(self, monitor: Callable[[PipelineStats], None] | None = None) -> VideoResult:
        """Run to the end (or Ctrl-C); ``monitor(stats)`` is called often on this thread, and may raise to
        stop the run (nothing is then kept)."""
        started = time.perf_counter()
        result = self.pipeline.run(monitor)
        seconds = time.perf_counter() - started
        report = self.source.report
        warning = None
        if result.status == "complete":  # a stopped run has not read the whole input: nothing to judge
            if self.sink.frames_written == 0:
                raise InputError(f"no frame of {self.input_path} could be decoded"
                                 + (f" ({report.describe()})" if report.damaged else ""))
            warning = report.describe() if report.damaged else None
        final = self.sink.final_path
        if result.status == "interrupted" and not self.keep_partial and final is not None and not self.to_folder:
            Path(final).unlink(missing_ok=True)
            final = None
        carrier = getattr(self.sink, "audio", None)
        audio = None if carrier is None else "copied" if carrier.copied else f"re-encoded as {carrier.codec_name}"
        return VideoResult(result.status, self.sink.frames_written, seconds, result.stats, final, warning, audio,
                           self.pipeline.stop_signal)


class AfterWarmUp:
    """A sink that passes on the frames from ``start`` (pts) on: those before it only warm up the
    temporal stabiliser of a video part."""

    needs_main_thread = False

    def __init__(self, sink: Sink, start: int):
        self.sink, self.start = sink, start

    def write(self, frame: Frame) -> bool:
        if frame.pts is not None and frame.pts < self.start:
            return True
        return self.sink.write(frame)

    def close(self, status: RunStatus = "complete") -> None:
        self.sink.close(status)


@dataclass
class ImageResult:
    """What ``run_image`` wrote: the output's size and the seconds the network and effects took."""

    width: int
    height: int
    seconds: float


def run_image(engine: Engine, input_path: str | os.PathLike, output: str | os.PathLike, *,
              effects: FrameEffects = FrameEffects(), model_name: str = "the model", image=None) -> ImageResult:
    """One still image (PNG/JPEG; greyscale, alpha and 16-bit handled) through ``engine`` into ``output``
    (written atomically); ``effects.stabilize`` does not apply to a still. ``image``: the input already
    decoded (``livestyle.io.images.read_image``), where the caller read it to check it early."""
    from livestyle.io.images import check_image_output, read_image, write_image
    from livestyle.pipeline.still import stylize_image

    check_image_output(output, input_path)
    image = read_image(input_path) if image is None else image
    started = time.perf_counter()
    try:
        result = stylize_image(engine, image)
    except Exception as exc:  # noqa: BLE001 - only a failed allocation is turned into a message
        if not is_out_of_memory(exc):
            raise
        h, w = image.rgb.shape[:2]
        raise InsufficientMemoryError(f"not enough memory to run {model_name} on a {w}×{h} image; "
                                      "try --tile 512 (or a smaller image)") from exc
    post = FramePostprocess(strength=effects.strength, preserve_colors=effects.preserve_colors)
    if not post.is_identity:
        result.rgb = post(image.rgb, result.rgb)
    seconds = time.perf_counter() - started
    write_image(output, result, inputs=(input_path,))
    h, w = result.rgb.shape[:2]
    return ImageResult(w, h, seconds)
