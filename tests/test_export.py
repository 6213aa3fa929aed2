"""ONNX export (dynamic shapes, FP16 with FP32 norms), ONNX Runtime parity, TensorRT cache logic."""
import json
import types

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from samples import natural_image, tiny_style

from livestyle import save_model_file, sr_net
from livestyle.files import sha256_of
from livestyle.cli import main
from livestyle.errors import ExportError
from livestyle.engines.export.tensorrt import (ShapeProfile, TensorRTKey, build_tensorrt_engine,
                                               cached_engine_is_valid, engine_cache_paths, parse_shape,
                                               strongly_typed_flags, timing_cache_path)
from livestyle.engines.export.onnx import cached_onnx, onnx_cache_path
from livestyle.engines.export.cache import model_digest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

FP32_TOL = 1e-4  # max abs error, ONNX Runtime vs torch, FP32, [0, 1] images
SIZES = [(1, 3, 37, 29), (2, 3, 64, 64), (1, 3, 5, 7), (1, 3, 8, 9), (3, 3, 20, 33)]




def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-20)))


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """One cache folder for the whole session (test_engines.py uses the same name), so each export runs once."""
    return tmp_path_factory.getbasetemp() / "livestyle-export-cache"


@pytest.fixture(scope="module")
def style_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.safetensors"
    save_model_file(tiny_style(), path)
    return path


@pytest.fixture(scope="module")
def exported_fp32(style_model_file, export_cache):
    """The tiny style model exported through the CLI (with the exact sub-pixel rewrite) into the
    session's cache, where test_engines.py's ONNX Runtime engine finds it."""
    result = CliRunner().invoke(main, ["export", "--model", str(style_model_file), "--rewrite",
                                       "--cache-dir", str(export_cache)])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime max abs error" in result.output
    path = onnx_cache_path(tiny_style(), export_cache, rewrite=True)  # the CPU engine's default graph
    assert path.is_file() and str(path) in result.output.replace("\n", "")
    return path


@pytest.fixture(scope="module")
def exported_fp16(export_cache):
    return cached_onnx(tiny_style(), cache_dir=export_cache, precision="fp16")


def run_ort(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x.numpy()})[0]


def test_onnx_graph_is_valid_with_dynamic_batch_height_width(exported_fp32):
    proto = onnx.load(str(exported_fp32))
    onnx.checker.check_model(proto, full_check=True)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3


@pytest.mark.parametrize("shape", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_onnx_runtime_matches_torch_fp32_at_many_sizes(exported_fp32, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = tiny_style()(x).numpy()
    actual = run_ort(exported_fp32, x)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < FP32_TOL


@pytest.mark.parametrize("rewrite", [False, True], ids=["plain", "rewritten"])
def test_sr_export_runs_at_two_sizes(tmp_path, rewrite):
    torch.manual_seed(0)
    model = sr_net(scale=4, width=4, blocks=1, norm="batch").eval()
    torch.nn.init.normal_(model.tail[1].weight, std=0.02)  # as trained: the correction to bicubic is not zero
    for m in model.modules():  # trained batch-norm statistics, which the rewrite folds into the convolutions
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = cached_onnx(model, cache_dir=tmp_path, rewrite=rewrite)
    for shape in [(1, 3, 9, 13), (2, 3, 16, 16)]:
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = model(x).numpy()
        actual = run_ort(path, x)
        assert actual.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        assert np.abs(actual - expected).max() < FP32_TOL


def test_fp16_graph_keeps_instance_norm_in_fp32(exported_fp16):
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(exported_fp16)))
    types_of = {vi.name: vi.type.tensor_type.elem_type for vi in
                list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)}
    types_of.update({init.name: init.data_type for init in proto.graph.initializer})
    norms = [n for n in proto.graph.node if n.op_type == "InstanceNormalization"]
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert norms and convs
    FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    assert all(types_of.get(name) == FLOAT for n in norms for name in n.input)  # x, scale, bias all FP32
    assert all(types_of.get(n.input[1]) == FLOAT16 for n in convs)  # weights in FP16
    assert types_of[proto.graph.input[0].name] == FLOAT and types_of[proto.graph.output[0].name] == FLOAT


def test_fp16_graph_numerics_on_cpu(exported_fp16):
    """ONNX Runtime runs the FP16 graph on the CPU too: PSNR vs FP32 torch, and no NaN/Inf on hard frames."""
    x = natural_image(48, 40)
    with torch.no_grad():
        expected = tiny_style()(x).numpy()
    assert psnr(run_ort(exported_fp16, x), expected) > 40.0
    hard = [torch.zeros(1, 3, 32, 32), torch.ones(1, 3, 32, 32), torch.full((1, 3, 32, 32), 0.5),
            torch.rand(1, 3, 512, 512)]
    for frame in hard:
        out = run_ort(exported_fp16, frame)
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


def test_model_digest_follows_weights():
    a, b = tiny_style(), tiny_style()
    assert model_digest(a) == model_digest(b)
    with torch.no_grad():
        b.encoder[0][0][1].weight[0, 0, 0, 0] += 1e-3
    assert model_digest(a) != model_digest(b)


@pytest.mark.parametrize("text, shape", [("1080x1920", (1, 3, 1080, 1920)), ("4x256x256", (4, 3, 256, 256)),
                                         ("2x3x8x9", (2, 3, 8, 9))])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["1080", "axb", "0x5", "1x4x8x8"])
def test_parse_shape_rejects_bad_text(text):
    with pytest.raises(ExportError, match="shape"):
        parse_shape(text)


def test_profile_needs_ordered_shapes():
    with pytest.raises(ExportError, match="min ≤ opt ≤ max"):
        ShapeProfile((1, 3, 64, 64), (1, 3, 32, 32), (1, 3, 128, 128))
    profile = ShapeProfile((1, 3, 32, 32), (1, 3, 64, 64), (2, 3, 128, 128))
    assert profile.contains((2, 3, 100, 40)) and not profile.contains((1, 3, 16, 64))


# ------------------------------------------------------------------------------------- TensorRT logic

PROFILE = ShapeProfile((1, 3, 32, 32), (1, 3, 256, 256), (1, 3, 512, 512))


def make_key(**changes) -> TensorRTKey:
    fields = dict(model_sha256="ab" * 32, gpu_name="NVIDIA H100 80GB HBM3", tensorrt_version="10.9.0",
                  profile=PROFILE, precision="fp16")
    fields.update(changes)
    return TensorRTKey(**fields)


@pytest.mark.parametrize("change", [dict(model_sha256="cd" * 32), dict(gpu_name="NVIDIA A100"),
                                    dict(tensorrt_version="11.0.0"), dict(precision="fp32"),
                                    dict(onnx_graph="livestyle-export-4-torch-2.15.0"),
                                    dict(profile=ShapeProfile((1, 3, 32, 32), (1, 3, 256, 256), (1, 3, 1024, 1024)))])
def test_engine_cache_path_changes_with_every_key_part(tmp_path, change):
    assert engine_cache_paths(make_key(), tmp_path) != engine_cache_paths(make_key(**change), tmp_path)


def test_timing_cache_is_per_gpu_and_version(tmp_path):
    a = timing_cache_path("NVIDIA H100 80GB HBM3", "10.9.0", tmp_path)
    assert a != timing_cache_path("NVIDIA A100", "10.9.0", tmp_path) != timing_cache_path("NVIDIA H100", "11.0", tmp_path)
    assert a.parent == tmp_path and " " not in a.name


def fake_tensorrt(version: str, calls: list, parse_ok: bool = True):
    """A stand-in for the tensorrt module that records the builder calls (no GPU needed)."""
    flag = types.SimpleNamespace(STRONGLY_TYPED=0)

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    class TimingCache:
        def __init__(self, data):
            self.data = data

        def serialize(self):
            return b"timing:" + bytes(self.data)

    class Config:
        def set_memory_pool_limit(self, pool, size):
            calls.append(("workspace", size))

        def create_timing_cache(self, data):
            calls.append(("timing_cache_in", bytes(data)))
            self.cache = TimingCache(data)
            return self.cache

        def set_timing_cache(self, cache, ignore_mismatch):
            calls.append(("set_timing_cache", ignore_mismatch))

        def get_timing_cache(self):
            return self.cache

        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, tuple(lo), tuple(opt), tuple(hi))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return "network"

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            calls.append(("build",))
            return b"ENGINE"

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            calls.append(("parse", len(data)))
            return parse_ok

        def get_error(self, i):
            return "unsupported op Foo"

    return types.SimpleNamespace(__version__=version, Logger=Logger, Builder=Builder, OnnxParser=OnnxParser,
                                 NetworkDefinitionCreationFlag=flag,
                                 MemoryPoolType=types.SimpleNamespace(WORKSPACE="workspace"))


def test_strongly_typed_flags_by_version():
    assert strongly_typed_flags(fake_tensorrt("10.9.0.34", [])) == 1  # 1 << STRONGLY_TYPED (= 0)
    assert strongly_typed_flags(fake_tensorrt("11.4.1", [])) == 0  # always strongly typed
    with pytest.raises(Exception, match="too old"):
        strongly_typed_flags(fake_tensorrt("8.6.1", []))


def test_build_writes_engine_sidecar_timing_cache_and_reuses_it(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"onnx-bytes")
    calls = []
    trt = fake_tensorrt("10.9.0", calls)
    key = make_key()
    path, built = build_tensorrt_engine(onnx_file, key, cache_dir=tmp_path, trt=trt)
    assert built and path.read_bytes() == b"ENGINE"
    assert ("create_network", 1) in calls
    assert ("profile", ("input", PROFILE.min, PROFILE.opt, PROFILE.max)) in calls
    assert ("timing_cache_in", b"") in calls  # first build: empty timing cache
    assert cached_engine_is_valid(key, tmp_path)
    assert json.loads(engine_cache_paths(key, tmp_path)[1].read_text())["key"] == key.to_dict()
    timing = timing_cache_path(key.gpu_name, key.tensorrt_version, tmp_path)
    assert timing.read_bytes() == b"timing:"

    calls.clear()  # same key: no rebuild
    assert build_tensorrt_engine(onnx_file, key, cache_dir=tmp_path, trt=trt) == (path, False)
    assert ("build",) not in calls

    new_key = make_key(profile=ShapeProfile((1, 3, 32, 32), (1, 3, 256, 256), (1, 3, 1024, 1024)))
    new_path, built = build_tensorrt_engine(onnx_file, new_key, cache_dir=tmp_path, trt=trt)
    assert built and new_path != path
    assert ("timing_cache_in", b"timing:") in calls  # the saved timing cache is loaded for the rebuild


def test_engine_with_changed_sidecar_is_rebuilt(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    key = make_key()
    build_tensorrt_engine(onnx_file, key, cache_dir=tmp_path, trt=fake_tensorrt("10.9.0", []))
    meta = engine_cache_paths(key, tmp_path)[1]
    meta.write_text(json.dumps({"key": make_key(gpu_name="other").to_dict()}))
    assert not cached_engine_is_valid(key, tmp_path)
    _, built = build_tensorrt_engine(onnx_file, key, cache_dir=tmp_path, trt=fake_tensorrt("10.9.0", []))
    assert built


def test_parse_failure_is_an_export_error(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"x")
    with pytest.raises(ExportError, match="unsupported op Foo"):
        build_tensorrt_engine(onnx_file, make_key(), cache_dir=tmp_path, trt=fake_tensorrt("11.0.0", [], parse_ok=False))


def test_cli_rejects_output_for_tensorrt_and_profile_for_onnx(style_model_file, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["export", "--model", str(style_model_file), "--format", "tensorrt",
                                  "-o", str(tmp_path / "x.engine")])
    assert result.exit_code != 0 and "--format onnx" in result.output
    result = runner.invoke(main, ["export", "--model", str(style_model_file), "--min", "32x32"])
    assert result.exit_code != 0 and "--format tensorrt" in result.output


def test_cli_tensorrt_without_tensorrt_is_one_line_error(style_model_file, tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    result = CliRunner().invoke(main, ["export", "--model", str(style_model_file), "--format", "tensorrt",
                                       "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "TensorRT is not installed" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT engines need CUDA")
def test_real_tensorrt_engine_matches_torch(tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (NVIDIA's index)")
    from livestyle.engines.tensorrt_engine import TensorRTEngine

    model = tiny_style().cuda()
    profile = ShapeProfile((1, 3, 16, 16), (1, 3, 64, 64), (2, 3, 128, 128))
    engine = TensorRTEngine(model, device="cuda", precision="fp16", profile=profile, cache_dir=tmp_path)
    x = natural_image(64, 48).cuda()
    with torch.no_grad():
        expected = model(x)
    assert psnr(engine(x).cpu().numpy(), expected.cpu().numpy()) > 40.0
    again = TensorRTEngine(model, device="cuda", precision="fp16", profile=profile, cache_dir=tmp_path)
    assert again.engine_path == engine.engine_path  # second start: from the cache


def test_cli_output_never_overwrites_the_model_it_reads(style_model_file, tmp_path, monkeypatch):
    """-o naming the --model file, or the catalog file a --style name reads, is refused; the file is kept."""
    before = style_model_file.read_bytes()
    result = CliRunner().invoke(main, ["export", "--model", str(style_model_file), "-o", str(style_model_file)])
    assert result.exit_code == 1 and "is the input file" in result.output
    assert style_model_file.read_bytes() == before

    weights = tmp_path / "wdir"
    weights.mkdir()
    catalog_file = weights / "wave_small.safetensors"
    catalog_file.write_bytes(before)
    (weights / "catalog.json").write_text(json.dumps({"models": [
        {"name": "wave_small", "task": "style", "variant": "small", "arch": tiny_style().config.to_dict(),
         "file": catalog_file.name, "sha256": sha256_of(catalog_file)}]}))
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(weights))
    for style in ("wave_small", "wave"):
        result = CliRunner().invoke(main, ["export", "--style", style, "--variant", "small", "-o", str(catalog_file)])
        assert result.exit_code == 1 and "is the input file" in result.output, result.output
    assert catalog_file.read_bytes() == before


def test_unwritable_export_cache_falls_back_to_a_temporary_folder(style_model_file, tmp_path, monkeypatch):
    """$LIVESTYLE_CACHE_DIR under a regular file (unusable, as root too): the ONNX run still works, with a
    one-line warning; `export` without -o says it cannot write there."""
    import cv2

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("LIVESTYLE_CACHE_DIR", str(blocker / "cache"))
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), np.full((20, 24, 3), 128, np.uint8))
    with pytest.warns(UserWarning, match="export cache .* cannot be used"):
        result = CliRunner().invoke(main, ["image", str(image), "-o", str(tmp_path / "out.png"), "--model",
                                           str(style_model_file), "--backend", "onnx", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.png").is_file()
    # A second run uses the same fallback folder (a new one per run left a full export behind each time).
    from livestyle.engines.export.cache import writable_cache_dir

    with pytest.warns(UserWarning, match="cannot be used"):
        first = writable_cache_dir(blocker / "cache")
    with pytest.warns(UserWarning, match="cannot be used"):
        assert writable_cache_dir(blocker / "cache") == first and first.is_dir()

    result = CliRunner().invoke(main, ["export", "--model", str(style_model_file)])
    assert result.exit_code == 1 and "cannot create output folder" in result.output


def test_tensorrt_build_with_unwritable_cache_uses_a_temporary_folder(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"onnx-bytes")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="cannot be used"):
        path, built = build_tensorrt_engine(onnx_file, make_key(), cache_dir=blocker / "cache",
                                            trt=fake_tensorrt("10.9.0", []))
    assert built and path.read_bytes() == b"ENGINE" and blocker not in path.parents
