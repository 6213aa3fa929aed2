"""`livestyle export`: a model to ONNX (dynamic shapes) or to a cached TensorRT engine."""
from __future__ import annotations

from pathlib import Path

import click

from livestyle.cli.options import model_options
from livestyle.engines.export import FORMATS


def model_files_read(style: str | None, model_file: str | None, superres: int | str | None, variant: str) -> list[Path]:
    """The model files an export reads (the --model file, the catalog's files), which -o must not overwrite."""
    from livestyle.zoo.catalog import Catalog

    files = [Path(model_file)] if model_file else []
    if style or superres:
        catalog = Catalog()
        if style:
            files.append(catalog.path(catalog.get(style, task="style", variant=variant)))
        if superres:
            files.append(catalog.path(catalog.superres(superres, variant)))
    return files


@click.command("export")
@model_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx", show_default=True,
              help="onnx: a file with dynamic batch/height/width; tensorrt: a cached engine for this GPU.")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16: FP16 weights and activations, instance norms kept in FP32 (TensorRT: strongly typed FP16).")
@click.option("--fp16", is_flag=True, help="Alias of --precision fp16.")
@click.option("--rewrite", is_flag=True, help="ONNX: apply the exact sub-pixel upsample rewrite first.")
@click.option("--min", "min_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: smallest input.")
@click.option("--opt", "opt_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: the size to tune for.")
@click.option("--max", "max_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: largest input.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="ONNX file to write (default: in the export cache folder). TensorRT engines always go "
                   "to the cache folder (see --cache-dir).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder (default: $LIVESTYLE_CACHE_DIR, the source tree's export/, or ~/.cache/livestyle).")
def command(style, model_file, superres, variant, fmt, precision, fp16, rewrite, min_shape, opt_shape, max_shape,
            output, cache_dir):
    """Export a model: ONNX (checked with onnx.checker and ONNX Runtime) or a TensorRT engine.

    A plain style name exports its full model (--variant small: its small real-time variant).
    """
    from livestyle.engines.export.cache import default_cache_dir
    from livestyle.engines.export.onnx import export_onnx, onnx_cache_path, verify_onnx_runtime
    from livestyle.engines.export.tensorrt import ShapeProfile, default_profile, export_tensorrt, parse_shape
    from livestyle.files import check_output_folder, check_output_path
    from livestyle.zoo.choice import choose_model

    if output is not None and fmt != "onnx":
        raise click.UsageError("-o/--output is for --format onnx; TensorRT engines go to the cache folder")
    if fmt == "onnx" and any((min_shape, opt_shape, max_shape)):
        raise click.UsageError("--min/--opt/--max are TensorRT profile options; add --format tensorrt")
    if fp16:
        precision = "fp16"
    variant = "small" if variant == "small" else "full"
    choice = choose_model(style=style, model_file=model_file, superres=superres, variant=variant)
    if output is not None:
        check_output_path(output, *model_files_read(style, model_file, superres, variant))
    model = choice.model
    folder = Path(cache_dir) if cache_dir else default_cache_dir()

    if fmt == "onnx":
        path = Path(output) if output else onnx_cache_path(model, folder, precision=precision, rewrite=rewrite)
        check_output_folder(path.parent)  # an unwritable cache: say so now (or use -o / --cache-dir)
        export_onnx(model, path, precision=precision, rewrite=rewrite)
        error = verify_onnx_runtime(model, path, precision=precision)
        click.echo(f"{choice.name}: ONNX → {path} (dynamic N, H, W; ONNX Runtime max abs error {error:.2e} "
                   f"vs torch at 1×3×37×29)", err=True)
        return

    base = default_profile(model)
    profile = ShapeProfile(parse_shape(min_shape) if min_shape else base.min,
                           parse_shape(opt_shape) if opt_shape else base.opt,
                           parse_shape(max_shape) if max_shape else base.max)
    path = export_tensorrt(model, profile=profile, precision=precision, cache_dir=folder)
    click.echo(f"{choice.name}: TensorRT {precision.upper()} engine → {path} "
               f"(profile min/opt/max {profile.describe()})", err=True)
