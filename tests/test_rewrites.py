"""Exact rewrites (engines/rewrites.py) against the plain modules and models."""
import pytest
import torch
from torch import nn

from livestyle import sr_net, transform_net
from livestyle.models.rewrites import (FusedInstanceNorm, SpaceToDepthConv, SubpixelUpsampleConv,
                                       rewrite_for_inference, safe_half_norms, to_half_keeping_norms_fp32)
from livestyle.models.transform import ConvLayer

FP32_TOL = 1e-5  # max abs error on [0, 1] images, rewritten vs plain model, FP32
FP64_TOL = 1e-10


def randomise_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial norm affines and batch-norm statistics (fresh ones are gamma=1, beta=0, mean 0,
    variance 1, which would hide mistakes)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=g)
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.3
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.2
            m.running_var = 0.5 + torch.rand(m.num_features, generator=g)
    return model.eval()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 7), (16, 9)])
def test_subpixel_conv_equals_upsample_reflect_conv(size):
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 4, 3).double()
    plain = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), conv)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    expected = plain(x)
    actual = SubpixelUpsampleConv(conv)(x)
    assert actual.shape == expected.shape == (2, 4, 2 * x.shape[2], 2 * x.shape[3])
    assert (actual - expected).abs().max().item() < FP64_TOL


def test_subpixel_conv_rejects_other_convs():
    with pytest.raises(ValueError, match="3×3"):
        SubpixelUpsampleConv(nn.Conv2d(4, 4, 3, stride=2))


@pytest.mark.parametrize("relu", [False, True])
def test_fused_instance_norm_matches_instance_norm(relu):
    torch.manual_seed(0)
    norm = randomise_norms(nn.Sequential(nn.InstanceNorm2d(6, affine=True)))[0]
    x = torch.randn(3, 6, 11, 13) * 4 + 2
    expected = norm(x).relu() if relu else norm(x)
    actual = FusedInstanceNorm(norm, relu=relu)(x)
    assert (actual - expected).abs().max().item() < FP32_TOL
    native = FusedInstanceNorm(norm, relu=relu, native=True)(x)
    assert (native - expected).abs().max().item() < FP32_TOL


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_instance_norm_half_input_is_finite_on_constant_and_large_frames(dtype):
    norm = randomise_norms(nn.Sequential(nn.InstanceNorm2d(4, affine=True)))[0]
    fused = FusedInstanceNorm(norm)
    constant = torch.full((1, 4, 64, 64), 0.7, dtype=dtype)
    out = fused(constant)
    assert out.dtype == dtype and torch.isfinite(out).all()
    # Zero variance: the output is the norm's shift, beta, everywhere.
    assert torch.allclose(out.float(), norm.bias.view(1, 4, 1, 1).expand_as(out).float(), atol=1e-2)
    # Large activations: half-precision sums of squares would overflow (65504) without FP32 statistics.
    large = (torch.randn(1, 4, 96, 96) * 300).to(dtype)
    out = fused(large)
    reference = norm(large.float())
    assert torch.isfinite(out).all()
    assert (out.float() - reference).abs().max().item() < 0.05


@pytest.mark.parametrize("build", [lambda: transform_net(width=8, blocks=2),
                                   lambda: transform_net(width=8, blocks=2, pixel_shuffle=True),
                                   lambda: sr_net(scale=4, width=8, blocks=1),
                                   lambda: sr_net(scale=4, width=8, blocks=1, norm="batch"),
                                   lambda: sr_net(scale=8, width=8, blocks=1, norm="instance", residual=False)],
                         ids=["style", "style-pixel-shuffle", "sr4", "sr4-batchnorm", "sr8-paper-instancenorm"])
@pytest.mark.parametrize("options", [{}, {"subpixel": False}, {"fused_norm": False}], ids=["all", "norm", "subpixel"])
def test_rewritten_model_matches_plain_model_fp32(build, options):
    torch.manual_seed(0)
    model = randomise_norms(build())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rewritten = rewrite_for_inference(model, **options)
    for shape in [(1, 3, 17, 23), (2, 3, 12, 8), (1, 3, 5, 6)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            assert (rewritten(x) - model(x)).abs().max().item() < FP32_TOL
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input model untouched


def test_rewrite_is_exact_in_float64():
    torch.manual_seed(0)
    model = randomise_norms(transform_net(width=4, blocks=1)).double()
    rewritten = rewrite_for_inference(model)
    x = torch.rand(1, 3, 19, 14, dtype=torch.float64)
    with torch.no_grad():
        assert (rewritten(x) - model(x)).abs().max().item() < FP64_TOL


def test_rewrite_removes_upsamples_and_biases_before_norms():
    rewritten = rewrite_for_inference(transform_net(width=4, blocks=2))
    assert not any(isinstance(m, nn.Upsample) for m in rewritten.modules())
    assert sum(isinstance(m, SubpixelUpsampleConv) for m in rewritten.modules()) == 2
    norms = [m for m in rewritten.modules() if isinstance(m, FusedInstanceNorm)]
    assert len(norms) == 3 + 2 * 2 + 2
    biased = [m for m in rewritten.modules() if isinstance(m, (nn.Conv2d, SpaceToDepthConv)) and m.bias is not None]
    assert biased == [rewritten.decoder[-1]]  # only the output conv, which no norm follows


def test_rewrite_folds_batch_norms_into_convolutions():
    model = randomise_norms(sr_net(scale=4, width=8, blocks=2, norm="batch")).double()
    rewritten = rewrite_for_inference(model)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Upsample)) for m in rewritten.modules())
    convs = [m for m in rewritten.modules() if isinstance(m, (nn.Conv2d, SubpixelUpsampleConv, SpaceToDepthConv))]
    assert len(convs) == 1 + 2 * 2 + 2 + 1 and all(c.bias is not None for c in convs)
    x = torch.rand(1, 3, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        assert (rewritten(x) - model(x)).abs().max().item() < FP64_TOL


@pytest.mark.parametrize("k,c_in,c_out", [(9, 8, 3), (9, 64, 3), (3, 4, 5), (5, 2, 2)])
@pytest.mark.parametrize("size", [(16, 16), (10, 14), (8, 6)])
def test_space_to_depth_conv_equals_reflect_conv(k, c_in, c_out, size):
    torch.manual_seed(0)
    layer = ConvLayer(c_in, c_out, k).double()
    x = torch.rand(2, c_in, *size, dtype=torch.float64)
    with torch.no_grad():
        assert (SpaceToDepthConv(layer)(x) - layer(x)).abs().max().item() < FP64_TOL


def test_space_to_depth_rewrite_replaces_the_output_convs():
    style = rewrite_for_inference(transform_net(width=4, blocks=1))
    sr = rewrite_for_inference(sr_net(scale=4, width=4, blocks=1))
    assert isinstance(style.decoder[-1], SpaceToDepthConv) and isinstance(sr.tail, SpaceToDepthConv)
    assert style.decoder[-1].weight.shape == (12, 16, 5, 5)
    plain = rewrite_for_inference(transform_net(width=4, blocks=1), space_to_depth_output=False)
    assert not any(isinstance(m, SpaceToDepthConv) for m in plain.modules())
    with pytest.raises(ValueError):
        SpaceToDepthConv(ConvLayer(4, 4, 3, stride=2))


def test_half_conversion_keeps_norms_fp32():
    model = to_half_keeping_norms_fp32(safe_half_norms(transform_net(width=4, blocks=1)), torch.float16)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, FusedInstanceNorm)]
    assert convs and all(c.weight.dtype == torch.float16 for c in convs)
    assert norms and all(n.weight.dtype == n.bias.dtype == torch.float32 for n in norms)
