"""CPU engines chosen by timing (cached per CPU), OpenVINO, memory-bounded tiling, the frame-rate governor."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from samples import pretend_native_bf16, tiny_style
from test_pipeline import make_clip

from livestyle import sr_net, transform_net
from livestyle.cli import main
from livestyle.engines import cpu_choice
from livestyle.engines.cpu_choice import (CHOICE_FILE, CpuCandidate, MeasuredCpuEngine, cpu_candidates, probe_shape,
                                          size_class, thread_counts)
from livestyle.engines.factory import create_engine
from livestyle.engines.memory import MemoryBoundedEngine, activation_bytes_per_pixel, tile_for_budget
from livestyle.engines.resolution import ReducedResolutionEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.errors import BackendUnavailableError, EngineOptionError, InsufficientMemoryError
from livestyle.io.sources import Frame
from livestyle.pipeline.governor import FrameRateGovernor
from livestyle.pipeline.infer import InferStage

FP32_TOL = 1e-4


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------ candidates and choice

def test_candidates_torch_only_for_tiny_nets_every_backend_for_wide_ones(monkeypatch):
    pretend_native_bf16(monkeypatch, False)
    tiny = {(c.backend, c.precision) for c in cpu_candidates(tiny_style())}
    assert tiny == {("torch", "fp32")}
    wide = {c.backend for c in cpu_candidates(transform_net(width=8, blocks=1))}
    assert wide == {"torch"} | {b for b, m in (("onnx", "onnxruntime"), ("openvino", "openvino")) if installed(m)}
    assert {c.backend for c in cpu_candidates(sr_net(scale=4, width=4, blocks=1))} == wide  # SR nets always export
    assert {c.threads for c in cpu_candidates(tiny_style())} == set(thread_counts())


def test_bf16_candidates_only_where_the_cpu_has_it(monkeypatch):
    pretend_native_bf16(monkeypatch, True)
    both = cpu_candidates(transform_net(width=8, blocks=1))
    assert {c.precision for c in both} == {"fp32", "bf16"}
    assert not any(c.backend == "onnx" and c.precision == "bf16" for c in both)  # no BF16 in ONNX Runtime's CPU EP
    assert {c.precision for c in cpu_candidates(tiny_style(), precision="bf16")} == {"bf16"}
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a cap below AVX512-BF16 means no native BF16
    assert {c.precision for c in cpu_candidates(transform_net(width=8, blocks=1))} == {"fp32"}
    with pytest.raises(BackendUnavailableError, match="AVX512-BF16 or AMX"):
        cpu_candidates(tiny_style(), precision="bf16")


def test_fp16_on_the_cpu_names_bf16():
    with pytest.raises(BackendUnavailableError, match="half precision is BF16"):
        create_engine(tiny_style(), backend="auto", device="cpu", precision="fp16")


def test_thread_counts_and_size_classes():
    assert thread_counts(1) == [1] and thread_counts(2) == [1, 2] and thread_counts(8) == [4, 8]
    assert size_class(480, 640) == 1 << 18 and size_class(1080, 1920) == 1 << 21 and size_class(1, 1) == 1
    assert size_class(480, 640) == size_class(500, 600)  # near sizes share a choice
    assert probe_shape((1, 3, 480, 640), call_ms=10, calls=10, budget_s=3) == (1, 3, 480, 640)
    n, c, h, w = probe_shape((1, 3, 480, 640), call_ms=4000, calls=10, budget_s=3)
    assert 64 <= h < 480 and 64 <= w < 640 and h % 8 == 0 and abs(w / h - 640 / 480) < 0.1


class FakeEngine:
    """A stand-in CPU engine that takes ``seconds`` per call and counts its calls."""

    def __init__(self, label: str, seconds: float):
        self.name, self.seconds, self.calls = f"fake-{label}", seconds, 0
        self.scale, self.device = 1, torch.device("cpu")

    def __call__(self, batch):
        self.calls += 1
        time.sleep(self.seconds)
        return batch


def fake_candidates(monkeypatch, seconds: dict[str, float]) -> tuple[list[CpuCandidate], dict[str, FakeEngine]]:
    built: dict[str, FakeEngine] = {}

    def build(model, candidate, **options):
        built[candidate.label] = FakeEngine(candidate.label, seconds[candidate.label])
        return built[candidate.label]

    monkeypatch.setattr(cpu_choice, "build_candidate", build)
    candidates = [CpuCandidate(*label.split("-")[:2], int(label.split("-t")[1])) for label in seconds]
    return candidates, built


def test_the_fastest_candidate_wins_and_the_choice_is_cached(monkeypatch, tmp_path):
    seconds = {"torch-fp32-t1": 0.004, "torch-fp32-t2": 0.012, "openvino-fp32-t1": 0.0005}
    candidates, built = fake_candidates(monkeypatch, seconds)
    said = []
    engine = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.2,
                               progress=said.append)
    x = torch.rand(1, 3, 24, 32)
    assert engine(x) is x
    assert engine.name == "fake-openvino-fp32-t1" and engine.choice["measured"] is True
    assert set(engine.choice["times_ms"]) == set(seconds)
    assert engine.choice["times_ms"]["openvino-fp32-t1"] < engine.choice["times_ms"]["torch-fp32-t2"]
    stored = json.loads((tmp_path / CHOICE_FILE).read_text())["choices"]
    (record,) = stored.values()
    assert record["winner"] == "openvino-fp32-t1" and record["key"]["size_class"] == size_class(24, 32)
    assert said == []  # a tiny net is timed quietly

    # A second engine (a new run) reads the cache: it builds only the winner and times nothing.
    built.clear()
    again = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.2)
    again(x)
    assert list(built) == ["openvino-fp32-t1"] and built["openvino-fp32-t1"].calls == 1
    assert again.choice["measured"] is False

    # Another instruction-set cap is another machine as far as speed goes: timed again.
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.2)
    capped(x)
    assert capped.choice["measured"] is True and len(json.loads((tmp_path / CHOICE_FILE).read_text())["choices"]) == 2


def test_live_engines_reuse_the_nearest_choice_for_new_sizes(monkeypatch, tmp_path):
    candidates, built = fake_candidates(monkeypatch, {"torch-fp32-t1": 0.0005, "torch-fp32-t2": 0.003})
    engine = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.1,
                               measure_new_sizes=False)
    engine.prepare((1, 3, 96, 128))
    calls = {label: e.calls for label, e in built.items()}
    engine(torch.rand(1, 3, 48, 64))  # a governor's lower scale: no timing stall in a live run
    assert engine.name == "fake-torch-fp32-t1"
    assert built["torch-fp32-t2"].calls == calls["torch-fp32-t2"]


def test_a_candidate_that_cannot_be_built_is_skipped(monkeypatch, tmp_path):
    def build(model, candidate, **options):
        if candidate.backend == "openvino":
            raise BackendUnavailableError("OpenVINO is not installed (pip install openvino)")
        return FakeEngine(candidate.label, 0.0)

    monkeypatch.setattr(cpu_choice, "build_candidate", build)
    candidates = [CpuCandidate("torch", "fp32", 1), CpuCandidate("openvino", "fp32", 1)]
    engine = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.05)
    engine.prepare((1, 3, 16, 16))
    assert engine.name == "fake-torch-fp32-t1"
    assert "pip install openvino" in engine.choice["skipped"]["openvino-fp32-t1"]


def test_auto_on_the_cpu_runs_what_it_measured(tmp_path):
    model = tiny_style()
    engine = create_engine(model, backend="auto", device="cpu", cache_dir=tmp_path)
    x = torch.rand(1, 3, 20, 28)
    with torch.no_grad():
        expected = model(x)
    out = engine(x)
    tolerance = FP32_TOL if "fp32" in engine.name else 0.05  # BF16 keeps 8 mantissa bits
    assert out.shape == expected.shape and (out - expected).abs().max().item() < tolerance


def test_torch_engine_threads_are_its_own_and_put_back():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x

    before = torch.get_num_threads()
    engine = TorchEngine(Probe(), device="cpu", threads=2)
    engine(torch.rand(1, 3, 8, 8))
    assert seen == [2] and torch.get_num_threads() == before and engine.name == "torch-cpu-fp32-t2"


# ------------------------------------------------------------------------------------------- OpenVINO

openvino_only = pytest.mark.skipif(not installed("openvino"), reason="openvino is not installed (pip install openvino)")


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "livestyle-export-cache"  # shared with test_engines.py's exports


@openvino_only
def test_openvino_matches_torch_for_style_and_sr_at_new_sizes(export_cache):
    from livestyle.engines.openvino_engine import OpenVinoEngine

    torch.manual_seed(0)
    sr = sr_net(scale=4, width=4, blocks=1).eval()
    with torch.no_grad():
        sr.tail[1].weight.normal_(0, 0.1)  # a trained net's tail is not zero: make the network's part count
    for model in (tiny_style(), sr):
        engine = OpenVinoEngine(model, threads=1, cache_dir=export_cache)
        assert engine.name == "openvino-cpu-fp32-t1" and engine.scale == model_scale(model)
        for shape in [(1, 3, 30, 41), (2, 3, 16, 16), (1, 3, 30, 41)]:
            x = torch.rand(*shape)
            with torch.no_grad():
                expected = model(x)
            out = engine(x)
            assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


def model_scale(model) -> int:
    return int(getattr(model, "scale", 1))


@openvino_only
def test_openvino_bf16_is_close_where_the_cpu_has_it(export_cache):
    from livestyle.engines.device import cpu_has_native_bf16
    from livestyle.engines.openvino_engine import OpenVinoEngine

    if not cpu_has_native_bf16():
        with pytest.raises(BackendUnavailableError, match="AVX512-BF16 or AMX"):
            OpenVinoEngine(tiny_style(), precision="bf16", cache_dir=export_cache)
        return
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        expected = tiny_style()(x)
    out = OpenVinoEngine(tiny_style(), precision="bf16", cache_dir=export_cache)(x)
    mse = torch.mean((out - expected) ** 2).item()
    assert 10 * np.log10(1.0 / max(mse, 1e-20)) > 35.0


def test_missing_openvino_says_what_to_install(monkeypatch):
    import sys

    from livestyle.engines.openvino_engine import import_openvino

    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install openvino"):
        import_openvino()
    with pytest.raises(BackendUnavailableError, match=r"pip install openvino"):
        create_engine(tiny_style(), backend="openvino", device="cpu")


# --------------------------------------------------------------------------------------------- memory

def test_activation_estimate_counts_every_layer_output():
    model = sr_net(scale=4, width=4, blocks=1).eval()
    per_pixel = activation_bytes_per_pixel(model)
    # at least the ×4 upsampled feature maps (4 channels at 16× the pixels, float32) and the output
    assert per_pixel > 4 * 4 * 16 + 3 * 4 * 16
    assert activation_bytes_per_pixel(sr_net(scale=4, width=8, blocks=1).eval()) > 1.5 * per_pixel


def test_tiles_fit_the_budget_in_the_fewest_passes():
    h, w = tile_for_budget(480, 640, 1000.0, 1000 * 300 * 400, margin=10, stride=4)
    assert (h + 20) * (w + 20) * 1000 <= 1000 * 300 * 400 and h % 4 == 0 and w % 4 == 0
    # 3 passes; 2 cannot fit: 1×2 tiles take 500×340 pixels with margins, 2×1 take 260×660 (> 120,000)
    assert (-(-480 // h)) * (-(-640 // w)) == 3
    assert tile_for_budget(100, 100, 10.0, 1 << 30, margin=10, stride=1) == (100, 100)  # fits whole
    with pytest.raises(InsufficientMemoryError, match="--memory-budget"):
        tile_for_budget(480, 640, 1000.0, 1000 * 30 * 30, margin=10, stride=4)


@pytest.mark.parametrize("build", [lambda: sr_net(scale=4, width=4, blocks=1), tiny_style], ids=["sr", "style"])
def test_frames_over_the_budget_run_tiled_and_match_whole_ones(build):
    torch.manual_seed(0)
    model = build().eval()
    if model_scale(model) > 1:
        with torch.no_grad():
            model.tail[1].weight.normal_(0, 0.1)
    x = torch.rand(1, 3, 144, 192)
    whole = TorchEngine(model, device="cpu")
    expected = whole(x)
    per_pixel = activation_bytes_per_pixel(model)
    roomy = MemoryBoundedEngine(whole, model, budget=int(per_pixel * 144 * 192 * 2))
    assert torch.equal(roomy(x), expected) and "tiled" not in roomy.name
    tight = MemoryBoundedEngine(whole, model, budget=int(per_pixel * 144 * 192 / 2))
    out = tight(x)
    assert "tiled" in tight.name and out.shape == expected.shape
    assert (out - expected).abs().max().item() < 1e-4  # exact tiles: whole-frame statistics, receptive-field margins
    if model_scale(model) > 1:
        assert tight.name.startswith(whole.name)  # SR tiles run through the whole-frame engine


def test_bad_memory_budget_is_a_usage_error(tmp_path, tiny_style_file):
    photo = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(photo)
    result = CliRunner().invoke(main, ["image", str(photo), "-o", str(tmp_path / "o.png"), "--model",
                                       str(tiny_style_file), "--memory-budget", "lots"])
    assert result.exit_code == 2 and "'lots' is not a memory size" in result.output


# ------------------------------------------------------------------------------------------- governor

def test_governor_steps_down_when_slow_and_back_up_when_there_is_room():
    governor = FrameRateGovernor(30)
    budget = 0.9 / 30
    scales = []
    for load in [0.08] * 40 + [0.01] * 200:  # seconds a full-scale frame takes: too slow, then fast again
        changed = governor.observe(0.002 + load * governor.scale ** 2)
        scales.append(governor.scale)
        assert changed is None or changed == governor.scale
    slow, fast = scales[:40], scales[40:]
    assert min(slow) < 1.0 and 0.002 + 0.08 * slow[-1] ** 2 <= budget  # found a scale that holds 30 fps
    assert fast[-1] == 1.0 and governor.changes >= 2
    assert all(a >= b for a, b in zip(slow, slow[1:]))  # no swinging while the load holds
    assert "inference scale 100%" in governor.summary() and "lowest" in governor.summary()


def test_governor_settings_are_checked():
    for bad in [dict(target_fps=0), dict(target_fps=30, scales=(0.5, 0.25)), dict(target_fps=30, scales=(1.0, 1.0))]:
        with pytest.raises(EngineOptionError):
            FrameRateGovernor(**bad)
    assert FrameRateGovernor(60).target_fps == 30.0  # at most 30 fps


class SlowEngine:
    """A style engine made slow on purpose: ``seconds_per_pixel`` × pixels per call (sleeps)."""

    def __init__(self):
        self.name, self.scale, self.device = "slow", 1, torch.device("cpu")
        self.seconds_per_pixel = 0.0
        self.sizes = []

    def __call__(self, batch):
        h, w = batch.shape[-2:]
        self.sizes.append((h, w))
        time.sleep(self.seconds_per_pixel * h * w)
        return batch


def test_governor_in_the_infer_stage_scales_a_slow_engine_and_recovers():
    slow = SlowEngine()
    engine = ReducedResolutionEngine(slow, infer_scale=1.0, upsample="bicubic")
    stage = InferStage(engine, governor=FrameRateGovernor(30))  # 30 ms a frame at most
    frame = np.zeros((60, 80, 3), np.uint8)

    def run(frames: int) -> None:
        for i in range(frames):
            out = stage([Frame(i, frame)])[0].output
            assert out.shape == frame.shape  # every scale gives frames of the input's size

    slow.seconds_per_pixel = 0.1 / (60 * 80)  # 100 ms a full frame: 10 fps
    run(30)
    low = stage.governor.scale
    assert low <= 0.6 and slow.sizes[-1][0] == round(60 * low)
    slow.seconds_per_pixel = 0.002 / (60 * 80)  # the machine has room again: steps up, one a second or so
    run(200)
    assert stage.governor.scale == 1.0 and slow.sizes[-1] == (60, 80)
    # a new engine (style switch) starts at the governor's scale
    stage.governor.index = 2
    other = ReducedResolutionEngine(SlowEngine(), infer_scale=1.0)
    stage.set_engine(other)
    assert other.infer_scale == stage.governor.scale


def test_a_governor_needs_a_variable_scale():
    with pytest.raises(EngineOptionError, match="variable inference scale"):
        InferStage(TorchEngine(tiny_style(), device="cpu"), governor=FrameRateGovernor(30))


def test_cam_governs_unless_told_not_to(tmp_path, tiny_style_file):
    clip = make_clip(tmp_path / "in.mp4", frames=12, size=(64, 48), fps=30)
    common = ["cam", "--source", str(clip), "--model", str(tiny_style_file), "--no-window"]
    runner = CliRunner()
    governed = runner.invoke(main, common)
    assert governed.exit_code == 0, governed.output
    assert "inference scale" in governed.output and "governor for 30 fps" in governed.output
    assert "runs on torch-cpu-" in governed.output  # said at the start
    for off in (["--no-adapt"], ["--infer-scale", "1"], ["--infer-scale", "0.5"]):
        result = runner.invoke(main, common + off)
        assert result.exit_code == 0, result.output
        assert "inference scale" not in result.output


def test_a_candidate_that_fails_when_run_is_left_out(monkeypatch, tmp_path):
    class Broken(FakeEngine):
        def __call__(self, batch):
            raise RuntimeError("could not compile for this shape")

    def build(model, candidate, **options):
        return (Broken if candidate.backend == "openvino" else FakeEngine)(candidate.label, 0.0)

    monkeypatch.setattr(cpu_choice, "build_candidate", build)
    candidates = [CpuCandidate("torch", "fp32", 1), CpuCandidate("openvino", "fp32", 1)]
    engine = MeasuredCpuEngine(tiny_style(), candidates=candidates, cache_dir=tmp_path, budget_s=0.05)
    engine.prepare((1, 3, 16, 16))
    assert engine.name == "fake-torch-fp32-t1" and "could not compile" in engine.choice["skipped"]["openvino-fp32-t1"]
