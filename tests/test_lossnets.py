import json

import numpy as np
import pytest
import torch

from livestyle.errors import LossNetWeightsError
from livestyle.models import ENV_LOSSNET_WEIGHTS
from livestyle.models.lossnets import (LOSS_NETWORKS, TORCHVISION, VGG16Features, convention_from_metadata, loss_network,
                                       resolve_weights)


class ImageNetClassifier(torch.nn.Module):
    """A whole loss-network family as an ImageNet classifier, [0, 1] RGB (N, 3, H, W) → logits (N, 1000):
    weights and their input convention loaded right give the expected top-1 labels."""

    def __init__(self, name: str):
        super().__init__()
        resolved = resolve_weights(name)
        self.model = LOSS_NETWORKS[name].build().eval()
        self.model.load_state_dict(resolved.state_dict)
        self.convention = resolved.convention

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.convention.apply(images))


@pytest.fixture(autouse=True)
def no_weights_anywhere(monkeypatch, tmp_path):
    """No env variables, an empty torch hub cache, and no network: the promised error path."""
    monkeypatch.delenv(ENV_LOSSNET_WEIGHTS, raising=False)
    monkeypatch.delenv("LIVESTYLE_VGG16", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)


def test_vgg16_taps_and_truncation():
    net = VGG16Features(pretrained=False)
    out = net(torch.rand(1, 3, 32, 32))
    assert list(out) == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert out["relu2_2"].shape == (1, 128, 16, 16) and out["relu4_3"].shape == (1, 512, 4, 4)
    assert len(net.features) == 23
    assert len(loss_network("vgg16", taps=["relu2_2"], pretrained=False).features) == 9


def test_frozen_but_gradients_reach_input():
    net = loss_network("squeezenet1_1", pretrained=False)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    sum(v.sum() for v in net(x).values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0
    net.train()
    assert not net.training


def test_missing_weights_error_names_option_and_variable():
    for name in ("vgg16", "squeezenet1_1"):
        with pytest.raises(LossNetWeightsError, match="--loss-net-weights.*LIVESTYLE_LOSSNET_WEIGHTS"):
            loss_network(name)


def test_unknown_tap_and_net():
    with pytest.raises(LossNetWeightsError, match="unknown tap"):
        loss_network("vgg16", taps=["relu9_9"], pretrained=False)
    with pytest.raises(LossNetWeightsError, match="unknown loss network"):
        loss_network("alexnet", pretrained=False)


def test_caffe_convention_from_metadata():
    conv = convention_from_metadata({"input": "BGR channel order, values 0..255, minus per-channel mean B=104 G=117 R=123"})
    assert conv.channel_order == "BGR" and conv.mean == (104.0, 117.0, 123.0)
    x = torch.zeros(1, 3, 1, 1)
    x[0, 0] = 1.0  # pure red
    y = conv.apply(x)
    assert y[0, :, 0, 0].tolist() == [-104.0, -117.0, 255.0 - 123.0]
    assert convention_from_metadata({}) is TORCHVISION
    with pytest.raises(LossNetWeightsError):
        convention_from_metadata({"input": "something else"})


def test_weights_file_of_wrong_network(shared_data):
    with pytest.raises(LossNetWeightsError, match="do not match"):
        loss_network("vgg16", weights=shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors")


def test_shared_squeezenet_classifies_check_images(shared_data, monkeypatch):
    """Top-1 labels of lossnets/check/: catches a swapped channel order or a wrong mean."""
    import cv2

    check = shared_data / "lossnets" / "check"
    weights = shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors"
    labels = (check / "imagenet_labels.txt").read_text().splitlines()
    expected = json.loads((check / "expected_top1.json").read_text())
    monkeypatch.setenv(ENV_LOSSNET_WEIGHTS, str(weights))  # resolved through the environment variable
    classifier = ImageNetClassifier("squeezenet1_1")
    assert classifier.convention.channel_order == "BGR"
    for name, label in expected.items():
        bgr = cv2.resize(cv2.imread(str(check / name)), (227, 227), interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            top1 = classifier(x).argmax(1).item()
        assert labels[top1] == label, name
    net = loss_network("squeezenet1_1", weights=weights)
    assert net.weights_sha256.startswith("e4a2a356")


def test_the_command_line_offers_every_loss_network():
    """The CLI's choices come from a torch-free list; it must name the networks this module builds."""
    from livestyle.models import LOSS_NETWORK_NAMES

    assert set(LOSS_NETWORK_NAMES) == set(LOSS_NETWORKS)


def test_a_variable_naming_another_network_s_weights_is_passed_over_with_a_warning(shared_data, monkeypatch):
    """$LIVESTYLE_LOSSNET_WEIGHTS set to the SqueezeNet file made every vgg16 use fail with "does not
    hold vgg16 weights"; it is meant for SqueezeNet, so vgg16 passes it over (saying so) and goes on."""
    from livestyle.models.lossnets import environment_weights, file_network

    squeezenet = shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors"
    assert file_network(squeezenet) == "squeezenet1_1"
    monkeypatch.setenv(ENV_LOSSNET_WEIGHTS, str(squeezenet))
    assert environment_weights("squeezenet1_1") == str(squeezenet)
    with pytest.warns(UserWarning, match=r"\$LIVESTYLE_LOSSNET_WEIGHTS holds squeezenet1_1 weights .*the vgg16 "
                                         "loss network does not use them"):
        assert environment_weights("vgg16") is None
    with pytest.warns(UserWarning, match="does not use them"), \
            pytest.raises(LossNetWeightsError, match="no ImageNet weights for loss network 'vgg16'"):
        loss_network("vgg16")  # offline here: the next places to look have none either


def test_file_network_reads_torchvision_files_too(tmp_path):
    from livestyle.models.lossnets import file_network

    path = tmp_path / "squeezenet.pth"
    torch.save(LOSS_NETWORKS["squeezenet1_1"].build().state_dict(), path)
    assert file_network(path) == "squeezenet1_1"
    torch.save({"features.0.weight": torch.zeros(2)}, tmp_path / "other.pth")
    assert file_network(tmp_path / "other.pth") is None
