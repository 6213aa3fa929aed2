"""A long video in parts: cut at keyframes, each part decoded on its own, the encoded parts joined.

``plan_segments`` cuts a video at keyframes about every N seconds (a part starts on a keyframe, so
it decodes without the parts before it); ``VideoSegmentSource`` decodes one part, after a few frames
before it where temporal stabilisation must warm up; ``join_segments`` copies the encoded parts'
packets, in order and unchanged, into one file, with the sound copied once from the source. The
decoded frames of the joined file are those of the parts, so the frames match a run over the whole
video; timestamps are the source's throughout.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from livestyle.errors import InputError, OutputError
from livestyle.files import check_output_path, temporary_path
from livestyle.io.sources import DecodeReport, Frame, InferenceSize, VideoFileSource


FROM_THE_START = -(1 << 62)  # the first part's start: every frame before the second part


@dataclass(frozen=True)
class Segment:
    """Part ``index`` of a video: the frames with ``start`` ≤ pts < ``end`` (stream time base; ``end``
    None: to the end). Decoding starts at ``warm_up_from`` (≤ start) where earlier frames are needed."""

    index: int
    start: int
    end: int | None
    warm_up_from: int | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "start": self.start, "end": self.end, "warm_up_from": self.warm_up_from}


@dataclass(frozen=True)
class KeyframeIndex:
    """Where a video's keyframes are, and all its frames: pts in ``time_base`` units, sorted."""

    time_base: Fraction
    keyframes: list[int]
    frames: list[int]
    rate: Fraction

    def count(self, segment: Segment) -> int:
        """How many frames ``segment`` holds (its warm-up frames not counted)."""
        end = len(self.frames) if segment.end is None else bisect.bisect_left(self.frames, segment.end)
        return end - bisect.bisect_left(self.frames, segment.start)


def keyframe_index(path: str | os.PathLike) -> KeyframeIndex:
    """The keyframes of ``path``'s video stream, read from the packets (nothing is decoded)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream")
            stream = container.streams.video[0]
            time_base = stream.time_base or Fraction(1, 90000)
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            keyframes, frames = [], []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    raise InputError(f"{path} has frames without timestamps (a raw stream); it cannot be split")
                frames.append(packet.pts)
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
    except av.FFmpegError as exc:
        raise InputError(f"cannot read {path} to split it: {exc}") from exc
    return KeyframeIndex(time_base, sorted(set(keyframes)), sorted(frames), rate)


def plan_segments(index: KeyframeIndex, seconds: float, *, warm_up_frames: int = 0) -> list[Segment]:
    """Parts of about ``seconds`` each, every one starting on a keyframe (one part where the video is
    shorter or has no later keyframe). ``warm_up_frames``: frames decoded before each part but the first."""
    if seconds <= 0:
        raise InputError(f"--split-seconds must be positive, got {seconds}")
    step = seconds / index.time_base  # pts units
    starts: list[int] = []
    for pts in index.keyframes:
        if not starts or pts - starts[-1] >= step:
            starts.append(pts)
    if not starts:
        return [Segment(0, FROM_THE_START, None)]
    segments = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else None
        warm = None
        if i and warm_up_frames > 0:  # the pts of the frame ``warm_up_frames`` before the start
            warm = index.frames[max(0, bisect.bisect_left(index.frames, start) - warm_up_frames)]
        segments.append(Segment(i, start if i else FROM_THE_START, end, warm))  # frames before a first keyframe too
    return segments


class VideoSegmentSource(VideoFileSource):
    """One ``Segment`` of a video file: frames with start ≤ pts < end, after the warm-up frames from
    ``warm_up_from`` (which the caller runs but does not write). Same frames, pixels and timestamps as
    a ``VideoFileSource`` gives for that stretch."""

    def __init__(self, path: str | os.PathLike, segment: Segment, *, size: InferenceSize | None = None):
        super().__init__(path, size=size)
        self.segment = segment
        self.report = DecodeReport(slack_s=self.report.slack_s)  # no whole-file expectations for a part

    @property
    def audio_stream_index(self) -> int | None:
        return None  # the joined file carries the sound, once

    @property
    def frames_expected(self) -> int | None:
        duration = self.duration_s
        if duration is None:
            return None
        end = self.segment.end * self.time_base if self.segment.end is not None else Fraction(duration)
        return max(0, int(round((end - max(0, self.segment.start) * self.time_base) * self.rate)))

    def _decode(self):
        first = self.segment.start if self.segment.warm_up_from is None else self.segment.warm_up_from
        if first > 0:  # the keyframe at or before it: decoding needs nothing earlier
            self._container.seek(first, stream=self.stream, backward=True, any_frame=False)
        for frame in super()._decode():
            if frame.pts is None:
                raise InputError(f"{self.path} has frames without timestamps; it cannot be split")
            if frame.pts < first:
                continue
            if self.segment.end is not None and frame.pts >= self.segment.end:
                break  # decoded frames come out in presentation order: the part is done
            yield frame
        self.report.packets = 0  # packets past the part's end were demuxed but are not its frames

    def read(self) -> Frame | None:
        frame = super().read()
        if frame is not None and frame.pts < self.segment.start:
            self.report.frames_decoded -= 1  # a warm-up frame is not one of the part's frames
        return frame


def join_segments(parts: list[Path], output: str | os.PathLike, *, audio_from: str | os.PathLike | None = None,
                  audio_stream: int | None = None, inputs: tuple = ()) -> Path:
    """Copy the video packets of ``parts`` (encoded alike, each starting on a keyframe) in order into
    ``output``, with the audio stream ``audio_stream`` of ``audio_from`` copied once (re-encoded where
    the format refuses its codec). Written under a temporary name and renamed when complete."""
    import av

    from livestyle.io.sinks import AudioCarrier, _format_for

    output = check_output_path(output, audio_from, *inputs)
    if not parts:
        raise OutputError(f"nothing to join into {output}")
    tmp = temporary_path(output)
    try:
        with av.open(str(tmp), "w", format=_format_for(output)) as out:
            with av.open(str(parts[0])) as first:
                video = out.add_stream_from_template(first.streams.video[0])
            carrier = AudioCarrier(out, Path(audio_from), audio_stream) \
                if audio_from is not None and audio_stream is not None else None
            last_dts = None
            for part in parts:
                with av.open(str(part)) as container:
                    for packet in container.demux(container.streams.video[0]):
                        if packet.dts is None and packet.size == 0:
                            continue  # the demuxer's flush packet
                        if last_dts is not None and packet.dts is not None and packet.dts <= last_dts:
                            raise OutputError(f"cannot join the parts of {output}: decoding times overlap at "
                                              f"{part.name}")
                        last_dts = packet.dts
                        if carrier is not None and packet.pts is not None:
                            carrier.pump(float(packet.pts * packet.time_base))
                        packet.stream = video
                        out.mux(packet)
            if carrier is not None:
                carrier.finish(None)
        os.replace(tmp, output)
    except av.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot join the parts of {output}: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output
