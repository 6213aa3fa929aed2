"""`livestyle image`: one still image through a style or SR model."""
from __future__ import annotations

import click

from ..catalog import choose_model
from ..engines import create_engine
from ..io.images import read_image, write_image
from ..stylize import stylize_image
from .options import device_options, model_options


@click.command("image")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output image (PNG, JPEG, …).")
@model_options
@device_options
def command(input_path, output, style, model_file, superres, device, fp16, backend):
    """Stylise or upscale one image (PNG/JPEG; greyscale, alpha and 16-bit handled)."""
    from .._files import check_output_path

    check_output_path(output, input_path)
    image = read_image(input_path)
    choice = choose_model(style=style, model_file=model_file, superres=int(superres) if superres else None)
    engine = create_engine(choice.model, backend=backend, device=device, fp16=fp16)
    result = stylize_image(engine, image)
    write_image(output, result, inputs=(input_path,))
    h, w = result.rgb.shape[:2]
    click.echo(f"{choice.name} ({engine.name}): {input_path} → {output} ({w}×{h})", err=True)
