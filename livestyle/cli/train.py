"""`livestyle train style|superres`: train a feed-forward network (Johnson et al. 2016 recipe by default)."""
from __future__ import annotations

import math
from pathlib import Path

import click

from livestyle.cli.options import compose, device_option, loss_net_options
from livestyle.training import AMP_CHOICES, LAYOUT_CHOICES


def _taps(value: str | None) -> tuple[str, ...] | None:
    return tuple(t.strip() for t in value.split(",") if t.strip()) if value else None


def _tap_weights(ctx, param, value: str | None) -> dict[str, float]:
    """"conv1=20,fire5=5" → {"conv1": 20.0, "fire5": 5.0}."""
    weights = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        tap, sep, number = item.partition("=")
        try:
            weights[tap.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"expected TAP=WEIGHT[,TAP=WEIGHT…], got {item!r}", ctx, param)
    return weights


def _counts(ctx, param, value: str) -> tuple[int, ...]:
    """"100,500" → (100, 500); "" → ()."""
    try:
        counts = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        counts = (0,)
    if any(c < 1 for c in counts):
        raise click.BadParameter(f"expected comma-separated positive integers, got {value!r}", ctx, param)
    return counts


def _learning_rate(ctx, param, value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"expected a finite number ≥ 0, got {value}", ctx, param)
    return value


def _catalog(ctx, param, value: str | None) -> str | None:
    """Checked before training: the catalog's folder must exist (the entry is added after the run)."""
    if value is not None:
        path = Path(value)
        folder = path if path.is_dir() or path.suffix != ".json" else path.parent
        if not folder.is_dir():
            raise click.BadParameter(f"folder {folder} does not exist", ctx, param)
    return value


run_options = compose(
    click.option("--dataset", required=True, type=click.Path(exists=True),
                 help="Folder of photos (searched recursively) or a .npz image pack."),
    click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
                 help="Model file to write (.safetensors); its catalog entry goes to OUT.json."),
    click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True),
    click.option("--lr", type=float, default=None, callback=_learning_rate,
                 help="Adam learning rate (default 1e-3, the paper's; 1e-4 for the residual srnet SR family, "
                      "whose first steps at 1e-3 overshoot)."),
    click.option("--data-limit", type=click.IntRange(min=1), default=None,
                 help="Use only the first N photos of the data set."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of weights and data order."),
    click.option("--no-progress", is_flag=True,
                 help="No progress display (a bar on a terminal, else a status line every 10 s)."),
    device_option,
    click.option("--amp", type=click.Choice(AMP_CHOICES), default="auto", show_default=True,
                 help="Mixed precision; auto times fp32/TF32 against bf16 on CUDA, off on CPU; a "
                      "resumed run keeps its own."),
    click.option("--channels-last", type=click.Choice(LAYOUT_CHOICES), default="auto",
                 show_default=True, help="Memory layout; auto times both on CUDA."),
    click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
                 help="Checkpoint file (default: OUT with suffix .ckpt)."),
    click.option("--checkpoint-every", type=click.IntRange(min=0), default=1000, show_default=True),
    click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
                 help="Start from this model file (same architecture): fine-tune a trained model, or go on "
                      "training one whose checkpoint is gone. Adam starts afresh."),
    click.option("--resume", is_flag=True, help="Continue the run saved in --checkpoint."),
    click.option("--time-limit", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
                 help="Stop after this much training time and write the model (the entry says so)."),
    click.option("--preview-every", type=click.IntRange(min=0), default=500, show_default=True,
                 help="Write a preview image every N steps (0: never)."),
    click.option("--preview-dir", type=click.Path(file_okay=False), default=None,
                 help="Folder for preview images (default: beside OUT)."),
    click.option("--catalog", type=click.Path(), default=None, callback=_catalog,
                 help="Also add (or replace) the model's entry in this catalog.json (or folder)."),
)
"""--dataset, -o, batch size, learning rate, seed, device, precision, checkpoints, previews, catalog."""


def _run_options(output, *, device, amp, channels_last, checkpoint, checkpoint_every, resume, preview_dir,
                 preview_every, no_progress, time_limit):
    from livestyle.training.recipes import RunOptions

    output = Path(output)
    return RunOptions(device=device, amp=amp, channels_last=channels_last,
                      checkpoint=checkpoint or str(output.with_suffix(".ckpt")), checkpoint_every=checkpoint_every,
                      resume=resume, preview_dir=preview_dir or str(output.parent / f"{output.stem}_previews"),
                      preview_every=preview_every, progress=not no_progress, time_limit_s=time_limit)


def _check_catalog(catalog: str | None, name: str | None, output: str) -> None:
    """Before any work: the entry this run will add to --catalog can be added (see zoo.catalog.check_entry)."""
    if catalog:
        from livestyle.zoo.catalog import check_entry

        check_entry(catalog, name or Path(output).stem, Path(output).name)


def _report(result, output, catalog) -> None:
    from livestyle.zoo.catalog import add_entry

    if result.rank:  # of several training processes (torchrun), rank 0 reports and writes the entry
        return
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result.final_losses.items())
    click.echo(f"{output}: {result.steps} steps, {result.images_per_second:.1f} images/s, final {losses}", err=True)
    skipped = len(result.skipped_images)
    if skipped:
        click.echo(f"skipped {skipped} unreadable image(s) of {skipped + result.dataset_images}, e.g. "
                   f"{result.skipped_images[0]}", err=True)
    if catalog:
        path = add_entry(catalog, result.entry, output)
        click.echo(f"catalog entry {result.entry['name']!r} written to {path}", err=True)


@click.group("train")
def command() -> None:
    """Train a style or super-resolution network (Johnson et al. 2016 recipe by default).

    On N GPUs (or CPU processes, with gloo): torchrun --nproc_per_node N -m livestyle train …; each
    process trains on its share of every batch (DistributedDataParallel), rank 0 writes the files.
    """


@command.command("style")
@click.option("--style-image", required=True, type=click.Path(exists=True, dir_okay=False), help="The painting.")
@run_options
@loss_net_options()
@click.option("--content-taps", default=None, help="Comma-separated taps (default: the loss network's).")
@click.option("--style-taps", default=None,
              help="Comma-separated taps (default: measured per loss network; squeezenet1_1: conv1, fire2..fire9).")
@click.option("--content-weight", type=float, default=None, help="Default: measured per loss network.")
@click.option("--style-weight", type=float, default=None, help="Default: measured per loss network.")
@click.option("--style-tap-weights", callback=_tap_weights, default=None, help="Per style tap, e.g. conv1=20,fire5=5.")
@click.option("--tv-weight", type=float, default=None, help="Total-variation weight (default per loss network).")
@click.option("--style-size", type=click.IntRange(min=16), default=None,
              help="Long side the style image is resized to (default per loss network: 384 for squeezenet1_1, "
                   "256 otherwise).")
@click.option("--image-size", type=click.IntRange(min=16), default=256, show_default=True,
              help="Training crop size (photos resized to this short side first).")
@click.option("--iterations", type=click.IntRange(min=1), default=40_000, show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=32, show_default=True,
              help="First conv's channels (32 paper; 8–16 real-time CPU variants).")
@click.option("--blocks", type=click.IntRange(min=0), default=5, show_default=True, help="Residual blocks.")
@click.option("--pixel-shuffle", is_flag=True,
              help="CPU-fast architecture: pixel (un)shuffles instead of the full-resolution layers.")
@click.option("--margin", type=click.IntRange(min=0), default=16, show_default=True,
              help="Border margin at inference: reflection pixels added on each side and cropped off again, "
                   "so the band of strokes training leaves along the edges stays off the picture (0: none).")
@click.option("--name", default=None, help="Catalog name (default: OUT's stem).")
@click.option("--variant", type=click.Choice(["full", "small"]), default="full", show_default=True)
@click.option("--quality-image", "quality_images", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Content photo to measure the final losses on (repeatable).")
@click.option("--gatys-iterations", default="", callback=_counts,
              help="Also measure Gatys after these L-BFGS counts, e.g. 100,500.")
def style_command(style_image, dataset, output, batch_size, lr, data_limit, seed, no_progress, device, amp,
                  channels_last, checkpoint, checkpoint_every, resume, init, time_limit, preview_every, preview_dir,
                  catalog, loss_net, loss_net_weights, content_taps, style_taps, content_weight, style_weight,
                  style_tap_weights, tv_weight, style_size, image_size, iterations, width, blocks, pixel_shuffle,
                  margin, name, variant, quality_images, gatys_iterations):
    """Train a style network: livestyle train style --style-image IMG --dataset DIR -o FILE."""
    from livestyle.quality.objective import ObjectiveConfig
    from livestyle.training.recipes import StyleRecipe
    from livestyle.training.run import train_style

    objective = ObjectiveConfig(loss_net=loss_net, content_taps=_taps(content_taps), style_taps=_taps(style_taps),
                                content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                                style_tap_weights=style_tap_weights, style_size=style_size)
    recipe = StyleRecipe(style_image=style_image, dataset=dataset, objective=objective, width=width, blocks=blocks,
                         pixel_shuffle=pixel_shuffle, margin=margin, image_size=image_size, batch_size=batch_size,
                         iterations=iterations, lr=1e-3 if lr is None else lr, seed=seed, data_limit=data_limit,
                         loss_net_weights=loss_net_weights)
    options = _run_options(output, device=device, amp=amp, channels_last=channels_last, checkpoint=checkpoint,
                           checkpoint_every=checkpoint_every, resume=resume, preview_dir=preview_dir,
                           preview_every=preview_every, no_progress=no_progress, time_limit=time_limit)
    _check_catalog(catalog, name, output)
    result = train_style(recipe, output, options, name=name, variant=variant, quality_images=list(quality_images),
                         gatys_iterations=gatys_iterations, init=init)
    _report(result, output, catalog)


@command.command("superres")
@click.option("--scale", type=click.Choice(["4", "8"]), required=True)
@click.option("--loss", type=click.Choice(["pixel", "feat"]), default="pixel", show_default=True)
@run_options
@loss_net_options()
@click.option("--feature-taps", default=None, help="Taps of the feature loss (default: conv1,fire2 / relu2_2).")
@click.option("--tv-weight", type=float, default=None, help="Total-variation weight (default 0 pixel, 1e3 feat).")
@click.option("--patch-size", type=click.IntRange(min=16), default=288, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=200_000, show_default=True)
@click.option("--family", type=click.Choice(["srnet", "subpixel"]), default="srnet", show_default=True,
              help="The network: srnet (the paper's, upsampling convs) or subpixel (every conv at the low "
                   "resolution, a pixel-shuffle output: the CPU-fast x4_fast/x8_fast).")
@click.option("--width", type=click.IntRange(min=1), default=None, help="Channels (default: srnet 64, subpixel 32).")
@click.option("--blocks", type=click.IntRange(min=0), default=None,
              help="Residual blocks (default: srnet 4, subpixel 6).")
@click.option("--residual/--no-residual", default=True, show_default=True,
              help="Learn a correction to the bicubic upscale (far fewer steps); --no-residual: the paper's "
                   "plain tanh output.")
@click.option("--norm", type=click.Choice(["none", "batch"]), default="none", show_default=True,
              help="Norm layers (batch: the paper's; none trained better here).")
@click.option("--blur", "blur_sigma", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Gaussian blur σ before the antialiased bicubic downsampling of the inputs (the paper: 1.0).")
@click.option("--name", default=None, help="Catalog name (default: OUT's stem).")
@click.option("--variant", type=click.Choice(["full", "small"]), default="full", show_default=True,
              help="small: the ×N model `--superres N` runs on a CPU.")
@click.option("--eval-set", "eval_sets", multiple=True, metavar="NAME=DIR",
              help="Measure PSNR/SSIM against bicubic on this folder of HR images (repeatable).")
def superres_command(scale, loss, dataset, output, batch_size, lr, data_limit, seed, no_progress, device, amp,
                     channels_last, checkpoint, checkpoint_every, resume, init, time_limit, preview_every, preview_dir,
                     catalog, loss_net, loss_net_weights, feature_taps, tv_weight, patch_size, iterations, family,
                     width, blocks, residual, norm, blur_sigma, name, variant, eval_sets):
    """Train a ×4/×8 SR network: livestyle train superres --scale 4 --loss pixel --dataset DIR -o FILE."""
    from livestyle.training.recipes import SuperResRecipe
    from livestyle.training.run import train_superres

    sets = {}
    for item in eval_sets:
        set_name, sep, folder = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=DIR, got {item!r}", param_hint="--eval-set")
        sets[set_name] = folder
    recipe = SuperResRecipe(dataset=dataset, scale=int(scale), loss=loss, loss_net=loss_net,
                            feature_taps=_taps(feature_taps), tv_weight=tv_weight, family=family, width=width,
                            blocks=blocks,
                            residual=residual, norm=norm, blur_sigma=blur_sigma, patch_size=patch_size,
                            batch_size=batch_size, iterations=iterations,
                            lr=lr, seed=seed,
                            data_limit=data_limit, loss_net_weights=loss_net_weights)
    options = _run_options(output, device=device, amp=amp, channels_last=channels_last, checkpoint=checkpoint,
                           checkpoint_every=checkpoint_every, resume=resume, preview_dir=preview_dir,
                           preview_every=preview_every, no_progress=no_progress, time_limit=time_limit)
    _check_catalog(catalog, name, output)
    result = train_superres(recipe, output, options, name=name, variant=variant, quality_sets=sets or None,
                            init=init)
    _report(result, output, catalog)
