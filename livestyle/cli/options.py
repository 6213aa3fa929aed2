"""Click options shared by several commands."""
from __future__ import annotations

import click

from ..engines import BACKENDS


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


def model_options(f):
    """--style NAME | --model FILE | --superres 4|8|NAME (exactly one, checked by the library), --variant."""
    f = click.option("--variant", type=click.Choice(["auto", "full", "small"]), default="auto", show_default=True,
                     help="Which model a plain style name means: its full model or its small real-time variant "
                          "(<style>_small); auto: small where the network runs on the CPU, else full.")(f)
    f = click.option("--superres", type=SuperResChoice(), default=None,
                     help="Upscale with the catalog's ×4 or ×8 super-resolution model, or name one "
                          "(e.g. x4_feat; see `livestyle styles`).")(f)
    f = click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None,
                     help="A livestyle safetensors model file.")(f)
    f = click.option("--style", default=None, help="A style from the catalog (see `livestyle styles`).")(f)
    return f


def require_one_style_model(style: str | None, model_file: str | None) -> None:
    """For commands with --style and --model but no --superres: exactly one of the two (a usage error
    naming only these, where the library's message would also offer --superres)."""
    if (style is None) == (model_file is None):
        raise click.UsageError("choose exactly one of --style NAME, --model FILE")


def style_variant(variant: str, device: str | None) -> str:
    """``--variant``: "auto" becomes "small" where the network runs on the CPU (see resolve_device), else "full"."""
    if variant != "auto":
        return variant
    from ..engines import resolve_device

    return "small" if resolve_device(device).type == "cpu" else "full"


def device_options(f):
    """--device, --fp16, --backend, --compile, --infer-scale, --upsample."""
    f = click.option("--upsample", type=click.Choice(["guided", "bicubic"]), default="guided", show_default=True,
                     help="How --infer-scale results are brought back to full size (guided: edge-aware).")(f)
    f = click.option("--infer-scale", type=click.FloatRange(0.0, 1.0, min_open=True), default=1.0,
                     show_default=True,
                     help="Run the style network at this fraction of the frame size, then upsample "
                          "(a speed option for slow CPUs; not exact).")(f)
    f = click.option("--compile", "compile_net", is_flag=True,
                     help="Run the network under torch.compile (torch backend): the first frame of each size "
                          "compiles (a minute or less), later runs read the compiled code from the cache "
                          "folder. For long runs at one size (cam, video), chiefly on CUDA without TensorRT.")(f)
    f = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                     help="Inference backend.")(f)
    f = click.option("--fp16", is_flag=True,
                     help="Half precision: FP16 on CUDA; BF16 on CPUs with AVX512-BF16 or AMX.")(f)
    f = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)
    return f


def say_when_compiling(compile_net: bool) -> None:
    """With --compile, say on stderr why the first frame of a size is slow, and where the cache is."""
    if compile_net:
        import os

        from ..engines.compile_cache import ENV_INDUCTOR_CACHE

        folder = os.environ.get(ENV_INDUCTOR_CACHE, "torch's temporary folder")
        click.echo(f"livestyle: compiling the network for each new frame size: up to a minute the first time, "
                   f"seconds once cached ({folder})", err=True)


def effect_options(f):
    """--strength, --preserve-colors, --tile (see livestyle.effects and livestyle.tiling)."""
    f = click.option("--tile", type=click.IntRange(min=16), default=None, metavar="N",
                     help="Run the network in overlapping N×N tiles (frames larger than memory allows); "
                          "instance norm uses the whole frame's statistics, so tiles keep their colours.")(f)
    f = click.option("--preserve-colors", is_flag=True,
                     help="Keep the input's colours: take only the stylised luminance.")(f)
    f = click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
                     help="Style strength: 0 = the input, 1 = the full stylised frame.")(f)
    return f


def frame_hooks(*, strength: float = 1.0, preserve_colors: bool = False, stabilize: bool = False,
                live: bool = False):
    """The pipeline's per-frame post-process hooks for these options, and the FramePostprocess among them.

    Order: temporal stabilisation first (it compares raw network outputs), then the effects. The
    FramePostprocess is returned even when it does nothing; ``live`` keeps it in the hooks so that
    keys can change it and style switches cross-fade.
    """
    from ..effects import FramePostprocess
    from ..temporal import Stabilizer

    effects = FramePostprocess(strength=strength, preserve_colors=preserve_colors)
    hooks = [Stabilizer()] if stabilize else []
    if live or not effects.is_identity:
        hooks.append(effects)
    return hooks, effects
