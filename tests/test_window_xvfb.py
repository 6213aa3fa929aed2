"""The `cam` window on a virtual X screen (Xvfb): stylised pixels on screen, overlay, side-by-side, snapshot, quit.

Needs Xvfb, xdotool and ImageMagick's `import` (Debian: xvfb xdotool imagemagick; .ci/run installs
them); skips with that reason where they are missing.
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ("Xvfb", "xdotool", "import")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} (apt-get install xvfb xdotool imagemagick)")


@pytest.fixture
def xvfb():
    """A private virtual screen; yields its DISPLAY value and stops it afterwards.

    ``-displayfd``: Xvfb picks a free display number itself and writes it once it accepts connections,
    so parallel test runs cannot collide and the screen is ready when we read the number.
    """
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, pass_fds=(write_end,))
    os.close(write_end)
    # Read up to the newline, and keep the pipe open while Xvfb runs: it treats a failed write as fatal.
    text, deadline = b"", time.time() + 20
    while not text.endswith(b"\n") and time.time() < deadline and server.poll() is None:
        if select.select([read_end], [], [], 0.2)[0]:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            text += chunk
    number = text.decode().strip()
    try:
        if not number.isdigit():
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        os.close(read_end)


def screenshot(display: str) -> np.ndarray:
    """The whole virtual screen as uint8 BGR."""
    png = subprocess.run(["import", "-display", display, "-window", "root", "png:-"], capture_output=True,
                         timeout=20, check=True).stdout
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)


def find(screen: np.ndarray, picture: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Best normalised correlation of ``picture`` in ``screen`` and its top-left corner."""
    scores = cv2.matchTemplate(screen, picture, cv2.TM_CCOEFF_NORMED)
    _, best, _, corner = cv2.minMaxLoc(scores)
    return best, corner


def screen_until(display: str, ready, timeout_s: float = 20) -> np.ndarray:
    """Screenshots until ``ready(shot)`` holds (a busy machine may redraw late); the last one either way."""
    deadline = time.time() + timeout_s
    while True:
        shot = screenshot(display)
        if ready(shot) or time.time() > deadline:
            return shot
        time.sleep(0.2)


def wait_for_window(display: str, proc: subprocess.Popen, timeout_s: float = 90) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"livestyle cam exited early: {proc.communicate()[1].decode()}")
        found = subprocess.run(["xdotool", "search", "--name", "^livestyle"], capture_output=True, text=True,
                               env=dict(os.environ, DISPLAY=display))
        ids = found.stdout.split()
        if ids:
            return ids[-1]
        time.sleep(0.2)
    raise AssertionError("the window did not appear")


def key(display: str, window: str, name: str) -> None:
    subprocess.run(["xdotool", "key", "--window", window, name], check=True, env=dict(os.environ, DISPLAY=display))


def catalog_of_two_styles(folder: Path) -> dict[str, Path]:
    """A weights folder whose catalog holds two tiny random styles, a and b."""
    import json

    from livestyle import save_model_file, transform_net

    folder.mkdir()
    files, records = {}, []
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed)
        files[name] = folder / f"{name}.safetensors"
        digest = save_model_file(transform_net(width=4, blocks=1), files[name])
        records.append({"name": name, "task": "style", "arch": {"width": 4, "blocks": 1},
                        "file": files[name].name, "sha256": digest})
    (folder / "catalog.json").write_text(json.dumps({"models": records}))
    return files


def stylise_bgr(model_file: Path, bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR frame through a model file, as uint8 BGR."""
    from livestyle.zoo.modelfile import load_model_file
    from livestyle.models.convention import batch_to_frames, frames_to_batch

    model, _ = load_model_file(model_file)
    with torch.inference_mode():
        rgb = batch_to_frames(model(frames_to_batch([np.ascontiguousarray(bgr[..., ::-1])])))[0]
    return np.ascontiguousarray(rgb[..., ::-1])


def test_cam_window_shows_stylised_frames(tmp_path, xvfb):
    from test_pipeline import make_clip, read_clip

    # A still clip (every frame the same), so what is on screen is predictable.
    clip = tmp_path / "still.mp4"
    make_clip(clip, frames=10, size=(160, 120), fps=10, audio=False, still=True)
    capture = cv2.VideoCapture(str(clip))
    ok, first_bgr = capture.read()
    capture.release()
    assert ok
    styles = catalog_of_two_styles(tmp_path / "weights")
    expected = stylise_bgr(styles["a"], first_bgr)
    expected_b = stylise_bgr(styles["b"], first_bgr)
    assert np.abs(expected.astype(int) - first_bgr.astype(int)).mean() > 20  # stylising changes the look
    assert np.abs(expected.astype(int) - expected_b.astype(int)).mean() > 10  # and the styles differ

    snapshots = tmp_path / "snaps"
    snapshots.mkdir()
    env = dict(os.environ, DISPLAY=xvfb, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="xcb",
               LIVESTYLE_WEIGHTS_DIR=str(tmp_path / "weights"))
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen([sys.executable, "-c", "from livestyle.cli import main; main()", "cam",
                             "--source", str(clip), "--loop", "--style", "a",
                             "--snapshot-dir", str(snapshots), "--device", "cpu", "--record", str(tmp_path / "rec.mp4")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        window = wait_for_window(xvfb, proc)
        # The overlay covers the top of the picture; its uncovered bottom rows say frames are shown.
        with_overlay = screen_until(xvfb, lambda shot: find(shot, expected[80:])[0] > 0.97)

        key(xvfb, window, "o")  # overlay off
        plain = screen_until(xvfb, lambda shot: find(shot, expected)[0] > 0.97)
        score, (x, y) = find(plain, expected)
        assert score > 0.97, f"stylised frame not found on screen (best correlation {score:.3f})"
        shown = plain[y:y + 120, x:x + 160].astype(int)
        assert np.abs(shown - expected).mean() < 6  # the stylised pixels themselves
        assert np.abs(shown - first_bgr.astype(int)).mean() > 20  # and not the camera's
        assert find(plain, expected_b)[0] < 0.9, "style b looks like a"  # (switched to below)

        # The overlay covered the top-left corner of the same picture with text on a dark box.
        corner = (slice(y, y + 30), slice(x, x + 100))
        assert np.abs(with_overlay[corner].astype(int) - plain[corner].astype(int)).mean() > 10, "no overlay"

        key(xvfb, window, "b")  # side by side: original | stylised
        split = screen_until(xvfb, lambda shot: find(shot, first_bgr)[0] > 0.95)
        left_score, _ = find(split, first_bgr)
        right_score, _ = find(split, expected)
        assert left_score > 0.95 and right_score > 0.97, f"side by side: {left_score:.3f}, {right_score:.3f}"

        key(xvfb, window, "s")  # snapshot of what is shown
        # Only finished files: the snapshot is written under a hidden temporary name, then renamed
        # (pathlib's "*" would also match that hidden half-written file).
        deadline = time.time() + 10
        while not list(snapshots.glob("livestyle-*.png")) and time.time() < deadline:
            time.sleep(0.1)
        (snap,) = list(snapshots.glob("livestyle-*.png"))
        assert cv2.imread(str(snap)).shape == (120, 320, 3)

        key(xvfb, window, "b")  # back to the stylised view alone
        key(xvfb, window, "n")  # next style, live
        switched = screen_until(xvfb, lambda shot: find(shot, expected_b)[0] > 0.97)
        assert find(switched, expected_b)[0] > 0.97, f"style b not shown: {find(switched, expected_b)[0]:.3f}"
        key(xvfb, window, "p")  # and back
        back = screen_until(xvfb, lambda shot: find(shot, expected)[0] > 0.97)
        assert find(back, expected)[0] > 0.97, f"style a not shown again: {find(back, expected)[0]:.3f}"

        key(xvfb, window, "q")
        proc.wait(15)
        assert proc.returncode == 0, proc.stderr.read().decode()
        # The recording holds the stylised frames (style a, then b, then a again), at the inference size.
        recorded = read_clip(tmp_path / "rec.mp4")["frames"]
        assert len(recorded) > 5 and recorded[0].shape == (120, 160, 3)
        first = recorded[0][..., ::-1].astype(int)  # as BGR; H.264 at CRF 18 blurs the noisy picture a little
        assert np.abs(first - expected.astype(int)).mean() < 12
        assert np.abs(first - expected.astype(int)).mean() < np.abs(first - expected_b.astype(int)).mean() - 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
