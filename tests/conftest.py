"""Shared fixtures: the ../shared data folder (skipped with a reason where absent) and tiny models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """$LIVESTYLE_SHARED_DATA, else ../shared/data beside the checkout."""
    env = os.environ.get("LIVESTYLE_SHARED_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The test nets are tiny: one intra-op thread is faster, and far faster on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set LIVESTYLE_SHARED_DATA to its folder)")
    return path


@pytest.fixture
def tiny_style_file(tmp_path) -> Path:
    """A small random-weight style model saved as a livestyle safetensors file, with a border margin
    as shipped models have."""
    from livestyle import save_model_file, transform_net

    torch.manual_seed(0)
    path = tmp_path / "tiny_style.safetensors"
    save_model_file(transform_net(width=4, blocks=1, margin=6), path)
    return path


@pytest.fixture
def tiny_sr_file(tmp_path) -> Path:
    from livestyle import save_model_file, sr_net

    torch.manual_seed(0)
    path = tmp_path / "tiny_sr.safetensors"
    save_model_file(sr_net(scale=4, width=4, blocks=1), path)
    return path
