import pytest
import torch

from livestyle.models.superres import SRNet, SRNetConfig, sr_net
from livestyle.models.transform import TransformNet, TransformNetConfig, transform_net


@pytest.mark.parametrize("margin", [0, 6])
@pytest.mark.parametrize("pixel_shuffle", [False, True])
@pytest.mark.parametrize("h,w", [(16, 16), (17, 23), (33, 18), (5, 7), (1, 1)])
def test_transform_net_keeps_any_size(h, w, pixel_shuffle, margin):
    net = transform_net(width=4, blocks=1, pixel_shuffle=pixel_shuffle, margin=margin).eval()
    y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


@pytest.mark.parametrize("scale", [4, 8])
@pytest.mark.parametrize("h,w", [(8, 8), (7, 11), (4, 4), (1, 1), (3, 9)])
def test_sr_net_scales_any_size(scale, h, w):
    net = sr_net(scale=scale, width=4, blocks=1).eval()
    y = net(torch.rand(1, 3, h, w))
    assert y.shape == (1, 3, scale * h, scale * w)
    assert y.min() >= 0 and y.max() <= 1


def test_paper_architecture_sizes():
    # Paper: first conv 32 channels, residual blocks at 128, 5 blocks; SR: 64 channels, 4 blocks.
    net = transform_net()
    assert net.encoder[0][0][1].out_channels == 32 and len(net.residuals) == 5
    assert net.residuals[0].body[0][1].in_channels == 128
    assert len(sr_net(scale=4).upsample) == 2 and len(sr_net(scale=8).upsample) == 3


def test_deterministic_and_batch_independent():
    torch.manual_seed(1)
    net = transform_net(width=4, blocks=2).eval()
    x = torch.rand(3, 3, 20, 24)
    with torch.no_grad():
        a, b = net(x), net(x)
        single = net(x[1:2])
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], single, atol=1e-5, rtol=0)


def _sr_after_a_step():
    net = sr_net(scale=4, width=4, blocks=1)  # residual: its zero-initialised tail passes no gradient back yet
    torch.nn.init.normal_(net.tail[1].weight, std=0.01)
    return net


@pytest.mark.parametrize("make", [lambda: transform_net(width=4, blocks=1), _sr_after_a_step,
                                  lambda: transform_net(width=4, blocks=1, pixel_shuffle=True),
                                  lambda: sr_net(scale=4, width=4, blocks=1, residual=False)])
def test_gradients_reach_every_parameter(make):
    net = make()
    net(torch.rand(2, 3, 12, 12)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_scale_rejected():
    with pytest.raises(ValueError):
        SRNetConfig(scale=3)


@pytest.mark.parametrize("bad", [{"margin": -1}, {"width": 0}, {"blocks": -1}])
def test_bad_transform_config_rejected(bad):
    with pytest.raises(ValueError):
        TransformNetConfig(**bad)


@pytest.mark.parametrize("pixel_shuffle", [False, True])
def test_margin_runs_the_plain_net_on_a_reflected_border_at_inference_only(pixel_shuffle):
    torch.manual_seed(0)
    with_margin = transform_net(width=4, blocks=1, pixel_shuffle=pixel_shuffle, margin=8)
    plain = transform_net(width=4, blocks=1, pixel_shuffle=pixel_shuffle)
    plain.load_state_dict(with_margin.state_dict())
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        reflected = torch.nn.functional.pad(x, (8, 8, 8, 8), mode="reflect")
        expected = plain.eval()(reflected)[..., 8:-8, 8:-8]
        assert torch.allclose(with_margin.eval()(x), expected, atol=1e-6)
        assert not torch.allclose(plain(x), expected, atol=1e-3)  # the margin does change the border
        # Training scores the network as it is, without the margin.
        assert torch.equal(with_margin.train()(x), plain.train()(x))


def test_config_round_trip():
    net = transform_net(width=8, blocks=3, margin=12)
    assert isinstance(net, TransformNet)
    assert net.config.to_dict() == {"width": 8, "blocks": 3, "pixel_shuffle": False, "margin": 12}
    assert TransformNet(TransformNetConfig(**net.config.to_dict())).config == net.config
    assert isinstance(SRNet(SRNetConfig(**sr_net(scale=8).config.to_dict())), SRNet)


def test_sr_net_output_follows_the_input_brightness():
    # Instance norm right after the first conv removes each image's per-channel mean and contrast, so
    # an SR net built with it returns (nearly) the same image for a darker, flatter input; the paper's
    # batch norm (fixed statistics at inference) keeps them.
    torch.manual_seed(0)
    x = torch.rand(1, 3, 12, 12)
    darker = 0.5 * x + 0.1
    with torch.no_grad():
        for norm, differs in (("instance", False), ("batch", True)):
            model = sr_net(scale=4, width=8, blocks=1, norm=norm, residual=False).eval()  # no bicubic skip
            gap = (model(x) - model(darker)).abs().mean().item()
            assert (gap > 1e-3) == differs, (norm, gap)


def test_residual_sr_net_starts_as_bicubic_and_paper_form_is_kept():
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.rand(1, 3, 10, 14)
    with torch.no_grad():
        start = sr_net(scale=4, width=8, blocks=1).eval()(x)
        bicubic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
        assert torch.allclose(start, bicubic, atol=1e-6)
        paper = sr_net(scale=4, width=8, blocks=1, residual=False).eval()
        assert not torch.allclose(paper(x), bicubic, atol=1e-2)  # the paper's net starts anywhere
    assert paper.config.to_dict()["residual"] is False


def test_pixel_shuffle_net_has_no_full_resolution_feature_map():
    net = transform_net(width=4, blocks=1, pixel_shuffle=True).eval()
    conv_inputs = []
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda m, args, out: conv_inputs.append(args[0].shape))
    net(torch.rand(1, 3, 32, 48))
    assert len(conv_inputs) == 6  # stem, stride-2 conv, 2 in the block, upsampling conv, head
    assert all(shape[-2] <= 16 + 2 and shape[-1] <= 24 + 2 for shape in conv_inputs)  # ≤ half size + reflection pad
    # the plain net, for contrast, convolves full-size maps (its 9×9 convs)
    plain = transform_net(width=4, blocks=1).eval()
    full = []
    plain.encoder[0][0][1].register_forward_hook(lambda m, args, out: full.append(args[0].shape))
    plain(torch.rand(1, 3, 32, 48))
    assert full[0][-2:] == (32 + 8, 48 + 8)
