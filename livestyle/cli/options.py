"""Every option that several commands share, declared once (in the manner of pip-tools'
``scripts/options.py``), with the small helpers that read them.

Nothing heavy is imported here: `livestyle --help` and usage errors answer before torch loads.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import click

from livestyle.engines import BACKENDS, PRECISIONS, UPSAMPLERS
from livestyle.engines.export import MAX_SIDE
from livestyle.models import ENV_LOSSNET_WEIGHTS, LOSS_NETWORK_NAMES


def compose(*decorators):
    """One decorator applying ``decorators`` in order, so options show in ``--help`` as listed."""
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f
    return apply


# --- values -------------------------------------------------------------------------------------

class SuperResChoice(click.ParamType):
    """--superres: a scale (4 or 8: the catalog's default model for it) or an SR model's catalog name.
    Scales become ints; names stay strings and are checked against the catalog when it loads."""

    name = "4|8|NAME"

    def convert(self, value, param, ctx):
        if isinstance(value, int) or value in ("4", "8"):
            return int(value)
        if not value or value.isdigit():
            self.fail(f"{value!r} is not 4, 8 or the name of a super-resolution model", param, ctx)
        return value


class MemorySize(click.ParamType):
    """A size in bytes: "2G", "1.5G", "512M", "3GiB", "800000000" (binary units: 1G = 2^30 bytes)."""

    name = "SIZE"
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(value).lower())
        if match is None:
            self.fail(f"{value!r} is not a memory size; write e.g. 2G, 1.5G or 512M", param, ctx)
        size = int(float(match.group(1)) * self.units[match.group(2)])
        if size <= 0:
            self.fail(f"a memory size must be positive, got {value!r}", param, ctx)
        return size


def int_list(ctx, param, value: str) -> tuple[int, ...]:
    """"256,512,1024" → (256, 512, 1024); anything else is a usage error."""
    try:
        numbers = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}", ctx, param) from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}", ctx, param)
    return numbers


def image_sizes(ctx, param, value: str) -> tuple[int, ...]:
    """Like int_list, each a side length from 16 to the export's largest (8192) pixels."""
    sizes = int_list(ctx, param, value)
    if min(sizes) < 16 or max(sizes) > MAX_SIDE:
        raise click.BadParameter(f"sizes must be from 16 to {MAX_SIDE} pixels, got {value!r}", ctx, param)
    return sizes


def name_list(ctx, param, value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def report_name(ctx, param, value: str | None) -> str | None:
    """A report file stem: a plain name, so the reports stay inside --out (no folders, no "..")."""
    if value is not None and (not value.strip() or value in (".", "..") or any(sep in value for sep in "/\\")):
        raise click.BadParameter(f"expected a plain file name (no folders), got {value!r}", ctx, param)
    return value


# --- which model --------------------------------------------------------------------------------

style_option = click.option("--style", default=None, help="A style from the catalog (see `livestyle styles`).")
model_file_option = click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None,
                                 help="A livestyle safetensors model file (or a pytorch/examples .pth / ONNX file).")
superres_option = click.option("--superres", type=SuperResChoice(), default=None,
                               help="Upscale with the catalog's ×4 or ×8 super-resolution model, or name one "
                                    "(e.g. x4_feat; see `livestyle styles`).")
variant_option = click.option("--variant", type=click.Choice(["auto", "full", "small"]), default="auto",
                              show_default=True,
                              help="Which model a plain style name means: its full model or its small real-time "
                                   "variant (<style>_small), and likewise which ×N model --superres N means (small: "
                                   "x4_fast/x8_fast); auto: small where the network runs on the CPU, else full.")
model_options = compose(style_option, model_file_option, superres_option, variant_option)
"""--style NAME | --model FILE | --superres 4|8|NAME (exactly one, checked by the library), --variant."""


def require_one_style_model(style: str | None, model_file: str | None) -> None:
    """For commands with --style and --model but no --superres: exactly one of the two (a usage error
    naming only these, where the library's message would also offer --superres)."""
    if (style is None) == (model_file is None):
        raise click.UsageError("choose exactly one of --style NAME, --model FILE")


def style_variant(variant: str, device: str | None) -> str:
    """``--variant`` for the device the network will run on ("auto": small on the CPU, else full)."""
    if variant != "auto":
        return variant
    from livestyle.engines.device import resolve_device
    from livestyle.zoo.choice import resolve_variant

    return resolve_variant(variant, resolve_device(device).type)


# --- how it runs --------------------------------------------------------------------------------

device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
precision_options = compose(
    click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                 help="Numeric precision of the network: auto (the fastest measured for the model and "
                      "device), fp32, fp16 (CUDA) or bf16 (CUDA, or CPUs with AVX512-BF16 or AMX)."),
    click.option("--fp16", is_flag=True,
                 help="Alias: the device's half precision, --precision fp16 on CUDA and bf16 on the CPU."),
)
backend_option = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                              help="Inference backend; auto: TensorRT or torch on CUDA, and on the CPU the fastest "
                                   "engine timed on this CPU (torch, onnx, openvino; FP32/BF16; thread counts), "
                                   "timed once per model family and frame size and cached.")
engine_options = compose(
    device_option, precision_options, backend_option,
    click.option("--compile", "compile_net", is_flag=True,
                 help="Run the network under torch.compile (torch backend): the first frame of each size "
                      "compiles (a minute or less), later runs read the compiled code from the cache "
                      "folder. For long runs at one size (cam, video), chiefly on CUDA without TensorRT."),
    click.option("--infer-scale", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0, show_default=True,
                 help="Run the style network at this fraction of the frame size, then upsample "
                      "(a speed option for slow CPUs; not exact)."),
    click.option("--upsample", type=click.Choice(UPSAMPLERS), default="guided", show_default=True,
                 help="How --infer-scale results are brought back to full size (guided: edge-aware)."),
    click.option("--memory-budget", type=MemorySize(), default=None, metavar="SIZE",
                 help="CPU: the activations one frame may take before the network runs in tiles, e.g. 2G "
                      "(default: the larger of 2 GiB and a quarter of the RAM)."),
)
"""--device, --precision/--fp16, --backend, --compile, --infer-scale, --upsample, --memory-budget."""


def engine_progress(message: str) -> None:
    """Where engines report while they are prepared (ONNX export, timing the CPU engines): stderr."""
    click.echo(f"livestyle: {message}", err=True)


def announce_engine(engine, model_name: str, shape: tuple[int, ...]) -> None:
    """Choose now what runs frames of ``shape`` (N, 3, H, W) where the engine chooses on its first frame
    (the CPU's ``auto`` times the candidates), and say on stderr which engine and precision run."""
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        prepare(tuple(shape))
    click.echo(f"livestyle: {model_name} runs on {engine.name} at {shape[3]}×{shape[2]}", err=True)


def first_frame_size(source) -> tuple[int, int] | None:
    """(height, width) of ``source``'s first frame; the source is read once and closed."""
    try:
        frame = source.read()
    finally:
        source.close()
    return None if frame is None else frame.image.shape[:2]


def engine_precision(precision: str, fp16: bool, device: str | None) -> str:
    """--precision, with --fp16 read as the device's half precision (FP16 on CUDA, BF16 on the CPU)."""
    if not fp16:
        return precision
    from livestyle.engines.device import half_precision, resolve_device

    half = half_precision(resolve_device(device))
    if precision not in ("auto", half):
        raise click.UsageError(f"--fp16 means --precision {half} here; it contradicts --precision {precision}")
    return half


def engine_for(choice, *, compile_net: bool, **options):
    """``build_engine`` for a command: its engine options, the engines' progress (ONNX export, timing
    the CPU engines) on stderr, and the notice about compiling."""
    from livestyle.engines.factory import build_engine

    engine = build_engine(choice, compile=compile_net, progress=engine_progress, **options)
    say_when_compiling(compile_net)
    return engine


def say_when_compiling(compile_net: bool) -> None:
    """With --compile, say on stderr why the first frame of a size is slow, and where the cache is."""
    if compile_net:
        from livestyle.engines.compile_cache import ENV_INDUCTOR_CACHE

        folder = os.environ.get(ENV_INDUCTOR_CACHE, "torch's temporary folder")
        click.echo(f"livestyle: compiling the network for each new frame size: up to a minute the first time, "
                   f"seconds once cached ({folder})", err=True)


# --- frames -------------------------------------------------------------------------------------

inference_size_options = compose(
    click.option("--size", default=None, metavar="WxH", help="Resize frames to WxH before inference."),
    click.option("--scale", type=float, default=None,
                 help="Resize frames by this factor before inference (e.g. 0.5); sizes stay even."),
)
"""--size WxH | --scale F: the resolution frames are resized to before inference."""


def inference_size(size: str | None, scale: float | None):
    """The CLI's --size/--scale as an InferenceSize (at most one of them)."""
    from livestyle.errors import InputError
    from livestyle.io.sources import InferenceSize, parse_size

    if size and scale:
        raise InputError("give --size or --scale, not both")
    if scale is not None and not 0.01 <= scale <= 16:
        raise InputError(f"--scale {scale} is out of range (0.01 … 16)")
    if size:
        width, height = parse_size(size)
        return InferenceSize(width=width, height=height)
    return InferenceSize(scale=scale)


effect_options = compose(
    click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
                 help="Style strength: 0 = the input, 1 = the full stylised frame."),
    click.option("--preserve-colors", is_flag=True, help="Keep the input's colours: take only the stylised luminance."),
    click.option("--tile", type=click.IntRange(min=16), default=None, metavar="N",
                 help="Run the network in overlapping N×N tiles (frames larger than memory allows); "
                      "instance norm uses the whole frame's statistics, so tiles keep their colours."),
)
"""--strength, --preserve-colors, --tile (``livestyle.postprocess.effects``, ``livestyle.engines.tiling``)."""

stabilize_option = click.option(
    "--stabilize", is_flag=True,
    help="Lower flicker: blend with the previous output along the input's optical flow (reset at cuts).")

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
frame_batch_option = click.option("--batch", type=click.IntRange(1, 64), default=None,
                                  help="Frames per engine call (default: 4 on CUDA, 1 on the CPU).")
video_encoding_options = compose(
    click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True,
                 help="H.264 quality (lower is better; 0 is lossless)."),
    click.option("--preset", type=click.Choice(X264_PRESETS), default="veryfast", show_default=True,
                 help="x264 speed preset."),
    click.option("--no-audio", is_flag=True, help="Leave the sound out."),
)
"""--crf, --preset, --no-audio: how video outputs are encoded (``livestyle.pipeline.jobs.VideoEncoding``)."""

video_options = compose(model_options, engine_options, inference_size_options, effect_options, stabilize_option,
                        frame_batch_option, video_encoding_options)
"""Everything `video` takes besides IN, -o and --progress; `batch` takes the same for each video."""


# --- losses and reports -------------------------------------------------------------------------

def loss_net_options(default: str | None = "squeezenet1_1", help: str = "Frozen ImageNet network the losses "
                     "are measured with."):
    """--loss-net NAME, --loss-net-weights FILE (else $LIVESTYLE_LOSSNET_WEIGHTS, torchvision's cache/download)."""
    return compose(
        click.option("--loss-net", type=click.Choice(LOSS_NETWORK_NAMES), default=default, show_default=True,
                     help=help),
        click.option("--loss-net-weights", "loss_net_weights", type=click.Path(dir_okay=False), default=None,
                     help=f"Loss-network weights (.safetensors or torchvision .pth); else ${ENV_LOSSNET_WEIGHTS}, "
                          "torchvision's cache, download."),
    )


def optimizer_option(what: str = ""):
    return click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True,
                        help=f"{what}L-BFGS as in the paper, or Adam.")


def report_options(default_out: str | None, stem_help: str):
    """--out DIR (reports go there) and --name STEM (their file name)."""
    return compose(
        click.option("--out", "out_dir", type=click.Path(file_okay=False), default=default_out,
                     show_default=default_out is not None,
                     help="Folder for the JSON and Markdown reports" + (" (and images)." if default_out is None
                                                                        else ".")),
        click.option("--name", "stem", default=None, callback=report_name, help=stem_help),
    )


def check_out_folder(out_dir: str | os.PathLike | None) -> Path | None:
    """--out checked now, not after minutes of work."""
    if out_dir is None:
        return None
    from livestyle.files import check_output_folder

    return check_output_folder(out_dir)
