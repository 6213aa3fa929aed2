"""`livestyle image`: one still image through a style or SR model."""
from __future__ import annotations

import click

from livestyle.cli.options import (compose, effect_options, engine_for, engine_options, engine_precision,
                                   loss_net_options, model_options, optimizer_option, style_variant)


optimize_options = compose(
    click.option("--optimize", is_flag=True,
                 help="Optimise the image itself towards --style-image (Gatys et al.; slow, best quality) "
                      "instead of running a model."),
    click.option("--style-image", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="Style image for --optimize."),
    click.option("--iters", type=click.IntRange(min=1), default=500, show_default=True, help="--optimize: iterations."),
    optimizer_option("--optimize: "),
    click.option("--init", type=click.Choice(["content", "noise"]), default="content", show_default=True,
                 help="--optimize: start from the content image or from white noise."),
    click.option("--size", type=click.IntRange(min=16), default=None,
                 help="--optimize: long side to work at (default: the input's)."),
    click.option("--style-weight", type=click.FloatRange(min=0), default=None,
                 help="--optimize: style term weight (default: the loss network's, see livestyle.quality.objective)."),
    click.option("--content-weight", type=click.FloatRange(min=0), default=None,
                 help="--optimize: content term weight."),
    click.option("--tv-weight", type=click.FloatRange(min=0), default=None, help="--optimize: total-variation weight."),
    loss_net_options(help="--optimize: loss network."),
)
"""--optimize and its settings (the Gatys et al. baseline instead of a feed-forward model)."""


@click.command("image")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output image (PNG, JPEG, …).")
@model_options
@engine_options
@effect_options
@optimize_options
def command(input_path, output, style, model_file, superres, variant, device, precision, fp16, backend, compile_net,
            infer_scale, upsample, memory_budget, strength, preserve_colors, tile, **optimize):
    """Stylise or upscale one image (PNG/JPEG; greyscale, alpha and 16-bit handled).

    With --optimize --style-image IMG: no model, the Gatys et al. optimisation (slow, best quality).
    """
    from livestyle.io.images import check_image_output

    precision = engine_precision(precision, fp16, device)
    check_image_output(output, input_path, optimize["style_image"])
    if optimize.pop("optimize"):
        if style or model_file or superres:
            raise click.UsageError("--optimize takes --style-image IMG, not --style/--model/--superres")
        if tile or preserve_colors or strength != 1.0:
            raise click.UsageError("--strength, --preserve-colors and --tile apply to models, not to --optimize")
        _optimize(input_path, output, device=device, **optimize)
        return
    if optimize["style_image"]:
        raise click.UsageError("--style-image needs --optimize (a model's style is fixed when it is trained)")
    context = click.get_current_context()
    given = [f"--{name.replace('_', '-')}" for name in optimize
             if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        what = "is an --optimize setting; a model does not use it" if len(given) == 1 else \
            "are --optimize settings; a model does not use them"
        raise click.UsageError(f"{', '.join(given)} {what}")
    from livestyle.io.images import read_image
    from livestyle.pipeline.jobs import FrameEffects, run_image
    from livestyle.zoo.choice import choose_model

    image = read_image(input_path)  # a bad input fails before the model loads
    choice = choose_model(style=style, model_file=model_file, superres=superres,
                          variant=style_variant(variant, device))
    engine = engine_for(choice, backend=backend, device=device, precision=precision, tile=tile, infer_scale=infer_scale,
                        upsample=upsample, compile_net=compile_net, memory_budget=memory_budget)
    result = run_image(engine, input_path, output, effects=FrameEffects(strength, preserve_colors),
                       model_name=choice.name, image=image)
    w, h = result.width, result.height
    click.echo(f"{choice.name} ({engine.name}): {input_path} → {output} ({w}×{h})", err=True)


def _optimize(input_path, output, *, style_image, iters, optimizer, init, size, style_weight, content_weight,
              tv_weight, loss_net, loss_net_weights, device):
    """`image --optimize`: Gatys et al. on one image, progress on stderr, alpha and bit depth kept."""
    from livestyle.engines.device import resolve_device
    from livestyle.io.images import Image, read_image, resize_alpha, write_image
    from livestyle.models.convention import batch_to_image
    from livestyle.io.progress import Progress
    from livestyle.quality.gatys import GatysConfig, stylize_by_optimization
    from livestyle.quality.objective import ObjectiveConfig

    if not style_image:
        raise click.UsageError("--optimize needs --style-image IMG")
    image = read_image(input_path)
    style = read_image(style_image)
    dev = resolve_device(device)
    config = ObjectiveConfig(loss_net=loss_net, style_weight=style_weight, content_weight=content_weight,
                             tv_weight=tv_weight)
    with Progress(iters, desc="optimising", unit="it") as bar:
        def on_iteration(i, loss):
            if loss is not None and i % 10 == 0:
                bar.set_postfix(f"loss {loss:.4g}")
            bar.update(1)

        result = stylize_by_optimization(image.rgb, style.rgb, config, GatysConfig(iterations=iters, optimizer=optimizer,
                                                                                   init=init),
                                         weights=loss_net_weights, device=dev, size=size, on_iteration=on_iteration)
    rgb = batch_to_image(result.image)
    alpha = image.alpha
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        alpha = resize_alpha(alpha, (rgb.shape[1], rgb.shape[0]))
    write_image(output, Image(rgb, alpha, image.bit_depth), inputs=(input_path, style_image))
    terms = ", ".join(f"{k} {v:.4g}" for k, v in result.terms.items())
    h, w = rgb.shape[:2]
    click.echo(f"gatys ({loss_net}, {optimizer}, {iters} it, {result.seconds:.1f} s on {dev}): {input_path} → "
               f"{output} ({w}×{h}); loss {terms}", err=True)
