"""The CPU-fast SR network (SubpixelSRNet): shape, low-resolution convolutions, bicubic start, every
backend, tiling, training through the CLI, and which ×N model `--superres N` means on which device."""
import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from samples import smooth_image

from livestyle import Catalog, choose_model, load_model_file, save_model_file, sr_net, transform_net
from livestyle.cli import main
from livestyle.engines.export.onnx import export_onnx
from livestyle.engines.factory import create_engine
from livestyle.engines.memory import activation_bytes_per_pixel
from livestyle.engines.tiling import TiledEngine
from livestyle.errors import TrainingError, WeightsError
from livestyle.models.rewrites import rewrite_for_inference
from livestyle.models.subpixel_sr import SubpixelSRNet, SubpixelSRNetConfig, subpixel_sr_net
from livestyle.training.checkpoints import check_same_run
from livestyle.training.recipes import RunOptions, SuperResRecipe
from livestyle.training.run import train_superres
from livestyle.zoo.choice import resolve_variant
from livestyle.zoo.registry import build_model, task_of

FP32_TOL = 1e-4  # max abs error between backends on [0, 1] images (as tests/test_export.py)


def trained_like(scale=4, width=8, blocks=1, seed=0):
    """A small net whose last conv is not zero any more, as after training."""
    torch.manual_seed(seed)
    net = subpixel_sr_net(scale=scale, width=width, blocks=blocks)
    with torch.no_grad():
        net.tail[1].weight.normal_(0, 0.05)
        net.tail[1].bias.normal_(0, 0.01)
    return net.eval()


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("h,w", [(8, 8), (7, 11), (1, 1), (2, 5), (3, 9)])
def test_scales_any_size_into_the_unit_range(scale, h, w):
    y = trained_like(scale)(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, scale * h, scale * w)
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()


@pytest.mark.parametrize("scale", [4, 8])
def test_every_convolution_runs_at_the_input_resolution(scale):
    net = trained_like(scale, blocks=2)
    seen = []
    hooks = [m.register_forward_hook(lambda m, args, out: seen.append(tuple(out.shape[-2:])))
             for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    net(torch.rand(1, 3, 12, 20))
    for hook in hooks:
        hook.remove()
    assert len(seen) == 2 + 2 * 2 and set(seen) == {(12, 20)}


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 5), (10, 14)])
def test_starts_as_bicubic_computed_at_the_low_resolution(scale, h, w):
    # the fixed phase convolution is F.interpolate's bicubic (A = −0.75, edges clamped) to float rounding
    torch.manual_seed(0)
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        start = subpixel_sr_net(scale=scale, width=8, blocks=1).eval()(x)
        bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        assert (start - bicubic).abs().max().item() < 1e-6
        assert not torch.allclose(trained_like(scale)(x), bicubic, atol=1e-3)
    assert "bicubic" not in subpixel_sr_net(scale=scale).state_dict()  # fixed, not a weight in model files


def test_gradients_reach_every_parameter():
    net = trained_like(blocks=2).train()
    net(torch.rand(2, 3, 12, 12)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("bad", [{"scale": 3}, {"scale": 1}, {"width": 0}, {"blocks": -1}, {"family": "srnet"}])
def test_bad_config_rejected(bad):
    with pytest.raises(ValueError):
        SubpixelSRNetConfig(**bad)


def test_registry_builds_it_from_its_record_and_files_round_trip(tmp_path):
    net = trained_like(scale=8, width=6, blocks=2)
    record = net.config.to_dict()
    assert record == {"scale": 8, "width": 6, "blocks": 2, "family": "subpixel"}
    assert isinstance(build_model("superres", record), SubpixelSRNet) and task_of(net) == "superres"
    with pytest.raises(WeightsError, match="bad architecture"):
        build_model("superres", {**record, "norm": "batch"})
    save_model_file(net, tmp_path / "fast.safetensors")
    loaded, metadata = load_model_file(tmp_path / "fast.safetensors")
    assert metadata["livestyle.task"] == "superres" and loaded.config == net.config
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_exact_rewrites_leave_it_unchanged():
    net = trained_like(blocks=2)
    x = torch.rand(2, 3, 11, 13)
    with torch.no_grad():
        assert (rewrite_for_inference(net)(x) - net(x)).abs().max().item() < 1e-6


@pytest.mark.parametrize("scale", [4, 8])
def test_onnx_runtime_matches_torch(scale, tmp_path):
    pytest.importorskip("onnxruntime")
    net = trained_like(scale)
    engine = create_engine(net, backend="onnx", device="cpu", cache_dir=tmp_path)
    for shape in [(1, 3, 9, 12), (2, 3, 16, 16), (1, 3, 1, 1), (1, 3, 3, 7)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = net(x)
        out = engine(x)
        assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


def test_onnx_graph_has_symbolic_height_and_width_and_no_cubic_resize():
    pytest.importorskip("onnxruntime")
    proto = export_onnx(trained_like(8), check=True)
    dims = [[d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
            for value in (proto.graph.input[0], proto.graph.output[0])]
    assert all(isinstance(d, str) for shape in dims for d in (shape[0], shape[2], shape[3])), dims
    assert dims[0][1] == dims[1][1] == 3
    # the bicubic skip is a low-resolution convolution, not a Resize on the ×scale grid
    assert not [node for node in proto.graph.node if node.op_type == "Resize"]


def test_openvino_matches_torch(tmp_path):
    pytest.importorskip("openvino")
    from livestyle.engines.openvino_engine import OpenVinoEngine

    net = trained_like(4)
    engine = OpenVinoEngine(net, threads=1, cache_dir=tmp_path)
    for shape in [(1, 3, 9, 12), (1, 3, 2, 5)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = net(x)
        out = engine(x)
        assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


def test_frames_over_the_memory_budget_run_in_exact_tiles_through_the_chosen_backend(tmp_path):
    pytest.importorskip("onnxruntime")
    net = trained_like(4, blocks=2)
    x = torch.rand(1, 3, 60, 84)
    with torch.no_grad():
        whole = net(x)
    tight = create_engine(net, backend="onnx", device="cpu", cache_dir=tmp_path,
                          memory_budget=int(activation_bytes_per_pixel(net) * 60 * 84 / 3))
    out = tight(x)
    assert "tiled" in tight.name and tight.name.startswith("onnx")  # tiles run on ONNX Runtime, not torch
    assert out.shape == whole.shape and (out - whole).abs().max().item() < FP32_TOL


def test_export_command_takes_it(tmp_path):
    pytest.importorskip("onnxruntime")
    save_model_file(trained_like(), tmp_path / "fast.safetensors")
    for extra in ([], ["--rewrite"]):
        result = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "fast.safetensors"), *extra,
                                           "-o", str(tmp_path / f"fast{len(extra)}.onnx")])
        assert result.exit_code == 0, result.output
        assert "ONNX Runtime max abs error" in result.output


def test_tiles_reproduce_the_whole_frame():
    net = trained_like(blocks=2)
    x = torch.rand(1, 3, 30, 45)
    with torch.no_grad():
        whole = net(x)
    tiled = TiledEngine(net, tile=16, overlap=4)(x)
    assert tiled.shape == whole.shape and (tiled - whole).abs().max().item() < 1e-5


# --- which model `--superres N` means ------------------------------------------------------------

def two_sr_catalog(folder, *, with_full=True):
    """x4 (the paper's SRNet, full) and x4_fast (SubpixelSRNet, small), plus a style."""
    torch.manual_seed(0)
    models = {"x4": (sr_net(scale=4, width=4, blocks=1), "full"), "x4_fast": (trained_like(), "small"),
              "mosaic": (transform_net(width=4, blocks=1), "full")}
    if not with_full:
        del models["x4"]
    entries = [{"name": name, "task": task_of(model), "arch": model.config.to_dict(), "file": f"{name}.safetensors",
                "sha256": save_model_file(model, folder / f"{name}.safetensors"), "variant": variant}
               for name, (model, variant) in models.items()]
    (folder / "catalog.json").write_text(json.dumps({"models": entries}))
    return Catalog(folder)


def test_superres_scale_means_the_fast_model_on_a_cpu_and_the_paper_one_on_cuda(tmp_path):
    catalog = two_sr_catalog(tmp_path)
    on_cpu = choose_model(superres=4, catalog=catalog, variant=resolve_variant("auto", "cpu"))
    assert on_cpu.name == "x4_fast" and isinstance(on_cpu.model, SubpixelSRNet) and on_cpu.scale == 4
    on_cuda = choose_model(superres=4, catalog=catalog, variant=resolve_variant("auto", "cuda"))
    assert on_cuda.name == "x4" and not isinstance(on_cuda.model, SubpixelSRNet)
    # a name is a name, whatever the device
    assert choose_model(superres="x4", catalog=catalog, variant="small").name == "x4"
    assert choose_model(superres="x4_fast", catalog=catalog, variant="full").name == "x4_fast"
    chain = choose_model(style="mosaic", superres=4, catalog=catalog, variant="small")
    assert chain.name == "mosaic+x4_fast" and isinstance(chain.superres_model, SubpixelSRNet)


def test_superres_scale_falls_back_to_the_other_variant(tmp_path):
    catalog = two_sr_catalog(tmp_path, with_full=False)
    assert catalog.superres(4, "full").name == "x4_fast"
    with pytest.raises(Exception, match="unknown model variant"):
        catalog.superres(4, "auto")


def test_image_command_on_the_cpu_runs_the_fast_model(tmp_path, monkeypatch):
    two_sr_catalog(tmp_path)
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    cv2.imwrite(str(tmp_path / "in.png"), smooth_image(np.random.default_rng(0), 12, 16))
    outputs = {}
    for variant in ("auto", "full"):
        out = tmp_path / f"out-{variant}.png"
        result = CliRunner().invoke(main, ["image", str(tmp_path / "in.png"), "-o", str(out), "--superres", "4",
                                           "--device", "cpu", "--backend", "torch", "--variant", variant])
        assert result.exit_code == 0, result.output
        outputs[variant] = cv2.imread(str(out))
    expected = {name: choose_model(superres=name, catalog=Catalog(tmp_path)).model for name in ("x4_fast", "x4")}
    x = torch.from_numpy(cv2.imread(str(tmp_path / "in.png"))[..., ::-1].copy()).permute(2, 0, 1)[None] / 255.0
    for variant, name in (("auto", "x4_fast"), ("full", "x4")):
        with torch.no_grad():
            want = (expected[name](x)[0].permute(1, 2, 0).numpy()[..., ::-1] * 255 + 0.5).astype(np.uint8)
        assert outputs[variant].shape == (48, 64, 3)
        assert np.abs(outputs[variant].astype(int) - want).max() <= 1, variant
    assert np.abs(outputs["auto"].astype(int) - outputs["full"].astype(int)).max() > 1


# --- training --------------------------------------------------------------------------------------

@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), smooth_image(rng, 40, 48))
    return folder


def test_recipes_of_the_paper_network_keep_their_identity():
    # Recipes written before the families had no "family" field and spelt out width and blocks:
    # their checkpoints must still resume.
    recipe = SuperResRecipe(dataset="d").to_dict()
    assert "family" not in recipe and (recipe["width"], recipe["blocks"]) == (64, 4)
    old = {"dataset": "d", "scale": 4, "loss": "pixel", "feature_taps": [], "tv_weight": 0.0, "width": 64,
           "blocks": 4, "residual": True, "norm": "none", "patch_size": 288, "blur_sigma": 0.0, "batch_size": 4,
           "iterations": 200_000, "lr": 1e-4, "seed": 0, "data_limit": None}
    check_same_run({"task": "superres", "recipe": json.dumps(old), "step": 10}, "old.ckpt", "superres", recipe, 0,
                   200_000)
    fast = SuperResRecipe(dataset="d", family="subpixel")
    with pytest.raises(TrainingError, match="differs in .*family"):
        check_same_run({"task": "superres", "recipe": json.dumps(old), "step": 10}, "old.ckpt", "superres",
                       fast.to_dict(), 0, 200_000)
    assert fast.arch() == {"family": "subpixel", "scale": 4, "width": fast.resolved().width,
                           "blocks": fast.resolved().blocks}


def test_its_learning_rate_is_the_measured_one():
    assert SuperResRecipe(dataset="d", family="subpixel").resolved().lr == 1e-3
    assert SuperResRecipe(dataset="d").resolved().lr == 1e-4  # the paper's net with the bicubic skip


@pytest.mark.parametrize("bad,message", [({"family": "espcn"}, "unknown SR network family"),
                                         ({"family": "subpixel", "norm": "batch"}, "no norms"),
                                         ({"family": "subpixel", "residual": False}, "no norms")])
def test_bad_recipes_are_refused(bad, message):
    with pytest.raises(TrainingError, match=message):
        SuperResRecipe(dataset="d", **bad).resolved()


def test_cli_trains_it_as_the_small_variant_into_a_catalog_and_resume_continues(photos, tmp_path):
    torch.set_num_threads(1)
    out, catalog = tmp_path / "x4_fast.safetensors", tmp_path / "weights"
    catalog.mkdir()
    args = ["train", "superres", "--scale", "4", "--family", "subpixel", "--width", "8", "--blocks", "1",
            "--variant", "small", "--dataset", str(photos), "-o", str(out), "--patch-size", "32",
            "--batch-size", "2", "--lr", "1e-3", "--no-progress", "--preview-every", "0", "--device", "cpu",
            "--checkpoint-every", "3", "--catalog", str(catalog)]
    first = CliRunner().invoke(main, [*args, "--iterations", "3"])
    assert first.exit_code == 0, first.output
    resumed = CliRunner().invoke(main, [*args, "--iterations", "6", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    whole = train_superres(SuperResRecipe(dataset=str(photos), family="subpixel", width=8, blocks=1, patch_size=32,
                                          batch_size=2, lr=1e-3, iterations=6),
                           tmp_path / "whole.safetensors",
                           RunOptions(device="cpu", amp="off", progress=False, checkpoint_every=0))
    entry = Catalog(catalog).get("x4_fast")
    assert entry.variant == "small" and entry.arch == {"scale": 4, "width": 8, "blocks": 1, "family": "subpixel"}
    assert entry.recipe["family"] == "subpixel" and entry.recipe["steps"] == 6
    model = Catalog(catalog).load(entry)
    assert isinstance(model, SubpixelSRNet)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key  # resumed = uninterrupted, bit for bit
    assert Catalog(catalog).superres(4, "small").name == "x4_fast"
