"""Engines behind one interface: torch, ONNX Runtime, TensorRT (GPU only), reduced resolution, auto, bench."""
import json

import numpy as np
import pytest
import torch

from samples import natural_image, pretend_native_bf16, tiny_style
from livestyle import sr_net, transform_net
from livestyle.engines import BACKENDS
from livestyle.engines.resolution import ReducedResolutionEngine
from livestyle.engines.torch_engine import TorchEngine
from livestyle.engines.factory import create_engine
from livestyle.benchmarks.engine_table import BASELINE_EAGER, benchmark_engines, write_benchmark
from livestyle.engines.resolution import guided_upsample, luma
from livestyle.engines.device import cpu_has_native_bf16
from livestyle.errors import BackendUnavailableError, EngineOptionError

FP32_TOL = 1e-4  # max abs error on [0, 1] images between backends in FP32
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")




def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float().cpu() - b.float().cpu()) ** 2).item()
    return 10 * np.log10(1.0 / max(mse, 1e-20))


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "livestyle-export-cache"


def test_backends_listed_for_the_cli():
    assert BACKENDS == ("auto", "torch", "onnx", "openvino", "tensorrt")
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        create_engine(tiny_style(), backend="tflite", device="cpu")


def test_torch_engine_cpu_matches_model():
    model = tiny_style()
    x = torch.rand(2, 3, 19, 22)
    with torch.no_grad():
        expected = model(x)
    plain = TorchEngine(model, device="cpu", rewrites=False)
    assert plain.name == "torch-cpu-fp32-plain" and plain.scale == 1
    assert torch.equal(plain(x), expected)
    engine = TorchEngine(model, device="cpu")  # the exact sub-pixel rewrite is the CPU default
    assert engine.name == "torch-cpu-fp32"
    for options in ({}, {"channels_last": True}, {"rewrites": False, "channels_last": True}):
        out = TorchEngine(model, device="cpu", **options)(x)
        assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


@pytest.mark.parametrize("options, message", [({"precision": "fp16"}, "CUDA"),
                                              ({"cuda_graphs": True}, "CUDA graphs"),
                                              ({"precision": "int4"}, "unknown precision")])
def test_torch_engine_rejects_gpu_only_options_on_cpu(options, message):
    with pytest.raises(BackendUnavailableError, match=message):
        TorchEngine(tiny_style(), device="cpu", **options)


def test_cpu_bf16_needs_native_bf16(monkeypatch):

    pretend_native_bf16(monkeypatch, False)
    with pytest.raises(BackendUnavailableError, match="AVX512-BF16 or AMX"):
        TorchEngine(tiny_style(), device="cpu", precision="bf16")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with native BF16 (AVX512-BF16 or AMX)")
@pytest.mark.parametrize("pixel_shuffle", [False, True])
def test_cpu_bf16_close_to_fp32(pixel_shuffle):
    model = transform_net(width=4, blocks=1, pixel_shuffle=pixel_shuffle)
    x = natural_image(96, 80)
    expected = TorchEngine(model, device="cpu")(x)
    engine = TorchEngine(model, device="cpu", precision="bf16")
    assert engine.name == "torch-cpu-bf16"
    out = engine(x)
    assert out.dtype == torch.float32 and out.shape == expected.shape
    assert psnr(out, expected) > 35.0  # BF16 keeps 8 mantissa bits: ≈ 1/255 per value at worst here


def test_auto_on_cpu_says_what_it_chose(export_cache):
    engine = create_engine(tiny_style(), backend="auto", device="cpu", cache_dir=export_cache)
    engine(torch.rand(1, 3, 16, 16))  # the choice is made on the first frame: tiny nets run in torch
    assert engine.name.startswith("torch-cpu-") and engine.name[-3:-1] == "-t"


@pytest.mark.parametrize("build", [tiny_style, lambda: transform_net(width=4, blocks=1, pixel_shuffle=True).eval()],
                         ids=["style", "style-pixel-shuffle"])
def test_onnx_engine_matches_torch_and_handles_new_sizes(export_cache, build):
    torch.manual_seed(0)
    model = build()
    engine = create_engine(model, backend="onnx", device="cpu", cache_dir=export_cache)
    assert engine.name == "onnxruntime-cpu-fp32"
    for shape in [(1, 3, 30, 41), (2, 3, 16, 16), (1, 3, 8, 12)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x)
        out = engine(x)
        assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


def test_onnx_sr_engine_matches_torch_down_to_one_pixel(export_cache):
    torch.manual_seed(0)
    model = sr_net(scale=4, width=4, blocks=1).eval()
    with torch.no_grad():  # a trained net's tail is not zero: make the network's part count
        model.tail[1].weight.normal_(0, 0.1)
    engine = create_engine(model, backend="onnx", device="cpu", cache_dir=export_cache)
    for shape in [(1, 3, 9, 12), (1, 3, 4, 4), (1, 3, 1, 1), (1, 3, 3, 7)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x)
        out = engine(x)
        assert out.shape == expected.shape and (out - expected).abs().max().item() < FP32_TOL


def test_half_precision_on_the_cpu_is_bf16(monkeypatch, export_cache):

    pretend_native_bf16(monkeypatch, True)
    assert create_engine(tiny_style(), backend="torch", device="cpu", precision="bf16").name == "torch-cpu-bf16"
    auto = create_engine(tiny_style(), backend="auto", device="cpu", precision="bf16", cache_dir=export_cache)
    assert {c.precision for c in auto.whole.candidates} == {"bf16"}  # auto times BF16 engines only
    pretend_native_bf16(monkeypatch, False)
    with pytest.raises(BackendUnavailableError, match="AVX512-BF16 or AMX"):
        create_engine(tiny_style(), backend="auto", device="cpu", precision="bf16")


def test_onnx_engine_fp16_needs_cuda(export_cache):
    with pytest.raises(BackendUnavailableError, match="CUDA only; on the CPU, --fp16 means BF16 with the torch backend"):
        create_engine(tiny_style(), backend="onnx", device="cpu", precision="fp16", cache_dir=export_cache)


def test_tensorrt_backend_explains_what_is_missing():
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        create_engine(tiny_style(), backend="tensorrt", device="cpu")


@pytest.mark.parametrize("upsample", ["bicubic", "guided"])
def test_reduced_resolution_engine_keeps_size_and_range(upsample):
    engine = create_engine(tiny_style(), backend="torch", device="cpu", infer_scale=0.5, upsample=upsample)
    assert isinstance(engine, ReducedResolutionEngine) and engine.name == f"torch-cpu-fp32@0.5x-{upsample}"
    out = engine(natural_image(31, 40))
    assert out.shape == (1, 3, 31, 40) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kwargs, message", [({"infer_scale": 0.0}, "infer scale"), ({"infer_scale": 1.5}, "infer scale"),
                                             ({"infer_scale": 0.5, "upsample": "lanczos"}, "unknown upsampler")])
def test_reduced_resolution_rejects_bad_options(kwargs, message):
    with pytest.raises(EngineOptionError, match=message):
        create_engine(tiny_style(), backend="torch", device="cpu", **kwargs)


def test_reduced_resolution_rejects_sr_models():
    with pytest.raises(EngineOptionError, match="super-resolution"):
        create_engine(sr_net(scale=4, width=4, blocks=1), backend="torch", device="cpu", infer_scale=0.5)


def test_guided_upsample_restores_edges_bicubic_blurs():
    """Output = an affine function of the input's luma: the guided filter recovers the sharp step, bicubic cannot."""
    high = torch.zeros(1, 3, 64, 64)
    high[..., 29:] = 1.0  # a vertical edge between two low-resolution pixels
    low = torch.nn.functional.interpolate(high, size=(32, 32), mode="bilinear", antialias=True)
    low_out = 0.6 * luma(low).expand(-1, 3, -1, -1) + 0.2
    truth = 0.6 * luma(high).expand(-1, 3, -1, -1) + 0.2
    guided = guided_upsample(low_out, low, high, eps=1e-6)
    bicubic = torch.nn.functional.interpolate(low_out, size=(64, 64), mode="bicubic").clamp(0, 1)
    guided_error = (guided - truth).abs().max().item()
    assert guided_error < 0.05
    assert guided_error < 0.5 * (bicubic - truth).abs().max().item()


def test_benchmark_rows_and_files(tmp_path):
    result = benchmark_engines(tiny_style(), sizes=[(16, 16), (12, 20)], device="cpu",
                               only=("torch-cpu-fp32-t1",), warmup=1, iters=3)
    engines = {row["engine"] for row in result["rows"]}
    assert engines == {BASELINE_EAGER, "torch-cpu-fp32-t1"}
    assert len(result["rows"]) == 4
    for row in result["rows"]:
        assert set(row) == {"engine", "h", "w", "precision", "ms_median", "ms_p90", "peak_mb", "peak_growth_mb"}
        assert 0 < row["ms_median"] <= row["ms_p90"]
        assert row["peak_mb"] is None or 0 <= row["peak_growth_mb"] <= row["peak_mb"]
    json_path, md_path = write_benchmark(result, tmp_path, stem="engines-test")
    assert json.loads(json_path.read_text())["rows"] == result["rows"]
    assert "baseline:eager-fp32" in md_path.read_text()


@pytest.mark.parametrize("native", [False, True])
def test_cpu_benchmark_times_bf16_where_the_cpu_has_it(monkeypatch, native):
    from livestyle.benchmarks.engine_table import default_candidates

    pretend_native_bf16(monkeypatch, native)
    labels = [c.label for c in default_candidates(torch.device("cpu"))]
    assert labels[:2] == [BASELINE_EAGER, "torch-cpu-fp32-t1"]
    for engine in ("torch-cpu-fp32", "onnxruntime-cpu-fp32", "openvino-cpu-fp32"):  # every CPU engine
        assert f"{engine}-t1" in labels
    assert ("torch-cpu-bf16-t1" in labels) == native and ("openvino-cpu-bf16-t1" in labels) == native


def test_benchmark_records_unbuildable_engines_as_skipped():
    from livestyle.benchmarks.engine_table import Candidate, eager_baseline

    def unavailable(model, device):
        raise BackendUnavailableError("TensorRT is not installed")

    result = benchmark_engines(tiny_style(), sizes=[(16, 16)], device="cpu", iters=1, warmup=1,
                               candidates=[Candidate(BASELINE_EAGER, "fp32", eager_baseline),
                                           Candidate("tensorrt-fp16", "fp16", unavailable)])
    assert [row["engine"] for row in result["rows"]] == [BASELINE_EAGER]
    assert result["skipped"] == [{"engine": "tensorrt-fp16",
                                  "reason": "BackendUnavailableError: TensorRT is not installed"}]
    assert result["device"]


def test_an_engine_failing_while_timed_loses_only_its_own_rows():
    from livestyle.benchmarks.engine_table import Candidate, eager_baseline

    def fails_after_warmup(model, device):
        calls = []

        def run(x):
            calls.append(1)
            if len(calls) > 2:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            return x
        return run

    result = benchmark_engines(tiny_style(), sizes=[(16, 16), (12, 20)], device="cpu", iters=3, warmup=1,
                               candidates=[Candidate(BASELINE_EAGER, "fp32", eager_baseline),
                                           Candidate("flaky", "fp16", fails_after_warmup)])
    assert [(row["engine"], row["h"]) for row in result["rows"]] == [(BASELINE_EAGER, 16), (BASELINE_EAGER, 12)]
    assert [s["engine"] for s in result["skipped"]] == ["flaky", "flaky"]
    assert "illegal memory access" in result["skipped"][0]["reason"]


# ------------------------------------------------------------------------------------------ CUDA only

@CUDA
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_close_to_fp32(precision):
    model = tiny_style().cuda()
    x = natural_image(96, 80).cuda()
    expected = TorchEngine(model, device="cuda", cuda_graphs=False)(x)
    for options in ({}, {"rewrites": True}, {"channels_last": True}, {"cuda_graphs": True}):
        out = TorchEngine(model, device="cuda", precision=precision, **options)(x)
        assert psnr(out, expected) > (40.0 if precision == "fp16" else 30.0)


@CUDA
def test_fp16_constant_and_large_frames_are_finite():
    model = tiny_style().cuda()
    for options in ({}, {"rewrites": True}):
        engine = TorchEngine(model, device="cuda", precision="fp16", **options)
        for frame in (torch.zeros(1, 3, 64, 64), torch.ones(1, 3, 64, 64), torch.rand(1, 3, 1080, 1920)):
            out = engine(frame.cuda())
            assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@CUDA
def test_cuda_graphs_replay_matches_eager_for_new_inputs():
    model = tiny_style().cuda()
    graphs = TorchEngine(model, device="cuda", precision="fp16", cuda_graphs=True)
    eager = TorchEngine(model, device="cuda", precision="fp16", cuda_graphs=False)
    for seed in range(3):  # same shape, new data each time: the graph must read the new input
        x = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(seed)).cuda()
        assert (graphs(x) - eager(x)).abs().max().item() < 1e-3


@CUDA
def test_auto_on_cuda_picks_tensorrt_or_torch_cuda(export_cache):
    engine = create_engine(tiny_style(), backend="auto", device="cuda", cache_dir=export_cache)
    assert engine.name.startswith(("tensorrt", "torch-cuda"))


@pytest.mark.parametrize("radius", [1, 2])
def test_box_mean_equals_clipped_average_pooling(radius):
    from livestyle.engines.resolution import box_mean

    x = torch.rand(2, 5, 13, 17)
    expected = torch.nn.functional.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    assert (box_mean(x, radius) - expected).abs().max().item() < 1e-5


def test_reduced_resolution_runs_torch_single_threaded_beside_onnx_runtime():
    class FakeOnnxEngine:  # records the torch thread count it sees; stands in for ONNX Runtime
        name, scale, device = "onnxruntime-cpu-fp32", 1, torch.device("cpu")
        seen = None

        def __call__(self, batch):
            FakeOnnxEngine.seen = torch.get_num_threads()
            return batch

    before = torch.get_num_threads()
    engine = ReducedResolutionEngine(FakeOnnxEngine(), infer_scale=0.5, upsample="guided")
    assert engine(natural_image(20, 24)).shape == (1, 3, 20, 24)
    assert FakeOnnxEngine.seen == 1 and torch.get_num_threads() == before
