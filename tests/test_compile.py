"""torch.compile engines: same output as eager, a persistent cache shared across weights, eager fallback."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from samples import pretend_native_bf16, tiny_style
from livestyle.engines.torch_engine import TorchEngine
from livestyle.engines.factory import create_engine
from livestyle.engines.compile_cache import ENV_INDUCTOR_CACHE, SUBDIR, use_persistent_compile_cache
from livestyle.errors import EngineOptionError

ROOT = Path(__file__).resolve().parent.parent
FP32_TOL = 1e-4

# One process = one compile: build a tiny style net from SEED, compile it at 24×32 in FP32, compare with
# eager, report inductor's cache counters and where the cache went.
COMPILE_ONCE = textwrap.dedent("""
    import json, os, sys, torch
    sys.path.insert(0, sys.argv[2])
    from samples import tiny_style
    from torch._dynamo.utils import counters
    from livestyle.engines.torch_engine import TorchEngine
    model = tiny_style()
    torch.manual_seed(int(sys.argv[1]))
    with torch.no_grad():  # weights of this seed
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    compiled = TorchEngine(model, device="cpu", compile=True)
    eager = TorchEngine(model, device="cpu")
    y = compiled(x)
    error = (y - eager(x)).abs().max().item()
    print(json.dumps({"error": error, "output": y.flatten()[:64].tolist(), "name": compiled.name, "inductor": dict(counters["inductor"]),
                      "cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}))
""")


def compile_in_new_process(seed: int, cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV_INDUCTOR_CACHE}
    env["LIVESTYLE_CACHE_DIR"] = str(cache)
    done = subprocess.run([sys.executable, "-c", COMPILE_ONCE, str(seed), str(ROOT / "tests")], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_compiled_engine_matches_eager_and_a_new_process_reuses_its_cache_for_other_weights(tmp_path):
    first = compile_in_new_process(0, tmp_path)
    assert first["name"] == "torch-cpu-fp32-compile"
    assert first["error"] < FP32_TOL
    assert first["cache"] == str(tmp_path / SUBDIR)
    assert first["inductor"].get("fxgraph_cache_miss", 0) >= 1
    assert any((tmp_path / SUBDIR).rglob("*")), "nothing was written to the compile cache"

    # Other weights, same architecture and shape: compiled code comes from the cache, weights stay inputs.
    second = compile_in_new_process(1, tmp_path)
    assert second["inductor"].get("fxgraph_cache_hit", 0) >= 1
    assert second["inductor"].get("fxgraph_cache_miss", 0) == 0
    assert second["error"] < FP32_TOL
    assert max(abs(a - b) for a, b in zip(first["output"], second["output"])) > 0.01  # the weights did differ


def test_compile_failure_warns_and_runs_eagerly(monkeypatch, tmp_path):
    from torch._dynamo.exc import BackendCompilerFailed

    monkeypatch.setenv(ENV_INDUCTOR_CACHE, str(tmp_path))

    def compile_that_fails(model, **options):
        def run(x):
            raise BackendCompilerFailed(None, RuntimeError("no C++ compiler found"), None)
        return run

    monkeypatch.setattr(torch, "compile", compile_that_fails)
    model = tiny_style()
    engine = TorchEngine(model, device="cpu", compile=True)
    x = torch.rand(1, 3, 20, 20)
    with pytest.warns(UserWarning, match="torch.compile failed.*continues without compiling"):
        y = engine(x)
    assert engine.name == "torch-cpu-fp32" and not engine.compiled
    assert (y - TorchEngine(model, device="cpu")(x)).abs().max().item() < FP32_TOL
    assert engine(x).shape == y.shape  # and from then on, eager without a warning


def test_compile_is_for_the_torch_backend():
    with pytest.raises(EngineOptionError, match="torch backend, not 'onnx'"):
        create_engine(tiny_style(), backend="onnx", device="cpu", compile=True)


def test_compile_with_auto_uses_torch(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_INDUCTOR_CACHE, str(tmp_path))
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)  # the choice, not the compiler
    engine = create_engine(tiny_style(), device="cpu", compile=True)
    assert engine.name.startswith("torch-cpu-") and engine.name.endswith("-compile")


def test_a_user_chosen_cache_folder_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_INDUCTOR_CACHE, str(tmp_path / "mine"))
    assert use_persistent_compile_cache(tmp_path / "livestyle") == tmp_path / "mine"
    assert os.environ[ENV_INDUCTOR_CACHE] == str(tmp_path / "mine")


def test_torchs_default_is_replaced_by_livestyles_folder(monkeypatch, tmp_path):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(ENV_INDUCTOR_CACHE, default_cache_dir())  # what torch writes there when it first looks
    assert use_persistent_compile_cache(tmp_path) == tmp_path / SUBDIR
    assert os.environ[ENV_INDUCTOR_CACHE] == str(tmp_path / SUBDIR)


def test_an_unwritable_cache_folder_leaves_torchs_default_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_INDUCTOR_CACHE, raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(UserWarning, match="cannot be written"):
        assert use_persistent_compile_cache(blocker) is None
    assert ENV_INDUCTOR_CACHE not in os.environ


def test_cli_compile_with_tile_or_another_backend_is_a_one_line_error(tmp_path, tiny_style_file):
    import cv2
    import numpy as np
    from click.testing import CliRunner

    from livestyle.cli import main

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), np.zeros((20, 30, 3), np.uint8))
    base = ["image", str(photo), "-o", str(tmp_path / "out.png"), "--model", str(tiny_style_file), "--compile"]
    for extra, message in ((["--tile", "32"], "--tile runs the network eagerly; leave out --compile"),
                           (["--backend", "onnx"], "compiling is for the torch backend, not 'onnx'")):
        result = CliRunner().invoke(main, base + extra)
        assert result.exit_code == 1 and result.output.strip() == f"livestyle: error: {message}", result.output
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("native", [False, True])
def test_engine_benchmark_extra_times_the_compiled_cpu_engines_under_their_own_names(monkeypatch, tmp_path, native):
    from livestyle.benchmarks.engine_table import default_candidates

    monkeypatch.setenv(ENV_INDUCTOR_CACHE, str(tmp_path))
    pretend_native_bf16(monkeypatch, native)
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)  # names, not the compiler
    plain = [c.label for c in default_candidates(torch.device("cpu"))]
    extra = default_candidates(torch.device("cpu"), extra=True)
    compiled = [c for c in extra if c.label.endswith("-compile")]
    assert [c.label for c in extra][:len(plain)] == plain
    assert [c.label for c in compiled] == ["torch-cpu-fp32-compile"] + ["torch-cpu-bf16-compile"] * native
    for candidate in compiled:
        assert candidate.build(tiny_style(), torch.device("cpu")).name == candidate.label


def test_bench_extra_belongs_to_the_engines_table():
    from click.testing import CliRunner

    from livestyle.cli import main

    result = CliRunner().invoke(main, ["bench", "--extra"])
    assert result.exit_code == 2 and "No such option '--extra'" in result.output
