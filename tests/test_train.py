import json

import cv2
import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner

from samples import smooth_image
from livestyle import Catalog, load_model_file
from livestyle.files import sha256_of
from livestyle.cli import main
from livestyle.errors import OutputError, TrainingError
from livestyle.models import ENV_LOSSNET_WEIGHTS
from livestyle.quality.objective import ObjectiveConfig
from livestyle.training.recipes import RunOptions, StyleRecipe, SuperResRecipe
from livestyle.zoo.catalog import add_entry
from livestyle.training.run import train_style, train_superres

FAST = RunOptions(device="cpu", amp="off", progress=False, log_every=2, checkpoint_every=0)



@pytest.fixture
def dataset(tmp_path):
    """Six small photo-like PNGs and one corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), smooth_image(rng, 40, 48))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return folder


@pytest.fixture
def style_image(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "painting.png"
    stripes = np.zeros((48, 64, 3), np.uint8)
    stripes[:, ::4] = (255, 40, 0)
    stripes[::6] = (0, 60, 255)
    cv2.imwrite(str(path), cv2.addWeighted(stripes, 0.8, smooth_image(rng, 48, 64), 0.2, 0))
    return path


@pytest.fixture(scope="module")
def lossnet_weights(tmp_path_factory):
    """Random SqueezeNet weights in a file (tests never need ImageNet weights)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lossnet") / "squeezenet_random.safetensors"
    save_file({k: v.contiguous() for k, v in torchvision.models.squeezenet1_1().state_dict().items()}, str(path))
    return path


def tiny_recipe(style_image, dataset, lossnet_weights, **changes):
    fields = dict(style_image=str(style_image), dataset=str(dataset), width=4, blocks=1, image_size=32,
                  batch_size=2, iterations=12, lr=1e-2, objective=ObjectiveConfig(style_size=48),
                  loss_net_weights=str(lossnet_weights))
    return StyleRecipe(**{**fields, **changes})


def test_a_few_iterations_lower_the_loss(style_image, dataset, lossnet_weights, tmp_path):
    torch.set_num_threads(1)
    result = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=30), tmp_path / "m.safetensors",
                         FAST)
    totals = result.history["total"]
    assert len(totals) == 15
    assert np.mean(totals[-3:]) < 0.7 * np.mean(totals[:2])
    assert result.skipped_images == ["corrupt.jpg"] and result.dataset_images == 6


def test_checkpoint_then_resume_equals_uninterrupted_run(style_image, dataset, lossnet_weights, tmp_path):
    torch.set_num_threads(1)
    whole = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8),
                        tmp_path / "whole.safetensors", FAST)
    ckpt = str(tmp_path / "run.ckpt")
    first = tiny_recipe(style_image, dataset, lossnet_weights, iterations=4)
    train_style(first, tmp_path / "part.safetensors", RunOptions(**{**FAST.__dict__, "checkpoint": ckpt}))
    # Another inference margin is no other run: training never uses it.
    resumed = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8, margin=4),
                          tmp_path / "part.safetensors",
                          RunOptions(**{**FAST.__dict__, "checkpoint": ckpt, "resume": True}))
    assert resumed.steps == 8 and resumed.model.config.margin == 4 and whole.model.config.margin == 16
    for (key, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), key  # bit-identical on CPU
    assert resumed.history["total"] == whole.history["total"]
    # a checkpoint of another run is refused with the fields that differ
    other = tiny_recipe(style_image, dataset, lossnet_weights, iterations=8, lr=5e-3)
    with pytest.raises(TrainingError, match="differs in lr"):
        train_style(other, tmp_path / "x.safetensors", RunOptions(**{**FAST.__dict__, "checkpoint": ckpt,
                                                                      "resume": True}))


def test_ctrl_c_finishes_the_step_keeps_a_checkpoint_and_resume_continues(style_image, dataset, lossnet_weights,
                                                                         tmp_path):
    """Ctrl-C at step 4: the step ends, the checkpoint is written (it used to be the last periodic
    one, up to --checkpoint-every steps back), the message says where; resuming gives the same
    weights as a run never interrupted."""
    import os
    import signal

    from livestyle.training.signals import TrainingInterrupted

    torch.set_num_threads(1)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIGINT is ignored under nohup
    whole = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8),
                        tmp_path / "whole.safetensors", FAST)
    ckpt = tmp_path / "run.ckpt"
    out = tmp_path / "part.safetensors"
    options = RunOptions(**{**FAST.__dict__, "checkpoint": str(ckpt)})

    def press_ctrl_c(step, values):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match=f"stopped after step 4 of 8; checkpoint at step 4 in {ckpt}; "
                                                  "--resume continues"):
        train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8), out, options,
                    on_log=press_ctrl_c)
    assert not out.exists()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers given back
    resumed = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8), out,
                          RunOptions(**{**options.__dict__, "resume": True}))
    for (key, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), key


def test_sigterm_stops_training_after_the_step_with_a_checkpoint(style_image, dataset, lossnet_weights, tmp_path):
    """`timeout`, `kill` and service managers send SIGTERM: it used to end the run with no checkpoint."""
    import os
    import signal

    from livestyle.training.signals import TrainingInterrupted

    ckpt = tmp_path / "run.ckpt"

    def terminate(step, values):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match="stopped after step 2 of 8; checkpoint at step 2") as caught:
        train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=8), tmp_path / "m.safetensors",
                    RunOptions(**{**FAST.__dict__, "checkpoint": str(ckpt)}), on_log=terminate)
    assert caught.value.signum == signal.SIGTERM and ckpt.is_file()


def test_resume_takes_the_same_paths_spelled_otherwise_and_needs_no_init_again(style_image, dataset, lossnet_weights,
                                                                               tmp_path):
    """`--dataset ./photos/` against an absolute path, or a resume without repeating --init, was
    refused as 'another run'."""
    first = tmp_path / "first.safetensors"
    train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=2), first, FAST)
    ckpt = str(tmp_path / "run.ckpt")
    options = RunOptions(**{**FAST.__dict__, "checkpoint": ckpt})
    train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=2), tmp_path / "m.safetensors", options,
                init=str(first))
    respelled = tiny_recipe(style_image, f"{dataset}/../{dataset.name}/", lossnet_weights, iterations=4)
    resumed = train_style(respelled, tmp_path / "m.safetensors", RunOptions(**{**options.__dict__, "resume": True}))
    assert resumed.steps == 4
    # A photo added since: the batches would no longer be the run's own.
    cv2.imwrite(str(dataset / "new.png"), smooth_image(np.random.default_rng(9), 40, 48))
    with pytest.raises(TrainingError, match="the training photos changed \\(6 then, 7 now\\)"):
        train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=6), tmp_path / "m.safetensors",
                    RunOptions(**{**options.__dict__, "resume": True}))


def test_a_resumed_run_keeps_its_precision(style_image, dataset, lossnet_weights, tmp_path):
    torch.set_num_threads(1)
    ckpt = str(tmp_path / "run.ckpt")
    recipe = tiny_recipe(style_image, dataset, lossnet_weights, iterations=2)
    train_style(recipe, tmp_path / "c.safetensors", RunOptions(**{**FAST.__dict__, "amp": "bf16", "checkpoint": ckpt}))
    resumed = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=4), tmp_path / "c.safetensors",
                          RunOptions(**{**FAST.__dict__, "amp": "auto", "checkpoint": ckpt, "resume": True}))
    assert resumed.steps == 4 and resumed.amp == "bf16"  # auto on a CPU alone would have chosen off
    fresh = train_style(recipe, tmp_path / "d.safetensors", RunOptions(**{**FAST.__dict__, "amp": "auto"}))
    assert fresh.amp == "off"


def test_model_file_and_entry_load_through_catalog_and_run_in_image(style_image, dataset, lossnet_weights, tmp_path,
                                                                   monkeypatch):
    torch.set_num_threads(1)
    out = tmp_path / "tiny.safetensors"
    preview_dir = tmp_path / "previews"
    result = train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=4), out,
                         RunOptions(**{**FAST.__dict__, "preview_dir": str(preview_dir), "preview_every": 2}),
                         name="tiny", variant="small", quality_images=[str(style_image)])
    assert sorted(p.name for p in preview_dir.iterdir()) == ["style_0000002.png", "style_0000004.png"]
    entry = json.loads(out.with_suffix(".json").read_text())
    assert entry == result.entry
    recipe = entry["recipe"]
    assert recipe["loss_net"] == "squeezenet1_1" and len(recipe["loss_net_weights_sha256"]) == 64
    assert recipe["dataset"]["images"] == 6 and recipe["dataset"]["skipped"] == 1
    assert recipe["iterations"] == 4 and set(recipe["final_losses"]) == {"total", "content", "style", "tv"}
    assert entry["quality"]["style_losses"]["mean"]["feed-forward"]["total"] > 0
    assert entry["credit"] and entry["licence"] and entry["variant"] == "small"

    weights = tmp_path / "weights"
    weights.mkdir()
    add_entry(weights, entry, out)  # copies the model file beside the catalog
    add_entry(weights / "catalog.json", {**entry, "description": "replaced"})
    catalog = Catalog(weights)
    assert catalog.names() == ["tiny"] and catalog.get("tiny").description == "replaced"
    model = catalog.load(catalog.get("tiny"))
    for a, b in zip(model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)

    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(weights))
    photo = next(dataset.glob("*.png"))
    run = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "styled.png"), "--style", "tiny",
                                    "--device", "cpu"])
    assert run.exit_code == 0, run.output
    assert cv2.imread(str(tmp_path / "styled.png")).shape == cv2.imread(str(photo)).shape


def test_superres_pixel_and_feat_train(dataset, lossnet_weights, tmp_path):
    torch.set_num_threads(1)
    common = dict(dataset=str(dataset), scale=4, width=8, blocks=1, patch_size=32, batch_size=2, lr=1e-2,
                  loss_net_weights=str(lossnet_weights))
    # The paper's net (no bicubic skip) starts far from the target: its loss must fall.
    pixel = train_superres(SuperResRecipe(iterations=30, residual=False, norm="batch", **common), tmp_path / "x4.safetensors",
                           FAST)
    assert np.mean(pixel.history["pixel"][-3:]) < 0.7 * np.mean(pixel.history["pixel"][:2])
    model, meta = load_model_file(tmp_path / "x4.safetensors")
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32) and model.config.residual is False
    assert pixel.entry["arch"] == {"scale": 4, "width": 8, "blocks": 1, "norm": "batch", "residual": False}
    assert "loss_net" not in pixel.entry["recipe"]
    feat = train_superres(SuperResRecipe(iterations=2, loss="feat", **{**common, "scale": 8, "patch_size": 40}),
                          tmp_path / "x8.safetensors", FAST)
    assert set(feat.final_losses) == {"total", "feat", "tv"}
    assert feat.entry["recipe"]["feature_taps"] == ["conv1", "fire2"]


def test_the_model_is_on_disk_before_the_quality_step(style_image, dataset, lossnet_weights, tmp_path,
                                                     monkeypatch):
    import livestyle.training.run as run

    def fails(*args, **kwargs):
        raise RuntimeError("the device call ran out of time")

    monkeypatch.setattr(run, "style_quality", fails)
    out = tmp_path / "m.safetensors"
    with pytest.raises(RuntimeError, match="out of time"):
        train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=2), out, FAST,
                    quality_images=[str(style_image)])
    assert load_model_file(out)[0] is not None and json.loads(out.with_suffix(".json").read_text())["quality"] == {}


def test_init_starts_from_a_trained_model_and_is_recorded(style_image, dataset, lossnet_weights, tmp_path):
    torch.set_num_threads(1)
    first = tmp_path / "first.safetensors"
    train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=30), first, FAST)
    later = tiny_recipe(style_image, dataset, lossnet_weights, iterations=2, seed=1)
    fresh = train_style(later, tmp_path / "fresh.safetensors", FAST)
    continued = train_style(later, tmp_path / "continued.safetensors", FAST, init=str(first))
    assert continued.history["total"][0] < 0.8 * fresh.history["total"][0]
    assert continued.entry["recipe"]["init"] == {"file": "first.safetensors", "sha256": sha256_of(first)}
    assert "init" not in fresh.entry["recipe"]

    # Through the CLI at learning rate 0 the weights come out as they went in; another architecture is refused.
    args = ["train", "style", "--style-image", str(style_image), "--dataset", str(dataset), "--loss-net-weights",
            str(lossnet_weights), "--iterations", "1", "--blocks", "1", "--image-size", "32", "--style-size", "48",
            "--batch-size", "2", "--device", "cpu", "--no-progress", "--lr", "0", "--init", str(first)]
    run = CliRunner().invoke(main, args + ["--width", "4", "-o", str(tmp_path / "same.safetensors")])
    assert run.exit_code == 0, run.output
    for (key, a), b in zip(load_model_file(first)[0].state_dict().items(),
                           load_model_file(tmp_path / "same.safetensors")[0].state_dict().values()):
        assert torch.equal(a, b), key
    run = CliRunner().invoke(main, args + ["--width", "8", "-o", str(tmp_path / "wider.safetensors")])
    assert run.exit_code == 1 and "is not the one this run trains" in run.output
    assert "Traceback" not in run.output and not (tmp_path / "wider.safetensors").exists()


def test_cli_trains_and_reports_skipped_images(style_image, dataset, lossnet_weights, tmp_path):
    out = tmp_path / "cli.safetensors"
    run = CliRunner().invoke(main, [
        "train", "style", "--style-image", str(style_image), "--dataset", str(dataset), "-o", str(out),
        "--loss-net-weights", str(lossnet_weights), "--iterations", "2", "--width", "4", "--blocks", "1",
        "--image-size", "32", "--style-size", "48", "--batch-size", "2", "--device", "cpu", "--no-progress",
        "--style-tap-weights", "conv1=2", "--catalog", str(tmp_path), "--pixel-shuffle"])
    assert run.exit_code == 0, run.output
    assert "skipped 1 unreadable image(s) of 7" in run.output
    entry = Catalog(tmp_path).get("cli")
    assert entry.recipe["objective"]["style_tap_weights"]["conv1"] == 2.0
    assert entry.arch == {"width": 4, "blocks": 1, "pixel_shuffle": True, "margin": 16} and entry.recipe["pixel_shuffle"]
    assert Catalog(tmp_path).load(entry).config.pixel_shuffle
    assert (tmp_path / "cli.ckpt").is_file()


@pytest.mark.parametrize("extra, code, message", [
    (["-o", "{tmp}/model.json"], 1, "must end in .safetensors"),
    (["-o", "{tmp}/photos/0.png"], 1, "must end in .safetensors"),
    (["--checkpoint", "{tmp}/m.safetensors"], 1, "would overwrite the model"),
    (["--checkpoint", "{tmp}/m.json"], 1, "would overwrite the model"),
    (["--init", "{tmp}/m.safetensors"], 1, "is the input file"),
    (["--preview-dir", "{tmp}/painting.png/previews"], 1, "cannot create preview folder"),
    (["--lr", "nan"], 2, "finite number"),
    (["--lr", "-1"], 2, "finite number"),
    (["--gatys-iterations", "abc"], 2, "positive integers"),
    (["--style-tap-weights", "nosuch=2"], 1, "not a style tap"),
    (["--style-taps", "nosuch"], 1, "unknown tap(s) nosuch"),
    (["--content-weight", "-5"], 1, "finite and ≥ 0"),
    (["--quality-image", "{tmp}/photos/corrupt.jpg"], 1, "corrupt.jpg"),
    (["--catalog", "{tmp}/nowhere/catalog.json"], 2, "does not exist"),
])
def test_train_style_refuses_bad_options_before_training(style_image, dataset, lossnet_weights, tmp_path, extra,
                                                         code, message):
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"an earlier model")  # a file --init may name; never overwritten by a refused run
    args = ["train", "style", "--style-image", str(style_image), "--dataset", str(dataset), "-o", str(out),
            "--loss-net-weights", str(lossnet_weights), "--iterations", "2", "--width", "4", "--blocks", "1",
            "--image-size", "32", "--style-size", "48", "--batch-size", "2", "--device", "cpu", "--no-progress"]
    run = CliRunner().invoke(main, args + [a.format(tmp=tmp_path) for a in extra])
    assert run.exit_code == code and message in run.output, run.output
    assert "Traceback" not in run.output and isinstance(run.exception, SystemExit)
    assert out.read_bytes() == b"an earlier model" and not list(tmp_path.glob("*.ckpt"))


def test_train_superres_checks_eval_sets_first_and_warns_of_enlarged_photos(dataset, tmp_path):
    args = ["train", "superres", "--scale", "4", "--dataset", str(dataset), "-o", str(tmp_path / "sr.safetensors"),
            "--iterations", "1", "--width", "4", "--blocks", "0", "--batch-size", "1", "--device", "cpu",
            "--no-progress", "--preview-every", "0"]
    run = CliRunner().invoke(main, args + ["--patch-size", "16", "--eval-set", f"Set5={tmp_path / 'nowhere'}"])
    assert run.exit_code == 1 and "nowhere" in run.output and not list(tmp_path.glob("sr.*"))
    with pytest.warns(UserWarning, match="6 of 6 photos are smaller than the 64² patches"):
        run = CliRunner().invoke(main, args + ["--patch-size", "64"])  # the photos are 40×48
    assert run.exit_code == 0, run.output


def test_missing_loss_net_weights_give_one_line_error(style_image, dataset, tmp_path, monkeypatch):
    args = ["train", "style", "--style-image", str(style_image), "--dataset", str(dataset),
            "-o", str(tmp_path / "m.safetensors"), "--iterations", "1", "--device", "cpu"]
    run = CliRunner().invoke(main, args + ["--loss-net-weights", str(tmp_path / "absent.safetensors")])
    assert run.exit_code == 1
    assert run.output.strip().splitlines() == [f"livestyle: error: loss-network weights file not found: "
                                               f"{tmp_path / 'absent.safetensors'}"]

    # no file, no variable, empty torch cache, no network: the error names the option and the variable
    monkeypatch.delenv(ENV_LOSSNET_WEIGHTS, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    run = CliRunner().invoke(main, args)
    assert run.exit_code == 1
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and "--loss-net-weights" in lines[0] and "LIVESTYLE_LOSSNET_WEIGHTS" in lines[0]
    run = CliRunner().invoke(main, ["train", "superres", "--scale", "4", "--loss", "feat", "--dataset", str(dataset),
                                    "-o", str(tmp_path / "sr.safetensors"), "--device", "cpu"])
    assert run.exit_code == 1 and "--loss-net-weights" in run.output


def test_gpu_job_script_runs_a_few_steps_on_cpu(style_image, dataset, lossnet_weights, tmp_path):
    """bench/gpu/train_job.py end to end on a pack (what a device call runs), tiny and on CPU."""
    import subprocess
    import sys
    from pathlib import Path

    from livestyle.training.data import write_pack

    pack = tmp_path / "pack.npz"
    write_pack(((p.name, p.read_bytes()) for p in sorted(dataset.iterdir())), pack)
    out = tmp_path / "out"
    script = Path(__file__).resolve().parent.parent / "bench" / "gpu" / "train_job.py"
    run = subprocess.run([sys.executable, str(script), "style", "--name", "job", "--style-image", str(style_image),
                          "--pack", str(pack), "--lossnet", str(lossnet_weights), "--device", "cpu",
                          "--iterations", "2", "--batch-size", "2", "--width", "4", "--blocks", "1",
                          "--image-size", "32", "--style-size", "48", "--gatys", "", "--quality-image",
                          str(style_image), "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                                                                            "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert "images/s" in run.stdout
    entry = json.loads((out / "job.json").read_text())
    assert entry["recipe"]["dataset"] == {"source": "pack.npz", "images": 6, "skipped": 1,
                                          "note": "user-supplied photos (licence not recorded)"}
    model, _ = load_model_file(out / "job.safetensors")
    assert sorted(p.name for p in out.iterdir()) == ["job.json", "job.safetensors", "log.txt", "style_0000001.png",
                                                    "style_0000002.png", "styled_painting.jpg"]


def test_layout_timing_trial_leaves_the_run_untouched(style_image, dataset, lossnet_weights):
    """The CUDA "auto" path times candidates on a copy; checked here on CPU with channels_last."""
    from livestyle.training.data import ImageBank, decode_images
    from livestyle.quality.objective import build_objective
    from livestyle.models.convention import image_to_batch
    from livestyle.io.images import read_image
    from livestyle.training.tasks import StyleTask
    from livestyle.training.precision import time_steps
    from livestyle.training.recipes import style_objective_config

    torch.set_num_threads(1)
    recipe = tiny_recipe(style_image, dataset, lossnet_weights)
    objective = build_objective(style_objective_config(recipe), image_to_batch(read_image(style_image).rgb),
                                weights=lossnet_weights)
    bank = ImageBank(decode_images(dataset, short_side=32))
    task = StyleTask(recipe, objective, bank, torch.device("cpu"), torch.rand(1, 3, 32, 32))
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    seconds = time_steps(task, "off", True, torch.device("cpu"), steps=1)
    assert seconds > 0 and not task.channels_last
    assert all(torch.equal(v, before[k]) for k, v in task.model.state_dict().items())
    assert task.model.encoder[0][0][1].weight.is_contiguous()  # back in the default layout
    assert objective.lossnet.features[0].weight.is_contiguous()


def test_measured_squeezenet_defaults_fill_only_what_is_not_given(tmp_path):
    from livestyle.training.recipes import STYLE_SIZE, STYLE_TRAINING_DEFAULTS, style_objective_config

    measured = STYLE_TRAINING_DEFAULTS["squeezenet1_1"]
    config = style_objective_config(StyleRecipe(style_image="s.png", dataset="d"))
    assert config.content_taps == ("fire4",) and config.style_taps == measured["style_taps"]
    assert config.style_taps[-4:] == ("fire6", "fire7", "fire8", "fire9")  # issue 23: the deep taps teach large motifs
    assert config.style_weight == measured["style_weight"] and config.tv_weight == measured["tv_weight"]
    assert config.content_weight == measured["content_weight"] == 0.5  # issue 23: what all four shipped styles used
    assert dict(config.style_tap_weights) == measured["style_tap_weights"]
    assert config.style_size == measured["style_size"] == 384  # issue 23's study: motifs at the painting's scale
    own = StyleRecipe(style_image="s.png", dataset="d",
                      objective=ObjectiveConfig(style_weight=0.5, style_tap_weights={"fire5": 2.0}, style_size=256))
    config = style_objective_config(own)
    assert config.style_weight == 0.5 and dict(config.style_tap_weights) == {"fire5": 2.0}
    assert config.style_size == 256
    vgg = style_objective_config(StyleRecipe(style_image="s.png", dataset="d", objective=ObjectiveConfig("vgg16")))
    assert vgg.style_size == STYLE_SIZE


def test_add_catalog_entry_replaces_in_place(tmp_path):
    def record(name, description=""):
        return {"name": name, "task": "style", "arch": {}, "file": f"{name}.safetensors", "sha256": "0" * 64,
                "description": description}

    for name in ("a", "b", "c"):
        add_entry(tmp_path, record(name))
    add_entry(tmp_path, record("b", "new"))
    models = json.loads((tmp_path / "catalog.json").read_text())["models"]
    assert [m["name"] for m in models] == ["a", "b", "c"] and models[1]["description"] == "new"


def test_a_catalog_file_owned_by_another_entry_is_never_overwritten(tmp_path, style_image, dataset,
                                                                    lossnet_weights):
    """`train -o other/foo.safetensors --name bar --catalog cat` copied the new model over entry foo's
    file (a shipped model, say); now refused before any training."""
    catalog = tmp_path / "cat"
    catalog.mkdir()
    (catalog / "foo.safetensors").write_bytes(b"foo's weights")
    add_entry(catalog, {"name": "foo", "task": "style", "arch": {}, "file": "foo.safetensors",
                                "sha256": "0" * 64})
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    args = ["train", "style", "--style-image", str(style_image), "--dataset", str(dataset), "-o",
            str(elsewhere / "foo.safetensors"), "--name", "bar", "--catalog", str(catalog), "--iterations", "2",
            "--width", "4", "--blocks", "1", "--image-size", "32", "--loss-net-weights", str(lossnet_weights),
            "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "is the model of catalog entry 'foo'; choose another -o file name" in result.output
    assert (catalog / "foo.safetensors").read_bytes() == b"foo's weights"
    assert not (elsewhere / "foo.safetensors").exists()  # refused before any work
    with pytest.raises(OutputError, match="catalog entry 'foo'"):
        add_entry(catalog, {"name": "bar", "task": "style", "arch": {}, "file": "foo.safetensors",
                                    "sha256": "1" * 64})


def test_previews_never_go_into_the_training_photos(style_image, dataset, lossnet_weights):
    """-o inside the photo folder put OUT_previews/ there, and a resumed run trained on the previews."""
    options = RunOptions(**{**FAST.__dict__, "preview_dir": str(dataset / "m_previews"), "preview_every": 1})
    with pytest.raises(OutputError, match="is inside the training photos"):
        train_style(tiny_recipe(style_image, dataset, lossnet_weights, iterations=2), dataset / "m.safetensors",
                    options)
    assert not (dataset / "m_previews").exists() and not (dataset / "m.safetensors").exists()


def test_an_eval_set_among_the_training_photos_is_pointed_out(dataset, lossnet_weights, tmp_path):
    recipe = SuperResRecipe(dataset=str(dataset), scale=4, width=8, blocks=1, patch_size=32, batch_size=2,
                            iterations=1, loss_net_weights=str(lossnet_weights))
    inside = dataset / "held_out"  # photos are found recursively: these are trained on too
    inside.mkdir()
    cv2.imwrite(str(inside / "a.png"), smooth_image(np.random.default_rng(3), 40, 48))
    with pytest.warns(UserWarning, match="eval set held .* is among the training photos"):
        train_superres(recipe, tmp_path / "x4.safetensors", FAST, quality_sets={"held": str(inside)})


def test_superres_learning_rate_follows_the_network():
    assert SuperResRecipe(dataset="d").resolved().lr == 1e-4  # bicubic skip: 1e-3 overshoots
    assert SuperResRecipe(dataset="d", residual=False).resolved().lr == 1e-3  # the paper's network
    assert SuperResRecipe(dataset="d", lr=3e-4).resolved().lr == 3e-4


def test_style_taps_alone_get_only_their_own_default_weights(style_image, dataset, lossnet_weights):
    """--style-taps fire2,fire3 used to fail: the default weights of conv1, fire4 and fire5 came along."""
    from livestyle.training.recipes import style_objective_config

    config = style_objective_config(tiny_recipe(style_image, dataset, lossnet_weights,
                                                objective=ObjectiveConfig(style_taps=("fire2", "fire3"))))
    assert config.style_taps == ("fire2", "fire3") and set(config.style_tap_weights) == {"fire2", "fire3"}
    everything = style_objective_config(tiny_recipe(style_image, dataset, lossnet_weights))
    assert set(everything.style_tap_weights) == set(everything.style_taps) == {
        "conv1", "fire2", "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9"}
