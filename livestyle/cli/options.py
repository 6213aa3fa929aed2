"""Click options shared by several commands."""
from __future__ import annotations

import click

from ..engines import BACKENDS


def model_options(f):
    """--style NAME | --model FILE | --superres 4|8 (exactly one, checked by the library)."""
    f = click.option("--superres", type=click.Choice(["4", "8"]), default=None,
                     help="Upscale with the catalog's ×4 or ×8 super-resolution model.")(f)
    f = click.option("--model", "model_file", type=click.Path(dir_okay=False), default=None,
                     help="A livestyle safetensors model file.")(f)
    f = click.option("--style", default=None, help="A style from the catalog (see `livestyle styles`).")(f)
    return f


def device_options(f):
    """--device, --fp16, --backend."""
    f = click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
                     help="Inference backend.")(f)
    f = click.option("--fp16", is_flag=True, help="Half precision (CUDA only).")(f)
    f = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")(f)
    return f
