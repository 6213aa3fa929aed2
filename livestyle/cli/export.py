"""`livestyle export`: a model to ONNX (dynamic shapes) or to a cached TensorRT engine."""
from __future__ import annotations

from pathlib import Path

import click

from ..catalog import Catalog, choose_model
from .options import model_options


def model_files_read(style: str | None, model_file: str | None, superres: int | str | None, variant: str) -> list[Path]:
    """The model files an export reads (the --model file, the catalog's files), which -o must not overwrite."""
    files = [Path(model_file)] if model_file else []
    if style or superres:
        catalog = Catalog()
        if style:
            files.append(catalog.path(catalog.get(style, task="style", variant=variant)))
        if superres:
            files.append(catalog.path(catalog.superres(superres)))
    return files


@click.command("export")
@model_options
@click.option("--format", "fmt", type=click.Choice(["onnx", "tensorrt"]), default="onnx", show_default=True,
              help="onnx: a file with dynamic batch/height/width; tensorrt: a cached engine for this GPU.")
@click.option("--fp16", is_flag=True,
              help="FP16 weights and activations, instance norms kept in FP32 (TensorRT: strongly typed FP16).")
@click.option("--rewrite", is_flag=True, help="ONNX: apply the exact sub-pixel upsample rewrite first.")
@click.option("--min", "min_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: smallest input.")
@click.option("--opt", "opt_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: the size to tune for.")
@click.option("--max", "max_shape", default=None, metavar="[Nx]HxW", help="TensorRT profile: largest input.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="ONNX file to write (default: in the export cache folder). TensorRT engines always go "
                   "to the cache folder (see --cache-dir).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache folder (default: $LIVESTYLE_CACHE_DIR, the source tree's export/, or ~/.cache/livestyle).")
def command(style, model_file, superres, variant, fmt, fp16, rewrite, min_shape, opt_shape, max_shape, output,
            cache_dir):
    """Export a model: ONNX (checked with onnx.checker and ONNX Runtime) or a TensorRT engine.

    A plain style name exports its full model (--variant small: its small real-time variant).
    """
    from .. import export as ex
    from .._files import check_output_folder, check_output_path

    if output is not None and fmt != "onnx":
        raise click.UsageError("-o/--output is for --format onnx; TensorRT engines go to the cache folder")
    if fmt == "onnx" and any((min_shape, opt_shape, max_shape)):
        raise click.UsageError("--min/--opt/--max are TensorRT profile options; add --format tensorrt")
    variant = "small" if variant == "small" else "full"
    choice = choose_model(style=style, model_file=model_file, superres=superres,
                          variant=variant)
    if output is not None:
        check_output_path(output, *model_files_read(style, model_file, superres, variant))
    model = choice.model
    folder = Path(cache_dir) if cache_dir else ex.default_cache_dir()

    if fmt == "onnx":
        path = Path(output) if output else ex.onnx_cache_path(model, folder, fp16=fp16, rewrite=rewrite)
        check_output_folder(path.parent)  # an unwritable cache: say so now (or use -o / --cache-dir)
        ex.export_onnx(model, path, fp16=fp16, rewrite=rewrite)
        error = ex.verify_onnx_runtime(model, path, fp16=fp16)
        click.echo(f"{choice.name}: ONNX → {path} (dynamic N, H, W; ONNX Runtime max abs error {error:.2e} "
                   f"vs torch at 1×3×37×29)", err=True)
        return

    base = ex.default_profile(model)
    profile = ex.ShapeProfile(ex.parse_shape(min_shape) if min_shape else base.min,
                              ex.parse_shape(opt_shape) if opt_shape else base.opt,
                              ex.parse_shape(max_shape) if max_shape else base.max)
    path = ex.export_tensorrt(model, profile=profile, fp16=fp16, cache_dir=folder)
    click.echo(f"{choice.name}: TensorRT {'FP16' if fp16 else 'FP32'} engine → {path} "
               f"(profile min/opt/max {profile.describe()})", err=True)
