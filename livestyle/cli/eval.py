"""`livestyle eval superres|style|video`: quality beside the paper's figures, and flicker."""
from __future__ import annotations

import re
from pathlib import Path

import click

from livestyle.cli.options import (backend_option, check_out_folder, device_option, inference_size,
                                   inference_size_options, int_list, loss_net_options, model_file_option,
                                   optimizer_option, report_options, require_one_style_model, style_option)


@click.group("eval", context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Measure quality: super-resolution PSNR/SSIM, style loss vs the Gatys baseline."""


@command.command("superres")
@click.option("--dataset", "datasets", required=True, multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of HR images (repeatable), e.g. ../shared/data/sr/CSet5.")
@click.option("--scale", required=True, type=click.Choice(["4", "8"]), help="Upscaling factor.")
@click.option("--model", "model_files", multiple=True, type=click.Path(dir_okay=False),
              help="An SR model file (repeatable); default: every ×SCALE model in the catalog.")
@click.option("--blur", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Gaussian blur σ before downsampling (0: the benchmarks' plain bicubic).")
@device_option
@report_options(None, "Report file stem (default eval-superres-xSCALE-<sets>).")
def superres(datasets, scale, model_files, blur, device, out_dir, stem):
    """PSNR/SSIM (Y channel, border = scale) of bicubic and each SR model, beside the paper's Table 2."""
    from livestyle.engines.factory import create_engine
    from livestyle.errors import UnknownModelError
    from livestyle.files import write_json_and_markdown
    from livestyle.quality.superres_eval import (bicubic_upscaler, engine_upscaler, evaluate_sr_dataset, protocol_note,
                                                 superres_table_markdown)
    from livestyle.zoo.catalog import Catalog
    from livestyle.zoo.modelfile import load_model_file

    check_out_folder(out_dir)
    scale = int(scale)
    upscalers = {"bicubic": bicubic_upscaler(scale)}
    models = []
    if model_files:
        for f in model_files:
            label, n = Path(f).stem, 1
            while label in upscalers or label in (m for m, _ in models):  # bicubic.safetensors, or two x4.safetensors
                n += 1
                label = f"{Path(f).stem}-{n}"
            models.append((label, load_model_file(f)[0]))
    else:
        catalog = Catalog()
        for name in catalog.names("superres"):
            entry = catalog.get(name)
            if int(entry.arch.get("scale", 0)) == scale:
                models.append((name, catalog.load(entry)))
    for name, model in models:
        if getattr(model, "scale", 1) != scale:
            raise UnknownModelError(f"model {name} upscales ×{getattr(model, 'scale', 1)}, not ×{scale}")
        upscalers[name] = engine_upscaler(create_engine(model, backend="torch", device=device))
    results = {}
    for folder in datasets:
        click.echo(f"evaluating {len(upscalers)} method(s) on {folder}", err=True)
        results[folder] = evaluate_sr_dataset(folder, scale, upscalers, blur_sigma=blur)
    markdown = superres_table_markdown(results, scale, note_no_models=not models)
    click.echo(markdown)
    if out_dir:
        data = {"scale": scale, "protocol": protocol_note(scale, blur), "models": [n for n, _ in models],
                "results": {_set_label(f, datasets): {m: s.to_dict() for m, s in r.items()}
                            for f, r in results.items()}}
        stem = stem or f"eval-superres-x{scale}-" + "-".join(Path(f).name for f in datasets)
        paths = write_json_and_markdown(out_dir, stem, data, f"# Super-resolution ×{scale}\n\n" + markdown)
        click.echo("wrote " + ", ".join(map(str, paths)), err=True)


def _set_label(folder: str, folders: tuple[str, ...]) -> str:
    """A data set's name in the report: its folder's name, or its path where two folders share a name."""
    same_name = [f for f in folders if Path(f).name == Path(folder).name]
    return Path(folder).name if len(same_name) == 1 else str(folder)


@command.command("style")
@style_option
@model_file_option
@click.option("--style-image", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The style image the model was trained on (Gatys optimises towards it).")
@click.option("--content", "contents", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Content image (repeatable).")
@click.option("--iters", "iterations", default="100,500", show_default=True, callback=int_list,
              help="Gatys iteration counts to compare with, comma-separated.")
@click.option("--size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Long side the content images are resized to.")
@loss_net_options(None, "Loss network (default: the one the model's recipe states, else squeezenet1_1).")
@optimizer_option("Gatys: ")
@click.option("--init", type=click.Choice(["content", "noise"]), default="content", show_default=True,
              help="Gatys start image.")
@click.option("--infer-scale", "infer_scales", multiple=True, type=click.FloatRange(0, 1, min_open=True),
              help="Also score the model run at this fraction of the size and upsampled back, bicubic and guided "
                   "(repeatable): the quality cost of `--infer-scale`.")
@device_option
@report_options(None, "Report file stem (default eval-style-<model>).")
def style(style, model_file, style_image, contents, iterations, size, loss_net, loss_net_weights, optimizer,
          init, infer_scales, device, out_dir, stem):
    """Content/style/total loss of the feed-forward output vs Gatys after N iterations, same images."""
    from livestyle.engines.device import resolve_device
    from livestyle.errors import UnknownModelError
    from livestyle.files import write_json_and_markdown
    from livestyle.io.images import read_image
    from livestyle.models.convention import batch_to_image, image_to_batch
    from livestyle.quality.gatys import GatysConfig
    from livestyle.quality.objective import ObjectiveConfig, build_objective, resize_long_side
    from livestyle.quality.style_eval import compare_style, objective_config_from_recipe, style_table_markdown
    from livestyle.zoo.catalog import Catalog, entry_beside
    from livestyle.zoo.choice import choose_model

    require_one_style_model(style, model_file)
    check_out_folder(out_dir)
    choice = choose_model(style=style, model_file=model_file)
    if choice.task != "style":
        raise UnknownModelError(f"{choice.name} is a {choice.task} model; eval style needs a style model")
    recipe_config = objective_config_from_recipe(Catalog().get(style).recipe if style
                                                 else entry_beside(model_file).get("recipe"))
    config = recipe_config or ObjectiveConfig(loss_net=loss_net or "squeezenet1_1")
    if loss_net and loss_net != config.loss_net:
        config = ObjectiveConfig(loss_net=loss_net)
    dev = resolve_device(device)
    style_batch = image_to_batch(read_image(style_image).rgb, dev)
    if not config.style_size:
        style_batch = resize_long_side(style_batch, size)
    objective = build_objective(config, style_batch, weights=loss_net_weights, device=dev)
    batches = [resize_long_side(image_to_batch(read_image(p).rgb, dev), size) for p in contents]
    names = [Path(p).name for p in contents]
    click.echo(f"{choice.name}: {len(batches)} image(s), Gatys to {max(iterations)} iterations on {dev}", err=True)
    variants = {}
    if infer_scales:
        from livestyle.engines import UPSAMPLERS
        from livestyle.engines.factory import create_engine

        variants = {f"feed-forward @{f:g}× {up}": create_engine(choice.model, backend="torch", device=str(dev),
                                                               infer_scale=f, upsample=up)
                    for f in infer_scales for up in UPSAMPLERS}
    comparison = compare_style(choice.model, objective, batches, names, iterations,
                               gatys_config=GatysConfig(optimizer=optimizer, init=init), keep_outputs=bool(out_dir),
                               variants=variants)
    comparison.settings.update({"model": choice.name, "style_image": Path(style_image).name, "size": size,
                                "infer_scales": list(infer_scales)})
    markdown = style_table_markdown(comparison)
    click.echo(markdown)
    if out_dir:
        from livestyle.io.images import Image, write_image

        stem = stem or f"eval-style-{choice.name}"
        paths = write_json_and_markdown(out_dir, stem, comparison.to_dict(), f"# Style: {choice.name}\n\n" + markdown)
        for key, tensor in comparison.outputs.items():
            image_name, method = key.rsplit(":", 1)
            method = re.sub(r"[^0-9A-Za-z.]+", "-", method.replace("×", "x")).strip("-")
            write_image(Path(out_dir) / f"{stem}-{Path(image_name).stem}-{method}.png", Image(batch_to_image(tensor)))
        click.echo("wrote " + ", ".join(map(str, paths)) + f" and {len(comparison.outputs)} image(s)", err=True)


@command.command("video")
@click.argument("input_path", metavar="IN", type=click.Path(exists=True, dir_okay=False))
@style_option
@model_file_option
@click.option("--max-frames", type=click.IntRange(min=2), default=None, help="Score only the first N frames.")
@inference_size_options
@device_option
@backend_option
@report_options(None, "Report file stem (default eval-video-<clip>-<model>).")
def video(input_path, style, model_file, max_frames, size, scale, device, backend, out_dir, stem):
    """Flicker score (warping error along the input's DIS flow, occlusions masked) without and with --stabilize."""
    from livestyle.engines.factory import build_engine
    from livestyle.errors import UnknownModelError
    from livestyle.files import write_json_and_markdown
    from livestyle.io.sources import VideoFileSource
    from livestyle.models.convention import batch_to_frames, frames_to_batch
    from livestyle.quality.flicker import compare_flicker
    from livestyle.zoo.choice import choose_model

    require_one_style_model(style, model_file)
    check_out_folder(out_dir)
    choice = choose_model(style=style, model_file=model_file)
    if choice.task != "style":  # the flicker score compares outputs with the input's own flow
        raise UnknownModelError(f"{choice.name} is a {choice.task} model; eval video needs a style model")
    engine = build_engine(choice, backend=backend, device=device)
    source = VideoFileSource(input_path, size=inference_size(size, scale))

    def frames():
        while (frame := source.read()) is not None:
            yield frame.image

    def stylize(rgb):
        return batch_to_frames(engine(frames_to_batch([rgb])))[0]

    try:
        result = compare_flicker(frames(), stylize, max_frames=max_frames)
    finally:
        source.close()
    data = {"input": str(input_path), "model": choice.name, "engine": engine.name, **result.to_dict()}
    markdown = (
        f"| clip | model | frames | flicker | flicker --stabilize | lower by | stylise ms | stabilise ms | extra time |\n"
        f"|---|---|---|---|---|---|---|---|---|\n"
        f"| {Path(input_path).name} | {choice.name} | {result.frames} | {result.flicker:.6f} | "
        f"{result.flicker_stabilized:.6f} | {result.reduction:.0%} | {result.stylize_ms:.1f} | "
        f"{result.stabilize_ms:.1f} | {result.extra_time:.0%} |\n"
    )
    click.echo(markdown, nl=False)
    if out_dir:
        write_json_and_markdown(out_dir, stem or f"eval-video-{Path(input_path).stem}-{choice.name}", data, markdown)
