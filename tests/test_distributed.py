"""Training on several processes: torchrun with gloo on the CPU gives the one-process run, and a
checkpoint written by 2 processes resumes on 1 as if nothing had changed."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner

from samples import smooth_image
from livestyle import load_model_file
from livestyle.cli import main
from livestyle.errors import TrainingError
from livestyle.training.distributed import Ranks, shard, wrap

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def training_files(tmp_path_factory):
    """Six small photos, a painting and random SqueezeNet weights (tests never need ImageNet weights)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    (folder / "photos").mkdir()
    for i in range(6):
        cv2.imwrite(str(folder / "photos" / f"{i}.png"), smooth_image(rng, 40, 48))
    cv2.imwrite(str(folder / "painting.png"), smooth_image(np.random.default_rng(1), 48, 64))
    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in torchvision.models.squeezenet1_1().state_dict().items()},
              str(folder / "squeezenet.safetensors"))
    return folder


def train_args(folder: Path, output: Path, iterations: int) -> list[str]:
    return ["train", "style", "--style-image", str(folder / "painting.png"), "--dataset", str(folder / "photos"),
            "--width", "4", "--blocks", "1", "--image-size", "32", "--batch-size", "4", "--iterations", str(iterations),
            "--lr", "1e-2", "--style-size", "48", "--loss-net-weights", str(folder / "squeezenet.safetensors"),
            "--device", "cpu", "--amp", "off", "--no-progress", "--preview-every", "0", "--checkpoint-every", "0",
            "-o", str(output)]


def stylised(model_file: Path) -> torch.Tensor:
    """The model's output on a fixed image. (Conv biases in front of instance norms get no gradient but
    float noise, which Adam scales up to whole steps: they differ between runs and change nothing.)"""
    model, _ = load_model_file(model_file)
    image = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model(image)


def test_each_rank_takes_its_equal_slice_of_the_global_batch():
    low, high = torch.arange(8).view(4, 2), torch.arange(16).view(4, 4)
    assert torch.equal(shard(low, Ranks(1, 2)), low[2:])
    assert [torch.equal(a, b) for a, b in zip(shard((low, high), Ranks(0, 2)), (low[:2], high[:2]))] == [True, True]
    assert shard(low, Ranks()) is low


def test_batch_norms_are_refused_on_cpu_processes_which_cannot_synchronise_them():
    from livestyle.models.superres import sr_net

    with pytest.raises(TrainingError, match="batch norms"):  # before any process group is needed
        wrap(sr_net(scale=4, width=4, blocks=1, norm="batch"), torch.device("cpu"))


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not beside this Python")
def test_torchrun_two_gloo_processes_train_as_one_and_resume_on_one(training_files, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = tmp_path / "two.safetensors"
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "livestyle",
                          *train_args(training_files, two, 2)], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("2 steps") == 1  # rank 0 alone reports
    entry = two.with_suffix(".json").read_text()
    assert "2 processes (DistributedDataParallel)" in entry

    one = tmp_path / "one.safetensors"
    result = CliRunner().invoke(main, train_args(training_files, one, 2))
    assert result.exit_code == 0, result.output
    by_two = torch.load(two.with_suffix(".ckpt"), weights_only=True)
    by_one = torch.load(one.with_suffix(".ckpt"), weights_only=True)
    assert by_two["images"] == by_one["images"] == 8  # the global batch: 4 a step
    for term in ("total", "content", "style", "tv"):  # the loss on the whole batch, the mean of the ranks'
        assert by_two["history"][term] == pytest.approx(by_one["history"][term], rel=1e-5), term
    assert torch.allclose(stylised(two), stylised(one), atol=1e-4)

    # The 2-process checkpoint resumes on one process and ends where one process alone ends.
    resumed = tmp_path / "resumed.safetensors"
    shutil.copy(two.with_suffix(".ckpt"), resumed.with_suffix(".ckpt"))
    result = CliRunner().invoke(main, [*train_args(training_files, resumed, 4), "--resume"])
    assert result.exit_code == 0, result.output
    straight = tmp_path / "straight.safetensors"
    result = CliRunner().invoke(main, train_args(training_files, straight, 4))
    assert result.exit_code == 0, result.output
    assert torch.allclose(stylised(resumed), stylised(straight), atol=1e-4)
    assert not torch.allclose(stylised(resumed), stylised(two), atol=1e-4)  # it did train on
