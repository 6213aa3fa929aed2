"""Style + super-resolution chains: one engine, stylise at low resolution then upscale."""
import itertools
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from livestyle import Catalog, choose_model, save_model_file, sr_net, transform_net
from livestyle.engines.chain import ChainEngine
from livestyle.engines.factory import build_engine
from livestyle.cli import main
from livestyle.engines.torch_engine import TorchEngine
from livestyle.errors import UnknownModelError



@pytest.fixture
def catalog_dir(tmp_path):
    torch.manual_seed(0)
    sha_style = save_model_file(transform_net(width=4, blocks=1), tmp_path / "mosaic.safetensors")
    sha_sr = save_model_file(sr_net(scale=4, width=4, blocks=1), tmp_path / "sr_x4.safetensors")
    (tmp_path / "catalog.json").write_text(json.dumps({"models": [
        {"name": "mosaic", "task": "style", "arch": {"width": 4, "blocks": 1}, "file": "mosaic.safetensors",
         "sha256": sha_style},
        {"name": "sr_x4", "task": "superres", "arch": {"scale": 4, "width": 4, "blocks": 1},
         "file": "sr_x4.safetensors", "sha256": sha_sr},
    ]}))
    return tmp_path


def test_chain_engine_runs_style_then_superres():
    torch.manual_seed(1)
    style, sr = transform_net(width=4, blocks=1).eval(), sr_net(scale=4, width=4, blocks=1).eval()
    chain = ChainEngine(TorchEngine(style, device="cpu"), TorchEngine(sr, device="cpu"))
    x = torch.rand(2, 3, 10, 14)
    y = chain(x)
    assert chain.scale == 4 and chain.device.type == "cpu" and "→" in chain.name
    with torch.no_grad():
        torch.testing.assert_close(y, sr(style(x)), atol=1e-5, rtol=0)  # FP32, kernels may differ per call
    assert y.shape == (2, 3, 40, 56)


def test_choose_style_and_superres_gives_a_chain(catalog_dir):
    catalog = Catalog(catalog_dir)
    choice = choose_model(style="mosaic", superres=4, catalog=catalog)
    assert choice.task == "chain" and choice.scale == 4 and choice.name == "mosaic+sr_x4"
    engine = build_engine(choice, backend="torch", device="cpu")
    assert isinstance(engine, ChainEngine) and engine(torch.rand(1, 3, 8, 12)).shape == (1, 3, 32, 48)
    tiled = build_engine(choice, device="cpu", tile=32)  # both stages tiled
    x = torch.rand(1, 3, 12, 40)
    assert (tiled(x) - engine(x)).abs().max().item() <= 1e-5


def test_chain_with_an_sr_model_by_name(catalog_dir):
    choice = choose_model(style="mosaic", superres="sr_x4", catalog=Catalog(catalog_dir))
    assert choice.task == "chain" and choice.name == "mosaic+sr_x4" and choice.scale == 4
    with pytest.raises(UnknownModelError, match="unknown model 'mosaic'; known: sr_x4"):
        choose_model(style="mosaic", superres="mosaic", catalog=Catalog(catalog_dir))  # a style is not an SR model


def test_invalid_combinations(catalog_dir, tiny_sr_file, tiny_style_file):
    catalog = Catalog(catalog_dir)
    with pytest.raises(UnknownModelError, match="super-resolution model; --superres chains"):
        choose_model(model_file=tiny_sr_file, superres=4, catalog=catalog)
    with pytest.raises(UnknownModelError, match="exactly one"):
        choose_model(style="mosaic", model_file=tiny_style_file, catalog=catalog)
    with pytest.raises(UnknownModelError, match="×8"):
        choose_model(style="mosaic", superres=8, catalog=catalog)


def test_cli_image_chain(tmp_path, catalog_dir, tiny_style_file, monkeypatch):
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(catalog_dir))
    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8))
    styles = (["--style", "mosaic"], ["--model", str(tiny_style_file)])
    for args, superres in itertools.product(styles, ("4", "sr_x4")):  # the ×4 default, or the SR model by name
        out = tmp_path / "out.png"
        out.unlink(missing_ok=True)
        result = CliRunner().invoke(main, ["image", str(photo), "-o", str(out), *args, "--superres", superres, "--backend", "torch"])
        assert result.exit_code == 0, result.output
        assert cv2.imread(str(out)).shape == (36, 52, 3) and "→" in result.output
