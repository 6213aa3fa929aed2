"""`livestyle eval superres|style`: the SR protocol, the paper tables and the style comparison."""
import json
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from livestyle.cli import main
from livestyle.quality.superres_eval import (PAPER_SR, bicubic_upscaler, evaluate_sr_dataset, make_lr,
                                             paper_benchmark_name, superres_table_markdown)
from livestyle.quality.style_eval import compare_style, objective_config_from_recipe, style_table_markdown


@pytest.fixture
def hr_folder(tmp_path):
    """Two smooth synthetic HR photos (not multiples of 8, to exercise the crop)."""
    folder = tmp_path / "Set5"
    folder.mkdir()
    y, x = np.mgrid[0:67, 0:75]
    for i in range(2):
        img = np.stack([128 + 90 * np.sin(x / (4.0 + i)), 128 + 80 * np.cos(y / 6.0), (x * 3 + y) % 256], axis=2)
        cv2.imwrite(str(folder / f"img{i}.png"), img.astype(np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture
def empty_catalog(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(folder))
    return folder


def test_lr_is_8bit_and_scaled():
    hr = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    lr = make_lr(hr, 4)
    assert lr.shape == (8, 12, 3) and lr.dtype == np.uint8
    flat = np.full((32, 48, 3), 100 / 255, np.float32)  # a flat image stays flat whatever the kernel
    assert (make_lr(flat, 4) == 100).all()
    assert (make_lr(flat, 4, blur_sigma=1.0) == 100).all()


def test_oracle_scores_inf_and_bicubic_scores_finite(hr_folder):
    originals = {}

    def oracle(lr):  # knows the HR image the LR came from
        return originals[lr.tobytes()]

    def read(path):
        rgb = cv2.imread(str(path))[..., ::-1].astype(np.float32) / 255.0
        hr = rgb[: rgb.shape[0] // 4 * 4, : rgb.shape[1] // 4 * 4]
        originals[make_lr(hr, 4).tobytes()] = hr
        return rgb

    scores = evaluate_sr_dataset(hr_folder, 4, {"oracle": oracle, "bicubic": bicubic_upscaler(4)}, read=read)
    assert math.isinf(scores["oracle"].psnr) and scores["oracle"].ssim == pytest.approx(1.0)
    assert 10 < scores["bicubic"].psnr < 60 and 0 < scores["bicubic"].ssim < 1
    assert sorted(scores["bicubic"].per_image) == ["img0.png", "img1.png"]


def test_benchmark_names_and_paper_table():
    assert [paper_benchmark_name(n) for n in ("sr/CSet5", "Set14", "CBSD68", "mine")] == ["Set5", "Set14", "BSD100", None]
    # Names that only contain a benchmark's: training folders were labelled as test sets.
    assert [paper_benchmark_name(n) for n in ("bsds500_train_test", "my_set5_crops", "BSD100")] == [None, None, "BSD100"]
    assert PAPER_SR[4]["Set5"]["bicubic"] == (28.43, 0.8114) and PAPER_SR[8]["Set14"]["l_feat"] == (21.64, 0.5837)


def test_set5_bicubic_reproduces_the_paper(shared_data):
    # Reproduction check of the whole protocol (crop, bicubic, Y, border, SSIM): the paper's Set5 ×4 bicubic.
    scores = evaluate_sr_dataset(shared_data / "sr" / "CSet5", 4, {"bicubic": bicubic_upscaler(4)})
    assert scores["bicubic"].psnr == pytest.approx(28.43, abs=0.05)
    assert scores["bicubic"].ssim == pytest.approx(0.8114, abs=0.005)


def test_eval_superres_cli_bicubic_only(hr_folder, empty_catalog, tmp_path):
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(hr_folder), "--scale", "4",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert "| Set5 (Set5) | ours: bicubic |" in result.output and "| 28.43 | 0.8114 |" in result.output
    assert "No ×4 super-resolution model is installed" in result.output
    data = json.loads((tmp_path / "r" / "eval-superres-x4-Set5.json").read_text())
    assert data["models"] == [] and set(data["results"]["Set5"]) == {"bicubic"}


def test_eval_superres_cli_with_a_model(hr_folder, tiny_sr_file, empty_catalog):
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(hr_folder), "--scale", "4",
                                       "--model", str(tiny_sr_file), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "ours: tiny_sr" in result.output and "No ×4" not in result.output


def test_eval_superres_models_never_replace_each_other_or_bicubic(hr_folder, tiny_sr_file, empty_catalog, tmp_path):
    """A file called bicubic.safetensors replaced the bicubic baseline in the table; two files of one
    name left one of them unevaluated."""
    import shutil

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = [shutil.copy(tiny_sr_file, tmp_path / "a" / "bicubic.safetensors"),
             shutil.copy(tiny_sr_file, tmp_path / "a" / "x4.safetensors"),
             shutil.copy(tiny_sr_file, tmp_path / "b" / "x4.safetensors")]
    args = ["eval", "superres", "--dataset", str(hr_folder), "--scale", "4", "--device", "cpu", "--out",
            str(tmp_path / "r")]
    for f in files:
        args += ["--model", str(f)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads(next((tmp_path / "r").glob("*.json")).read_text())
    assert data["models"] == ["bicubic-2", "x4", "x4-2"]
    scores = data["results"]["Set5"]
    assert set(scores) == {"bicubic", "bicubic-2", "x4", "x4-2"}
    assert scores["bicubic"]["psnr"] != scores["bicubic-2"]["psnr"]  # the baseline is still bicubic


def test_eval_superres_cli_rejects_wrong_scale_and_empty_folder(hr_folder, tiny_sr_file, tmp_path, empty_catalog):
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(hr_folder), "--scale", "8",
                                       "--model", str(tiny_sr_file)])
    assert result.exit_code == 1 and "upscales ×4, not ×8" in result.output and "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(empty), "--scale", "4"])
    assert result.exit_code == 1 and "no images" in result.output


def test_superres_table_notes_bsd_subset():
    from livestyle.quality.superres_eval import SRScore

    text = superres_table_markdown({"x/CBSD68": {"bicubic": SRScore(25.0, 0.7)}}, 4)
    assert "| CBSD68 (BSD100) | ours: bicubic | 25.00 | 0.7000 | 25.96 | 0.6820 |" in text and "68 of its images" in text


def test_compare_style_scores_feedforward_and_gatys():
    from livestyle.models.transform import transform_net
    from livestyle.quality.objective import ObjectiveConfig, build_objective

    torch.manual_seed(0)
    objective = build_objective(ObjectiveConfig(style_weight=1.0, tv_weight=1.0), torch.rand(1, 3, 24, 24),
                                pretrained=False)
    contents = [torch.rand(1, 3, 24, 20), torch.rand(1, 3, 20, 24)]
    comparison = compare_style(transform_net(width=4, blocks=1), objective, contents, ["a", "b"], [1, 4],
                               keep_outputs=True)
    means = comparison.means()
    assert list(means) == ["feed-forward", "Gatys 1 it", "Gatys 4 it"]
    assert means["Gatys 4 it"]["total"] < means["Gatys 1 it"]["total"]  # more iterations, lower loss
    for terms in means.values():
        assert terms["total"] == pytest.approx(terms["content"] + terms["style"] + terms["tv"], rel=1e-5)
    assert set(comparison.outputs) == {"a:feedforward", "a:gatys1", "a:gatys4", "b:feedforward", "b:gatys1", "b:gatys4"}
    text = style_table_markdown(comparison)
    assert "| feed-forward |" in text and "| Gatys 4 it |" in text
    json.dumps(comparison.to_dict())


def test_compare_style_scores_variants_with_the_same_objective():
    from livestyle.models.transform import transform_net
    from livestyle.quality.objective import ObjectiveConfig, build_objective

    torch.manual_seed(0)
    objective = build_objective(ObjectiveConfig(style_weight=1.0, tv_weight=1.0), torch.rand(1, 3, 24, 24),
                                pretrained=False)
    model = transform_net(width=4, blocks=1).eval()
    contents = [torch.rand(1, 3, 24, 20)]
    blurred = lambda x: torch.nn.functional.avg_pool2d(model(x), 3, stride=1, padding=1)  # noqa: E731
    comparison = compare_style(model, objective, contents, ["a"], [], variants={"same": model, "blurred": blurred},
                               keep_outputs=True)
    means = comparison.means()
    assert list(means) == ["feed-forward", "same", "blurred"]
    assert means["same"] == pytest.approx(means["feed-forward"], rel=1e-6)
    assert means["blurred"]["tv"] < means["feed-forward"]["tv"]  # a smoother output: lower TV term
    assert set(comparison.outputs) == {"a:feedforward", "a:same", "a:blurred"}
    text = style_table_markdown(comparison)
    assert "| same |" in text and "+0.0% |" in text


def test_objective_config_from_recipe():
    config = objective_config_from_recipe({"objective": {"loss_net": "vgg16", "style_taps": ["relu1_2"],
                                                         "style_weight": 2.0, "unknown": 1}})
    assert config.loss_net == "vgg16" and config.style_taps == ("relu1_2",) and config.style_weight == 2.0
    assert objective_config_from_recipe({}) is None and objective_config_from_recipe(None) is None


def test_eval_style_cli(tmp_path, tiny_style_file, shared_data, empty_catalog):
    content = tmp_path / "c.png"
    cv2.imwrite(str(content), np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, [
        "eval", "style", "--model", str(tiny_style_file), "--style-image", str(shared_data / "styles" / "wave_crop.jpg"),
        "--content", str(content), "--iters", "1,2", "--size", "24", "--device", "cpu", "--out", str(out),
        "--infer-scale", "0.5",
        "--loss-net-weights", str(shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors")])
    assert result.exit_code == 0, result.output
    assert "| feed-forward |" in result.output and "| Gatys 2 it |" in result.output
    data = json.loads((out / "eval-style-tiny_style.json").read_text())
    assert data["settings"]["objective"]["loss_net"] == "squeezenet1_1" and len(data["feedforward"]) == 1
    assert (out / "eval-style-tiny_style-c-gatys2.png").is_file()
    assert "| feed-forward @0.5× guided |" in result.output and "| feed-forward @0.5× bicubic |" in result.output
    assert set(data["variants"]) == {"feed-forward @0.5× bicubic", "feed-forward @0.5× guided"}
    assert (out / "eval-style-tiny_style-c-feed-forward-0.5x-guided.png").is_file()


def test_eval_style_rejects_sr_models(tmp_path, tiny_sr_file, empty_catalog):
    content = tmp_path / "c.png"
    cv2.imwrite(str(content), np.zeros((16, 16, 3), np.uint8))
    result = CliRunner().invoke(main, ["eval", "style", "--model", str(tiny_sr_file), "--style-image", str(content),
                                       "--content", str(content)])
    assert result.exit_code == 1 and "needs a style model" in result.output


def test_eval_commands_check_the_out_folder_first(hr_folder, tiny_style_file, tmp_path, empty_catalog):
    """--out under a regular file (cannot be created, as root too) fails before any evaluation runs."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = str(blocker / "sub")
    content = tmp_path / "c.png"
    cv2.imwrite(str(content), np.zeros((16, 16, 3), np.uint8))
    runs = {
        "superres": ["eval", "superres", "--dataset", str(hr_folder), "--scale", "4", "--out", out],
        "style": ["eval", "style", "--model", str(tiny_style_file), "--style-image", str(content),
                  "--content", str(content), "--out", out],
        "video": ["eval", "video", str(content), "--model", str(tiny_style_file), "--out", out],
    }
    for name, args in runs.items():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and "cannot create output folder" in result.output, (name, result.output)
        assert "evaluating" not in result.output and "Gatys" not in result.output, name


@pytest.mark.parametrize("name", ["../../escape", "a/b", "..", "a\\b"])
def test_eval_superres_name_cannot_leave_the_out_folder(hr_folder, tmp_path, empty_catalog, name):
    out = tmp_path / "deep" / "out"
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(hr_folder), "--scale", "4",
                                       "--out", str(out), "--name", name])
    assert result.exit_code == 2 and "plain file name" in result.output
    assert not list(tmp_path.rglob("*.json"))


def test_eval_style_and_video_name_only_their_own_model_options(tmp_path, tiny_style_file, empty_catalog):
    content = tmp_path / "c.png"
    cv2.imwrite(str(content), np.zeros((16, 16, 3), np.uint8))
    runs = [["eval", "style", "--style-image", str(content), "--content", str(content)],
            ["eval", "video", str(content)]]
    for args in runs:
        for extra in ([], ["--style", "wave", "--model", str(tiny_style_file)]):
            result = CliRunner().invoke(main, args + extra)
            assert result.exit_code == 2 and "choose exactly one of --style NAME, --model FILE" in result.output
            assert "--superres" not in result.output, result.output


def test_eval_superres_keeps_both_sets_of_one_folder_name(hr_folder, empty_catalog, tmp_path):
    import shutil

    other = shutil.copytree(hr_folder, tmp_path / "elsewhere" / "Set5")
    result = CliRunner().invoke(main, ["eval", "superres", "--dataset", str(hr_folder), "--dataset", str(other),
                                       "--scale", "4", "--out", str(tmp_path / "r"), "--name", "both"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r" / "both.json").read_text())
    assert sorted(data["results"]) == sorted([str(hr_folder), str(other)])  # one used to overwrite the other


def test_eval_style_of_a_model_file_uses_the_recipe_beside_it(tmp_path, tiny_style_file, shared_data, empty_catalog):
    """`--style NAME` used the catalog entry's objective; `--model FILE` ignored the FILE.json that
    `livestyle train` writes, so the same model scored differently by name and by file."""
    content = tmp_path / "c.png"
    cv2.imwrite(str(content), np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    recipe = {"objective": {"loss_net": "squeezenet1_1", "style_weight": 123.0, "content_taps": ["fire3"]}}
    tiny_style_file.with_suffix(".json").write_text(json.dumps({"name": "tiny_style", "recipe": recipe}))
    out = tmp_path / "report"
    result = CliRunner().invoke(main, [
        "eval", "style", "--model", str(tiny_style_file), "--style-image", str(content), "--content", str(content),
        "--iters", "1", "--size", "24", "--device", "cpu", "--out", str(out),
        "--loss-net-weights", str(shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors")])
    assert result.exit_code == 0, result.output
    objective = json.loads((out / "eval-style-tiny_style.json").read_text())["settings"]["objective"]
    assert objective["style_weight"] == 123.0 and objective["content_taps"] == ["fire3"]
