"""`livestyle video`: frames, timestamps and sound kept; inputs protected; damaged input; Ctrl-C."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_pipeline import audio_facts, make_clip, read_clip

from livestyle.cli import main
from livestyle.io.sinks import partial_path



def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def signal_while_writing(monkeypatch, signum: int, at_frame: int) -> None:
    """Send this process ``signum`` as the video sink is about to write frame ``at_frame``, as if the
    user pressed Ctrl-C (or a service manager stopped the run) at that moment."""
    from livestyle.io.sinks import VideoFileSink

    real_write = VideoFileSink.write

    def write(self, frame):
        if self.frames_written == at_frame:
            os.kill(os.getpid(), signum)
        elif self.frames_written > at_frame:
            # A slow writer from then on: the main thread notices the signal (within its 0.1 s poll) long
            # before a fast engine could have finished the whole input.
            time.sleep(0.01)
        return real_write(self, frame)

    monkeypatch.setattr(VideoFileSink, "write", write)


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "in.mp4", frames=15, size=(64, 48), fps=10)


def test_video_keeps_frames_timestamps_and_sound(tmp_path, clip, tiny_style_file):
    out = tmp_path / "out.mp4"
    before = clip.read_bytes()
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.output
    src, dst = read_clip(clip), read_clip(out)
    assert len(dst["frames"]) == len(src["frames"]) == 15
    assert dst["seconds"] == pytest.approx(src["seconds"], abs=1e-3)
    assert dst["frames"][0].shape == src["frames"][0].shape
    assert dst["codec"] == "h264"
    # Stylised, not copied: the random network changes the pixels a lot.
    assert np.abs(dst["frames"][3].astype(int) - src["frames"][3].astype(int)).mean() > 10
    assert dst["audio"]["codec"] == src["audio"]["codec"] == "aac"
    assert dst["audio"]["seconds"] == pytest.approx(src["audio"]["seconds"], abs=0.03)
    assert "15 frames, 0 dropped" in result.stderr
    assert "audio copied" in result.stderr
    assert clip.read_bytes() == before  # input untouched
    assert not [p for p in os.listdir(tmp_path) if ".part" in p]


def test_superres_output_is_four_times_larger(tmp_path, clip, tiny_sr_file):
    out = tmp_path / "big.mkv"
    result = run("video", clip, "-o", out, "--model", tiny_sr_file, "--scale", "0.5", "--no-progress")
    assert result.exit_code == 0, result.output
    dst = read_clip(out)
    assert dst["frames"][0].shape == (96, 128, 3)  # (48×0.5)×4, (64×0.5)×4
    assert len(dst["frames"]) == 15


def test_webm_output_reencodes_the_sound(tmp_path, clip, tiny_style_file):
    out = tmp_path / "out.webm"
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.output
    dst, src = read_clip(out), read_clip(clip)
    assert dst["codec"] == "vp9" and dst["audio"]["codec"] == "opus"  # WebM allows no AAC
    assert len(dst["frames"]) == 15
    assert dst["audio"]["seconds"] == pytest.approx(src["audio"]["seconds"], abs=0.05)
    assert "re-encoded as" in result.stderr


def test_frames_to_an_image_folder(tmp_path, clip, tiny_style_file):
    out = tmp_path / "frames"
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--size", "32x24", "--no-progress")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == 15
    # Again into the same folder: refused before any work, the earlier frames untouched.
    before = [f.read_bytes() for f in files]
    again = run("video", clip, "-o", out, "--model", tiny_style_file, "--size", "16x12", "--no-progress")
    assert again.exit_code == 1 and "already holds frames (frame_000000.png and 14 more)" in again.output
    assert [f.read_bytes() for f in sorted(out.glob("frame_*.png"))] == before


def test_a_folder_name_with_a_dot_ending_in_a_slash_gets_png_frames(tmp_path, clip, tiny_style_file):
    out = tmp_path / "frames_v1.5"
    plain = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert plain.exit_code == 1 and "end a folder's name with / for PNG frames" in plain.output
    result = run("video", clip, "-o", f"{out}/", "--model", tiny_style_file, "--size", "32x24", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("frame_*.png"))) == 15


def test_video_refuses_to_overwrite_its_input(clip, tiny_style_file):
    result = run("video", clip, "-o", clip, "--model", tiny_style_file)
    assert result.exit_code == 1
    assert "is the input file" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_input_is_one_line(tmp_path, tiny_style_file):
    result = run("video", tmp_path / "nope.mp4", "-o", tmp_path / "o.mp4", "--model", tiny_style_file)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"livestyle: error: input video not found: {tmp_path / 'nope.mp4'}"


def test_not_a_video_is_one_line_in_plain_words(tmp_path, tiny_style_file):
    """A text file named .mp4 used to show FFmpeg's raw error number ([Errno 1094995529] …)."""
    junk = tmp_path / "x.mp4"
    junk.write_text("this is no video\n" * 100)
    result = run("video", junk, "-o", tmp_path / "o.mp4", "--model", tiny_style_file)
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"livestyle: error: {junk} is not a video file livestyle can read "
                                     "(FFmpeg recognises no video format in it)")
    junk.write_bytes(b"")
    result = run("video", junk, "-o", tmp_path / "o.mp4", "--model", tiny_style_file)
    assert result.exit_code == 1 and result.stderr.strip().endswith(f"{junk} is empty (FFmpeg recognises no "
                                                                    "video format in it)")
    assert not list(tmp_path.glob("*o.mp4"))


def test_an_image_that_does_not_decode_is_one_line(tmp_path, tiny_style_file):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + b"no jpeg data" * 50)
    result = run("video", broken, "-o", tmp_path / "o.mp4", "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 1 and "could be decoded" in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("livestyle:")] == \
        [result.stderr.strip().splitlines()[-1]], result.stderr


def test_bad_size_is_rejected(tmp_path, clip, tiny_style_file):
    for size in ("big", "4x4", "100000x100000"):
        result = run("video", clip, "-o", tmp_path / "o.mp4", "--model", tiny_style_file, "--size", size)
        assert result.exit_code == 1 and "bad size" in result.stderr and len(result.stderr.splitlines()) == 1
    result = run("video", clip, "-o", tmp_path / "o.mp4", "--model", tiny_style_file, "--scale", "2",
                 "--no-progress")  # 64×48 → 128×96: fine
    assert result.exit_code == 0, result.stderr


def test_unknown_x264_preset_is_a_usage_error_before_any_work(tmp_path, clip, tiny_style_file):
    result = run("video", clip, "-o", tmp_path / "out.mp4", "--model", tiny_style_file, "--preset", "bogus")
    assert result.exit_code == 2 and "'bogus' is not one of" in result.stderr
    assert not list(tmp_path.glob("*out*"))


def test_truncated_input_keeps_what_decodes(tmp_path, tiny_style_file):
    # Matroska has no index up front: a cut file still opens and decodes up to the cut.
    whole = make_clip(tmp_path / "whole.mkv", frames=30, size=(64, 48), fps=10)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out.mp4"
    result = run("video", cut, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.stderr
    frames = read_clip(out)["frames"]
    assert 0 < len(frames) < 30
    assert "warning" in result.stderr and "truncated or damaged" in result.stderr


def test_damaged_packets_are_skipped_and_reported(tmp_path, tiny_style_file):
    whole = make_clip(tmp_path / "whole.ts", frames=30, size=(64, 48), fps=10, audio=False)
    data = bytearray(whole.read_bytes())
    rng = np.random.default_rng(1)
    middle = len(data) // 2
    data[middle: middle + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out.mp4"
    result = run("video", bad, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.stderr
    written = len(read_clip(out)["frames"])
    assert 0 < written < 30
    assert "warning" in result.stderr and "could not be decoded (damaged data)" in result.stderr


def test_ctrl_c_keeps_a_playable_partial_file(tmp_path, tiny_style_file, monkeypatch):
    """SIGINT while `livestyle video` writes: exit 130, NAME.partial.mp4 holds the frames done, playable."""
    clip = make_clip(tmp_path / "long.mp4", frames=60, size=(64, 48), fps=30)
    out = tmp_path / "out.mp4"
    signal_while_writing(monkeypatch, signal.SIGINT, 20)
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 130, result.stderr
    kept = partial_path(out)
    assert kept.is_file() and not out.exists(), result.stderr
    info = read_clip(kept)
    assert 20 < len(info["frames"]) < 60
    assert info["seconds"] == pytest.approx([i / 30 for i in range(len(info["frames"]))], abs=1e-3)
    assert audio_facts(kept)["seconds"] == pytest.approx(info["seconds"][-1], abs=0.6)
    assert result.stderr.count("interrupted") == 1 and str(kept) in result.stderr
    assert "warning" not in result.stderr  # stopping early is not damage
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_image_folder_to_video(tmp_path, tiny_style_file):
    import cv2

    folder = tmp_path / "stills"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        assert cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "stills.mp4"
    result = run("video", folder, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.stderr
    info = read_clip(out)
    assert len(info["frames"]) == 4 and info["seconds"] == pytest.approx([0, 0.04, 0.08, 0.12], abs=1e-3)
    assert info["audio"] is None


def test_video_effects_and_stabilize(tmp_path, clip, tiny_style_file):
    """--strength 0 gives the input back (up to the codec); --stabilize and --preserve-colors keep every frame."""
    src = read_clip(clip)
    faint = tmp_path / "faint.mp4"
    result = run("video", clip, "-o", faint, "--model", tiny_style_file, "--strength", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    frames = read_clip(faint)["frames"]
    assert np.abs(frames[3].astype(int) - src["frames"][3].astype(int)).mean() < 4
    steady = tmp_path / "steady.mp4"
    result = run("video", clip, "-o", steady, "--model", tiny_style_file, "--stabilize", "--preserve-colors",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(read_clip(steady)["frames"]) == 15


def test_eval_video_reports_flicker(tmp_path, clip, tiny_style_file):
    result = run("eval", "video", clip, "--model", tiny_style_file, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(next(tmp_path.glob("eval-video-*.json")).read_text())
    assert report["frames"] == 15 and report["flicker"] >= report["flicker_stabilized"] >= 0


def test_eval_video_refuses_a_superres_model(clip, tiny_sr_file):
    result = run("eval", "video", clip, "--model", tiny_sr_file)
    assert result.exit_code == 1 and "is a superres model; eval video needs a style model" in result.output


def test_output_video_gets_the_usual_permissions(tmp_path, clip, tiny_style_file):
    out = tmp_path / "perm.mp4"
    assert run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress").exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("suffix, carried", [(".mp4", "re-encoded as aac"), (".mkv", "audio copied")])
def test_audio_a_container_only_claims_to_take_is_re_encoded(tmp_path, tiny_style_file, suffix, carried):
    """PCM is in MP4's codec list, but its muxer refuses it when the file is finished: the sound is
    re-encoded instead, and the video is written (it used to be deleted with exit 0)."""
    clip = make_clip(tmp_path / "pcm.mkv", frames=15, size=(64, 48), fps=10, audio_codec="pcm_s16le")
    out = tmp_path / f"out{suffix}"
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.output
    assert carried in result.stderr and f"→ {out}" in result.stderr
    assert len(read_clip(out)["frames"]) == 15
    assert audio_facts(out)["seconds"] == pytest.approx(audio_facts(clip)["seconds"], abs=0.05)


def test_a_file_that_cannot_be_finished_is_an_error_not_a_silent_loss(tmp_path, clip):
    import av

    from livestyle.errors import OutputError
    from livestyle.io.sinks import VideoFileSink
    from livestyle.io.sources import Frame

    out = tmp_path / "out.mp4"
    sink = VideoFileSink(out, rate=10)
    for i in range(3):
        sink.write(Frame(index=i, image=np.zeros((48, 64, 3), np.uint8), output=np.zeros((48, 64, 3), np.uint8)))

    class TrailerFails:  # the container, except that writing the trailer fails (a full disk, say)
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def close(self):
            self.real.close()
            raise av.FFmpegError(28, "No space left on device")

    sink._container = TrailerFails(sink._container)
    with pytest.raises(OutputError, match=f"cannot finish {out}: .*No space left"):
        sink.close("complete")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".part" in p.name]


def test_ctrl_c_never_keeps_the_partial_file_over_the_input(tmp_path, tiny_style_file, monkeypatch):
    """Input ``clip.partial.mp4``, output ``clip.mp4``: the interrupted run's file gets another name."""
    clip = make_clip(tmp_path / "clip.partial.mp4", frames=40, size=(64, 48), fps=30)
    before = clip.read_bytes()
    signal_while_writing(monkeypatch, signal.SIGINT, 5)
    result = run("video", clip, "-o", tmp_path / "clip.mp4", "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 130, result.stderr
    assert clip.read_bytes() == before
    kept = tmp_path / "clip.partial-2.mp4"
    assert kept.is_file() and str(kept) in result.stderr
    assert 5 <= len(read_clip(kept)["frames"]) < 40


def test_more_ctrl_c_presses_while_finishing_lose_no_frame(tmp_path, tiny_style_file, monkeypatch):
    """Ctrl-C, then twice more: once while frames still drain and once while the encoder flushes.
    Every frame the sink took is in the playable partial file (a second press used to tear the
    closing apart: 43 of 104 frames were kept)."""
    from livestyle.io.sinks import VideoFileSink

    clip = make_clip(tmp_path / "long.mp4", frames=60, size=(64, 48), fps=30)
    out = tmp_path / "out.mp4"
    real_write, real_close = VideoFileSink.write, VideoFileSink.close
    written, presses = [], []

    def press_ctrl_c(when):
        presses.append(when)
        os.kill(os.getpid(), signal.SIGINT)

    def write_pressing_ctrl_c(self, frame):
        if self.frames_written == 10 or (presses and len(presses) == 1):
            press_ctrl_c(self.frames_written)  # the first press, then again at the next frame it drains
        ok = real_write(self, frame)
        written.append(self.frames_written)
        return ok

    def close_pressing_ctrl_c(self, status="complete"):
        press_ctrl_c("close")  # during the flush
        return real_close(self, status)

    monkeypatch.setattr(VideoFileSink, "write", write_pressing_ctrl_c)
    monkeypatch.setattr(VideoFileSink, "close", close_pressing_ctrl_c)
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 130, result.stderr
    kept = partial_path(out)
    assert presses == [10, 11, "close"]
    assert len(read_clip(kept)["frames"]) == written[-1] >= 12


def test_a_raw_stream_without_timestamps_keeps_its_frame_rate(tmp_path, tiny_style_file):
    """A raw .h264 stream has no timestamps: frames are placed one frame duration apart (they used to
    be crushed into a few hundredths of a second)."""
    import av

    raw = tmp_path / "raw.h264"
    with av.open(str(raw), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mp4"
    result = run("video", raw, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 0, result.output
    assert read_clip(out)["seconds"] == pytest.approx([i / 10 for i in range(12)], abs=1e-3)


def test_sigterm_stops_like_ctrl_c_and_keeps_a_playable_partial_file(tmp_path, tiny_style_file, monkeypatch):
    """`timeout`, `kill`, systemd and `docker stop` send SIGTERM: it used to kill the run, leaving a
    hidden, unplayable temporary file and no partial video."""
    clip = make_clip(tmp_path / "long.mp4", frames=40, size=(64, 48), fps=30)
    out = tmp_path / "out.mp4"
    before = signal.getsignal(signal.SIGTERM)
    signal_while_writing(monkeypatch, signal.SIGTERM, 8)
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 128 + signal.SIGTERM, result.stderr
    kept = partial_path(out)
    assert 8 <= len(read_clip(kept)["frames"]) < 40
    assert "stopped by SIGTERM" in result.stderr and str(kept) in result.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert signal.getsignal(signal.SIGTERM) == before  # restored after the run


def stream_end_s(path: Path, kind: str) -> tuple[float, float]:
    """(end of the last packet, longest packet) of the file's first ``kind`` stream, in seconds."""
    import av

    with av.open(str(path)) as container:  # the stream's fields live while the container is open
        stream = getattr(container.streams, kind)[0]
        packets = [(p.pts, p.duration or 0) for p in container.demux(stream) if p.pts is not None]
        time_base = stream.time_base
    return float(max(pts + d for pts, d in packets) * time_base), float(max(d for _, d in packets) * time_base)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_run_cuts_its_audio_at_the_last_video_frame(tmp_path, tiny_style_file, monkeypatch, signum):
    """A partial file had up to half a second more sound than picture (2.14 s against 1.67 s): the
    audio was muxed ahead of the video. It ends within one audio frame of the video's end now."""
    clip = make_clip(tmp_path / "long.mp4", frames=60, size=(64, 48), fps=30)
    out = tmp_path / "out.mp4"
    signal_while_writing(monkeypatch, signum, 10)
    result = run("video", clip, "-o", out, "--model", tiny_style_file, "--no-progress")
    assert result.exit_code == 128 + signum, result.stderr
    kept = partial_path(out)
    video_end, _ = stream_end_s(kept, "video")
    audio_end, audio_frame = stream_end_s(kept, "audio")
    assert 10 / 30 <= video_end < 2.0
    assert video_end - 0.1 <= audio_end <= video_end + audio_frame + 1e-6, (audio_end, video_end)
