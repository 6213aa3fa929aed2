"""`livestyle cam` headless: a file as source, --record, --list-devices, no camera, no display, style switching."""
from __future__ import annotations

import ctypes.util
import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_pipeline import make_clip, read_clip

from livestyle.cli import main



def run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def test_cam_file_source_headless_records_what_is_shown(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=20, size=(64, 48), fps=20, audio=False)
    record = tmp_path / "rec.mp4"
    result = run("cam", "--source", clip, "--model", tiny_style_file, "--no-window", "--record", record,
                 "--size", "32x24")
    assert result.exit_code == 0, result.stderr
    info = read_clip(record)
    # Live mode may drop frames when inference falls behind, never add any.
    assert 0 < len(info["frames"]) <= 20
    assert info["frames"][0].shape == (24, 32, 3)  # the inference size
    assert info["seconds"] == sorted(info["seconds"])
    # Played at the clip's pace (20 fps): the recording spans about the clip's second.
    assert 0.5 < info["seconds"][-1] - info["seconds"][0] < 2.5
    assert "dropped" in result.stderr and f"to {record}" in result.stderr


def test_cam_duration_stops_a_looping_source(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=5, size=(32, 24), fps=20, audio=False)
    result = run("cam", "--source", clip, "--model", tiny_style_file, "--no-window", "--loop", "--duration", "0.8")
    assert result.exit_code == 0, result.stderr
    frames = int(result.stderr.split(" frames,")[0].rsplit(" ", 1)[-1])
    assert frames > 5  # looped past the end of the 5-frame clip


def test_no_camera_is_a_one_line_error(tiny_style_file):
    index = next((i for i in range(40, 64) if not Path(f"/dev/video{i}").exists()), None)
    result = run("cam", "--source", index, "--model", tiny_style_file, "--no-window")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"livestyle: error: no camera at index {index} "
                                     "(see `livestyle cam --list-devices`)")


def test_default_camera_absent(tiny_style_file):
    if Path("/dev/video0").exists():
        pytest.skip("this machine has a camera at index 0")
    result = run("cam", "--model", tiny_style_file, "--no-window")
    assert result.exit_code == 1 and "no camera at index 0" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_list_devices():
    result = run("cam", "--list-devices")
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines == ["no cameras found"] or all(line.split(":")[0].isdigit() for line in lines)


def test_list_devices_lists_each_camera(monkeypatch):
    from livestyle.io import sources

    found = [sources.CameraInfo(0, "Integrated Camera", 1280, 720, 30.0), sources.CameraInfo(2, "USB cam", 640, 480, 0.0)]
    monkeypatch.setattr(sources, "list_cameras", lambda: found)
    result = run("cam", "--list-devices")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["0: Integrated Camera (1280×720, 30 fps)", "2: USB cam (640×480, 0 fps)"]


def test_window_without_display_is_a_one_line_error(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    result = run("cam", "--source", clip, "--model", tiny_style_file, env={"DISPLAY": None, "WAYLAND_DISPLAY": None})
    assert result.exit_code == 1
    assert "no display" in result.stderr and "--no-window" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(ctypes.util.find_library("X11") is None, reason="needs libX11 to probe the display")
def test_unreachable_display_is_a_one_line_error(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    result = run("cam", "--source", clip, "--model", tiny_style_file, env={"DISPLAY": ":999", "WAYLAND_DISPLAY": None})
    assert result.exit_code == 1
    assert result.stderr.strip() == "livestyle: error: cannot connect to display :999; use --no-window"


def test_missing_source_file(tmp_path, tiny_style_file):
    result = run("cam", "--source", tmp_path / "nope.mp4", "--model", tiny_style_file, "--no-window")
    assert result.exit_code == 1 and "neither a camera index" in result.stderr


def write_audio_only(path: Path) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        sound = out.add_stream("aac", rate=48000, layout="stereo")
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, i * 1024
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def test_a_snapshot_that_cannot_be_written_warns_and_the_session_goes_on(tmp_path, tiny_style_file, monkeypatch):
    import numpy as np

    from livestyle.io import window
    from livestyle.io.sources import Frame
    from livestyle.io.window import WindowSink

    monkeypatch.setattr(window, "check_display", lambda: None)  # snapshots need no window
    folder = tmp_path / "snaps"
    folder.mkdir()
    sink = WindowSink(snapshot_dir=folder)
    picture = np.full((8, 8, 3), 100, np.uint8)
    sink._last = Frame(0, picture, output=picture)  # what the window shows
    assert sink.snapshot().parent == folder and len(list(folder.glob("livestyle-*.png"))) == 1
    for snapshot in folder.iterdir():
        snapshot.unlink()
    folder.rmdir()  # gone while the session runs
    with pytest.warns(UserWarning, match="snapshot not saved"):
        assert sink.snapshot() is None
    result = run("cam", "--source", "0", "--model", tiny_style_file, "--no-window", "--snapshot-dir", folder)
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("make, message", [
    (lambda d: write_audio_only(d / "sound.m4a"), "has no video stream"),
    (lambda d: (d / "text.mp4").write_text("not a video") and d / "text.mp4", "is not a video file livestyle can read"),
    (lambda d: d, "is a folder"),
])
def test_bad_file_sources_say_what_is_wrong_in_one_line(tmp_path, tiny_style_file, make, message):
    result = run("cam", "--source", make(tmp_path), "--model", tiny_style_file, "--no-window")
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture
def two_style_catalog(tmp_path, monkeypatch):
    """A weights folder with two tiny catalog styles, a and b."""
    from livestyle import save_model_file, transform_net

    folder = tmp_path / "weights"
    folder.mkdir()
    records = []
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed)
        digest = save_model_file(transform_net(width=4, blocks=1), folder / f"{name}.safetensors")
        records.append({"name": name, "task": "style", "arch": {"width": 4, "blocks": 1},
                        "file": f"{name}.safetensors", "sha256": digest})
    (folder / "catalog.json").write_text(json.dumps({"models": records}))
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(folder))
    return folder


def test_style_cycle_swaps_the_engine(two_style_catalog):
    import numpy as np

    from livestyle.zoo.choice import choose_model
    from livestyle.cli.cam import StyleCycle, style_choices
    from livestyle.engines.factory import build_engine as engine_for
    from livestyle.pipeline.infer import InferStage
    from livestyle.io.sources import Frame

    first = choose_model(style="a")
    stage = InferStage(engine_for(first, backend="auto", device="cpu"))
    choices, index = style_choices("a", None, None, first.task)
    assert [c["style"] for c in choices] == ["a", "b"] and index == 0
    switched = []
    cycle = StyleCycle(choices, index, lambda c: engine_for(c, backend="auto", device="cpu"),
                       stage.set_engine, name="a", on_switch=[lambda old, new: switched.append((old, new))])
    frame = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    out_a = stage([Frame(0, frame)])[0].output
    assert cycle.step(+1) == "b"
    out_b = stage([Frame(1, frame)])[0].output
    assert np.abs(out_a.astype(int) - out_b.astype(int)).mean() > 1  # another network now
    assert cycle.step(+1) == "a" and cycle.step(-1) == "b"
    assert switched == [("a", "b"), ("b", "a"), ("a", "b")]


def test_style_cycle_holds_one_model_per_style(two_style_catalog):
    from livestyle import save_model_file, transform_net
    from livestyle.cli.cam import style_choices

    records = json.loads((two_style_catalog / "catalog.json").read_text())["models"]
    digest = save_model_file(transform_net(width=4, blocks=1), two_style_catalog / "b_small.safetensors")
    records.append({"name": "b_small", "task": "style", "arch": {"width": 4, "blocks": 1},
                    "file": "b_small.safetensors", "sha256": digest, "variant": "small"})
    (two_style_catalog / "catalog.json").write_text(json.dumps({"models": records}))
    choices, index = style_choices("b_small", None, None, "style", variant="small")
    assert [c["style"] for c in choices] == ["a", "b_small"] and index == 1
    choices, index = style_choices("b", None, None, "style", variant="full")
    assert [c["style"] for c in choices] == ["a", "b"] and index == 1


def test_single_model_file_has_nothing_to_switch_to(tmp_path, tiny_style_file, monkeypatch):
    from livestyle.cli.cam import StyleCycle, style_choices

    (tmp_path / "empty").mkdir()  # a catalog folder without models
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "empty"))
    choices, index = style_choices(None, str(tiny_style_file), None, "style")
    assert choices == [{"model_file": str(tiny_style_file)}]
    swaps = []
    cycle = StyleCycle(choices, index, lambda c: None, swaps.append, name="tiny_style")
    assert cycle.step(+1) == "tiny_style" and swaps == []


def test_record_refuses_existing_input(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=3, audio=False)
    result = run("cam", "--source", clip, "--model", tiny_style_file, "--no-window", "--record", clip)
    assert result.exit_code == 1 and "is the input file" in result.stderr
    assert os.path.getsize(clip) > 0
