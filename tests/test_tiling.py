"""Tiled inference: tiles with whole-frame instance-norm statistics reproduce the untiled output."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from livestyle.models.superres import sr_net
from livestyle.models.transform import transform_net
from livestyle.engines.tiling import TiledEngine, TilingError, _feather

# Stated tolerances (float32, CPU): exact statistics → max abs difference 1e-5 on [0, 1] outputs
# (measured ~2e-6); downscaled statistics → mean abs difference 0.1 (random nets, measured 0.03–0.08).
EXACT_ATOL = 1e-5
DOWNSCALED_MEAN_ATOL = 0.1



def colour_blocks(h, w, seed=0):
    """Large flat colour regions plus some texture: per-tile normalisation would recolour them."""
    g = torch.Generator().manual_seed(seed)
    blocks = F.interpolate(torch.rand(1, 3, 3, 4, generator=g), size=(h, w), mode="nearest")
    return (0.8 * blocks + 0.2 * torch.rand(1, 3, h, w, generator=g)).clamp(0, 1)


def untiled(net, x):
    with torch.no_grad():
        return net(x)


@pytest.mark.parametrize("make,size,tile", [
    (lambda: transform_net(width=4, blocks=1), (50, 70), 32),  # not multiples of 4: padded like the net does
    (lambda: transform_net(width=4, blocks=1, margin=6), (50, 70), 32),  # the margin goes around the frame once
    (lambda: sr_net(scale=4, width=4, blocks=1), (22, 37), 16),
])
def test_exact_statistics_match_untiled(make, size, tile):
    torch.manual_seed(0)
    net = make().eval()
    x = colour_blocks(*size)
    engine = TiledEngine(net, tile=tile, overlap=8)
    y = engine(x)
    ref = untiled(net, x)
    assert y.shape == ref.shape
    assert (y - ref).abs().max().item() <= EXACT_ATOL


def test_per_tile_statistics_would_change_colours():
    """The failure this module exists to prevent: tiles normalised on their own drift in colour."""
    torch.manual_seed(1)
    net = transform_net(width=4, blocks=1).eval()
    x = colour_blocks(64, 96, seed=1)
    ref = untiled(net, x)
    naive = TiledEngine(net, tile=32, overlap=8)
    naive._accumulate_statistics = lambda frame: naive._set_mode("live")  # each tile uses its own statistics
    tile_colour = lambda y: F.avg_pool2d(y, 32)  # noqa: E731 - mean colour of each 32×32 tile
    naive_shift = (tile_colour(naive(x)) - tile_colour(ref)).abs().max().item()
    fixed_shift = (tile_colour(TiledEngine(net, tile=32, overlap=8)(x)) - tile_colour(ref)).abs().max().item()
    assert naive_shift > 0.01 and fixed_shift <= EXACT_ATOL


def test_downscaled_statistics():
    torch.manual_seed(2)
    net = transform_net(width=4, blocks=1).eval()
    x = colour_blocks(96, 128, seed=2)
    ref = untiled(net, x)
    whole = TiledEngine(net, tile=32, stats="downscaled", stats_size=128)  # frame fits: its own statistics
    assert (whole(x) - ref).abs().max().item() <= EXACT_ATOL
    small = TiledEngine(net, tile=32, stats="downscaled", stats_size=64)
    y = small(x)
    assert torch.isfinite(y).all() and (y - ref).abs().mean().item() <= DOWNSCALED_MEAN_ATOL


def test_community_net_tiles(tmp_path):
    from livestyle.models.community import CommunityNetConfig, CommunityTransformNet

    torch.manual_seed(3)
    net = CommunityTransformNet(CommunityNetConfig((4, 8, 8), 1)).eval()
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(127.0)  # keep the 0–255 output away from the clamp
    x = colour_blocks(48, 76, seed=3)
    assert (TiledEngine(net, tile=32)(x) - untiled(net, x)).abs().max().item() <= EXACT_ATOL


def test_small_frames_run_whole_and_batches_work():
    torch.manual_seed(4)
    net = transform_net(width=4, blocks=1).eval()
    x = torch.rand(2, 3, 24, 28)
    assert (TiledEngine(net, tile=32)(x) - untiled(net, x)).abs().max().item() <= 1e-6
    big = colour_blocks(40, 72).repeat(2, 1, 1, 1)
    big[1] = big[1].flip(-1)
    y = TiledEngine(net, tile=32, overlap=8)(big)
    assert (y - untiled(net, big)).abs().max().item() <= EXACT_ATOL  # statistics are per frame


def test_feathered_weights_cross_fade_to_one():
    left, right = _feather(24, 0, 8, "cpu", torch.float32), _feather(24, 8, 0, "cpu", torch.float32)
    torch.testing.assert_close(left[-8:] + right[:8], torch.ones(8))
    assert (left > 0).all() and (right > 0).all() and left[0] == 1 and right[-1] == 1


def test_rejected_models_and_sizes():
    with pytest.raises(TilingError, match="too small"):
        TiledEngine(transform_net(width=4, blocks=1), tile=4)
    with pytest.raises(TilingError, match="receptive field"):
        TiledEngine(nn.Conv2d(3, 3, 3), tile=64)
    with pytest.raises(TilingError, match="statistics mode"):
        TiledEngine(transform_net(width=4, blocks=1), tile=64, stats="median")


def test_image_command_tile_option(tmp_path, tiny_style_file):
    import cv2
    import numpy as np
    from click.testing import CliRunner

    from livestyle.cli import main

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), (colour_blocks(36, 60)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    outputs = []
    for options in ([], ["--tile", "32"]):
        out = tmp_path / f"out{len(outputs)}.png"
        result = CliRunner().invoke(main, ["image", str(photo), "-o", str(out), "--model", str(tiny_style_file),
                                           "--backend", "torch", *options])
        assert result.exit_code == 0, result.output
        outputs.append(cv2.imread(str(out)).astype(int))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1  # 8-bit rounding of outputs equal to 1e-5
    bad = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "b.png"), "--model",
                                    str(tiny_style_file), "--tile", "32", "--backend", "onnx"])
    assert bad.exit_code == 1 and "--tile runs on the torch backend" in bad.output
    scaled = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "c.png"), "--model",
                                       str(tiny_style_file), "--tile", "32", "--infer-scale", "0.5"])
    assert scaled.exit_code == 1 and "leave out --infer-scale" in scaled.output  # was silently ignored
