"""`livestyle batch`: files on a local Ray (2 CPUs), each output as `video`/`image` make it; failures,
retries, reruns, Ctrl-C, and videos split at keyframes and joined."""
import _thread
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from livestyle.cli import main
from livestyle.cluster.inputs import find_inputs
from livestyle.errors import InputError
from livestyle.files import sha256_of as sha256

# Same engine everywhere: `auto` on the CPU would time engines, and BF16 and FP32 outputs differ.
ENGINE = ["--backend", "torch", "--precision", "fp32", "--no-progress"]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray with 2 CPUs for the module (starting one takes seconds); the CLI joins it."""
    ray = pytest.importorskip("ray", reason="Ray is the `cluster` extra")
    import logging

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
    for sig, handler in handlers.items():  # ray.init leaves its own SIGTERM handler behind
        signal.signal(sig, handler)


def clip(shared_data, name):
    return shared_data / "video" / name


def decoded(path):
    """[(pts seconds, RGB array)] of a video's frames."""
    with av.open(str(path)) as container:
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def audio_packets(path):
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def batch(*args):
    return CliRunner().invoke(main, ["batch", *map(str, args), *ENGINE])


def same_frames(a, b):
    first, second = decoded(a), decoded(b)
    return len(first) == len(second) and all(x[0] == y[0] and np.array_equal(x[1], y[1]) for x, y in zip(first, second))


# --- inputs (no Ray) -------------------------------------------------------------------------------
def test_folders_keep_relative_paths_globs_their_folders_and_outdir_is_left_out(tmp_path):
    root = tmp_path / "library"
    (root / "a").mkdir(parents=True)
    for name in ("a/one.mp4", "a/two.png", "notes.txt", "three.avi"):
        (root / name).write_bytes(b"x")
    out = root / "out"
    out.mkdir()
    (out / "one.mp4").write_bytes(b"x")  # an earlier output inside the input folder
    found = {f.relative.as_posix(): (f.kind, f.output_relative.as_posix()) for f in find_inputs([str(root)], out)}
    assert found == {"a/one.mp4": ("video", "a/one.mp4"), "a/two.png": ("image", "a/two.png"),
                     "three.avi": ("video", "three.mp4")}
    globbed = find_inputs([str(root / "a" / "*.mp4")], tmp_path / "elsewhere")
    assert [f.relative.as_posix() for f in globbed] == ["one.mp4"]
    with pytest.raises(InputError, match="neither a video nor an image"):
        find_inputs([str(root / "notes.txt")], out)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "one.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="would both be written"):
        find_inputs([str(root / "a" / "one.mp4"), str(tmp_path / "b" / "one.mp4")], out)


def test_the_manifest_redoes_a_changed_input_model_or_option_and_not_a_touched_one(tmp_path):
    from livestyle.cluster.manifest import FileOutcome, Manifest

    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(b"first")
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.png").write_bytes(b"output")
    item = find_inputs([str(photo)], out)[0]
    manifest = Manifest(out)
    manifest.record(item, FileOutcome(str(photo), "photo.png", "done", 1), input_sha256=sha256(photo),
                    model_sha256="model-a", options={"strength": 1.0})
    manifest.save()
    again = Manifest(out)  # as a rerun reads it
    assert again.is_done(item, "model-a", {"strength": 1.0})
    assert not again.is_done(item, "model-b", {"strength": 1.0})
    assert not again.is_done(item, "model-a", {"strength": 0.5})
    os.utime(photo, ns=(1, 1))  # touched, same bytes
    assert again.is_done(item, "model-a", {"strength": 1.0})
    photo.write_bytes(b"other")  # same size, new content
    assert not again.is_done(item, "model-a", {"strength": 1.0})


def test_the_model_sha256_is_of_the_weights_not_of_the_file_bytes(tiny_style_file, tmp_path):
    import torch

    from livestyle import load_model_file, save_model_file
    from livestyle.cluster.plan import model_payload
    from livestyle.zoo.choice import choose_model

    model, _ = load_model_file(tiny_style_file)
    resaved = tmp_path / "resaved.safetensors"
    save_model_file(model, resaved, **{"livestyle.name": "another name"})  # other bytes, same weights
    assert resaved.read_bytes() != tiny_style_file.read_bytes()
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    changed = tmp_path / "changed.safetensors"
    save_model_file(model, changed)
    first, same, other = (model_payload(choose_model(model_file=f)).sha256 for f in (tiny_style_file, resaved, changed))
    assert first == same != other


def test_without_ray_batch_says_in_one_line_how_to_install_it(tmp_path, monkeypatch, tiny_style_file):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    result = CliRunner().invoke(main, ["batch", str(tiny_style_file), "-o", str(tmp_path / "out"),
                                       "--model", str(tiny_style_file)])
    assert result.exit_code == 1
    assert result.output.strip() == "livestyle: error: livestyle batch needs Ray: pip install 'livestyle[cluster]'"


def test_an_address_that_nothing_answers_is_one_line_at_once_not_minutes_of_retries():
    import socket

    from livestyle.cluster.runner import check_reachable
    from livestyle.errors import BackendUnavailableError

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnavailableError, match="cannot reach the Ray cluster at 127.0.0.1"):
        check_reachable(f"127.0.0.1:{port}", timeout_s=2)
    with pytest.raises(BackendUnavailableError, match="auto or HOST:PORT"):
        check_reachable("headnode")


def test_a_batch_that_starts_its_own_ray_stops_it_and_gives_back_the_signal_handlers(tmp_path, tiny_style_file):
    """ray.init installs a SIGTERM handler in the calling process; a later `video` in the same process
    must still hear SIGTERM as itself."""
    ray = pytest.importorskip("ray", reason="Ray is the `cluster` extra")
    assert not ray.is_initialized()  # runs before the module's shared Ray starts
    photo = tmp_path / "photo.png"
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(photo), np.full((24, 32, 3), 128, np.uint8))
    before = signal.getsignal(signal.SIGTERM)
    result = batch(photo, "-o", tmp_path / "out", "--model", tiny_style_file, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "photo.png").is_file()
    assert not ray.is_initialized()
    assert signal.getsignal(signal.SIGTERM) is before


LEFTOVER_MEMORY = """
import ctypes, sys
from livestyle.cluster.worker import FileWorker
from livestyle.io.sinks import zero_new_allocations
if sys.argv[1] == "zeroed":
    assert zero_new_allocations()
if sys.argv[1] == "worker":
    FileWorker(engine=None)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
size = 1 << 20
libc.free(libc.malloc(size))  # mmapped by default; glibc then serves this size from its heap
dirty = libc.malloc(size)
ctypes.memset(dirty, 0xAB, size)
keep = libc.malloc(64)  # holds the heap's top, so that the freed buffer is reused
libc.free(dirty)
again = libc.malloc(size)
print(sorted(set(ctypes.string_at(again + 64, size - 64))))  # past the allocator's own words
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_worker_gets_zeroed_memory_so_that_leftovers_cannot_change_its_lossy_outputs():
    """A lossy libx264 encode reads memory it did not write: in a worker a reused buffer must read as
    zero, as memory does in the fresh process of a `video` run, so that its outputs equal `video`'s
    (bench/experiments/cluster-batch/findings.md)."""
    def memory(mode: str) -> list[int]:
        run = subprocess.run([sys.executable, "-c", LEFTOVER_MEMORY, mode], capture_output=True, text=True, check=True)
        return json.loads(run.stdout)

    assert 0xAB in memory("default")  # the check sees the leftovers of a freed buffer
    assert memory("zeroed") == [0]
    assert memory("worker") == [0]  # a worker process does it as it starts


# --- on a local Ray --------------------------------------------------------------------------------
def test_clips_and_images_as_video_and_image_make_them_a_damaged_file_reported_and_reruns_skip(
        ray_local, shared_data, tmp_path, tiny_style_file):
    photos = tmp_path / "photos"
    photos.mkdir()
    for source in (shared_data / "content" / "chicago.jpg", shared_data / "sr" / "CSet5" / "baby.png",
                   shared_data / "sr" / "CSet5" / "bird.png"):
        shutil.copy(source, photos / source.name)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(20000))
    clips = [clip(shared_data, "mdn_friday.mp4"), clip(shared_data, "jsonize_iphone_rotated.mov")]
    out = tmp_path / "out"
    # Lossy (crf 18), as users run it: workers that have decoded and encoded before write what a fresh
    # `video` process writes (livestyle.io.sinks.zero_new_allocations; bench/experiments/cluster-batch).
    model = ["--model", tiny_style_file, "--scale", "0.25", "--workers", "2"]
    result = batch(*clips, photos, broken, "-o", out, *model)
    assert result.exit_code == 1, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line and not line.startswith("livestyle")}
    assert "failed" in lines["broken.mp4"] and "not a video file livestyle can read" in lines["broken.mp4"]
    assert "1 of 6 file(s) failed" in result.output
    for name, frames in (("mdn_friday.mp4", 185), ("jsonize_iphone_rotated.mov", 66)):
        assert lines[name].split()[1:3] == ["done", str(frames)]
        assert len(decoded(out / name)) == frames
    assert sorted(p.name for p in out.iterdir()) == ["baby.png", "bird.png", "chicago.jpg",
                                                     "jsonize_iphone_rotated.mov", "livestyle-batch.json",
                                                     "mdn_friday.mp4"]  # nothing for the damaged file
    # Each output is what `livestyle video` / `livestyle image` give for that file with the same options.
    single = tmp_path / "single"
    single.mkdir()
    for source in clips:  # `video` as users run it: a process of its own
        video = subprocess.run([sys.executable, "-m", "livestyle", "video", str(source), "-o", str(single / source.name),
                                "--model", str(tiny_style_file), "--scale", "0.25", *ENGINE],
                               capture_output=True, text=True)
        assert video.returncode == 0, video.stderr
        assert same_frames(single / source.name, out / source.name), source.name
    image = CliRunner().invoke(main, ["image", str(photos / "baby.png"), "-o", str(single / "baby.png"), "--model",
                                      str(tiny_style_file), "--backend", "torch", "--precision", "fp32"])
    assert image.exit_code == 0, image.output
    assert (single / "baby.png").read_bytes() == (out / "baby.png").read_bytes()
    # A rerun does nothing where nothing changed; a changed input is redone.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "livestyle-batch.json"}
    again = batch(*clips, photos, "-o", out, *model)
    assert again.exit_code == 0, again.output
    assert "0 done, 5 skipped" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in before} == before
    (photos / "bird.png").write_bytes((photos / "chicago.jpg").read_bytes())  # new content, same name
    third = batch(*clips, photos, "-o", out, *model)
    assert third.exit_code == 0 and "1 done, 4 skipped" in third.output, third.output
    assert (out / "bird.png").stat().st_mtime_ns != before["bird.png"]


def worker_pids_running_a_job() -> list[int]:
    """Processes whose title says a FileWorker runs a job now (Ray names them ray::FileWorker.run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::FileWorker.run"):
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker process through /proc")
def test_a_worker_killed_mid_task_is_restarted_and_the_file_redone_whole(ray_local, shared_data, tmp_path,
                                                                         tiny_style_file):
    source = clip(shared_data, "mdnla_crystal.mp4")
    out = tmp_path / "out"
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(result=batch(
        source, "-o", out, "--model", tiny_style_file, "--scale", "0.25", "--workers", "1")))
    runner.start()
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and runner.is_alive() and time.monotonic() < deadline:
        pids = worker_pids_running_a_job()
        if pids and any(out.glob(".mdnla_crystal.*.part.mp4")):  # the output is half written
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    runner.join(120)
    assert killed is not None, "the job ended before a worker could be caught running it"
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("mdnla_crystal.mp4"))
    assert line.split()[1:3] == ["done", "359"]
    assert f":{killed}" not in line  # another process did it
    assert len(decoded(out / "mdnla_crystal.mp4")) == 359
    assert not list(out.glob(".*.part.*"))  # the killed writer's temporary file is gone


def test_split_video_equals_the_whole_run_frame_for_frame_with_its_audio(ray_local, shared_data, tmp_path,
                                                                        tiny_style_file):
    source = clip(shared_data, "mdn_friday.mp4")  # keyframes every 1.17 s: three parts of ≥ 2 s
    lossless = ["--crf", "0", "--model", tiny_style_file, "--scale", "0.25"]
    result = batch(source, "-o", tmp_path / "split", "--split-seconds", "2", "--workers", "2", *lossless)
    assert result.exit_code == 0, result.output
    whole = CliRunner().invoke(main, ["video", str(source), "-o", str(tmp_path / "whole.mp4"), *map(str, lossless),
                                      *ENGINE])
    assert whole.exit_code == 0, whole.output
    joined = tmp_path / "split" / "mdn_friday.mp4"
    assert same_frames(tmp_path / "whole.mp4", joined)  # pixels and timestamps
    assert audio_packets(joined) == audio_packets(tmp_path / "whole.mp4") == audio_packets(source)
    assert not (tmp_path / "split" / ".livestyle-parts").exists()
    line = next(line for line in result.output.splitlines() if line.startswith("mdn_friday.mp4"))
    assert "," in line.split()[4]  # both workers took parts


def test_ctrl_c_keeps_finished_outputs_and_leaves_no_half_written_file(ray_local, shared_data, tmp_path,
                                                                       tiny_style_file):
    photo = shared_data / "sr" / "CSet5" / "baby.png"
    long_clip = clip(shared_data, "mdnla_crystal.mp4")
    out = tmp_path / "out"

    def press_ctrl_c_once_the_photo_is_done():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not ((out / "baby.png").exists() and
                                                   any(out.glob(".mdnla_crystal.*.part.mp4"))):
            time.sleep(0.02)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c_once_the_photo_is_done, daemon=True).start()
    result = batch(photo, long_clip, "-o", out, "--model", tiny_style_file, "--workers", "2")
    assert result.exit_code == 130, result.output
    assert "cancelled" in next(line for line in result.output.splitlines() if line.startswith("mdnla_crystal.mp4"))
    assert sorted(p.name for p in out.iterdir()) == ["baby.png", "livestyle-batch.json"]
    again = batch(photo, "-o", out, "--model", tiny_style_file, "--workers", "2")
    assert "0 done, 1 skipped" in again.output
