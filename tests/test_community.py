"""Community models: pytorch/examples fast_neural_style checkpoints and ONNX exports load exactly."""
import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from livestyle import load_model_file
from livestyle.models.community import CommunityTransformNet
from livestyle.zoo.community import OnnxFileNet, community_kind, community_net_from_onnx, load_community_file
from livestyle.errors import BackendUnavailableError, WeightsError



def reference_layout(channels=(32, 64, 128), blocks=5, *, seed=0, running_stats=False):
    """A random state_dict with pytorch/examples TransformerNet's keys and shapes (0–255 scale)."""
    g = torch.Generator().manual_seed(seed)
    c1, c2, c3 = channels
    state = {}

    def conv(name, cin, cout, k):
        state[f"{name}.conv2d.weight"] = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
        state[f"{name}.conv2d.bias"] = torch.randn(cout, generator=g) * 0.1

    def norm(name, c):
        state[f"{name}.weight"] = 1.0 + 0.2 * torch.randn(c, generator=g)
        state[f"{name}.bias"] = 0.2 * torch.randn(c, generator=g)
        if running_stats:  # what PyTorch < 0.4 saved for InstanceNorm
            state[f"{name}.running_mean"] = torch.zeros(c)
            state[f"{name}.running_var"] = torch.ones(c)

    conv("conv1", 3, c1, 9), norm("in1", c1)
    conv("conv2", c1, c2, 3), norm("in2", c2)
    conv("conv3", c2, c3, 3), norm("in3", c3)
    for i in range(1, blocks + 1):
        conv(f"res{i}.conv1", c3, c3, 3), norm(f"res{i}.in1", c3)
        conv(f"res{i}.conv2", c3, c3, 3), norm(f"res{i}.in2", c3)
    conv("deconv1", c3, c2, 3), norm("in4", c2)
    conv("deconv2", c2, c1, 3), norm("in5", c1)
    conv("deconv3", c1, 3, 9)
    # the reference's output is in 0–255: give it a mid-grey offset and a visible spread
    state["deconv3.conv2d.weight"] *= 60.0
    state["deconv3.conv2d.bias"] += 127.0
    return state


def reference_forward(state, x255):
    """pytorch/examples TransformerNet's forward, written directly with functional ops."""
    def conv(name, x, stride=1, upsample=False):
        if upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        w = state[f"{name}.conv2d.weight"]
        k = w.shape[-1] // 2
        return F.conv2d(F.pad(x, (k, k, k, k), mode="reflect"), w, state[f"{name}.conv2d.bias"], stride)

    def norm(name, x):
        return F.instance_norm(x, weight=state[f"{name}.weight"], bias=state[f"{name}.bias"], eps=1e-5)

    y = F.relu(norm("in1", conv("conv1", x255)))
    y = F.relu(norm("in2", conv("conv2", y, 2)))
    y = F.relu(norm("in3", conv("conv3", y, 2)))
    i = 1
    while f"res{i}.conv1.conv2d.weight" in state:
        r = F.relu(norm(f"res{i}.in1", conv(f"res{i}.conv1", y)))
        y = y + norm(f"res{i}.in2", conv(f"res{i}.conv2", r))
        i += 1
    y = F.relu(norm("in4", conv("deconv1", y, upsample=True)))
    y = F.relu(norm("in5", conv("deconv2", y, upsample=True)))
    return conv("deconv3", y)


class ReferenceModule(nn.Module):
    """The functional reference as a module (0–255 in and out), for exporting to ONNX."""

    def __init__(self, state):
        super().__init__()
        self.keys = list(state)
        for i, v in enumerate(state.values()):
            self.register_buffer(f"t{i}", v.clone())

    def forward(self, x):
        return reference_forward({k: getattr(self, f"t{i}") for i, k in enumerate(self.keys)}, x)


@pytest.mark.parametrize("channels,blocks", [((32, 64, 128), 5), ((8, 16, 32), 5), ((6, 10, 12), 2)])
def test_checkpoint_matches_reference(tmp_path, channels, blocks):
    state = reference_layout(channels, blocks)
    path = tmp_path / "mosaic.pth"
    torch.save(state, path)
    net = load_community_file(path)
    assert isinstance(net, CommunityTransformNet)
    assert net.config.channels == channels and net.config.blocks == blocks
    x = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference_forward(state, x * 255.0)
        torch.testing.assert_close(net.forward_raw(x * 255.0), expected, atol=1e-3, rtol=1e-5)  # 0–255 scale
        torch.testing.assert_close(net(x), (expected / 255.0).clamp(0, 1), atol=4e-6, rtol=0)
    assert 0.05 < (expected / 255.0).clamp(0, 1).std()  # the comparison is not between two flat images


def test_legacy_checkpoint_with_running_stats(tmp_path):
    state = reference_layout((8, 16, 32), 5, running_stats=True)
    path = tmp_path / "old.model"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert community_kind(path) == "checkpoint"
    net = load_community_file(path)
    clean = {k: v for k, v in state.items() if "running_" not in k}
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(x), (reference_forward(clean, x * 255) / 255).clamp(0, 1), atol=4e-6, rtol=0)


def test_any_size_keeps_shape(tmp_path):
    torch.save(reference_layout((4, 8, 16), 1), tmp_path / "m.pth")
    net = load_community_file(tmp_path / "m.pth")
    with torch.no_grad():
        y = net(torch.rand(1, 3, 23, 17))
    assert y.shape == (1, 3, 23, 17) and 0 <= y.min() and y.max() <= 1


class NotTensors:
    """An arbitrary object: unpickling it would run code from this module."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"conv1.conv2d.weight": NotTensors()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="not a loadable PyTorch checkpoint"):
        load_community_file(tmp_path / "evil.pth")


def test_wrong_layout_is_refused(tmp_path):
    torch.save({"encoder.0.weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(WeightsError, match="not a pytorch/examples"):
        load_community_file(tmp_path / "x.pth")
    state = reference_layout((4, 8, 16), 1)
    state["in2.weight"] = torch.zeros(5)
    torch.save(state, tmp_path / "y.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        load_community_file(tmp_path / "y.pth")
    (tmp_path / "z.pth").write_bytes(b"hello")
    with pytest.raises(WeightsError, match="neither"):
        load_community_file(tmp_path / "z.pth")


def export_reference(state, path, size=(32, 32)):
    """Export the reference to ONNX at a fixed size, as pytorch/examples' --export_onnx does."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(ReferenceModule(state).eval(), (torch.rand(1, 3, *size) * 255,), str(path),
                          input_names=["input1"], output_names=["output1"], opset_version=17, dynamo=False)
    return path


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    state = reference_layout((8, 16, 32), 3, seed=3)
    return state, export_reference(state, tmp_path_factory.mktemp("onnx") / "candy.onnx")


def test_onnx_file_runs_in_0_1_convention(onnx_file):
    state, path = onnx_file
    assert community_kind(path) == "onnx"
    net = load_community_file(path)
    assert isinstance(net, OnnxFileNet) and net.value_range == 255.0  # detected
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(2))  # not the export size
    with torch.no_grad():
        expected = (reference_forward(state, x * 255.0) / 255.0).clamp(0, 1)
        torch.testing.assert_close(net(x), expected, atol=2e-5, rtol=0)


def test_onnx_value_range_detected_for_unit_range_models(tmp_path):
    class UnitRange(nn.Module):
        def forward(self, x):  # a [0, 1] model: inverts the image
            return 1.0 - x

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(UnitRange(), (torch.rand(1, 3, 16, 16),), str(tmp_path / "u.onnx"), dynamo=False)
    net = load_community_file(tmp_path / "u.onnx")
    assert net.value_range == 1.0
    x = torch.rand(1, 3, 20, 12)
    torch.testing.assert_close(net(x), 1.0 - x)
    assert load_community_file(tmp_path / "u.onnx", value_range=255).value_range == 255.0  # stated wins


def test_onnx_rebuilt_as_torch_network(onnx_file):
    state, path = onnx_file
    net = community_net_from_onnx(path)
    x = torch.rand(1, 3, 32, 36)
    with torch.no_grad():
        torch.testing.assert_close(net(x), (reference_forward(state, x * 255) / 255).clamp(0, 1), atol=4e-6, rtol=0)


def test_model_option_loads_community_files(tmp_path, onnx_file):
    torch.save(reference_layout((4, 8, 16), 1), tmp_path / "udnie.pth")
    model, meta = load_model_file(tmp_path / "udnie.pth")
    assert isinstance(model, CommunityTransformNet) and meta["livestyle.source"] == "pytorch_examples_checkpoint"
    model, meta = load_model_file(onnx_file[1])
    assert isinstance(model, OnnxFileNet) and meta["livestyle.source"] == "onnx"


def test_import_adds_catalog_entry(tmp_path, monkeypatch, onnx_file):
    from click.testing import CliRunner

    from livestyle import Catalog, choose_model
    from livestyle.cli import main

    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    state = reference_layout((8, 16, 32), 2)
    torch.save(state, tmp_path / "src.pth")
    result = CliRunner().invoke(main, ["import", str(tmp_path / "src.pth"), "--name", "rain_princess"])
    assert result.exit_code == 0, result.output
    catalog = Catalog(tmp_path)
    entry = catalog.get("rain_princess", task="style")
    assert entry.arch == {"channels": [8, 16, 32], "blocks": 2, "family": "pytorch_examples"}
    assert entry.credit and entry.licence and entry.recipe["source_sha256"]
    choice = choose_model(style="rain_princess", catalog=catalog)  # sha256 verified on load
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        torch.testing.assert_close(choice.model(x), (reference_forward(state, x * 255) / 255).clamp(0, 1),
                                   atol=4e-6, rtol=0)
    # an ONNX export imports too; a taken name is refused with one line
    assert CliRunner().invoke(main, ["import", str(onnx_file[1]), "--name", "candy"]).exit_code == 0
    assert set(json.loads((tmp_path / "catalog.json").read_text())["models"][i]["name"] for i in (0, 1)) == \
        {"rain_princess", "candy"}
    again = CliRunner().invoke(main, ["import", str(tmp_path / "src.pth"), "--name", "candy"])
    assert again.exit_code == 1 and "already" in again.output and "Traceback" not in again.output


def test_detection_ignores_suffix(tmp_path):
    torch.save(reference_layout((4, 8, 16), 1), tmp_path / "weights.onnx")  # misnamed checkpoints
    assert isinstance(load_community_file(tmp_path / "weights.onnx"), CommunityTransformNet)
    torch.save(reference_layout((4, 8, 16), 1), tmp_path / "weights.safetensors")
    assert isinstance(load_community_file(tmp_path / "weights.safetensors"), CommunityTransformNet)
    assert community_kind(tmp_path / "weights.onnx") == "checkpoint"
    np.save(tmp_path / "a.npy", np.zeros(3))
    assert community_kind(tmp_path / "a.npy") is None


def test_safetensors_never_taken_for_onnx(tmp_path, tiny_style_file):
    # a safetensors header length whose low byte is 0x08, like ONNX's first tag
    (tmp_path / "s.safetensors").write_bytes((8).to_bytes(8, "little") + b'{"a":{}}')
    assert community_kind(tmp_path / "s.safetensors") is None
    assert community_kind(tiny_style_file) is None
    (tmp_path / "one").write_bytes(b"\x08")
    assert community_kind(tmp_path / "one") is None


def test_onnx_fixed_size_graph_falls_back_to_resizing(tmp_path):
    class FixedSize(nn.Module):
        def forward(self, x):  # the Reshape constants tie this graph to its export size
            return 1.0 - x.reshape(1, 3 * 16 * 16).reshape(1, 3, 16, 16)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(FixedSize(), (torch.rand(1, 3, 16, 16),), str(tmp_path / "f.onnx"), dynamo=False)
    net = load_community_file(tmp_path / "f.onnx")
    assert net.fixed_size == (16, 16)
    flat = torch.full((1, 3, 20, 24), 0.25)
    y = net(flat)  # run at 16×16, resized back
    assert y.shape == (1, 3, 20, 24) and net._resize_to_fixed
    torch.testing.assert_close(y, torch.full_like(flat, 0.75))


def test_onnx_files_cannot_be_tiled(onnx_file):
    from livestyle.zoo.choice import ModelChoice
    from livestyle.engines.factory import build_engine
    from livestyle.errors import BackendUnavailableError

    choice = ModelChoice(load_community_file(onnx_file[1]), "candy", "style")
    engine = build_engine(choice, backend="onnx", device="cpu")  # runs through onnxruntime whatever the backend
    assert engine(torch.rand(1, 3, 12, 16)).shape == (1, 3, 12, 16)
    with pytest.raises(BackendUnavailableError, match="cannot be tiled"):
        build_engine(choice, tile=64)


def test_onnx_files_cannot_be_compiled(onnx_file):
    from livestyle.zoo.choice import ModelChoice
    from livestyle.engines.factory import build_engine

    net = load_community_file(onnx_file[1])
    with pytest.raises(BackendUnavailableError, match="--compile needs a PyTorch model"):
        build_engine(ModelChoice(name="candy", task="style", model=net), compile=True)


def test_an_onnx_file_run_directly_is_named_for_onnx_runtime(onnx_file):
    from livestyle.zoo.choice import ModelChoice
    from livestyle.engines.factory import build_engine

    engine = build_engine(ModelChoice(name="candy", task="style", model=load_community_file(onnx_file[1])))
    assert engine.name == "onnxruntime-cpu-fp32"  # not the torch shell it runs in
