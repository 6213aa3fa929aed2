"""`livestyle import`: add a community style model (pytorch/examples .pth or ONNX) to the catalog."""
from __future__ import annotations

import click


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Catalog name for the model (then use --style NAME).")
@click.option("--credit", default="", help="Who made the model and its style image.")
@click.option("--licence", default="", help="Licence of the model and its style image.")
@click.option("--value-range", type=click.Choice(["auto", "1", "255"]), default="auto", show_default=True,
              help="Value range of an ONNX file's network (auto: detected).")
def command(file, name, credit, licence, value_range):
    """Convert a pytorch/examples fast_neural_style checkpoint or ONNX export to a catalog model."""
    from livestyle.zoo.catalog import default_weights_dir
    from livestyle.zoo.importer import import_community_model

    folder = default_weights_dir()
    entry = import_community_model(file, name, folder, credit=credit, licence=licence,
                                   value_range=None if value_range == "auto" else float(value_range))
    click.echo(f"imported {file} as style {entry.name!r} ({folder / entry.file}, sha256 {entry.sha256[:12]}…)",
               err=True)
