"""The shared perceptual objective, the Gatys optimisation baseline and `livestyle image --optimize`."""
import math

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from livestyle.cli import main
from livestyle.errors import InputError
from livestyle.quality.gatys import GatysConfig, optimize_image, stylize_by_optimization
from livestyle.quality.losses import gram_matrix
from livestyle.models.lossnets import LOSS_NETWORKS, loss_network
from livestyle.quality.objective import DEFAULT_WEIGHTS, ObjectiveConfig, PerceptualObjective, build_objective


def images(seed, n=1, size=32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def lossnet():
    torch.manual_seed(0)
    return loss_network("squeezenet1_1", pretrained=False)


def test_config_takes_the_loss_networks_defaults():
    for name, spec in LOSS_NETWORKS.items():
        r = ObjectiveConfig(loss_net=name).resolved()
        assert r.content_taps == spec.content_taps and r.style_taps == spec.style_taps
        assert r.style_weight == DEFAULT_WEIGHTS[name]["style_weight"]
    r = ObjectiveConfig(loss_net="vgg16", style_taps=("relu2_2",), style_weight=3.0).resolved()
    assert r.style_taps == ("relu2_2",) and r.style_weight == 3.0
    assert ObjectiveConfig().to_dict()["content_taps"] == list(LOSS_NETWORKS["squeezenet1_1"].content_taps)


def test_unknown_loss_network_is_a_user_error():
    from livestyle.errors import LossNetWeightsError

    with pytest.raises(LossNetWeightsError, match="unknown loss network 'alexnet'"):
        ObjectiveConfig(loss_net="alexnet").resolved()


def test_terms_add_up_and_vanish_at_their_targets(lossnet):
    style, content = images(1), images(2)
    objective = PerceptualObjective(lossnet, style_image=style, content_weight=2.0, style_weight=3.0, tv_weight=0.5)
    terms = objective(images(3), content)
    assert terms.total.item() == pytest.approx(terms.content.item() + terms.style.item() + terms.tv.item(), rel=1e-6)
    assert terms.content.item() > 0 and terms.style.item() > 0 and terms.tv.item() > 0
    assert objective(content, content).content.item() == pytest.approx(0.0, abs=1e-9)
    assert objective(style, content).style.item() == pytest.approx(0.0, abs=1e-6)
    assert sum(t.item() for t in terms.style_per_tap.values()) == pytest.approx(terms.style.item(), rel=1e-5)


def test_weights_scale_their_terms_and_batch_size_does_not(lossnet):
    style, content, output = images(1), images(2), images(3)
    one = PerceptualObjective(lossnet, style_image=style, style_weight=1.0)
    tap = one.style_taps[0]
    doubled = PerceptualObjective(lossnet, style_image=style, style_weight=1.0, style_tap_weights={tap: 2.0})
    a, b = one(output, content), doubled(output, content)
    assert b.style_per_tap[tap].item() == pytest.approx(2 * a.style_per_tap[tap].item(), rel=1e-5)
    batch = one(output.repeat(2, 1, 1, 1), content.repeat(2, 1, 1, 1))
    assert batch.total.item() == pytest.approx(a.total.item(), rel=1e-5)


def test_target_grams_match_the_style_image(lossnet):
    style = images(4)
    objective = PerceptualObjective(lossnet, style_image=style)
    features = lossnet(style)
    for tap in objective.style_taps:
        assert torch.allclose(objective.target_grams[tap], gram_matrix(features[tap]))


def test_gradients_reach_the_image_not_the_loss_network(lossnet):
    objective = PerceptualObjective(lossnet, style_image=images(1), tv_weight=1.0)
    output = images(3).requires_grad_(True)
    objective(output, images(2)).total.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in lossnet.parameters())


def test_missing_taps_and_style_are_reported(lossnet):
    with pytest.raises(ValueError, match="does not expose"):
        PerceptualObjective(lossnet, style_taps=("fire9",))
    with pytest.raises(ValueError, match="no style target"):
        PerceptualObjective(lossnet)(images(3), images(2))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_few_iterations_lower_the_loss(optimizer):
    torch.manual_seed(0)
    objective = build_objective(ObjectiveConfig(style_weight=1.0, tv_weight=1.0), images(1), pretrained=False)
    content = images(2)
    seen = []
    result = optimize_image(objective, content, GatysConfig(iterations=6, optimizer=optimizer, init="noise"),
                            on_iteration=lambda i, loss: seen.append(i), record_history=True, snapshots=(0, 3, 6))
    start = objective(result.snapshots[0], content).total.item()
    assert seen == [1, 2, 3, 4, 5, 6]  # exactly the iterations asked for, L-BFGS included
    assert result.terms["total"] < start
    assert len(result.history) == 6 and result.history[-1] < result.history[0]
    assert sorted(result.snapshots) == [0, 3, 6]
    assert result.image.min() >= 0 and result.image.max() <= 1 and result.image.shape == content.shape


def test_start_images():
    from livestyle.quality.gatys import initial_image

    content = images(2)
    assert torch.equal(initial_image(content, "content"), content)
    noise = initial_image(content, "noise", seed=1)
    assert noise.shape == content.shape and not torch.equal(noise, content)
    assert torch.equal(noise, initial_image(content, "noise", seed=1))


def test_bad_gatys_settings_are_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        GatysConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="init"):
        GatysConfig(init="zeros")


def test_loss_network_min_side_is_the_smallest_that_runs():
    for name, taps in (("squeezenet1_1", None), ("squeezenet1_1", ("conv1",)), ("vgg16", None)):
        net = loss_network(name, taps=taps, pretrained=False)
        side = net.min_side
        net(torch.zeros(1, 3, side, side))
        with pytest.raises(RuntimeError):
            net(torch.zeros(1, 3, side - 1, side + 20))
    assert loss_network("squeezenet1_1", taps=("conv1",), pretrained=False).min_side < 9


def test_too_small_images_are_a_user_error_in_gatys():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="content image is 6×4 px"):
        stylize_by_optimization(rng.random((4, 6, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32),
                                ObjectiveConfig(), GatysConfig(iterations=1), pretrained=False)


def test_stylize_by_optimization_resizes_to_the_long_side():
    rng = np.random.default_rng(0)
    content = rng.random((30, 40, 3), dtype=np.float32)
    style = rng.random((50, 20, 3), dtype=np.float32)
    torch.manual_seed(0)
    result = stylize_by_optimization(content, style, ObjectiveConfig(), GatysConfig(iterations=2), size=24,
                                     pretrained=False)
    assert result.image.shape == (1, 3, 18, 24) and math.isfinite(result.terms["total"])


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_image_optimize_cli(tmp_path, shared_data):
    content = tmp_path / "c.png"
    rgba = np.zeros((20, 28, 4), np.uint8)
    rgba[..., :3] = np.random.default_rng(0).integers(0, 256, (20, 28, 3))
    rgba[..., 3] = 99
    cv2.imwrite(str(content), rgba)
    out = tmp_path / "o.png"
    result = run("image", content, "-o", out, "--optimize", "--style-image", shared_data / "styles" / "wave_crop.jpg",
                 "--iters", "3", "--loss-net-weights", shared_data / "lossnets" / "squeezenet1_1_imagenet.safetensors")
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.shape == (20, 28, 4) and (written[..., 3] == 99).all()
    assert "gatys (squeezenet1_1, lbfgs, 3 it" in result.output


def one_line_error(result, pattern):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line]
    assert "Traceback" not in result.output and pattern in lines[-1], result.output


def test_image_optimize_rejects_bad_combinations(tmp_path, tiny_style_file):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((16, 16, 3), np.uint8))
    one_line_error(run("image", photo, "-o", tmp_path / "o.png", "--optimize"), "--optimize needs --style-image")
    one_line_error(run("image", photo, "-o", tmp_path / "o.png", "--optimize", "--style-image", photo,
                       "--model", tiny_style_file), "not --style/--model/--superres")
    one_line_error(run("image", photo, "-o", tmp_path / "o.png", "--style-image", photo, "--model", tiny_style_file),
                   "--style-image needs --optimize")


def test_image_optimize_missing_loss_net_weights(tmp_path):
    photo = tmp_path / "p.png"
    cv2.imwrite(str(photo), np.zeros((16, 16, 3), np.uint8))
    result = run("image", photo, "-o", tmp_path / "o.png", "--optimize", "--style-image", photo,
                 "--loss-net-weights", tmp_path / "nope.safetensors")
    one_line_error(result, "loss-network weights file not found")


def test_a_style_image_too_small_for_the_taps_is_an_input_error():
    """Training and `eval style` reached the loss network with it and failed with a traceback."""
    from livestyle.quality.objective import ObjectiveConfig, build_objective

    objective = build_objective(ObjectiveConfig(style_weight=1.0), None, pretrained=False)
    small = objective.lossnet.min_side - 1
    with pytest.raises(InputError, match=f"the style image is 400×{small} px as used; .* at least {small + 1} px"):
        objective.set_style(torch.rand(1, 3, small, 400))
    objective.set_style(torch.rand(1, 3, small + 1, 400))  # just enough

