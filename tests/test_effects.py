"""Live controls: style strength, colour preservation, cross-fades, and their pipeline bundle."""
import cv2
import numpy as np
import pytest

from livestyle.postprocess.effects import CrossFade, FramePostprocess, blend_strength, preserve_colors
from livestyle.errors import InputError

rng = np.random.default_rng(0)



def frames(h=12, w=16, dtype=np.uint8):
    content, stylised = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    if dtype == np.float32:
        return content.astype(np.float32) / 255, stylised.astype(np.float32) / 255
    return content, stylised


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_strength_endpoints_and_midpoint(dtype):
    content, stylised = frames(dtype=dtype)
    assert blend_strength(content, stylised, 1.0) is stylised
    np.testing.assert_array_equal(blend_strength(content, stylised, 0.0), content)
    half = blend_strength(content, stylised, 0.5).astype(np.float64)
    expected = (content.astype(np.float64) + stylised) / 2
    np.testing.assert_allclose(half, expected, atol=0.51 if dtype == np.uint8 else 1e-6)
    assert blend_strength(content, stylised, 0.3).dtype == dtype
    np.testing.assert_array_equal(blend_strength(content, stylised, 7.0), stylised)  # clipped to 1


def test_strength_resizes_content_for_superres():
    content, _ = frames(6, 8)
    stylised = np.zeros((24, 32, 3), np.uint8)
    out = blend_strength(content, stylised, 0.0)
    assert out.shape == (24, 32, 3)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), content.mean(axis=(0, 1)), atol=6)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_preserve_colors_keeps_chroma_takes_luma(dtype):
    content, stylised = frames(dtype=dtype)
    out = preserve_colors(content, stylised)
    assert out.dtype == dtype and out.shape == stylised.shape
    to_ycc = lambda f: cv2.cvtColor(f.astype(np.float32) / (255 if dtype == np.uint8 else 1), cv2.COLOR_RGB2YCrCb)  # noqa: E731
    out_ycc, content_ycc, styled_ycc = to_ycc(out), to_ycc(content), to_ycc(stylised)
    # luma from the stylised frame; chroma from the content, up to gamut clipping and 8-bit rounding
    inside = (out_ycc[..., 0] > 0.2) & (out_ycc[..., 0] < 0.8) & (np.abs(content_ycc[..., 1:] - 0.5) < 0.15).all(-1)
    assert inside.mean() > 0.2
    np.testing.assert_allclose(out_ycc[..., 0][inside], styled_ycc[..., 0][inside], atol=0.02)
    np.testing.assert_allclose(out_ycc[..., 1:][inside], content_ycc[..., 1:][inside], atol=0.02)
    # a grey content frame gives a grey result whatever the stylised colours are
    grey = np.full_like(content, 128 if dtype == np.uint8 else 0.5)
    out = preserve_colors(grey, stylised).astype(np.float32)
    assert np.abs(out - out.mean(axis=2, keepdims=True)).max() <= (1.0 if dtype == np.uint8 else 0.005)


def test_preserve_colors_with_larger_stylised_frame():
    content = np.zeros((5, 7, 3), np.uint8)
    content[..., 0] = 200  # red
    stylised = np.full((20, 28, 3), 90, np.uint8)
    out = preserve_colors(content, stylised)
    assert out.shape == (20, 28, 3) and (out[..., 0] > out[..., 1] + 50).all()


def test_crossfade_ramps_from_old_to_new_then_stops():
    fade = CrossFade(frames=4)
    old, new = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)
    assert fade(old) is old and not fade.active
    fade.start()
    levels = [int(fade(new)[0, 0, 0]) for _ in range(6)]
    assert levels[:4] == sorted(levels[:4]) and 0 < levels[0] < levels[3] < 200  # rising, never a jump
    assert levels[4:] == [200, 200] and not fade.active
    with pytest.raises(ValueError):
        CrossFade(0)


def test_crossfade_across_output_sizes():
    fade = CrossFade(frames=2)
    fade(np.zeros((4, 4, 3), np.float32))
    fade.start()
    assert fade(np.ones((8, 8, 3), np.float32)).shape == (8, 8, 3)


def test_frame_postprocess_composes_and_adjusts():
    content, stylised = frames()
    post = FramePostprocess()
    assert post.is_identity and post(content, stylised) is stylised
    post.preserve_colors = True
    np.testing.assert_array_equal(post(content, stylised), preserve_colors(content, stylised))
    post.preserve_colors = False
    assert post.adjust_strength(-0.25) == 0.75 and post.adjust_strength(-5) == 0.0
    np.testing.assert_array_equal(post(content, stylised), content)
    post.adjust_strength(+1)
    post.switch_style()
    assert post.crossfade.active and not post.is_identity
    mid = post(content, stylised)  # fades from the last output (the content) towards the new frame
    assert 0 < np.abs(mid.astype(int) - stylised).mean() < np.abs(content.astype(int) - stylised).mean()
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(InputError, match="--strength"):
            FramePostprocess(strength=bad)


def test_image_command_effect_options(tmp_path, tiny_style_file):
    from click.testing import CliRunner

    from livestyle.cli import main

    photo = tmp_path / "in.png"
    pixels = np.random.default_rng(1).integers(0, 256, (12, 18, 3), dtype=np.uint8)
    cv2.imwrite(str(photo), pixels)

    def image(*options):
        out = tmp_path / "out.png"
        result = CliRunner().invoke(main, ["image", str(photo), "-o", str(out), "--model", str(tiny_style_file),
                                           "--backend", "torch", *options])
        assert result.exit_code == 0, result.output
        return cv2.imread(str(out))

    np.testing.assert_array_equal(image("--strength", "0"), pixels)
    full, half = image().astype(int), image("--strength", "0.5").astype(int)
    assert np.abs(half - (full + pixels) / 2).max() <= 1
    kept = cv2.cvtColor(image("--preserve-colors"), cv2.COLOR_BGR2YCrCb).astype(int)
    source = cv2.cvtColor(pixels, cv2.COLOR_BGR2YCrCb).astype(int)
    styled = cv2.cvtColor(full.astype(np.uint8), cv2.COLOR_BGR2YCrCb).astype(int)
    assert np.median(np.abs(kept[..., 1:] - source[..., 1:])) <= 3 < np.median(np.abs(styled[..., 1:] - source[..., 1:]))
    result = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "x.png"), "--model",
                                       str(tiny_style_file), "--strength", "1.5"])
    assert result.exit_code == 2 and "1.5" in result.output


def test_frame_postprocess_as_pipeline_hook():
    """FramePostprocess plugs into the pipeline's infer stage (hook(content, stylised) -> frame)."""
    import torch

    from livestyle.engines.chain import ChainEngine
    from livestyle.engines.torch_engine import TorchEngine
    from livestyle.pipeline.infer import InferStage
    from livestyle.io.sources import Frame
    from livestyle.models.superres import sr_net
    from livestyle.models.transform import transform_net

    torch.manual_seed(0)
    content = np.random.default_rng(2).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    chain = ChainEngine(TorchEngine(transform_net(width=4, blocks=1), device="cpu"),
                        TorchEngine(sr_net(scale=4, width=4, blocks=1), device="cpu"))
    post = FramePostprocess(strength=0.0)
    stage = InferStage(chain, postprocess=[post])
    out = stage([Frame(0, content)])[0].output
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    np.testing.assert_array_equal(out, blend_strength(content, np.zeros_like(out), 0.0))  # the upscaled input
    post.strength, post.preserve_colors = 1.0, True
    coloured = stage([Frame(1, content)])[0].output
    assert coloured.shape == (32, 48, 3) and not np.array_equal(coloured, out)


def test_effect_options_refused_with_optimize(tmp_path):
    from click.testing import CliRunner

    from livestyle.cli import main

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    result = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "o.png"), "--optimize",
                                       "--style-image", str(photo), "--strength", "0.5"])
    assert result.exit_code == 2 and "not to --optimize" in result.output
