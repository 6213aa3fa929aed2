import os

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from livestyle.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def write(path, pixels):
    assert cv2.imwrite(str(path), pixels)
    return path


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    return write(tmp_path / "in.png", rng.integers(0, 256, (21, 30, 3), dtype=np.uint8))


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("image", "styles"):
        assert name in result.output


# Sends the process SIGINT the moment it starts importing torch: Ctrl-C during start-up, without a
# race against the clock (a timed signal arrives after a fast machine has already finished). The
# script sets Python's own Ctrl-C handler first: a test run started in the background or under nohup
# hands its children SIGINT ignored.
CTRL_C_AT_TORCH_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, CtrlC())
from livestyle.cli import main
main()
"""


def test_ctrl_c_while_the_command_starts_is_a_quiet_exit(tmp_path, photo, tiny_style_file):
    """Ctrl-C while torch loads (the first seconds of every command that runs a network): no traceback, exit 130."""
    import subprocess
    import sys

    command = ["image", str(photo), "-o", str(tmp_path / "out.png"), "--model", str(tiny_style_file)]
    process = subprocess.run([sys.executable, "-c", CTRL_C_AT_TORCH_IMPORT, *command], capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 130 and "Traceback" not in process.stderr, process.stderr
    assert process.stderr.strip() == "livestyle: interrupted"
    assert process.stdout == "" and not (tmp_path / "out.png").exists()  # interrupted before the work


def test_style_happy_path(tmp_path, photo, tiny_style_file):
    out = tmp_path / "out.jpg"
    result = run("image", photo, "-o", out, "--model", tiny_style_file)
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape == (21, 30, 3)
    assert not [p for p in os.listdir(tmp_path) if ".part" in p]  # temporary file renamed away


def test_sr_model_file_scales(tmp_path, photo, tiny_sr_file):
    out = tmp_path / "big.png"
    assert run("image", photo, "-o", out, "--model", tiny_sr_file).exit_code == 0
    assert cv2.imread(str(out)).shape == (84, 120, 3)


def test_grey_alpha_and_16bit(tmp_path, tiny_style_file):
    grey = write(tmp_path / "grey.png", np.full((10, 12), 128, np.uint8))
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 77
    alpha = write(tmp_path / "alpha.png", rgba)
    deep = write(tmp_path / "deep.png", np.full((10, 12, 3), 40000, np.uint16))
    assert run("image", grey, "-o", tmp_path / "g.png", "--model", tiny_style_file).exit_code == 0
    assert run("image", alpha, "-o", tmp_path / "a.png", "--model", tiny_style_file).exit_code == 0
    a = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (10, 12, 4) and (a[..., 3] == 77).all()
    assert run("image", deep, "-o", tmp_path / "d.png", "--model", tiny_style_file).exit_code == 0
    assert cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def one_line_error(result, pattern):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert pattern in lines[0], lines[0]


def test_missing_input(tmp_path, tiny_style_file):
    one_line_error(run("image", tmp_path / "nope.png", "-o", tmp_path / "o.png", "--model", tiny_style_file), "not found")


def test_corrupt_input(tmp_path, tiny_style_file):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    one_line_error(run("image", bad, "-o", tmp_path / "o.png", "--model", tiny_style_file), "cannot decode")


def test_unknown_style(tmp_path, photo):
    one_line_error(run("image", photo, "-o", tmp_path / "o.png", "--style", "nosuchstyle"), "unknown style 'nosuchstyle'")


def test_unwritable_output(tmp_path, photo, tiny_style_file):
    one_line_error(run("image", photo, "-o", tmp_path / "no" / "dir" / "o.png", "--model", tiny_style_file), "does not exist")
    # a folder that exists but takes no new files, even for root
    one_line_error(run("image", photo, "-o", "/proc/o.png", "--model", tiny_style_file), "cannot write")


def test_output_equal_to_input_is_refused(photo, tiny_style_file):
    before = photo.read_bytes()
    one_line_error(run("image", photo, "-o", photo, "--model", tiny_style_file), "is the input")
    assert photo.read_bytes() == before


def test_bad_scale(tmp_path, photo):
    result = run("image", photo, "-o", tmp_path / "o.png", "--superres", "3")
    assert result.exit_code == 2 and "'3' is not 4, 8 or the name of a super-resolution model" in result.output


def test_two_models_at_once(tmp_path, photo, tiny_style_file):
    # a style and a model file are two style models; (--style or --model) + --superres is a chain
    one_line_error(run("image", photo, "-o", tmp_path / "o.png", "--model", tiny_style_file, "--style", "mosaic"),
                   "exactly one")


def test_unknown_output_format(tmp_path, photo, tiny_style_file):
    for name in ("o.xyz", "o"):
        one_line_error(run("image", photo, "-o", tmp_path / name, "--model", tiny_style_file),
                       "is not an image format this OpenCV writes")
    assert not list(tmp_path.glob("o*"))


def test_styles_on_empty_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    result = run("styles")
    assert result.exit_code == 0 and "no trained models are installed yet" in result.output


def test_styles_lists_style_and_sr_models(tmp_path, monkeypatch, tiny_style_file, tiny_sr_file):
    from livestyle.zoo.modelfile import load_model_file
    from livestyle.zoo.catalog import add_entry

    for path, task in ((tiny_style_file, "style"), (tiny_sr_file, "superres")):
        model, _ = load_model_file(path)
        add_entry(tmp_path, {"name": path.stem, "task": task, "arch": model.config.to_dict(),
                                     "file": path.name, "sha256": "0" * 64, "credit": "test credit"}, path)
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    result = run("styles")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].split()[:3] == ["tiny_style", "style", "full"] and "test credit" in lines[1]
    assert "margin 6" in lines[1]  # the test model's border margin
    assert lines[2].split()[:4] == ["tiny_sr", "superres", "full", "×4,"] and "width 4, 1 blocks" in lines[2]


def test_reduced_inference_resolution_keeps_the_size(tmp_path, photo, tiny_style_file, tiny_sr_file):
    out = tmp_path / "half.png"
    result = run("image", photo, "-o", out, "--model", tiny_style_file, "--infer-scale", "0.5", "--upsample", "bicubic")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape == (21, 30, 3) and "@0.5x-bicubic" in result.output
    one_line_error(run("image", photo, "-o", out, "--model", tiny_sr_file, "--infer-scale", "0.5"), "for style models")


def test_output_gets_the_usual_permissions(tmp_path, photo, tiny_style_file):
    out = tmp_path / "perm.png"
    assert run("image", photo, "-o", out, "--model", tiny_style_file).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_plain_style_name_runs_the_small_variant_on_the_cpu(tmp_path, monkeypatch, photo):
    from livestyle import save_model_file, transform_net
    from livestyle.zoo.catalog import add_entry

    for name, width, variant in (("wave", 8, "full"), ("wave_small", 4, "small")):
        path = tmp_path / f"{name}.safetensors"
        sha = save_model_file(transform_net(width=width, blocks=1), path)
        add_entry(tmp_path, {"name": name, "task": "style", "arch": {"width": width, "blocks": 1},
                                     "file": path.name, "sha256": sha, "variant": variant}, path)
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    for extra, ran in (((), "wave_small"), (("--variant", "full"), "wave"), (("--variant", "small"), "wave_small")):
        result = run("image", photo, "-o", tmp_path / "o.png", "--style", "wave", "--device", "cpu", *extra)
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[-1].startswith(f"{ran} ("), result.output  # after any export progress


@pytest.mark.parametrize("orientation", range(1, 9))
def test_camera_jpegs_are_read_the_way_they_are_meant_to_be_seen(tmp_path, orientation):
    """EXIF orientation 1–8 is applied as OpenCV's own colour reader applies it (a phone photo
    used to be stylised and written on its side)."""
    from PIL import Image

    from livestyle.io.images import read_image

    stored = cv2.resize((np.random.default_rng(0).random((6, 10, 3)) * 255).astype(np.uint8), (80, 48),
                        interpolation=cv2.INTER_NEAREST)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=100)
    ours = np.round(read_image(path).rgb * 255).astype(int)
    seen = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(int)
    assert ours.shape == seen.shape == ((48, 80, 3) if orientation <= 4 else (80, 48, 3))
    assert np.array_equal(ours, seen)


def test_image_command_writes_a_phone_photo_upright(tmp_path, tiny_style_file):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.zeros((40, 80, 3), np.uint8)).save(path, exif=exif)
    out = tmp_path / "out.png"
    result = run("image", path, "-o", out, "--model", tiny_style_file)
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape[:2] == (80, 40)


@pytest.mark.parametrize("args, message", [
    (["image", "{photo}", "-o", "{out}", "--model", "m.safetensors", "--strength", "-1"], "Invalid value for '--strength'"),
    (["image", "{photo}", "-o", "{out}", "--superres", "3"], "is not 4, 8 or the name"),
    (["image", "--bogus"], "No such option '--bogus'"),
    (["image"], "Missing argument 'IN'"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_bad_options_are_one_line_with_exit_2(tmp_path, photo, args, message):
    args = [a.format(photo=photo, out=tmp_path / "out.png") for a in args]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("livestyle: error: ")
    assert message in result.output and "--help" in result.output


@pytest.mark.parametrize("failure", [RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                                  "allocate 6593445888 bytes"), MemoryError()])
def test_out_of_memory_is_one_line_with_a_way_out(tmp_path, photo, tiny_style_file, monkeypatch, failure):
    import livestyle.pipeline.still as still

    def runs_out(engine, image):
        raise failure

    monkeypatch.setattr(still, "stylize_image", runs_out)
    result = run("image", photo, "-o", tmp_path / "out.png", "--model", tiny_style_file)
    assert result.exit_code == 1
    assert result.output.strip() == ("livestyle: error: not enough memory to run tiny_style on a 30×21 image; "
                                     "try --tile 512 (or a smaller image)")


def test_other_engine_failures_are_not_called_out_of_memory():
    from livestyle.errors import is_out_of_memory

    assert not is_out_of_memory(RuntimeError("expected input with 3 channels"))
    assert not is_out_of_memory(ValueError("memory"))  # not a runtime failure of a library
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))


def test_optimize_settings_without_optimize_are_refused(tmp_path, photo, tiny_style_file):
    """They used to be ignored silently (only --style-image was refused)."""
    result = run("image", photo, "-o", tmp_path / "out.png", "--model", tiny_style_file, "--iters", "5", "--size", "64")
    assert result.exit_code == 2
    assert "--iters, --size are --optimize settings; a model does not use them" in result.output
    assert not (tmp_path / "out.png").exists()
