"""The threaded pipeline: order and timestamps kept for files, drops for live sources, stop, errors, SIGINT.

Also holds ``make_clip`` / ``read_clip`` (tiny H.264 + AAC clips made with PyAV), used by the other
pipeline test modules.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from livestyle.errors import InputError, LivestyleError
from livestyle.pipeline.infer import InferStage
from livestyle.pipeline.queues import LatestQueue
from livestyle.pipeline.runner import Pipeline, PipelineError
from livestyle.io.sinks import NullSink, VideoFileSink, partial_path
from livestyle.io.sources import Frame, InferenceSize, VideoFileSource, rotate_for_display

BITS = 8  # frame index drawn as 8 black/white blocks in the top row



# ------------------------------------------------------------------------------------------ clips
def draw_index(index: int, width: int, height: int) -> np.ndarray:
    """uint8 RGB frame: ``index`` in binary as 8 blocks on the top row, a smooth gradient below."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([(xx * 255 // max(1, width - 1)), (yy * 255 // max(1, height - 1)),
                    np.full_like(xx, 128)], axis=2).astype(np.uint8)
    block = width // BITS
    for bit in range(BITS):
        rgb[: block, bit * block:(bit + 1) * block] = 255 if (index >> bit) & 1 else 0
    return rgb


def read_index(rgb: np.ndarray) -> int:
    """Inverse of ``draw_index`` (tolerant of compression): the block means thresholded at mid-grey."""
    width = rgb.shape[1]
    block = width // BITS
    value = 0
    for bit in range(BITS):
        patch = rgb[2: block - 2, bit * block + 2:(bit + 1) * block - 2]
        if patch.mean() > 128:
            value |= 1 << bit
    return value


def make_clip(path: Path, *, frames: int = 12, size: tuple[int, int] = (64, 48), fps: int = 10,
              audio: bool = True, pts: list[int] | None = None, time_base: Fraction | None = None,
              rotation: int | None = None, still: bool = False, audio_codec: str = "aac") -> Path:
    """Write an H.264 clip (with a 440 Hz AAC track) whose frames carry their index; ``pts`` makes it VFR.

    ``still``: every frame is frame 0 (a predictable picture for screen checks). ``audio_codec``:
    "aac" or "pcm_s16le" (16-bit PCM, for containers that hold it, e.g. .mkv).
    """
    import av

    width, height = size
    time_base = time_base or Fraction(1, fps)
    pts = pts or list(range(frames))
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = time_base
        video.time_base = time_base
        video.options = {"crf": "0" if still else "10", "preset": "ultrafast"}  # lossless: identical stills
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio_codec, rate=48000, layout="stereo") if audio else None
        duration_s = float((pts[-1] + (pts[-1] - pts[-2] if len(pts) > 1 else 1)) * time_base)
        samples_done, chunk = 0, 1024
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(draw_index(0 if still else i, width, height), format="rgb24")
            frame.pts, frame.time_base = p, time_base
            out.mux(video.encode(frame))
            while sound is not None and samples_done < min(duration_s, float(p * time_base) + 0.2) * 48000:
                t = (samples_done + np.arange(chunk)) / 48000
                wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                if audio_codec == "pcm_s16le":  # packed 16-bit samples, left and right interleaved
                    packed = np.stack([wave, wave], axis=1).reshape(1, -1)
                    aframe = av.AudioFrame.from_ndarray((packed * 32767).astype(np.int16), format="s16",
                                                        layout="stereo")
                else:
                    aframe = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
                aframe.sample_rate, aframe.pts = 48000, samples_done
                out.mux(sound.encode(aframe))
                samples_done += chunk
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))
    return path


def read_clip(path: Path) -> dict:
    """Frames (uint8 RGB, display orientation), their pts in seconds, and the audio stream's facts."""
    import av

    info: dict = {"frames": [], "seconds": []}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info["codec"] = stream.codec_context.name
        for frame in container.decode(stream):
            info["frames"].append(rotate_for_display(frame.to_ndarray(format="rgb24"), frame.rotation or 0))
            info["seconds"].append(float(frame.pts * frame.time_base))
    info["audio"] = audio_facts(path)
    return info


def audio_facts(path: Path) -> dict | None:
    """The first audio stream's codec, channels and span in seconds (from its packets), or None."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        spans = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.pts is not None]
        first = min(s[0] for s in spans)
        last = max(s[0] + s[1] for s in spans)
        return {"codec": stream.codec_context.name, "channels": stream.codec_context.channels,
                "seconds": float((last - first) * stream.time_base)}


# ---------------------------------------------------------------------------------- test doubles
class IdentityEngine:
    """An engine that returns its input, optionally slowly, optionally failing at a given call."""

    name, scale, device = "identity", 1, torch.device("cpu")

    def __init__(self, delay_s: float = 0.0, fail_at: int | None = None):
        self.delay_s, self.fail_at, self.calls, self.batch_sizes = delay_s, fail_at, 0, []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.batch_sizes.append(batch.shape[0])
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("boom in the engine")
        if self.delay_s:
            time.sleep(self.delay_s)
        return batch.clone()


class ListSink:
    """Keeps every frame written; can fail or ask to quit at a given frame."""

    needs_main_thread = False

    def __init__(self, fail_at: int | None = None, delay_s: float = 0.0):
        self.frames: list[Frame] = []
        self.fail_at, self.delay_s = fail_at, delay_s
        self.closed_with = None

    def write(self, frame: Frame) -> bool:
        if self.fail_at is not None and len(self.frames) >= self.fail_at:
            raise OSError("disk full (test)")
        time.sleep(self.delay_s)
        self.frames.append(frame)
        return True

    def close(self, status):
        self.closed_with = status


class FakeLiveSource:
    """A camera that delivers a frame every ``period_s`` forever (or fails after ``fail_after`` frames)."""

    is_live = True

    def __init__(self, period_s: float = 0.002, fail_after: int | None = None):
        self.period_s, self.fail_after, self.reads = period_s, fail_after, 0

    def read(self) -> Frame:
        time.sleep(self.period_s)
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise ValueError("camera unplugged (test)")
        return Frame(self.reads, np.full((16, 16, 3), self.reads % 256, np.uint8), self.reads, Fraction(1, 1000))

    def close(self):
        pass


def livestyle_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("livestyle-") and t.is_alive()]


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("in_flight", [False, True], ids=["sync", "one-batch-in-flight"])
def test_file_pipeline_keeps_every_frame_in_order_with_timestamps(tmp_path, monkeypatch, in_flight):
    # in_flight: the CUDA schedule (collect one batch late), exercised here with a CPU engine.
    monkeypatch.setattr(InferStage, "asynchronous", property(lambda self: in_flight))
    pts = [0, 3, 5, 9, 10, 14, 20, 21, 25, 33, 34, 40]  # variable frame rate, 1/30 s ticks
    clip = make_clip(tmp_path / "in.mp4", frames=len(pts), pts=pts, time_base=Fraction(1, 30))
    sink = ListSink(delay_s=0.002)
    engine = IdentityEngine(delay_s=0.003)
    result = Pipeline(VideoFileSource(clip), InferStage(engine), [sink], queue_size=2).run()
    assert result.status == "complete" and sink.closed_with == "complete"
    assert [read_index(f.output) for f in sink.frames] == list(range(len(pts)))
    # The muxer picks its own clock; the times (in seconds) are what must survive.
    assert [f.seconds for f in sink.frames] == pytest.approx([p / 30 for p in pts], abs=1e-4)
    assert result.stats.dropped == 0 and result.stats.frames_out == len(pts)
    assert set(result.stats.stages) == {"capture", "infer", "output"}
    assert livestyle_threads() == []


def test_a_discarding_sink_reports_no_output_stage(tmp_path):
    sink = NullSink()
    result = Pipeline(VideoFileSource(make_clip(tmp_path / "in.mp4", frames=4)), InferStage(IdentityEngine()),
                      [sink]).run()
    assert result.status == "complete" and sink.frames_written == result.stats.frames_out == 4
    assert set(result.stats.stages) == {"capture", "infer"} and "output" not in result.stats.summary()


def test_batches_group_frames_of_one_size(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10, audio=False)
    engine = IdentityEngine()
    source = VideoFileSource(clip)
    sink = ListSink()
    stage = InferStage(engine, batch_size=4)
    # Fill the queue before inference starts so that batches can form.
    pipeline = Pipeline(source, stage, [sink], queue_size=16)
    real_submit = stage.submit
    gate = threading.Event()

    def submit_after_gate(frames):
        gate.wait(2.0)
        return real_submit(frames)

    stage.submit = submit_after_gate
    threading.Timer(0.3, gate.set).start()
    pipeline.run()
    assert [read_index(f.output) for f in sink.frames] == list(range(10))
    assert max(engine.batch_sizes) > 1 and max(engine.batch_sizes) <= 4
    assert sum(engine.batch_sizes) == 10


def test_postprocess_hooks_and_engine_swap(tmp_path):
    seen = []

    def invert(content, stylised):
        seen.append((content.shape, stylised.shape))
        return 255 - stylised

    stage = InferStage(IdentityEngine(), postprocess=[invert])
    frame = Frame(0, draw_index(5, 64, 48))
    (out,) = stage([frame])
    np.testing.assert_array_equal(out.output, 255 - frame.image)
    assert seen == [((48, 64, 3), (48, 64, 3))]
    other = IdentityEngine()
    stage.set_engine(other)
    stage([Frame(1, draw_index(6, 64, 48))])
    assert other.calls == 1 and stage.engine is other


def test_live_source_drops_old_frames_and_never_blocks():
    source = FakeLiveSource(period_s=0.002)
    engine = IdentityEngine(delay_s=0.03)
    sink = ListSink()
    pipeline = Pipeline(source, InferStage(engine), [sink])
    threading.Timer(0.6, pipeline.stop.set).start()
    result = pipeline.run()
    # Capture kept reading at its own pace although inference was ~15× slower.
    assert source.reads > 3 * engine.calls
    assert result.stats.dropped > 0
    assert result.stats.dropped + len(sink.frames) <= source.reads
    indices = [f.index for f in sink.frames]
    assert indices == sorted(indices)  # the newest frame wins, never an older one


def test_latest_queue_replaces_and_counts():
    from livestyle.pipeline.queues import END

    box = LatestQueue()
    for i in range(5):
        box.put(i)
    box.put(END)
    assert box.get() == 4 and box.dropped == 4
    assert box.get() is END and box.get() is END  # the end stays the end
    assert not box.put(5)


@pytest.mark.parametrize("live", [True, False])
def test_stop_ends_all_threads_within_one_second(tmp_path, live):
    if live:
        source = FakeLiveSource()
    else:
        source = VideoFileSource(make_clip(tmp_path / "in.mp4", frames=60, audio=False))
    sink = ListSink(delay_s=0.05)  # a slow writer: the file queues fill up and block
    pipeline = Pipeline(source, InferStage(IdentityEngine(delay_s=0.01)), [sink], queue_size=2)
    stopped_at = []

    def stop():
        stopped_at.append(time.perf_counter())
        pipeline.stop.set()

    threading.Timer(0.4, stop).start()
    pipeline.run()
    assert time.perf_counter() - stopped_at[0] < 1.0
    assert livestyle_threads() == []


@pytest.mark.parametrize("where", ["capture", "infer", "output"])
def test_failing_stage_stops_everything_and_surfaces(tmp_path, where):
    source = FakeLiveSource(fail_after=5 if where == "capture" else None)
    engine = IdentityEngine(fail_at=3 if where == "infer" else None)
    sink = ListSink(fail_at=2 if where == "output" else None)
    pipeline = Pipeline(source, InferStage(engine), [sink])
    t0 = time.perf_counter()
    with pytest.raises(PipelineError, match=f"{where} stage failed") as info:
        pipeline.run()
    assert time.perf_counter() - t0 < 3.0
    message = str(info.value)
    assert {"capture": "camera unplugged", "infer": "boom in the engine", "output": "disk full"}[where] in message
    assert sink.closed_with == "failed"
    assert livestyle_threads() == []


def test_a_failure_waits_for_the_frame_being_inferred():
    # The sink fails on the first frame while the engine spends 1.5 s on the second: run() must not
    # return with inference still inside the library (at exit that aborts the process).
    pipeline = Pipeline(FakeLiveSource(period_s=0.01), InferStage(IdentityEngine(delay_s=1.5)),
                        [ListSink(fail_at=0)])
    with pytest.raises(PipelineError, match="disk full"):
        pipeline.run()
    assert livestyle_threads() == []


def test_user_error_in_a_stage_keeps_its_type():
    class BadSource(FakeLiveSource):
        def read(self):
            raise InputError("the camera went away")

    with pytest.raises(InputError, match="the camera went away"):
        Pipeline(BadSource(), InferStage(IdentityEngine()), [ListSink()]).run()


@pytest.mark.parametrize("in_flight", [False, True], ids=["sync", "one-batch-in-flight"])
def test_sigint_mid_file_leaves_a_playable_partial_file(tmp_path, monkeypatch, in_flight):
    monkeypatch.setattr(InferStage, "asynchronous", property(lambda self: in_flight))
    clip = make_clip(tmp_path / "in.mp4", frames=80, fps=20)
    out = tmp_path / "out.mp4"
    source = VideoFileSource(clip)
    sink = VideoFileSink(out, rate=source.rate, audio_from=clip, audio_stream=source.audio_stream_index)
    pipeline = Pipeline(source, InferStage(IdentityEngine(delay_s=0.02)), [sink], queue_size=2)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    result = pipeline.run()
    assert result.status == "interrupted"
    kept = partial_path(out)
    assert sink.final_path == kept and kept.is_file() and not out.exists()
    info = read_clip(kept)
    # Every processed frame was written, in order, and the file plays (PyAV decodes all of it).
    assert 0 < len(info["frames"]) < 80
    assert len(info["frames"]) == result.stats.frames_out == sink.frames_written
    assert [read_index(f) for f in info["frames"]] == list(range(len(info["frames"])))
    assert info["audio"] is not None and info["audio"]["seconds"] <= info["seconds"][-1] + 0.6
    assert not list(tmp_path.glob(".out.*"))  # no temporary file left behind


def test_failed_run_leaves_no_output(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=10, audio=False)
    out = tmp_path / "out.mp4"
    source = VideoFileSource(clip)
    sink = VideoFileSink(out, rate=source.rate)
    with pytest.raises(LivestyleError):
        Pipeline(source, InferStage(IdentityEngine(fail_at=4)), [sink]).run()
    assert not out.exists() and not partial_path(out).exists() and not list(tmp_path.glob(".out.*"))


def test_rotation_metadata_is_applied(tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", frames=3, size=(64, 48), audio=False, rotation=-90)
    frame = VideoFileSource(clip).read()
    assert frame.image.shape == (64, 48, 3)  # portrait after the quarter turn
    upright = draw_index(0, 64, 48)
    # −90 (counter-clockwise) in the display matrix means: turn the stored picture clockwise.
    np.testing.assert_allclose(frame.image.astype(int), np.rot90(upright, -1).astype(int), atol=24)


def test_inference_size_rounds_to_even():
    assert InferenceSize(scale=0.25).target(854, 480) == (214, 120)
    assert InferenceSize(width=320, height=180).target(1280, 720) == (320, 180)
    assert InferenceSize().target(640, 480) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (pinned buffers and copy streams)")
def test_cuda_infer_stage_matches_cpu(tiny_style_file):
    from livestyle.zoo.modelfile import load_model_file
    from livestyle.engines.factory import create_engine

    model, _ = load_model_file(tiny_style_file)
    frames = [Frame(i, draw_index(i, 64, 48)) for i in range(3)]
    cpu = InferStage(create_engine(model, device="cpu"))([Frame(f.index, f.image) for f in frames])
    gpu_stage = InferStage(create_engine(load_model_file(tiny_style_file)[0], device="cuda"), batch_size=3)
    gpu = gpu_stage.collect(gpu_stage.submit(frames))
    for a, b in zip(cpu, gpu):
        assert np.abs(a.output.astype(int) - b.output.astype(int)).max() <= 3  # TF32 convolutions on GPUs


def test_bench_script_writes_reports(tmp_path):
    """bench/recurring/pipeline.py runs end to end on a tiny clip and writes its JSON and Markdown."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    clip = make_clip(tmp_path / "tiny.mp4", frames=6, size=(32, 24))
    out = tmp_path / "results"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    script = root / "bench" / "recurring" / "pipeline.py"
    done = subprocess.run([sys.executable, str(script), str(clip), "--out-dir", str(out),
                           "--width", "4", "--blocks", "1", "--repeat", "1", "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "pipeline-tiny-cpu.json").read_text())
    assert report["frames"] == 6 and set(report["fps"]) == {"decode", "model", "encode", "codec_pipeline", "end_to_end"}
    assert all(v > 0 for v in report["fps"].values())
    assert "End-to-end / slowest stage" in (out / "pipeline-tiny-cpu.md").read_text()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (batched files with a batch in flight)")
def test_cuda_file_pipeline_batches_and_keeps_order(tmp_path, tiny_style_file):
    from livestyle.zoo.modelfile import load_model_file
    from livestyle.engines.factory import create_engine

    clip = make_clip(tmp_path / "in.mp4", frames=11, audio=False)  # 11: the last batch is partial
    cpu = InferStage(create_engine(load_model_file(tiny_style_file)[0], device="cpu"))
    stage = InferStage(create_engine(load_model_file(tiny_style_file)[0], device="cuda"), batch_size=4)
    assert stage.asynchronous
    sink = ListSink()
    result = Pipeline(VideoFileSource(clip), stage, [sink]).run()
    assert result.stats.frames_out == 11 and [f.index for f in sink.frames] == list(range(11))
    for frame in sink.frames:
        (expected,) = cpu([Frame(frame.index, frame.image)])
        assert np.abs(expected.output.astype(int) - frame.output.astype(int)).max() <= 3


def test_image_folder_frames_come_in_natural_order(tmp_path):
    import cv2

    from livestyle.io.sources import ImageFolderSource

    for number in (10, 2, 1, 9):
        cv2.imwrite(str(tmp_path / f"img{number}.png"), np.full((8, 8, 3), number, np.uint8))
    source = ImageFolderSource(tmp_path)
    assert [p.name for p in source.files] == ["img1.png", "img2.png", "img9.png", "img10.png"]
    assert [int(source.read().image[0, 0, 0]) for _ in range(4)] == [1, 2, 9, 10]


def test_after_a_frame_is_refused_at_a_stop_no_later_frame_gets_through(tmp_path, monkeypatch):
    """A frame that cannot be handed to the output stage after a stop ends the hand-over: a later
    frame of the same batch (or the batch still in flight) would otherwise leave a gap in the
    middle of the kept video."""
    pipeline = Pipeline(FakeLiveSource(), InferStage(IdentityEngine()), [ListSink()])
    frames = [Frame(i, np.zeros((4, 4, 3), np.uint8)) for i in range(6)]
    handed = []

    def put(frame, stop, **options):  # the output queue stays full for frame 2 only
        if frame.index == 2:
            return False
        handed.append(frame.index)
        return True

    monkeypatch.setattr(pipeline._to_output, "put", put)
    monkeypatch.setattr(pipeline.infer, "collect", lambda handle: handle)
    stats = pipeline.stats.stage("infer")
    pipeline._emit(frames[:4], stats, time.perf_counter())
    pipeline._emit(frames[4:], stats, time.perf_counter())
    assert handed == [0, 1]
